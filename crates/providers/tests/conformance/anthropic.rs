//! Conformance of the Anthropic Messages API adapter against fake upstreams on 127.0.0.1 port 0:
//! the exact request it sends, and the exact canonical answers and chunks the gateway sees back.

use std::time::Duration;

use gardefou_core::chat::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, Usage};
use gardefou_core::config::{Config, ModelConfig};
use gardefou_core::{Error, Result};
use gardefou_providers::anthropic::Anthropic;
use gardefou_providers::CallOptions;
use serde_json::{json, Value};

use crate::support::{
    self, canned, hello, key_file, ok_chunks, one_provider, opts, raw, request, split_frames, Step,
    SSE_CHUNKED_HEAD, SSE_CLOSE_HEAD,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// An SSE body in Anthropic's framing: `event: <type>` then `data: <json>` for each event.
fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())).collect()
}

const MODEL: &str = "claude-sonnet-4-5-20250929";

fn message_start(input: u64, cache_read: u64, cache_write: u64) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
        "model": MODEL, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read, "output_tokens": 1}}})
}

fn block_start(index: u32, block: Value) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": block})
}

fn block_delta(index: u32, delta: Value) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": delta})
}

fn text_delta(index: u32, text: &str) -> Value {
    block_delta(index, json!({"type": "text_delta", "text": text}))
}

fn json_delta(index: u32, partial: &str) -> Value {
    block_delta(index, json!({"type": "input_json_delta", "partial_json": partial}))
}

fn block_stop(index: u32) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

fn message_delta(stop_reason: &str, output: u64) -> Value {
    json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": output}})
}

fn message_stop() -> Value {
    json!({"type": "message_stop"})
}

/// An expected canonical chunk (`created` is zeroed on both sides).
fn chunk(delta: Value, finish: Option<&str>) -> ChatChunk {
    serde_json::from_value(json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 0,
        "model": MODEL, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    .unwrap()
}

fn first_chunk() -> ChatChunk {
    chunk(json!({"role": "assistant", "content": ""}), None)
}

fn usage_chunk(usage: Usage) -> ChatChunk {
    let mut c = chunk(json!({}), None);
    c.choices.clear();
    c.usage = Some(usage);
    c
}

fn tool_start(index: u32, id: &str, name: &str) -> ChatChunk {
    chunk(
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
        None,
    )
}

fn tool_args(index: u32, arguments: &str) -> ChatChunk {
    chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}), None)
}

fn answer(content: Value, stop_reason: &str, usage: Value) -> String {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "content": content,
        "stop_reason": stop_reason, "stop_sequence": null, "usage": usage})
    .to_string()
}

fn small_usage() -> Value {
    json!({"input_tokens": 10, "output_tokens": 3})
}

/// The adapter and model `chat` (upstream `claude-sonnet-4-5`) of a one-provider config.
fn adapter(provider_toml: &str) -> (Anthropic, ModelConfig) {
    let cfg = one_provider(provider_toml, "claude-sonnet-4-5");
    let anthropic = Anthropic::new(&cfg.providers["up"], Duration::from_secs(2)).unwrap();
    (anthropic, cfg.models["chat"].clone())
}

/// `extra_toml` adds provider settings (e.g. `api_version`).
fn anthropic_at(base: &str, tag: &str, extra_toml: &str) -> (Anthropic, ModelConfig) {
    let key = key_file(tag, "sk-ant-test\n");
    adapter(&format!(
        "kind = \"anthropic\"\nbase_url = \"{base}\"\napi_key = 'file:{}'\n{extra_toml}",
        key.display()
    ))
}

/// The stream's items, their `created` (the adapter's clock) set to 0.
async fn collect(stream: gardefou_providers::ChunkStream) -> Vec<Result<ChatChunk>> {
    support::collect(stream)
        .await
        .into_iter()
        .map(|i| {
            i.map(|mut c| {
                c.created = 0;
                c
            })
        })
        .collect()
}

/// Calls `chat` against a canned JSON answer; returns the response (created zeroed) and the
/// body sent.
async fn chat_with(req: &ChatRequest, answer: &str, tag: &str) -> (ChatResponse, Value) {
    let (base, log) = canned(200, &[("content-type", "application/json")], answer).await;
    let (anthropic, model) = anthropic_at(&base, tag, "");
    let mut resp = anthropic.chat(&model, req, &opts()).await.unwrap();
    resp.created = 0;
    let sent = log.lock().unwrap()[0].body.clone();
    (resp, sent)
}

