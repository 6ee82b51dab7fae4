//! Conformance of the Gemini adapter (Gemini API and Vertex AI) against fake upstreams on
//! 127.0.0.1 port 0: the exact request each sends (path, query, auth, body), and the exact
//! canonical answer the gateway sees back.

use std::time::Duration;

use gardefou_core::chat::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use gardefou_core::config::{Config, ModelConfig};
use gardefou_core::{Error, Result};
use gardefou_providers::gemini::Gemini;
use gardefou_providers::CallOptions;
use serde_json::{json, Value};

use crate::support::{
    canned, collect, hello, key_file, one_provider, opts, raw, request, split_frames, Captured, Step,
    SSE_CHUNKED_HEAD, SSE_CLOSE_HEAD,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Gemini separates its events with CRLF pairs.
fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect()
}

/// The adapter and model `chat` (upstream `upstream`) of a one-provider config.
fn adapter(provider_toml: &str, upstream: &str) -> (Gemini, ModelConfig) {
    let cfg = one_provider(provider_toml, upstream);
    let gemini = Gemini::new(&cfg.providers["up"], Duration::from_secs(2)).unwrap();
    (gemini, cfg.models["chat"].clone())
}

/// A Gemini API provider at `{base}/v1beta` with the key `AIza-test`; the key file lives as long
/// as the test process needs it (the key is read when the adapter is built).
fn gemini_at(base: &str, tag: &str) -> (Gemini, ModelConfig) {
    let key = key_file(tag, "AIza-test\n");
    adapter(
        &format!("kind = \"gemini\"\nbase_url = \"{base}/v1beta\"\napi_key = 'file:{}'", key.display()),
        "gemini-2.5-flash",
    )
}

const VERTEX_PATH: &str = "/v1/projects/p1/locations/us-central1/publishers/google";

/// The chunks, their `created` (the adapter's clock) set to 0.
fn ok_chunks(items: Vec<Result<ChatChunk>>) -> Vec<ChatChunk> {
    items
        .into_iter()
        .map(|i| {
            let mut c = i.unwrap();
            assert!(c.created > 0);
            c.created = 0;
            c
        })
        .collect()
}

/// A canonical answer as JSON, `created` set to 0 to compare.
fn answer_json(mut resp: ChatResponse) -> Value {
    assert!(resp.created > 0);
    resp.created = 0;
    serde_json::to_value(resp).unwrap()
}

fn chunk(id: &str, choices: Value) -> ChatChunk {
    serde_json::from_value(json!({"id": id, "object": "chat.completion.chunk", "created": 0,
        "model": "gemini-2.5-flash-001", "choices": choices}))
    .unwrap()
}

fn usage_chunk(id: &str, usage: Value) -> ChatChunk {
    serde_json::from_value(json!({"id": id, "object": "chat.completion.chunk", "created": 0,
        "model": "gemini-2.5-flash-001", "choices": [], "usage": usage}))
    .unwrap()
}

fn usage(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning}})
}

fn text_answer(parts: Value, finish: &str) -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-1"})
}

/// The body the fake upstream got for `req`, and the adapter's answer.
async fn round_trip(req: &ChatRequest, answer: &Value) -> (Value, ChatResponse) {
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let (gemini, model) = gemini_at(&base, "round-trip");
    let resp = gemini.chat(&model, req, &opts()).await.unwrap();
    let body = log.lock().unwrap()[0].body.clone();
    (body, resp)
}

