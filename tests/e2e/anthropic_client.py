#!/usr/bin/env python3
"""Real-client end-to-end checks of gardefou's Anthropic Messages ingress: the official `anthropic`
SDK, used unchanged (sync and async), against a running gardefou.

    gardefou serve --config tests/e2e/gardefou-e2e.toml --listen 127.0.0.1:0
    python3 tests/e2e/anthropic_client.py http://127.0.0.1:PORT

The gateway must run with tests/e2e/gardefou-e2e.toml (mock provider only). Each check prints one
line; the last line reads `anthropic: N passed, M failed`; the exit status is non-zero when a check
failed. `pip install -r tests/e2e/requirements.txt` installs the SDK.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from typing import Callable, List

import anthropic
from anthropic import Anthropic, AsyncAnthropic

# Routes of tests/e2e/gardefou-e2e.toml.
CHAT = "chat"
RATE_LIMITED = "rate-limited"
BROKEN_STREAM = "broken-stream"

API_KEY = "sk-ant-x"
PROMPT = [{"role": "user", "content": "Tell me something about lighthouses."}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["city", "unit"],
    },
}


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def text_of(message: anthropic.types.Message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


def check_create_text(client: Anthropic) -> str:
    msg = client.messages.create(model=CHAT, max_tokens=200, messages=PROMPT)
    expect(isinstance(msg, anthropic.types.Message), f"not a Message: {msg!r}")
    expect(msg.type == "message" and msg.role == "assistant", f"shape: {msg!r}")
    expect(msg.id.startswith("msg_"), f"id: {msg.id}")
    expect(msg.content[0].type == "text" and "lighthouses" in msg.content[0].text, f"text: {msg.content}")
    expect(msg.stop_reason == "end_turn", f"stop_reason: {msg.stop_reason}")
    expect(msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0, f"usage: {msg.usage}")
    return f"{msg.usage.output_tokens} output tokens"


def check_system_and_turns(client: Anthropic) -> str:
    msg = client.messages.create(
        model=CHAT,
        max_tokens=200,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "the second question"}]},
        ],
        metadata={"user_id": "user-42"},
        stop_sequences=["NEVER-SEEN"],
    )
    expect("the second question" in text_of(msg), f"the last turn is answered: {text_of(msg)}")
    return "system blocks, three turns"


def check_tools_round_trip(client: Anthropic) -> str:
    question = {"role": "user", "content": "What is the weather in Paris?"}
    msg = client.messages.create(
        model=CHAT, max_tokens=200, messages=[question], tools=[WEATHER_TOOL], tool_choice={"type": "any"}
    )
    expect(msg.stop_reason == "tool_use", f"stop_reason: {msg.stop_reason}")
    calls = [b for b in msg.content if b.type == "tool_use"]
    expect(len(calls) == 1 and calls[0].name == "get_weather", f"tool calls: {msg.content}")
    expect(isinstance(calls[0].input, dict) and isinstance(calls[0].input.get("city"), str), f"input: {calls[0].input}")
    follow = client.messages.create(
        model=CHAT,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": msg.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "18 degrees, sunny"}],
            },
        ],
    )
    expect(follow.stop_reason == "end_turn", f"follow-up stop_reason: {follow.stop_reason}")
    expect("18 degrees, sunny" in text_of(follow), f"the tool result is used: {text_of(follow)}")
    return f"called {calls[0].name}({calls[0].input}), then answered"


def check_stream(client: Anthropic) -> str:
    whole = client.messages.create(model=CHAT, max_tokens=200, messages=PROMPT)
    with client.messages.stream(model=CHAT, max_tokens=200, messages=PROMPT) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    expect(len(pieces) > 3, f"several text deltas: {pieces}")
    expect("".join(pieces) == text_of(final) == text_of(whole), "stream, final message and create agree")
    expect(final.stop_reason == "end_turn", f"stop_reason: {final.stop_reason}")
    expect(final.usage.output_tokens == whole.usage.output_tokens, f"usage: {final.usage} vs {whole.usage}")
    expect(final.usage.input_tokens == whole.usage.input_tokens, f"usage: {final.usage} vs {whole.usage}")
    return f"{len(pieces)} text deltas"


def check_stream_tool_use(client: Anthropic) -> str:
    with client.messages.stream(
        model=CHAT, max_tokens=200, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()
    calls = [b for b in final.content if b.type == "tool_use"]
    expect(final.stop_reason == "tool_use" and len(calls) == 1, f"final: {final}")
    expect(set(calls[0].input) >= {"city", "unit"}, f"input reassembled: {calls[0].input}")
    return f"streamed input {calls[0].input}"


def check_count_tokens(client: Anthropic) -> str:
    count = client.messages.count_tokens(model=CHAT, messages=PROMPT)
    expect(count.input_tokens > 0, f"count: {count}")
    return f"{count.input_tokens} input tokens"


def check_headers(client: Anthropic) -> str:
    raw = client.messages.with_raw_response.create(model=CHAT, max_tokens=50, messages=PROMPT)
    expect(raw.headers.get("x-gardefou-inference-id"), f"headers: {raw.headers}")
    expect(raw.parse().type == "message", "the raw response parses")
    return "x-gardefou-inference-id present"


def check_unknown_model(client: Anthropic) -> str:
    try:
        client.messages.create(model="no-such-route", max_tokens=10, messages=PROMPT)
    except anthropic.NotFoundError as e:
        expect(e.status_code == 404, f"status: {e.status_code}")
        expect(isinstance(e.body, dict) and e.body["error"]["type"] == "not_found_error", f"body: {e.body}")
        return "NotFoundError"
    raise AssertionError("no error for an unknown model")


def check_rate_limited(client: Anthropic) -> str:
    try:
        client.with_options(max_retries=0).messages.create(model=RATE_LIMITED, max_tokens=10, messages=PROMPT)
    except anthropic.RateLimitError as e:
        expect(e.response.headers.get("retry-after") == "2", f"retry-after: {e.response.headers}")
        return "RateLimitError, retry-after 2"
    raise AssertionError("no error for a rate-limited route")


def check_broken_stream(client: Anthropic) -> str:
    pieces: List[str] = []
    try:
        with client.messages.stream(model=BROKEN_STREAM, max_tokens=200, messages=PROMPT) as stream:
            for text in stream.text_stream:
                pieces.append(text)
    except anthropic.APIStatusError as e:
        expect("api_error" in str(e), f"error: {e}")
        return f"APIStatusError after {len(pieces)} text deltas"
    raise AssertionError(f"a broken stream ended silently after {pieces}")


async def async_checks(base_url: str) -> str:
    client = AsyncAnthropic(base_url=base_url, api_key=API_KEY)
    msg = await client.messages.create(model=CHAT, max_tokens=200, messages=PROMPT)
    expect(msg.stop_reason == "end_turn" and text_of(msg), f"async create: {msg}")
    async with client.messages.stream(model=CHAT, max_tokens=200, messages=PROMPT) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    expect("".join(pieces) == text_of(final) == text_of(msg), "async stream and create agree")
    await client.close()
    return f"async create and stream ({len(pieces)} deltas)"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    base_url = sys.argv[1].rstrip("/")
    client = Anthropic(base_url=base_url, api_key=API_KEY)
    checks: List[Callable[[], str]] = [
        lambda: check_create_text(client),
        lambda: check_system_and_turns(client),
        lambda: check_tools_round_trip(client),
        lambda: check_stream(client),
        lambda: check_stream_tool_use(client),
        lambda: check_count_tokens(client),
        lambda: check_headers(client),
        lambda: check_unknown_model(client),
        lambda: check_rate_limited(client),
        lambda: check_broken_stream(client),
        lambda: asyncio.run(async_checks(base_url)),
    ]
    names = [
        "create text",
        "system and turns",
        "tools round trip",
        "stream text",
        "stream tool_use",
        "count_tokens",
        "response headers",
        "unknown model",
        "rate limited",
        "broken stream",
        "async",
    ]
    passed = failed = 0
    for name, check in zip(names, checks):
        try:
            detail = check()
            passed += 1
            print(f"ok   {name}: {detail}")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"FAIL {name}:\n{traceback.format_exc()}")
    print(f"anthropic: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