/// Streams `events` from a canned upstream; returns the items and the body sent.
async fn stream_with(req: &ChatRequest, events: &[Value], tag: &str) -> (Vec<Result<ChatChunk>>, Value) {
    let (base, log) = canned(200, &[("content-type", "text/event-stream")], &sse(events)).await;
    let (anthropic, model) = anthropic_at(&base, tag, "");
    let items = collect(anthropic.chat_stream(&model, req, &opts()).await.unwrap()).await;
    let sent = log.lock().unwrap()[0].body.clone();
    (items, sent)
}

fn expected_response(message: Value, finish: &str, usage: Usage) -> ChatResponse {
    let mut r: ChatResponse = serde_json::from_value(json!({"id": "msg_1", "object": "chat.completion",
        "created": 0, "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": null}]}))
    .unwrap();
    r.usage = Some(usage);
    r
}

fn usage(input: u64, cached_input: u64, cache_write: u64, output: u64) -> Usage {
    Usage { input, cached_input, cache_write, output, reasoning: 0 }
}

// ---------------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_text_request_headers_and_answer() {
    let body = answer(json!([{"type": "text", "text": "Hello!"}]), "end_turn", small_usage());
    let (base, log) = canned(200, &[("content-type", "application/json")], &body).await;
    let beta = key_file("beta", "prompt-caching-2024-07-31");
    let key = key_file("plain", "sk-ant-test\n");
    let (anthropic, model) = adapter(&format!(
        "kind = \"anthropic\"\nbase_url = \"{base}/\"\napi_key = 'file:{}'\nheaders = {{ \"anthropic-beta\" = 'file:{}' }}",
        key.display(),
        beta.display()
    ));
    let opts = CallOptions {
        first_byte_timeout: Some(Duration::from_secs(5)),
        headers: vec![("traceparent".into(), "00-abc-def-01".into())],
    };

    let mut resp = anthropic.chat(&model, &hello(), &opts).await.unwrap();

    assert!(resp.created > 1_700_000_000, "{}", resp.created);
    resp.created = 0;
    assert_eq!(
        resp,
        expected_response(json!({"role": "assistant", "content": "Hello!"}), "stop", usage(10, 0, 0, 3))
    );
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str(), sent.query.as_deref()),
        ("POST", "/v1/messages", None)
    );
    assert_eq!(
        sent.headers_json(),
        json!({"accept": "application/json", "anthropic-beta": "prompt-caching-2024-07-31",
            "anthropic-version": "2023-06-01", "content-type": "application/json",
            "traceparent": "00-abc-def-01", "x-api-key": "sk-ant-test"})
    );
    assert_eq!(
        sent.body,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}]})
    );
}

#[tokio::test]
async fn multi_turn_extracts_the_system_prompt_and_merges_turns() {
    let req = request(json!({"model": "chat", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": [{"type": "text", "text": "Are you there?"}]},
            {"role": "assistant", "content": "Yes."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "assistant", "content": [{"type": "text", "text": "Oui."}]},
            {"role": "user", "content": "Bye"}],
        "max_completion_tokens": 100, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "stop": ["END", "STOP"],
        "user": "user-42", "stream": true, "top_k": 5, "reasoning_effort": "low", "metadata": {"team": "a"}}));
    let body = answer(json!([{"type": "text", "text": "Au revoir"}]), "stop_sequence", small_usage());

    let (resp, sent) = chat_with(&req, &body, "multi").await;

    assert_eq!(
        sent,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "You are terse.\nAnswer in French.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Are you there?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Yes."}, {"type": "text", "text": "Oui."}]},
                {"role": "user", "content": "Bye"}],
            "temperature": 0.5, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END", "STOP"],
            "metadata": {"user_id": "user-42"}})
    );
    assert_eq!(resp.choices[0].finish_reason.unwrap().as_str(), "stop");
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("Au revoir"));
}

