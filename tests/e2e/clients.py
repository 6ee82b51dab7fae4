#!/usr/bin/env python3
"""Real-client end-to-end checks: the official `openai` SDK (`OpenAI` and `AsyncOpenAI`) and
LangChain's `ChatOpenAI`, used unchanged, against a running gardefou.

    gardefou serve --config tests/e2e/gardefou-e2e.toml --listen 127.0.0.1:0
    python3 tests/e2e/clients.py http://127.0.0.1:PORT

The gateway must run with tests/e2e/gardefou-e2e.toml (mock provider only). Each check prints one
line; the last line reads `clients: N passed, M failed`; the exit status is non-zero when a check
failed. `pip install -r tests/e2e/requirements.txt` installs the clients.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sys
import traceback
from typing import Awaitable, Callable, List, Literal

import openai
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel, Field

# Routes of tests/e2e/gardefou-e2e.toml.
CHAT = "chat"
EMBED = "embed"
RATE_LIMITED = "rate-limited"
BROKEN_STREAM = "broken-stream"
FALLBACK = "fallback"
ROUTES = [CHAT, EMBED, RATE_LIMITED, BROKEN_STREAM, FALLBACK]
# The mock's embedding dimension when the request does not ask for one.
EMBED_DIM = 256

PROMPT = [{"role": "user", "content": "Tell me something about lighthouses."}]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}


class Person(BaseModel):
    name: str
    age: int
    role: Literal["engineer", "manager"]
    skills: List[str]


class Weather(BaseModel):
    """Weather report for a city."""

    city: str = Field(description="City name")
    temperature: float
    sunny: bool


def weather_args_ok(args: dict) -> None:
    assert isinstance(args, dict), f"arguments are not an object: {args!r}"
    assert isinstance(args.get("city"), str), f"`city` missing or not a string: {args!r}"
    assert args.get("unit") in ("c", "f"), f"`unit` not in the enum [c, f]: {args!r}"


class Suite:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[: -len("/v1")]
        self.v1 = self.base + "/v1"
        self.client = OpenAI(base_url=self.v1, api_key="sk-anything")
        # No SDK retries: errors must reach the check as the gateway sent them.
        self.strict = OpenAI(base_url=self.v1, api_key="sk-anything", max_retries=0)

    def async_client(self) -> AsyncOpenAI:
        # A new client per check: each async check runs in its own event loop (`asyncio.run`),
        # and an async client's connections belong to the loop that opened them.
        return AsyncOpenAI(base_url=self.v1, api_key="sk-anything")

    @staticmethod
    def run_async(check: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """An async check as a plain one (same name), run in a fresh event loop."""

        @functools.wraps(check)
        def run() -> None:
            asyncio.run(check())

        return run

    def text(self, messages=PROMPT, **kw) -> str:
        r = self.client.chat.completions.create(model=CHAT, messages=messages, **kw)
        return r.choices[0].message.content

    # ------------------------------------------------------------------ chat

    def chat_non_streaming(self):
        raw = self.client.chat.completions.with_raw_response.create(model=CHAT, messages=PROMPT)
        assert raw.status_code == 200, f"status {raw.status_code}"
        assert raw.headers.get("x-request-id"), f"no x-request-id header: {dict(raw.headers)}"
        assert raw.headers.get("x-gardefou-inference-id"), (
            f"no x-gardefou-inference-id header: {dict(raw.headers)}"
        )
        r = raw.parse()
        assert r.object == "chat.completion", r.object
        assert len(r.choices) == 1, f"{len(r.choices)} choices"
        c = r.choices[0]
        assert isinstance(c.message.content, str) and c.message.content, f"content {c.message.content!r}"
        assert c.message.role == "assistant", c.message.role
        assert c.finish_reason == "stop", f"finish_reason {c.finish_reason!r}"
        assert r.usage is not None, "no usage"
        assert r.usage.prompt_tokens > 0, f"prompt_tokens {r.usage.prompt_tokens}"
        assert r.usage.completion_tokens > 0, f"completion_tokens {r.usage.completion_tokens}"
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage

    def request_id_is_echoed(self):
        rid = "e2e-request-7f3a9c"
        raw = self.client.chat.completions.with_raw_response.create(
            model=CHAT, messages=PROMPT, extra_headers={"x-request-id": rid}
        )
        assert raw.headers.get("x-request-id") == rid, (
            f"sent x-request-id {rid!r}, got back {raw.headers.get('x-request-id')!r}"
        )
        assert raw.headers.get("x-gardefou-inference-id"), "no x-gardefou-inference-id header"

    def streaming_with_usage(self):
        whole = self.text()
        stream = self.client.chat.completions.create(
            model=CHAT, messages=PROMPT, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert len(chunks) >= 3, f"only {len(chunks)} chunks"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole, f"streamed text {text!r} differs from the whole answer {whole!r}"
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["stop"], f"finish reasons {finishes}"
        last = chunks[-1]
        assert last.usage is not None, f"last chunk has no usage: {last}"
        assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0, last.usage
        assert not last.choices, f"usage chunk has choices: {last.choices}"
        assert all(c.usage is None for c in chunks[:-1]), "usage on a chunk before the last"

    def streaming_without_usage(self):
        chunks = list(self.client.chat.completions.create(model=CHAT, messages=PROMPT, stream=True))
        assert chunks, "no chunks"
        with_usage = [c for c in chunks if c.usage is not None]
        assert not with_usage, f"usage sent without include_usage: {with_usage[0]}"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text, "empty streamed text"

    # ------------------------------------------------------------------ tools

    def tool_call_required(self):
        r = self.client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
        )
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", f"finish_reason {c.finish_reason!r}"
        calls = c.message.tool_calls or []
        assert len(calls) == 1, f"{len(calls)} tool calls"
        call = calls[0]
        assert call.type == "function" and call.id, call
        assert call.function.name == "get_weather", call.function.name
        weather_args_ok(json.loads(call.function.arguments))

    def tool_call_streamed(self):
        stream = self.client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
        )
        calls: dict = {}
        finish = None
        for chunk in stream:
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                for d in choice.delta.tool_calls or []:
                    slot = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                    if d.id:
                        slot["id"] = d.id
                    if d.function and d.function.name:
                        slot["name"] += d.function.name
                    if d.function and d.function.arguments:
                        slot["arguments"] += d.function.arguments
        assert finish == "tool_calls", f"finish_reason {finish!r}"
        assert list(calls) == [0], f"tool call indexes {list(calls)}"
        call = calls[0]
        assert call["id"] and call["name"] == "get_weather", call
        try:
            args = json.loads(call["arguments"])
        except json.JSONDecodeError as e:
            raise AssertionError(f"streamed arguments are not JSON: {call['arguments']!r} ({e})")
        weather_args_ok(args)

    def parallel_tool_calls(self):
        r = self.client.chat.completions.create(
            model=CHAT,
            messages=[{"role": "user", "content": "Weather in Paris and the time in Tokyo?"}],
            tools=[WEATHER_TOOL, TIME_TOOL],
            tool_choice="auto",
            parallel_tool_calls=True,
        )
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", f"finish_reason {c.finish_reason!r}"
        calls = c.message.tool_calls or []
        assert [t.function.name for t in calls] == ["get_weather", "get_time"], (
            f"tool calls {[t.function.name for t in calls]}"
        )
        assert len({t.id for t in calls}) == 2, "tool call ids are not distinct"
        for t in calls:
            assert isinstance(json.loads(t.function.arguments), dict), t.function.arguments

    def tool_result_turn(self):
        messages = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = self.client.chat.completions.create(
            model=CHAT, messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
        )
        msg = first.choices[0].message
        call = msg.tool_calls[0]
        messages.append(msg.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"})
        r = self.client.chat.completions.create(model=CHAT, messages=messages, tools=[WEATHER_TOOL])
        c = r.choices[0]
        assert c.finish_reason == "stop", f"finish_reason {c.finish_reason!r}"
        assert not c.message.tool_calls, f"tool calls again: {c.message.tool_calls}"
        assert isinstance(c.message.content, str) and c.message.content, f"content {c.message.content!r}"

    # ------------------------------------------------------------------ AsyncOpenAI

    async def async_chat_non_streaming(self):
        async with self.async_client() as client:
            r = await client.chat.completions.create(model=CHAT, messages=PROMPT)
        assert r.object == "chat.completion", r.object
        assert len(r.choices) == 1, f"{len(r.choices)} choices"
        c = r.choices[0]
        assert isinstance(c.message.content, str) and c.message.content, f"content {c.message.content!r}"
        assert c.message.role == "assistant", c.message.role
        assert c.finish_reason == "stop", f"finish_reason {c.finish_reason!r}"
        assert r.usage is not None, "no usage"
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage
        whole = self.text()
        assert c.message.content == whole, f"async answer {c.message.content!r} differs from sync {whole!r}"

    async def async_streaming_with_usage(self):
        whole = self.text()
        async with self.async_client() as client:
            stream = await client.chat.completions.create(
                model=CHAT, messages=PROMPT, stream=True, stream_options={"include_usage": True}
            )
            chunks = [c async for c in stream]
        assert len(chunks) >= 3, f"only {len(chunks)} chunks"
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == whole, f"async streamed text {text!r} differs from the sync answer {whole!r}"
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["stop"], f"finish reasons {finishes}"
        last = chunks[-1]
        assert last.usage is not None, f"last chunk has no usage: {last}"
        assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0, last.usage
        assert not last.choices, f"usage chunk has choices: {last.choices}"
        assert all(c.usage is None for c in chunks[:-1]), "usage on a chunk before the last"

    async def async_tool_call_required(self):
        async with self.async_client() as client:
            r = await client.chat.completions.create(
                model=CHAT,
                messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                tools=[WEATHER_TOOL],
                tool_choice="required",
            )
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", f"finish_reason {c.finish_reason!r}"
        calls = c.message.tool_calls or []
        assert len(calls) == 1, f"{len(calls)} tool calls"
        call = calls[0]
        assert call.type == "function" and call.id, call
        assert call.function.name == "get_weather", call.function.name
        try:
            args = json.loads(call.function.arguments)
        except json.JSONDecodeError as e:
            raise AssertionError(f"arguments are not JSON: {call.function.arguments!r} ({e})")
        weather_args_ok(args)

    # ------------------------------------------------------------------ structured output

    def json_object_mode(self):
        content = self.text(
            messages=[{"role": "user", "content": "Answer in JSON."}],
            response_format={"type": "json_object"},
        )
        try:
            value = json.loads(content)
        except json.JSONDecodeError as e:
            raise AssertionError(f"content is not JSON: {content!r} ({e})")
        assert isinstance(value, dict), f"JSON is not an object: {value!r}"

    def json_schema_parse(self):
        completions = self.client.chat.completions
        if not hasattr(completions, "parse"):
            completions = self.client.beta.chat.completions
        r = completions.parse(
            model=CHAT,
            messages=[{"role": "user", "content": "Describe an engineer."}],
            response_format=Person,
        )
        msg = r.choices[0].message
        assert msg.refusal is None, f"refusal {msg.refusal!r}"
        p = msg.parsed
        assert isinstance(p, Person), f"parsed is {type(p).__name__}: {p!r} (content {msg.content!r})"
        assert isinstance(p.name, str) and isinstance(p.age, int) and isinstance(p.skills, list), p
        assert p.role in ("engineer", "manager"), p

    # ------------------------------------------------------------------ limits and options

    def max_tokens_length(self):
        r = self.client.chat.completions.create(model=CHAT, messages=PROMPT, max_tokens=5)
        c = r.choices[0]
        assert c.finish_reason == "length", f"finish_reason {c.finish_reason!r}"
        assert r.usage.completion_tokens <= 5, f"completion_tokens {r.usage.completion_tokens}"
        assert c.message.content, "empty content"

    def stop_sequence(self):
        assert "scripted" in self.text(), "the unstopped answer should contain the stop word"
        r = self.client.chat.completions.create(model=CHAT, messages=PROMPT, stop=["scripted"])
        content = r.choices[0].message.content
        assert "scripted" not in content, f"stop sequence in content: {content!r}"
        assert r.choices[0].finish_reason == "stop", r.choices[0].finish_reason

    def n_choices(self):
        r = self.client.chat.completions.create(model=CHAT, messages=PROMPT, n=2)
        assert len(r.choices) == 2, f"{len(r.choices)} choices"
        assert sorted(c.index for c in r.choices) == [0, 1], [c.index for c in r.choices]
        assert all(c.message.content for c in r.choices), "a choice without content"

    def image_part(self):
        raw = self.client.chat.completions.with_raw_response.create(
            model=CHAT,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    ],
                }
            ],
        )
        assert raw.status_code == 200, f"status {raw.status_code}"
        assert raw.parse().choices[0].message.content, "empty content"

    # ------------------------------------------------------------------ embeddings

    @staticmethod
    def unit_vector(v, dim: int) -> None:
        assert isinstance(v, list), f"embedding is {type(v).__name__}, not a list"
        assert len(v) == dim, f"dimension {len(v)}, expected {dim}"
        assert all(isinstance(x, float) for x in v), "not all floats"
        norm = math.sqrt(sum(x * x for x in v))
        assert abs(norm - 1.0) < 1e-3, f"norm {norm}"

    def embeddings_default(self):
        # The SDK asks for base64 and decodes it when the caller did not choose a format.
        r = self.client.embeddings.create(model=EMBED, input="a lighthouse on a cliff")
        assert len(r.data) == 1, f"{len(r.data)} vectors"
        self.unit_vector(r.data[0].embedding, EMBED_DIM)
        assert r.usage.prompt_tokens > 0, r.usage

    def embeddings_float(self):
        text = "a lighthouse on a cliff"
        f = self.client.embeddings.create(model=EMBED, input=text, encoding_format="float")
        self.unit_vector(f.data[0].embedding, EMBED_DIM)
        b = self.client.embeddings.create(model=EMBED, input=text)
        diff = max(abs(x - y) for x, y in zip(f.data[0].embedding, b.data[0].embedding))
        assert diff < 1e-6, f"float and base64 vectors differ by {diff}"

    def embeddings_batch(self):
        r = self.client.embeddings.create(model=EMBED, input=["one", "two", "three"])
        assert len(r.data) == 3, f"{len(r.data)} vectors"
        assert [d.index for d in r.data] == [0, 1, 2], [d.index for d in r.data]
        for d in r.data:
            self.unit_vector(d.embedding, EMBED_DIM)
        assert r.data[0].embedding != r.data[1].embedding, "different inputs, same vector"

    # ------------------------------------------------------------------ models

    def models_list(self):
        ids = [m.id for m in self.client.models.list()]
        missing = [r for r in ROUTES if r not in ids]
        assert not missing, f"routes missing from /v1/models: {missing} (got {ids})"

    # ------------------------------------------------------------------ errors

    def unknown_model(self):
        try:
            self.strict.chat.completions.create(model="no-such-route", messages=PROMPT)
        except openai.NotFoundError as e:
            assert e.status_code == 404, e.status_code
            return
        raise AssertionError("no openai.NotFoundError for an unknown model")

    def empty_messages(self):
        try:
            self.strict.chat.completions.create(model=CHAT, messages=[])
        except openai.BadRequestError as e:
            assert e.status_code == 400, e.status_code
            return
        raise AssertionError("no openai.BadRequestError for empty messages")

    def rate_limited(self):
        try:
            self.strict.chat.completions.create(model=RATE_LIMITED, messages=PROMPT)
        except openai.RateLimitError as e:
            assert e.status_code == 429, e.status_code
            ra = e.response.headers.get("retry-after")
            assert ra, f"no retry-after header: {dict(e.response.headers)}"
            assert float(ra) > 0, f"retry-after {ra!r}"
            return
        raise AssertionError("no openai.RateLimitError from a route failing with 429")

    def broken_stream(self):
        stream = self.strict.chat.completions.create(model=BROKEN_STREAM, messages=PROMPT, stream=True)
        got = []
        try:
            for chunk in stream:
                got.append(chunk)
        except openai.APIError as e:
            assert got, "the error came before any chunk: the stream did not start"
            assert str(e), "empty error message"
            return
        text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
        raise AssertionError(f"broken stream ended silently after {len(got)} chunks: {text!r}")

    def fallback(self):
        raw = self.strict.chat.completions.with_raw_response.create(model=FALLBACK, messages=PROMPT)
        assert raw.status_code == 200, f"status {raw.status_code}"
        r = raw.parse()
        assert r.choices[0].message.content, "empty content"
        assert r.choices[0].finish_reason == "stop", r.choices[0].finish_reason

    # ------------------------------------------------------------------ LangChain

    def langchain_chat(self):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(base_url=self.v1, api_key="sk-x", model=CHAT, max_retries=0)

    def langchain_invoke(self):
        from langchain_core.messages import AIMessage

        msg = self.langchain_chat().invoke("hi")
        assert isinstance(msg, AIMessage), type(msg).__name__
        assert isinstance(msg.content, str) and msg.content, f"content {msg.content!r}"

    def langchain_stream(self):
        llm = self.langchain_chat()
        whole = llm.invoke("hi").content
        pieces = [c.content for c in llm.stream("hi")]
        assert len(pieces) >= 3, f"only {len(pieces)} chunks"
        joined = "".join(p for p in pieces if isinstance(p, str))
        assert joined == whole, f"streamed {joined!r} differs from invoked {whole!r}"

    def langchain_tools(self):
        from langchain_core.tools import tool

        @tool
        def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
            """Current weather in a city."""
            return f"18 degrees {unit} in {city}"

        msg = self.langchain_chat().bind_tools([get_weather]).invoke("What is the weather in Paris?")
        assert msg.tool_calls, f"no tool_calls: {msg!r}"
        call = msg.tool_calls[0]
        assert call["name"] == "get_weather", call
        assert isinstance(call["args"].get("city"), str), f"args {call['args']!r}"

    def langchain_structured(self):
        out = self.langchain_chat().with_structured_output(Weather).invoke("Weather in Paris?")
        assert isinstance(out, Weather), f"got {type(out).__name__}: {out!r}"
        assert isinstance(out.city, str) and isinstance(out.sunny, bool), out

    def checks(self) -> List[Callable[[], None]]:
        return [
            self.chat_non_streaming,
            self.request_id_is_echoed,
            self.streaming_with_usage,
            self.streaming_without_usage,
            self.tool_call_required,
            self.tool_call_streamed,
            self.parallel_tool_calls,
            self.tool_result_turn,
            self.json_object_mode,
            self.json_schema_parse,
            self.max_tokens_length,
            self.stop_sequence,
            self.n_choices,
            self.image_part,
            self.embeddings_default,
            self.embeddings_float,
            self.embeddings_batch,
            self.models_list,
            self.unknown_model,
            self.empty_messages,
            self.rate_limited,
            self.broken_stream,
            self.fallback,
            self.run_async(self.async_chat_non_streaming),
            self.run_async(self.async_streaming_with_usage),
            self.run_async(self.async_tool_call_required),
            self.langchain_invoke,
            self.langchain_stream,
            self.langchain_tools,
            self.langchain_structured,
        ]


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].startswith("http"):
        print("usage: clients.py BASE_URL   (e.g. http://127.0.0.1:8080)", file=sys.stderr)
        return 2
    suite = Suite(sys.argv[1])
    passed = failed = 0
    for check in suite.checks():
        name = check.__name__
        try:
            check()
        except AssertionError as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        except Exception as e:  # an SDK error is a failed check too, with what the gateway said
            failed += 1
            detail = f"{type(e).__name__}: {e}"
            body = getattr(e, "body", None)
            if body is not None:
                detail += f" (body {json.dumps(body)[:500]})"
            print(f"FAIL {name}: {detail}")
            traceback.print_exc(limit=3, file=sys.stderr)
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"clients: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