/// A streamed answer played by a raw upstream, one event per chunked frame.
async fn stream_of(events: &[Value], tag: &str) -> (Vec<Result<ChatChunk>>, Captured) {
    let mut steps = vec![Step::Raw(SSE_CHUNKED_HEAD.to_vec())];
    for e in events {
        steps.push(Step::Chunk(format!("data: {e}\r\n\r\n").into_bytes()));
        steps.push(Step::Pause(2));
    }
    steps.push(Step::Chunk(Vec::new()));
    let (base, sent) = raw(steps).await;
    let (gemini, model) = gemini_at(&base, tag);
    let items = collect(gemini.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    (items, sent.await.unwrap())
}

// ---------------------------------------------------------------------------------------------
// URLs and auth
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn gemini_plain_text_with_api_key_header_and_usage() {
    let answer = json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}, {"text": " there!"}]},
            "finishReason": "STOP", "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "totalTokenCount": 14,
            "cachedContentTokenCount": 2, "thoughtsTokenCount": 4},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-1"
    });
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let (gemini, model) = gemini_at(&base, "plain");
    let opts = CallOptions {
        first_byte_timeout: Some(Duration::from_secs(5)),
        headers: vec![("traceparent".into(), "00-abc-def-01".into())],
    };

    let resp = gemini.chat(&model, &hello(), &opts).await.unwrap();

    assert_eq!(
        answer_json(resp),
        json!({"id": "resp-1", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash-001",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                "finish_reason": "stop", "logprobs": null}],
            "usage": usage(7, 7, 2, 4)})
    );
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str(), sent.query.as_deref()),
        ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", None)
    );
    assert_eq!(
        sent.headers_json(),
        json!({"accept": "application/json", "content-type": "application/json",
            "traceparent": "00-abc-def-01", "x-goog-api-key": "AIza-test"})
    );
    assert_eq!(sent.body, json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}));
}

#[tokio::test]
async fn vertex_plain_text_with_a_bearer_token_read_on_every_call() {
    let answer = text_answer(json!([{"text": "ok"}]), "STOP");
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let token = key_file("vertex-token", "ya29.first\n");
    let (vertex, model) = adapter(
        &format!(
            "kind = \"vertex\"\nbase_url = \"{base}{VERTEX_PATH}/\"\napi_key = 'file:{}'",
            token.display()
        ),
        "gemini-2.5-pro",
    );

    let resp = vertex.chat(&model, &hello(), &opts()).await.unwrap();
    std::fs::write(&token.0, "ya29.refreshed").unwrap();
    vertex.chat(&model, &hello(), &opts()).await.unwrap();

    assert_eq!(resp.choices[0].message.content.as_deref(), Some("ok"));
    let log = log.lock().unwrap().clone();
    assert_eq!(log[0].path, format!("{VERTEX_PATH}/models/gemini-2.5-pro:generateContent"));
    assert_eq!(log[0].query, None);
    assert_eq!(
        log[0].headers_json(),
        json!({"accept": "application/json", "authorization": "Bearer ya29.first",
            "content-type": "application/json"})
    );
    assert_eq!(log[1].headers["authorization"], "Bearer ya29.refreshed");
    assert_eq!(log[0].body, json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}));
}

#[test]
fn missing_credentials_disable_the_provider() {
    let text = "[providers.up]\nkind = \"gemini\"\n\n[models.chat]\nprovider = \"up\"\n";
    let cfg = Config::parse(text, "test.toml").unwrap();
    let err = Gemini::new(&cfg.providers["up"], Duration::from_secs(1)).err().unwrap();
    assert_eq!(err, "a `gemini` provider needs an api_key");

    let missing = std::env::temp_dir().join(format!("gardefou-gemini-test-{}-absent", std::process::id()));
    let text = format!(
        "[providers.up]\nkind = \"vertex\"\nbase_url = \"https://x.test/v1\"\napi_key = 'file:{}'\n\n[models.chat]\nprovider = \"up\"\n",
        missing.display()
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let err = Gemini::new(&cfg.providers["up"], Duration::from_secs(1)).err().unwrap();
    assert!(err.contains("gardefou-gemini-test"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Request conversion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn multi_turn_with_system_instruction_and_generation_config() {
    let req = request(json!({"model": "chat", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}],
        "temperature": 0.25, "top_p": 0.5, "max_tokens": 100, "stop": "END", "n": 2, "seed": 7,
        "presence_penalty": 0.5, "frequency_penalty": 0.25, "reasoning_effort": "low", "top_k": 40,
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "user": "u-1", "logit_bias": {"1": 2}}));
    let answer = json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "Il fait beau."}]}, "finishReason": "STOP", "index": 0},
            {"content": {"role": "model", "parts": [
                {"text": "Let me think.", "thought": true}, {"text": "Soleil."}]}, "finishReason": "STOP", "index": 1}],
        "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 8, "thoughtsTokenCount": 5},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-2"});

    let (body, resp) = round_trip(&req, &answer).await;

    assert_eq!(
        body,
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Hello! How can I help?"}]},
                {"role": "user", "parts": [{"text": "Weather?"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
            "generationConfig": {"temperature": 0.25, "topP": 0.5, "maxOutputTokens": 100,
                "stopSequences": ["END"], "candidateCount": 2, "seed": 7, "presencePenalty": 0.5,
                "frequencyPenalty": 0.25, "thinkingConfig": {"thinkingBudget": 1024}, "topK": 40},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        })
    );
    assert_eq!(
        answer_json(resp),
        json!({"id": "resp-2", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash-001",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Il fait beau."},
                    "finish_reason": "stop", "logprobs": null},
                {"index": 1, "message": {"role": "assistant", "content": "Soleil.",
                    "reasoning_content": "Let me think."}, "finish_reason": "stop", "logprobs": null}],
            "usage": usage(20, 13, 0, 5)})
    );
}