#[tokio::test]
async fn tool_results_turn_and_tool_call_answer() {
    let req = request(json!({"model": "chat", "messages": [
            {"role": "user", "content": "Weather in Paris and Zürich?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Zürich\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "12°C"}]},
            {"role": "user", "content": "And tomorrow?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
            "cache_control": {"type": "ephemeral"}}],
        "tool_choice": "required", "parallel_tool_calls": false}));
    let body = answer(
        json!([{"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_3", "name": "get_weather", "input": {"day": "tomorrow", "city": "Paris"}}]),
        "tool_use",
        small_usage(),
    );

    let (resp, sent) = chat_with(&req, &body, "tool-results").await;

    assert_eq!(
        sent,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Zürich?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Zürich"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "12°C"},
                    {"type": "text", "text": "And tomorrow?"}]}],
            "tools": [{"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}})
    );
    assert_eq!(
        resp,
        expected_response(
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [{"id": "toolu_3",
                "type": "function", "function": {"name": "get_weather",
                    "arguments": "{\"city\":\"Paris\",\"day\":\"tomorrow\"}"}}]}),
            "tool_calls",
            usage(10, 0, 0, 3)
        )
    );
}

#[tokio::test]
async fn tool_choice_spellings() {
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let body = answer(json!([{"type": "text", "text": "ok"}]), "end_turn", small_usage());
    let cases = [
        (json!("auto"), None, json!({"type": "auto"})),
        (json!("none"), Some(false), json!({"type": "none"})),
        (json!({"type": "function", "function": {"name": "f"}}), None, json!({"type": "tool", "name": "f"})),
        (Value::Null, Some(false), json!({"type": "auto", "disable_parallel_tool_use": true})),
    ];
    for (i, (choice, parallel, expected)) in cases.into_iter().enumerate() {
        let mut req =
            json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "tools": tools});
        if !choice.is_null() {
            req["tool_choice"] = choice;
        }
        if let Some(p) = parallel {
            req["parallel_tool_calls"] = json!(p);
        }
        let (_, sent) = chat_with(&request(req), &body, &format!("choice-{i}")).await;
        assert_eq!(sent["tool_choice"], expected, "case {i}");
        assert_eq!(sent["tools"], json!([{"name": "f", "input_schema": {"type": "object"}}]));
    }
}

#[tokio::test]
async fn invalid_tool_call_arguments_are_an_invalid_request_naming_the_call() {
    let req = request(json!({"model": "chat", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [{"id": "call_9", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"q\": "}}]}]}));
    let (anthropic, model) = anthropic_at("http://127.0.0.1:9", "bad-args", "");
    let err = anthropic.chat(&model, &req, &opts()).await.unwrap_err();
    match err {
        Error::InvalidRequest { message, param } => {
            assert!(message.contains("call_9") && message.contains("lookup"), "{message}");
            assert_eq!(param.as_deref(), Some("messages[1]"));
        }
        other => panic!("expected an invalid request, got {other:?}"),
    }
}

#[tokio::test]
async fn json_mode_is_emulated_with_a_forced_tool() {
    let schema =
        json!({"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]});
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "6*7?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "math", "schema": schema, "strict": true}}}));
    let body = answer(
        json!([{"type": "tool_use", "id": "toolu_j", "name": "json_answer", "input": {"answer": 42}}]),
        "tool_use",
        small_usage(),
    );

    let (resp, sent) = chat_with(&req, &body, "json-mode").await;

    assert_eq!(
        sent,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": "6*7?"}],
            "tools": [{"name": "json_answer", "description": "Give the answer as this tool's input.",
                "input_schema": schema}],
            "tool_choice": {"type": "tool", "name": "json_answer"}})
    );
    assert_eq!(
        resp,
        expected_response(
            json!({"role": "assistant", "content": "{\"answer\":42}"}),
            "stop",
            usage(10, 0, 0, 3)
        )
    );

    // Streamed: the tool's input fragments are the content.
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "6*7?"}],
        "response_format": {"type": "json_object"}, "stream": true}));
    let events = [
        message_start(5, 0, 0),
        block_start(0, json!({"type": "tool_use", "id": "toolu_j", "name": "json_answer", "input": {}})),
        json_delta(0, ""),
        json_delta(0, "{\"answer\""),
        json_delta(0, ": 42}"),
        block_stop(0),
        message_delta("tool_use", 9),
        message_stop(),
    ];
    let (items, sent) = stream_with(&req, &events, "json-stream").await;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["tools"][0]["input_schema"], json!({"type": "object"}));
    assert_eq!(
        ok_chunks(items),
        vec![
            first_chunk(),
            chunk(json!({"content": "{\"answer\""}), None),
            chunk(json!({"content": ": 42}"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(usage(5, 0, 0, 9)),
        ]
    );
}

#[tokio::test]
async fn images_from_data_and_https_urls() {
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}));
    let body = answer(json!([{"type": "text", "text": "Same cat."}]), "end_turn", small_usage());

    let (_, sent) = chat_with(&req, &body, "images").await;

    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Compare these."},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]}])
    );
}

#[tokio::test]
async fn stop_reasons_map_onto_finish_reasons() {
    for (i, (stop_reason, finish)) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = answer(json!([{"type": "text", "text": "Hal"}]), stop_reason, small_usage());
        let (resp, _) = chat_with(&hello(), &body, &format!("stop-{i}")).await;
        assert_eq!(resp.choices[0].finish_reason.unwrap().as_str(), finish, "{stop_reason}");
    }
}

#[tokio::test]
async fn cache_control_passes_through_and_cache_usage_adds_up() {
    let req = request(json!({"model": "chat", "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be kind."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}},
            "cache_control": {"type": "ephemeral"}}]}));
    let body = answer(
        json!([{"type": "text", "text": "Hello"}]),
        "end_turn",
        json!({"input_tokens": 12, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000, "output_tokens": 5}),
    );

    let (resp, sent) = chat_with(&req, &body, "cache").await;

    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be kind."}])
    );
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}])
    );
    assert_eq!(sent["tools"][0]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(resp.usage, Some(usage(2312, 2000, 300, 5)));
}

#[tokio::test]
async fn thinking_blocks_in_the_answer_and_passed_back() {
    let req = request(json!({"model": "chat", "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Easy.", "signature": "sig-0"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "4"}]},
            {"role": "user", "content": "3+3?"}],
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 4000}));
    let body = answer(
        json!([{"type": "thinking", "thinking": "Add them.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque2"},
            {"type": "text", "text": "6"}]),
        "end_turn",
        small_usage(),
    );

    let (resp, sent) = chat_with(&req, &body, "thinking").await;

    assert_eq!(
        sent,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4000,
            "messages": [
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Easy.", "signature": "sig-0"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "4"}]},
                {"role": "user", "content": "3+3?"}],
            "thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    assert_eq!(
        resp,
        expected_response(
            json!({"role": "assistant", "content": "6", "reasoning_content": "Add them.", "reasoning_signature": "sig-1"}),
            "stop",
            usage(10, 0, 0, 3)
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

fn parallel_tool_events() -> Vec<Value> {
    vec![
        message_start(120, 100, 0),
        json!({"type": "ping"}),
        block_start(0, json!({"type": "text", "text": ""})),
        text_delta(0, "Météo ☀ pour deux villes"),
        block_stop(0),
        block_start(1, json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}})),
        json_delta(1, ""),
        json_delta(1, "{\"city\": \"Par"),
        json_delta(1, "is\"}"),
        block_stop(1),
        block_start(2, json!({"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}})),
        json_delta(2, "{\"city\":"),
        json_delta(2, " \"Zürich\"}"),
        block_stop(2),
        message_delta("tool_use", 80),
        message_stop(),
    ]
}

fn parallel_tool_chunks() -> Vec<ChatChunk> {
    vec![
        first_chunk(),
        chunk(json!({"content": "Météo ☀ pour deux villes"}), None),
        tool_start(0, "toolu_1", "get_weather"),
        tool_args(0, "{\"city\": \"Par"),
        tool_args(0, "is\"}"),
        tool_start(1, "toolu_2", "get_weather"),
        tool_args(1, "{\"city\":"),
        tool_args(1, " \"Zürich\"}"),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(usage(220, 100, 0, 80)),
    ]
}

#[tokio::test]
async fn stream_keeps_parallel_tool_arguments_split_across_reads() {
    let req = request(
        json!({"model": "chat", "messages": [{"role": "user", "content": "Weather?"}], "stream": true,
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}),
    );

    let (items, sent) = stream_with(&req, &parallel_tool_events(), "parallel").await;
    assert_eq!(ok_chunks(items), parallel_tool_chunks());
    assert_eq!(sent["stream"], true);

    // The same body cut every 40 bytes and inside every multi-byte character.
    let (base, sent) = raw(split_frames(&sse(&parallel_tool_events()))).await;
    let (anthropic, model) = anthropic_at(&base, "parallel-split", "");
    let items = collect(anthropic.chat_stream(&model, &req, &opts()).await.unwrap()).await;
    assert_eq!(ok_chunks(items), parallel_tool_chunks());
    let sent = sent.await.unwrap();
    assert_eq!(sent.headers["accept"], "text/event-stream");
}

#[tokio::test]
async fn stream_relays_invalid_tool_json_as_it_came() {
    let events = [
        message_start(3, 0, 0),
        block_start(0, json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}})),
        json_delta(0, "{\"a\": tru"),
        json_delta(0, "e,,}"),
        block_stop(0),
        message_delta("tool_use", 4),
        message_stop(),
    ];
    let (items, _) = stream_with(&hello(), &events, "bad-json").await;
    assert_eq!(
        ok_chunks(items),
        vec![
            first_chunk(),
            tool_start(0, "toolu_1", "f"),
            tool_args(0, "{\"a\": tru"),
            tool_args(0, "e,,}"),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(usage(3, 0, 0, 4)),
        ]
    );
}