#[tokio::test]
async fn stop_sequences_and_explicit_thinking_config_win() {
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Count"}],
        "stop": ["7", "eight"], "max_completion_tokens": 9, "max_tokens": 50, "reasoning_effort": "high",
        "thinkingConfig": {"thinkingBudget": 64, "includeThoughts": true}, "logprobs": true, "top_logprobs": 2}));
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "1 2"}]},
            "finishReason": "STOP", "index": 0,
            "logprobsResult": {"chosenCandidates": [{"token": "1", "logProbability": -0.5}],
                "topCandidates": [{"candidates": [{"token": "1", "logProbability": -0.5},
                                                  {"token": "one", "logProbability": -1.5}]}]}}],
        "responseId": "r"});
    let (body, resp) = round_trip(&req, &answer).await;
    assert_eq!(
        body["generationConfig"],
        json!({"maxOutputTokens": 9, "stopSequences": ["7", "eight"], "responseLogprobs": true, "logprobs": 2,
            "thinkingConfig": {"thinkingBudget": 64, "includeThoughts": true}})
    );
    assert_eq!(resp.model, "gemini-2.5-flash", "no modelVersion: the upstream name");
    assert_eq!(
        resp.choices[0].logprobs,
        Some(json!({"content": [{"token": "1", "logprob": -0.5, "bytes": [49], "top_logprobs": [
            {"token": "1", "logprob": -0.5, "bytes": [49]},
            {"token": "one", "logprob": -1.5, "bytes": [111, 110, 101]}]}], "refusal": null}))
    );
}

#[tokio::test]
async fn image_input_inline_and_by_url() {
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/pics/cat.WEBP?size=2"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/render"}}]}]}));
    let (body, _) = round_trip(&req, &text_answer(json!([{"text": "A cat."}]), "STOP")).await;
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/pics/cat.WEBP?size=2"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render"}}]}]})
    );
}

#[tokio::test]
async fn json_mode_and_json_schema_become_response_schema() {
    let answer = text_answer(json!([{"text": "{\"answer\":\"42\"}"}]), "STOP");
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Answer"}],
        "response_format": {"type": "json_object"}}));
    let (body, resp) = round_trip(&req, &answer).await;
    assert_eq!(body["generationConfig"], json!({"responseMimeType": "application/json"}));
    assert_eq!(resp.choices[0].message.content.as_deref(), Some("{\"answer\":\"42\"}"));

    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Answer"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": true, "schema": {
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "additionalProperties": false, "required": ["answer"],
            "properties": {"answer": {"type": "string", "format": "uri"}, "score": {"type": ["number", "null"]}}}}}}));
    let (body, _) = round_trip(&req, &answer).await;
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json", "responseSchema": {"type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "string"}, "score": {"type": "number", "nullable": true}}}})
    );
}

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

const SIGNATURE: &str = "CiQB+/sgAA==";
const SIGNED_ID: &str = "call_0__ts__CiQB-_sgAA";