#[tokio::test]
async fn stream_thinking_with_signature() {
    let events = [
        message_start(7, 0, 0),
        block_start(0, json!({"type": "thinking", "thinking": "", "signature": ""})),
        block_delta(0, json!({"type": "thinking_delta", "thinking": "Let me "})),
        block_delta(0, json!({"type": "thinking_delta", "thinking": "add."})),
        block_delta(0, json!({"type": "signature_delta", "signature": "EqQBCgIYAhIM"})),
        block_stop(0),
        block_start(1, json!({"type": "redacted_thinking", "data": "opaque"})),
        block_stop(1),
        block_start(2, json!({"type": "text", "text": ""})),
        text_delta(2, "4"),
        block_stop(2),
        message_delta("max_tokens", 30),
        message_stop(),
    ];
    let (items, _) = stream_with(&hello(), &events, "thinking-stream").await;
    assert_eq!(
        ok_chunks(items),
        vec![
            first_chunk(),
            chunk(json!({"reasoning_content": "Let me "}), None),
            chunk(json!({"reasoning_content": "add."}), None),
            chunk(json!({"reasoning_signature": "EqQBCgIYAhIM"}), None),
            chunk(json!({"content": "4"}), None),
            chunk(json!({}), Some("length")),
            usage_chunk(usage(7, 0, 0, 30)),
        ]
    );
}

#[tokio::test]
async fn stream_ignores_unknown_event_block_and_delta_types() {
    let events = [
        message_start(2, 0, 0),
        json!({"type": "brand_new_event", "whatever": [1, 2]}),
        block_start(
            0,
            json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
        ),
        json_delta(0, "{\"query\": \"x\"}"),
        block_stop(0),
        block_start(1, json!({"type": "text", "text": ""})),
        block_delta(1, json!({"type": "citations_delta", "citation": {"type": "char_location"}})),
        text_delta(1, "Found it."),
        block_stop(1),
        message_delta("end_turn", 6),
        message_stop(),
    ];
    let (items, _) = stream_with(&hello(), &events, "unknown-event").await;
    assert_eq!(
        ok_chunks(items),
        vec![
            first_chunk(),
            chunk(json!({"content": "Found it."}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(usage(2, 0, 0, 6)),
        ]
    );
}

#[tokio::test]
async fn error_event_mid_stream_fails_after_the_chunks_received() {
    let events = [
        message_start(2, 0, 0),
        block_start(0, json!({"type": "text", "text": ""})),
        text_delta(0, "Hel"),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        text_delta(0, "lo"),
    ];
    let (items, _) = stream_with(&hello(), &events, "error-event").await;
    assert_eq!(
        items,
        vec![
            Ok(first_chunk()),
            Ok(chunk(json!({"content": "Hel"}), None)),
            Err(Error::ProviderServer {
                provider: "up".into(),
                status: 529,
                message: "Overloaded".into(),
                retry_after: None
            }),
        ]
    );
    assert!(items[2].as_ref().unwrap_err().is_retryable());

    let events = [
        message_start(2, 0, 0),
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}),
    ];
    let (items, _) = stream_with(&hello(), &events, "error-rate").await;
    assert_eq!(
        items[1],
        Err(Error::RateLimited { provider: "up".into(), message: "Slow down".into(), retry_after: None })
    );
}