#[tokio::test]
async fn parallel_function_calls_in_one_answer() {
    let req = request(
        json!({"model": "chat", "messages": [{"role": "user", "content": "Paris and Zürich?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather of a city",
            "strict": true, "parameters": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object", "additionalProperties": false, "required": ["city"],
                "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}}}),
    );
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "weather", "args": {"city": "Zürich"}}}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 10},
        "modelVersion": "gemini-3-pro", "responseId": "resp-t"});

    let (body, resp) = round_trip(&req, &answer).await;

    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Paris and Zürich?"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "weather", "description": "Weather of a city",
                    "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}},
                {"name": "now"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}})
    );
    assert_eq!(
        answer_json(resp),
        json!({"id": "resp-t", "object": "chat.completion", "created": 0, "model": "gemini-3-pro",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": SIGNED_ID, "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Zürich\"}"}}]},
                "finish_reason": "tool_calls", "logprobs": null}],
            "usage": usage(30, 10, 0, 0)})
    );
}

#[tokio::test]
async fn tool_choice_modes() {
    let answer = text_answer(json!([{"text": "ok"}]), "STOP");
    for (choice, expected) in [
        (json!("auto"), json!({"mode": "AUTO"})),
        (json!("none"), json!({"mode": "NONE"})),
        (json!("required"), json!({"mode": "ANY"})),
    ] {
        let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}));
        let (body, _) = round_trip(&req, &answer).await;
        assert_eq!(body["toolConfig"]["functionCallingConfig"], expected);
        assert_eq!(body["tools"], json!([{"functionDeclarations": [{"name": "f"}]}]));
    }
}

#[tokio::test]
async fn tool_results_resolve_names_from_ids_and_send_the_signature_back() {
    let req = request(json!({"model": "chat", "messages": [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": SIGNED_ID, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
        {"role": "tool", "tool_call_id": SIGNED_ID, "content": "{\"temp\": 21}"},
        {"role": "user", "content": "And tomorrow?"}]}));

    let (body, _) = round_trip(&req, &text_answer(json!([{"text": "Sunny."}]), "STOP")).await;

    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
                {"functionCall": {"name": "now", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "now", "response": {"content": "12:00"}}},
                {"functionResponse": {"name": "weather", "response": {"temp": 21}}}]},
            {"role": "user", "parts": [{"text": "And tomorrow?"}]}])
    );
}

#[tokio::test]
async fn invalid_tool_arguments_and_unknown_tool_results_are_refused_before_sending() {
    let (base, log) = canned(200, &[], "{}").await;
    let (gemini, model) = gemini_at(&base, "invalid-tools");
    let req = request(json!({"model": "chat", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{not json"}}]}]}));
    match gemini.chat(&model, &req, &opts()).await.unwrap_err() {
        Error::InvalidRequest { message, param } => {
            assert!(message.contains("`call_9` (`weather`)"), "{message}");
            assert_eq!(param.as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
        }
        other => panic!("expected an invalid request, got {other:?}"),
    }
    let req = request(json!({"model": "chat", "messages": [
        {"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]}));
    let err = gemini.chat_stream(&model, &req, &opts()).await.err().unwrap();
    assert!(
        matches!(&err, Error::InvalidRequest { param: Some(p), .. } if p == "messages[1].tool_call_id"),
        "{err:?}"
    );
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn parallel_function_calls_in_a_stream() {
    let events = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking."}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-s"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "weather", "args": {"city": "Zürich"}}}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-s"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "now", "args": {}}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 12, "totalTokenCount": 42},
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-s"}),
    ];

    let (items, sent) = stream_of(&events, "stream-tools").await;

    assert_eq!(
        ok_chunks(items),
        vec![
            chunk(
                "resp-s",
                json!([{"index": 0, "delta": {"role": "assistant", "content": "Checking."},
                "finish_reason": null}])
            ),
            chunk(
                "resp-s",
                json!([{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": SIGNED_ID, "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"index": 1, "id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Zürich\"}"}}]},
                "finish_reason": null}])
            ),
            chunk(
                "resp-s",
                json!([{"index": 0, "delta": {"tool_calls": [
                {"index": 2, "id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}])
            ),
            usage_chunk("resp-s", usage(30, 12, 0, 0)),
        ]
    );
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
    assert_eq!(sent.headers["accept"], "text/event-stream");
    assert_eq!(sent.headers["x-goog-api-key"], "AIza-test");
}

// ---------------------------------------------------------------------------------------------
// Endings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn max_tokens_is_length() {
    let (_, resp) =
        round_trip(&hello(), &text_answer(json!([{"text": "The answer is"}]), "MAX_TOKENS")).await;
    assert_eq!(
        serde_json::to_value(&resp.choices).unwrap(),
        json!([{"index": 0, "message": {"role": "assistant", "content": "The answer is"},
            "finish_reason": "length", "logprobs": null}])
    );
}

#[tokio::test]
async fn safety_block_is_content_filter_with_the_reason() {
    let answer = json!({"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}]}],
        "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6}, "responseId": "r"});
    let (_, resp) = round_trip(&hello(), &answer).await;
    assert_eq!(
        serde_json::to_value(&resp.choices).unwrap(),
        json!([{"index": 0, "message": {"role": "assistant", "content": null,
                "refusal": "blocked by Gemini safety: SAFETY (HARM_CATEGORY_DANGEROUS_CONTENT: HIGH)"},
            "finish_reason": "content_filter", "logprobs": null}])
    );
}

#[tokio::test]
async fn prompt_feedback_block_without_candidates() {
    let answer = json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-b"});
    let (_, resp) = round_trip(&hello(), &answer).await;
    assert_eq!(
        answer_json(resp),
        json!({"id": "resp-b", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash-001",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "refusal": "blocked by Gemini safety: PROHIBITED_CONTENT"},
                "finish_reason": "content_filter", "logprobs": null}],
            "usage": usage(9, 0, 0, 0)})
    );

    let (items, _) = stream_of(&[answer], "stream-blocked").await;
    assert_eq!(
        ok_chunks(items),
        vec![
            chunk(
                "resp-b",
                json!([{"index": 0, "delta": {"role": "assistant",
                "refusal": "blocked by Gemini safety: PROHIBITED_CONTENT"}, "finish_reason": "content_filter"}])
            ),
            usage_chunk("resp-b", usage(9, 0, 0, 0)),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stream_usage_metadata_is_cumulative_and_never_summed() {
    let event = |text: &str, finish: Option<&str>, out: u64, thoughts: u64| {
        let mut cand = json!({"content": {"role": "model", "parts": [{"text": text}]}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        json!({"candidates": [cand], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": out,
            "thoughtsTokenCount": thoughts, "cachedContentTokenCount": 4, "totalTokenCount": 10 + out + thoughts},
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-u"})
    };
    let events = [event("One", None, 1, 6), event(" two", None, 2, 6), event("", Some("STOP"), 3, 6)];
    let body = sse(&events);
    let (base, _log) = canned(200, &[("content-type", "text/event-stream")], &body).await;
    let (gemini, model) = gemini_at(&base, "usage");

    let chunks = ok_chunks(collect(gemini.chat_stream(&model, &hello(), &opts()).await.unwrap()).await);

    assert_eq!(
        chunks,
        vec![
            chunk(
                "resp-u",
                json!([{"index": 0, "delta": {"role": "assistant", "content": "One"}, "finish_reason": null}])
            ),
            chunk("resp-u", json!([{"index": 0, "delta": {"content": " two"}, "finish_reason": null}])),
            chunk("resp-u", json!([{"index": 0, "delta": {}, "finish_reason": "stop"}])),
            usage_chunk("resp-u", usage(10, 9, 4, 6)),
        ]
    );
}

#[tokio::test]
async fn stream_keeps_multi_byte_text_split_across_reads() {
    let events = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hmm, ", "thought": true}]},
            "index": 0}], "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-m"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Café "}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-m"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "日本 🦀!"}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8},
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-m"}),
    ];
    let mut steps = split_frames(&sse(&events));
    steps.push(Step::Chunk(Vec::new()));
    assert!(steps.len() > 20, "the body is cut into many reads");
    let (base, _sent) = raw(steps).await;
    let (gemini, model) = gemini_at(&base, "split");

    let chunks = ok_chunks(collect(gemini.chat_stream(&model, &hello(), &opts()).await.unwrap()).await);

    assert_eq!(
        chunks,
        vec![
            chunk(
                "resp-m",
                json!([{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hmm, "},
                "finish_reason": null}])
            ),
            chunk("resp-m", json!([{"index": 0, "delta": {"content": "Café "}, "finish_reason": null}])),
            chunk("resp-m", json!([{"index": 0, "delta": {"content": "日本 🦀!"}, "finish_reason": "stop"}])),
            usage_chunk("resp-m", usage(3, 5, 0, 0)),
        ]
    );
}

#[tokio::test]
async fn error_object_mid_stream_ends_it_with_the_mapped_error() {
    let events = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
            "modelVersion": "gemini-2.5-flash-001", "responseId": "resp-e"}),
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
    ];
    let (items, _) = stream_of(&events, "stream-error").await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().choices[0].delta.content.as_deref(), Some("Hel"));
    assert_eq!(
        items[1],
        Err(Error::ProviderServer {
            provider: "up".into(),
            status: 503,
            message: "The model is overloaded.".into(),
            retry_after: None
        })
    );
}

#[tokio::test]
async fn stream_ending_before_a_finish_reason_fails() {
    let events =
        [json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1}, "responseId": "resp-x"})];
    let (items, _) = stream_of(&events, "stream-eof").await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0].is_ok());
    assert_eq!(
        items[1],
        Err(Error::BadResponse { provider: "up".into(), message: "stream ended before completion".into() })
    );

    // The connection drops in the middle of an event.
    let first = format!("data: {}\r\n\r\n", events[0]);
    let steps = vec![
        Step::Raw(SSE_CLOSE_HEAD.to_vec()),
        Step::Raw(first.into_bytes()),
        Step::Pause(20),
        Step::Raw(b"data: {\"candidates\": [{\"conte".to_vec()),
    ];
    let (base, _sent) = raw(steps).await;
    let (gemini, model) = gemini_at(&base, "stream-cut");
    let items = collect(gemini.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(&items[1], Err(Error::BadResponse { .. })), "{:?}", items[1]);
}

// ---------------------------------------------------------------------------------------------
// Upstream errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_with_retry_info_carries_the_delay() {
    let body = json!({"error": {"code": 429, "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}});
    let (base, _log) = canned(429, &[("content-type", "application/json")], &body.to_string()).await;
    let (gemini, model) = gemini_at(&base, "429");
    let expected = Error::RateLimited {
        provider: "up".into(),
        message: "You exceeded your current quota.".into(),
        retry_after: Some(Duration::from_secs(7)),
    };
    assert_eq!(gemini.chat(&model, &hello(), &opts()).await.unwrap_err(), expected);
    assert_eq!(gemini.chat_stream(&model, &hello(), &opts()).await.err().unwrap(), expected);
}

#[tokio::test]
async fn http_errors_map_by_status() {
    let cases = [
        (
            400,
            json!({"error": {"code": 400, "message": "Invalid value at 'contents'", "status": "INVALID_ARGUMENT"}}),
            Error::ProviderRejected {
                provider: "up".into(),
                status: 400,
                message: "Invalid value at 'contents'".into(),
            },
        ),
        (
            404,
            json!({"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}),
            Error::ProviderRejected {
                provider: "up".into(),
                status: 404,
                message: "models/x is not found".into(),
            },
        ),
        (
            403,
            json!({"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}),
            Error::ProviderAuth { provider: "up".into(), status: 403 },
        ),
        (
            500,
            json!({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}),
            Error::ProviderServer {
                provider: "up".into(),
                status: 500,
                message: "internal".into(),
                retry_after: None,
            },
        ),
        (
            504,
            json!({"error": {"code": 504, "message": "deadline", "status": "DEADLINE_EXCEEDED"}}),
            Error::Timeout { provider: "up".into(), phase: "upstream deadline" },
        ),
    ];
    for (status, body, expected) in cases {
        let (base, _log) = canned(status, &[("content-type", "application/json")], &body.to_string()).await;
        let (gemini, model) = gemini_at(&base, &format!("status-{status}"));
        assert_eq!(gemini.chat(&model, &hello(), &opts()).await.unwrap_err(), expected, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------------------------

fn embeddings_request(v: Value) -> EmbeddingsRequest {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn gemini_embeddings_use_batch_embed_contents() {
    let answer = json!({"embeddings": [{"values": [0.25, -0.5]}, {"values": [1.0, 0.0]}]});
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let key = key_file("embed", "AIza-embed");
    let (gemini, model) = adapter(
        &format!("kind = \"gemini\"\nbase_url = \"{base}/v1beta\"\napi_key = 'file:{}'", key.display()),
        "text-embedding-004",
    );
    let req = embeddings_request(json!({"model": "chat", "input": ["hello world", "bye"], "dimensions": 2,
        "task_type": "RETRIEVAL_QUERY"}));

    let resp = gemini.embed(&model, &req, &opts()).await.unwrap();

    assert_eq!(
        resp,
        serde_json::from_value::<EmbeddingsResponse>(json!({"object": "list", "model": "text-embedding-004",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]},
                     {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}}))
        .unwrap()
    );
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(sent.path, "/v1beta/models/text-embedding-004:batchEmbedContents");
    assert_eq!(sent.headers["x-goog-api-key"], "AIza-embed");
    assert_eq!(
        sent.body,
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello world"}]},
                "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 2},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bye"}]},
                "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 2}]})
    );
}

#[tokio::test]
async fn vertex_embeddings_use_predict_and_report_token_counts() {
    let answer = json!({"predictions": [
        {"embeddings": {"values": [1.0], "statistics": {"token_count": 3, "truncated": false}}},
        {"embeddings": {"values": [1.0, -2.5], "statistics": {"token_count": 2.0, "truncated": false}}}]});
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let token = key_file("vertex-embed", "ya29.embed");
    let (vertex, model) = adapter(
        &format!(
            "kind = \"vertex\"\nbase_url = \"{base}{VERTEX_PATH}\"\napi_key = 'file:{}'",
            token.display()
        ),
        "text-embedding-005",
    );
    let req = embeddings_request(json!({"model": "chat", "input": ["a", "b"], "encoding_format": "base64",
        "dimensions": 256}));

    let resp = vertex.embed(&model, &req, &opts()).await.unwrap();

    assert_eq!(
        resp,
        serde_json::from_value::<EmbeddingsResponse>(json!({"object": "list", "model": "text-embedding-005",
            "data": [{"object": "embedding", "index": 0, "embedding": "AACAPw=="},
                     {"object": "embedding", "index": 1, "embedding": "AACAPwAAIMA="}],
            "usage": {"prompt_tokens": 5, "total_tokens": 5}}))
        .unwrap()
    );
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(sent.path, format!("{VERTEX_PATH}/models/text-embedding-005:predict"));
    assert_eq!(sent.headers["authorization"], "Bearer ya29.embed");
    assert_eq!(
        sent.body,
        json!({"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 256}})
    );
}

#[tokio::test]
async fn token_array_embedding_inputs_are_refused() {
    let (gemini, model) = gemini_at("http://127.0.0.1:9", "embed-tokens");
    let req = embeddings_request(json!({"model": "chat", "input": [1, 2, 3]}));
    let err = gemini.embed(&model, &req, &opts()).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidRequest { param: Some(p), .. } if p == "input"), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Unsupported parameters
// ---------------------------------------------------------------------------------------------

#[test]
fn unsupported_params_name_what_gemini_cannot_honour() {
    let (gemini, _) = gemini_at("http://127.0.0.1:9", "unsupported");
    assert!(gemini.unsupported_params(&hello()).is_empty());
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "parallel_tool_calls": false, "logprobs": true, "top_logprobs": 21, "user": "u-1",
        "logit_bias": {"50256": -100}, "service_tier": "flex", "top_k": 3, "reasoning_effort": "low"}));
    assert_eq!(
        gemini.unsupported_params(&req),
        ["parallel_tool_calls", "top_logprobs", "logit_bias", "service_tier"],
        "`user` is attribution, recorded by gardefou: dropping it is not a loss worth refusing"
    );
    let fine = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "parallel_tool_calls": true, "logprobs": true, "top_logprobs": 20}));
    assert!(gemini.unsupported_params(&fine).is_empty());
}