#[tokio::test]
async fn stream_ending_before_message_stop_fails() {
    // A clean end of body after the finish reason but before message_stop.
    let events = [
        message_start(2, 0, 0),
        block_start(0, json!({"type": "text", "text": ""})),
        text_delta(0, "Hi"),
        block_stop(0),
        message_delta("end_turn", 2),
    ];
    let (items, _) = stream_with(&hello(), &events, "no-stop").await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[2], Ok(chunk(json!({}), Some("stop"))));
    assert_eq!(
        items[3],
        Err(Error::BadResponse { provider: "up".into(), message: "stream ended before message_stop".into() })
    );

    // The connection dropped in the middle of a chunked body, inside an event's JSON.
    let body = sse(&events[..3]);
    let steps = vec![
        Step::Raw(SSE_CHUNKED_HEAD.to_vec()),
        Step::Chunk(body.into_bytes()),
        Step::Pause(20),
        Step::Chunk(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"ind".to_vec()),
    ];
    let (base, _sent) = raw(steps).await;
    let (anthropic, model) = anthropic_at(&base, "dropped", "");
    let items = collect(anthropic.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[1], Ok(chunk(json!({"content": "Hi"}), None)));
    match &items[2] {
        Err(Error::BadResponse { provider, message }) => {
            assert_eq!(provider, "up");
            assert!(message.starts_with("stream ended before message_stop"), "{message}");
        }
        other => panic!("expected a bad response, got {other:?}"),
    }

    // A close-delimited body whose last event is cut inside its JSON.
    let mut cut = sse(&events[..3]).into_bytes();
    cut.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"ind");
    let (base, _sent) = raw(vec![Step::Raw(SSE_CLOSE_HEAD.to_vec()), Step::Raw(cut)]).await;
    let (anthropic, model) = anthropic_at(&base, "truncated-json", "");
    let items = collect(anthropic.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(matches!(&items[2], Err(Error::BadResponse { .. })), "{:?}", items[2]);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

async fn chat_error(status: u16, headers: &[(&'static str, &str)], body: &str) -> Error {
    let (base, _log) = canned(status, headers, body).await;
    let (anthropic, model) = anthropic_at(&base, &format!("status-{status}"), "");
    let err = anthropic.chat(&model, &hello(), &opts()).await.unwrap_err();
    let stream_err = anthropic.chat_stream(&model, &hello(), &opts()).await.err().unwrap();
    assert_eq!(err, stream_err, "chat and chat_stream map status {status} alike");
    err
}

fn error_body(kind: &str, message: &str) -> String {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}).to_string()
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let err = chat_error(
        429,
        &[("retry-after", "7")],
        &error_body("rate_limit_error", "Number of requests exceeded"),
    )
    .await;
    assert_eq!(
        err,
        Error::RateLimited {
            provider: "up".into(),
            message: "Number of requests exceeded".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn overloaded_529_is_a_retryable_server_error() {
    let err = chat_error(529, &[], &error_body("overloaded_error", "Overloaded")).await;
    assert_eq!(
        err,
        Error::ProviderServer {
            provider: "up".into(),
            status: 529,
            message: "Overloaded".into(),
            retry_after: None
        }
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn client_errors_keep_anthropic_s_message() {
    for status in [400, 404, 413] {
        let err = chat_error(
            status,
            &[],
            &error_body("invalid_request_error", "messages: text content blocks must be non-empty"),
        )
        .await;
        assert_eq!(
            err,
            Error::ProviderRejected {
                provider: "up".into(),
                status,
                message: "messages: text content blocks must be non-empty".into()
            }
        );
    }
    for status in [401, 403] {
        let err = chat_error(status, &[], &error_body("authentication_error", "invalid x-api-key")).await;
        assert_eq!(err, Error::ProviderAuth { provider: "up".into(), status });
    }
    let err = chat_error(500, &[], &error_body("api_error", "Internal server error")).await;
    assert!(matches!(err, Error::ProviderServer { status: 500, .. }), "{err:?}");
}

#[tokio::test]
async fn error_object_in_a_200_answer_and_malformed_json() {
    let (base, _log) = canned(200, &[], &error_body("overloaded_error", "Overloaded")).await;
    let (anthropic, model) = anthropic_at(&base, "error-200", "");
    let err = anthropic.chat(&model, &hello(), &opts()).await.unwrap_err();
    assert!(matches!(err, Error::ProviderServer { status: 529, .. }), "{err:?}");

    let (base, _log) = canned(200, &[], "{\"id\": \"msg_1\", \"cont").await;
    let (anthropic, model) = anthropic_at(&base, "malformed", "");
    let err = anthropic.chat(&model, &hello(), &opts()).await.unwrap_err();
    assert!(matches!(&err, Error::BadResponse { provider, .. } if provider == "up"), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Parameters, versions, setup
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unsupported_params_lists_what_is_dropped() {
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "n": 2, "logprobs": true, "top_logprobs": 3, "seed": 1, "presence_penalty": 0.1,
        "frequency_penalty": 0.2, "logit_bias": {"1": 1}, "temperature": 0.3, "service_tier": "flex"}));
    let body = answer(json!([{"type": "text", "text": "ok"}]), "end_turn", small_usage());
    let (base, log) = canned(200, &[], &body).await;
    let (anthropic, model) = anthropic_at(&base, "unsupported", "");

    assert_eq!(
        anthropic.unsupported_params(&req),
        [
            "n",
            "logprobs",
            "top_logprobs",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "service_tier"
        ]
    );
    assert!(anthropic.unsupported_params(&hello()).is_empty());
    let one = request(json!({"model": "chat", "messages": [], "n": 1, "logprobs": false}));
    assert!(anthropic.unsupported_params(&one).is_empty());

    anthropic.chat(&model, &req, &opts()).await.unwrap();
    let sent = log.lock().unwrap()[0].body.clone();
    assert_eq!(
        sent,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.3})
    );
}

#[tokio::test]
async fn newest_anthropic_version_drops_sampling_parameters() {
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.2, "top_p": 0.8, "top_k": 40, "service_tier": "auto"}));
    let body = answer(json!([{"type": "text", "text": "ok"}]), "end_turn", small_usage());

    let (base, log) = canned(200, &[], &body).await;
    let (newest, model) = anthropic_at(&base, "v-new", "api_version = \"2026-10-21\"");
    assert_eq!(newest.unsupported_params(&req), ["temperature", "top_p", "top_k"]);
    newest.chat(&model, &req, &opts()).await.unwrap();
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(sent.headers["anthropic-version"], "2026-10-21");
    assert_eq!(
        sent.body,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi"}],
            "service_tier": "auto"})
    );

    let (old, model) = anthropic_at(&base, "v-old", "api_version = \"2023-06-01\"");
    assert!(old.unsupported_params(&req).is_empty());
    old.chat(&model, &req, &opts()).await.unwrap();
    let sent = log.lock().unwrap()[1].body.clone();
    assert_eq!(
        (sent["temperature"].clone(), sent["top_p"].clone(), sent["top_k"].clone()),
        (json!(0.2), json!(0.8), json!(40))
    );

    assert!(gardefou_providers::anthropic::forbidden_sampling("2023-06-01").is_empty());
    assert_eq!(
        gardefou_providers::anthropic::forbidden_sampling("2026-10-21"),
        ["temperature", "top_p", "top_k"]
    );
}

#[tokio::test]
async fn embeddings_are_an_invalid_request() {
    let (anthropic, model) = anthropic_at("http://127.0.0.1:9", "embed", "");
    let req: EmbeddingsRequest = serde_json::from_value(json!({"model": "chat", "input": "x"})).unwrap();
    let err = anthropic.embed(&model, &req, &opts()).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidRequest { message, .. } if message.contains("no embeddings API")),
        "{err:?}"
    );
}

#[test]
fn an_unreadable_api_key_disables_the_provider() {
    let missing = std::env::temp_dir().join(format!("gardefou-anthropic-test-{}-absent", std::process::id()));
    let text = format!(
        "[providers.up]\nkind = \"anthropic\"\napi_key = 'file:{}'\n\n[models.chat]\nprovider = \"up\"\n",
        missing.display()
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let err = Anthropic::new(&cfg.providers["up"], Duration::from_secs(1)).err().unwrap();
    assert!(err.contains("gardefou-anthropic-test"), "{err}");

    let text = "[providers.up]\nkind = \"anthropic\"\n\n[models.chat]\nprovider = \"up\"\n";
    let cfg = Config::parse(text, "test.toml").unwrap();
    assert!(Anthropic::new(&cfg.providers["up"], Duration::from_secs(1)).is_err());
}
