//! Conformance of the OpenAI adapter (OpenAI, OpenAI-compatible vendors, Azure) against fake
//! upstreams on 127.0.0.1 port 0: the exact request each sends, and what the gateway sees back.

use std::time::{Duration, Instant};

use gardefou_core::chat::{ChatChunk, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, Usage};
use gardefou_core::config::{Config, ModelConfig};
use gardefou_core::{Error, Result};
use gardefou_providers::openai::OpenAi;
use gardefou_providers::CallOptions;
use serde_json::{json, Value};

use crate::support::{
    canned, collect, hello, key_file, ok_chunks, one_provider, opts, raw, request, split_frames, Step,
    SSE_CHUNKED_HEAD, SSE_CLOSE_HEAD,
};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn parse_chunks(events: &[Value]) -> Vec<ChatChunk> {
    events.iter().map(|e| serde_json::from_value(e.clone()).unwrap()).collect()
}

/// The adapter and model `chat` (upstream `gpt-4o-2024-08-06`) of a one-provider config.
fn adapter(provider_toml: &str) -> (OpenAi, ModelConfig) {
    let cfg = one_provider(provider_toml, "gpt-4o-2024-08-06");
    let openai = OpenAi::new(&cfg.providers["up"], Duration::from_secs(2)).unwrap();
    (openai, cfg.models["chat"].clone())
}

fn openai_at(base: &str, tag: &str) -> (OpenAi, ModelConfig) {
    let key = key_file(tag, "sk-test-123\n");
    adapter(&format!("kind = \"openai\"\nbase_url = \"{base}/v1\"\napi_key = 'file:{}'", key.display()))
}

fn compatible_at(base: &str, vendor: &str) -> (OpenAi, ModelConfig) {
    adapter(&format!("kind = \"openai_compatible\"\nbase_url = \"{base}/v1\"\nvendor = \"{vendor}\""))
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_returns_the_answer_with_cached_and_reasoning_usage() {
    let answer = json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"},
            "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 12}, "completion_tokens_details": {"reasoning_tokens": 4}},
        "system_fingerprint": "fp_1"
    });
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let org = key_file("org", "org-42");
    let key = key_file("plain", "sk-test-123");
    let (openai, model) = adapter(&format!(
        "kind = \"openai\"\nbase_url = \"{base}/v1\"\napi_key = 'file:{}'\nheaders = {{ \"OpenAI-Organization\" = 'file:{}' }}",
        key.display(),
        org.display()
    ));
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "stream": true, "max_completion_tokens": 50, "temperature": 0.5, "metadata": {"team": "a"}}));
    let opts = CallOptions {
        first_byte_timeout: Some(Duration::from_secs(5)),
        headers: vec![("traceparent".into(), "00-abc-def-01".into())],
    };

    let resp = openai.chat(&model, &req, &opts).await.unwrap();

    assert_eq!(resp, serde_json::from_value::<ChatResponse>(answer).unwrap());
    assert_eq!(
        resp.usage,
        Some(Usage { input: 20, cached_input: 12, cache_write: 0, output: 9, reasoning: 4 })
    );
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str(), sent.query.as_deref()),
        ("POST", "/v1/chat/completions", None)
    );
    assert_eq!(
        sent.headers_json(),
        json!({"accept": "application/json", "authorization": "Bearer sk-test-123",
            "content-type": "application/json", "openai-organization": "org-42", "traceparent": "00-abc-def-01"})
    );
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.5, "max_completion_tokens": 50})
    );
}

#[tokio::test]
async fn stream_keeps_multi_byte_text_split_across_reads() {
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Café "}), None),
        chunk(json!({"content": "日本"}), None),
        chunk(json!({"content": " 🦀!"}), None),
        chunk(json!({}), Some("stop")),
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o-2024-08-06", "choices": [],
            "usage": {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13,
                "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}}),
    ];
    let body = format!("{}: keep-alive\n\ndata: [DONE]\n\n", sse(&events));
    let mut steps = split_frames(&body);
    steps.push(Step::Chunk(Vec::new()));
    let (base, sent) = raw(steps).await;
    let (openai, model) = openai_at(&base, "stream");

    let stream = openai.chat_stream(&model, &hello(), &opts()).await.unwrap();
    let chunks = ok_chunks(collect(stream).await);

    assert_eq!(chunks, parse_chunks(&events));
    let text: String = chunks.iter().filter_map(|c| c.choices.first()?.delta.content.clone()).collect();
    assert_eq!(text, "Café 日本 🦀!");
    assert_eq!(
        chunks[5].usage,
        Some(Usage { input: 8, cached_input: 0, cache_write: 0, output: 5, reasoning: 0 })
    );
    let sent = sent.await.unwrap();
    assert_eq!(sent.headers["accept"], "text/event-stream");
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "Hi"}],
            "stream": true, "stream_options": {"include_usage": true}})
    );
}

#[tokio::test]
async fn stream_keeps_parallel_tool_call_arguments_split_across_chunks() {
    let call = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), None)
    };
    let events = [
        chunk(json!({"role": "assistant", "content": null}), None),
        call(0, Some("call_a"), Some("weather"), ""),
        call(0, None, None, "{\"city\":"),
        call(1, Some("call_b"), Some("weather"), "{\"ci"),
        call(0, None, None, "\"Paris\"}"),
        call(1, None, None, "ty\":\"Zürich\"}"),
        chunk(json!({}), Some("tool_calls")),
    ];
    let body = format!("{}data: [DONE]\n\n", sse(&events));
    let mut steps = split_frames(&body);
    steps.push(Step::Chunk(Vec::new()));
    let (base, _sent) = raw(steps).await;
    let (openai, model) = openai_at(&base, "tools");

    let stream = openai.chat_stream(&model, &hello(), &opts()).await.unwrap();
    let chunks = ok_chunks(collect(stream).await);

    assert_eq!(chunks, parse_chunks(&events));
    let mut args = [String::new(), String::new()];
    for c in &chunks {
        for t in c.choices[0].delta.tool_calls.iter().flatten() {
            args[t.index as usize].push_str(t.function.as_ref().unwrap().arguments.as_deref().unwrap_or(""));
        }
    }
    assert_eq!(args, ["{\"city\":\"Paris\"}", "{\"city\":\"Zürich\"}"]);
}

// ---------------------------------------------------------------------------------------------
// Upstream errors
// ---------------------------------------------------------------------------------------------

async fn chat_error(status: u16, headers: &[(&'static str, &str)], body: &str) -> Error {
    let (base, _log) = canned(status, headers, body).await;
    let (openai, model) = openai_at(&base, &format!("status-{status}"));
    let err = openai.chat(&model, &hello(), &opts()).await.unwrap_err();
    let stream_err = openai.chat_stream(&model, &hello(), &opts()).await.err().unwrap();
    assert_eq!(err, stream_err, "chat and chat_stream map status {status} alike");
    err
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let body = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
    let err = chat_error(429, &[("retry-after", "7")], body).await;
    assert_eq!(
        err,
        Error::RateLimited {
            provider: "up".into(),
            message: "Rate limit reached".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
}

#[tokio::test]
async fn service_unavailable_is_a_retryable_server_error() {
    let err = chat_error(503, &[], "upstream overloaded").await;
    assert_eq!(
        err,
        Error::ProviderServer {
            provider: "up".into(),
            status: 503,
            message: "upstream overloaded".into(),
            retry_after: None
        }
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn bad_request_keeps_the_upstream_message() {
    let body = r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#;
    let err = chat_error(400, &[("content-type", "application/json")], body).await;
    assert_eq!(
        err,
        Error::ProviderRejected {
            provider: "up".into(),
            status: 400,
            message: "Invalid value for 'temperature'".into()
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn unauthorized_is_a_provider_auth_error() {
    let err = chat_error(401, &[], r#"{"error":{"message":"Incorrect API key provided"}}"#).await;
    assert_eq!(err, Error::ProviderAuth { provider: "up".into(), status: 401 });
}

#[tokio::test]
async fn malformed_json_answer_is_a_bad_response() {
    let (base, _log) = canned(200, &[("content-type", "application/json")], "{\"id\": \"x\", \"choi").await;
    let (openai, model) = openai_at(&base, "malformed");
    let err = openai.chat(&model, &hello(), &opts()).await.unwrap_err();
    assert!(matches!(&err, Error::BadResponse { provider, .. } if provider == "up"), "{err:?}");
}

#[tokio::test]
async fn error_object_in_a_200_answer_is_an_error() {
    let body = r#"{"error":{"message":"model overloaded","type":"server_error"}}"#;
    let (base, _log) = canned(200, &[("content-type", "application/json")], body).await;
    let (openai, model) = openai_at(&base, "error-200");
    let err = openai.chat(&model, &hello(), &opts()).await.unwrap_err();
    assert_eq!(
        err,
        Error::ProviderServer {
            provider: "up".into(),
            status: 500,
            message: "model overloaded".into(),
            retry_after: None
        }
    );
}

#[tokio::test]
async fn stream_with_a_non_json_data_line_fails() {
    let body =
        format!("{}data: this is not json\n\ndata: [DONE]\n\n", sse(&[chunk(json!({"content": "a"}), None)]));
    let (base, _log) = canned(200, &[("content-type", "text/event-stream")], &body).await;
    let (openai, model) = openai_at(&base, "non-json");

    let items = collect(openai.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;

    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().choices[0].delta.content.as_deref(), Some("a"));
    assert!(matches!(&items[1], Err(Error::BadResponse { .. })), "{:?}", items[1]);
}

/// Two chunks and half of a third, then the upstream closes the connection (`framed`: in the
/// middle of a chunked body, else at the end of a close-delimited one).
async fn broken_stream(head: &[u8], framed: bool) -> Vec<Result<ChatChunk>> {
    let events =
        [chunk(json!({"role": "assistant", "content": "Hel"}), None), chunk(json!({"content": "lo"}), None)];
    let body = sse(&events);
    let mut steps = vec![Step::Raw(head.to_vec())];
    let piece = |b: &[u8]| if framed { Step::Chunk(b.to_vec()) } else { Step::Raw(b.to_vec()) };
    steps.push(piece(body.as_bytes()));
    steps.push(Step::Pause(20));
    steps.push(piece(b"data: {\"id\":\"chatcmpl-1\",\"choi"));
    let (base, _sent) = raw(steps).await;
    let (openai, model) = openai_at(&base, if framed { "broken-chunked" } else { "broken-close" });
    let items = collect(openai.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap().choices[0].delta.content.as_deref(), Some("Hel"));
    assert_eq!(items[1].as_ref().unwrap().choices[0].delta.content.as_deref(), Some("lo"));
    items
}

#[tokio::test]
async fn stream_closed_before_done_fails_after_the_chunks_received() {
    for (head, framed) in [(SSE_CLOSE_HEAD, false), (SSE_CHUNKED_HEAD, true)] {
        let items = broken_stream(head, framed).await;
        match &items[2] {
            Err(Error::BadResponse { provider, message }) => {
                assert_eq!(provider, "up");
                assert!(message.starts_with("stream ended before completion"), "{message}");
            }
            other => panic!("expected a bad response, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn stream_ending_cleanly_without_done_or_finish_reason_fails() {
    let body = sse(&[chunk(json!({"content": "partial"}), None)]);
    let (base, _log) = canned(200, &[("content-type", "text/event-stream")], &body).await;
    let (openai, model) = openai_at(&base, "no-done");
    let items = collect(openai.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[1],
        Err(Error::BadResponse { provider: "up".into(), message: "stream ended before completion".into() })
    );
}

#[tokio::test]
async fn error_event_inside_a_200_stream_fails() {
    let first = chunk(json!({"content": "Hi"}), None);
    let body = format!(
        "data: {first}\n\nevent: error\ndata: {{\"error\":{{\"message\":\"overloaded\",\"type\":\"server_error\"}}}}\n\n"
    );
    let (base, _log) = canned(200, &[("content-type", "text/event-stream")], &body).await;
    let (openai, model) = openai_at(&base, "error-event");
    let items = collect(openai.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(
        items,
        vec![
            Ok(serde_json::from_value(first.clone()).unwrap()),
            Err(Error::ProviderServer {
                provider: "up".into(),
                status: 500,
                message: "overloaded".into(),
                retry_after: None
            }),
        ]
    );

    let body = format!(
        "data: {first}\n\ndata: {{\"error\":{{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}}}\n\ndata: [DONE]\n\n"
    );
    let (base, _log) = canned(200, &[("content-type", "text/event-stream")], &body).await;
    let (openai, model) = openai_at(&base, "error-data");
    let items = collect(openai.chat_stream(&model, &hello(), &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1],
        Err(Error::RateLimited { provider: "up".into(), message: "slow down".into(), retry_after: None })
    );
}

#[tokio::test]
async fn first_byte_timeout_on_a_hanging_upstream() {
    let (base, _sent) = raw(vec![Step::Pause(10_000)]).await;
    let (openai, model) = openai_at(&base, "hang");
    let opts = CallOptions { first_byte_timeout: Some(Duration::from_millis(200)), headers: Vec::new() };

    let started = Instant::now();
    let err = openai.chat(&model, &hello(), &opts).await.unwrap_err();

    assert_eq!(err, Error::Timeout { provider: "up".into(), phase: "first byte" });
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let err = openai.chat_stream(&model, &hello(), &opts).await.err().unwrap();
    assert_eq!(err, Error::Timeout { provider: "up".into(), phase: "first byte" });
}

// ---------------------------------------------------------------------------------------------
// URLs, auth and vendor quirks
// ---------------------------------------------------------------------------------------------

fn minimal_answer() -> String {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
    .to_string()
}

#[tokio::test]
async fn azure_uses_the_deployment_url_api_version_and_api_key() {
    let (base, log) = canned(200, &[("content-type", "application/json")], &minimal_answer()).await;
    let key = key_file("azure", "azure-key-1");
    let (azure, model) = adapter(&format!(
        "kind = \"azure\"\nbase_url = \"{base}\"\napi_version = \"2024-10-21\"\napi_key = 'file:{}'",
        key.display()
    ));
    azure.chat(&model, &hello(), &opts()).await.unwrap();
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(sent.path, "/openai/deployments/gpt-4o-2024-08-06/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(
        sent.headers_json(),
        json!({"accept": "application/json", "api-key": "azure-key-1", "content-type": "application/json"})
    );

    let (v1, model) = adapter(&format!(
        "kind = \"azure\"\nbase_url = \"{base}\"\napi_version = \"v1\"\napi_key = 'file:{}'",
        key.display()
    ));
    v1.chat(&model, &hello(), &opts()).await.unwrap();
    let sent = log.lock().unwrap()[1].clone();
    assert_eq!((sent.path.as_str(), sent.query.as_deref()), ("/openai/v1/chat/completions", None));
    assert_eq!(sent.headers["api-key"], "azure-key-1");
    assert_eq!(sent.body["model"], "gpt-4o-2024-08-06");
}

#[tokio::test]
async fn mistral_quirks_are_visible_in_the_request() {
    let (base, log) = canned(200, &[("content-type", "application/json")], &minimal_answer()).await;
    let (mistral, model) = compatible_at(&base, "mistral");
    let req = request(json!({"model": "chat",
        "messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_completion_tokens": 100, "seed": 42, "logit_bias": {"50256": -100},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "required"}));
    mistral.chat(&model, &req, &opts()).await.unwrap();
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.headers_json(),
        json!({"accept": "application/json", "content-type": "application/json"})
    );
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o-2024-08-06",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "max_tokens": 100, "random_seed": 42,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "any"})
    );
}

#[tokio::test]
async fn unknown_fields_pass_through() {
    let (base, log) = canned(200, &[("content-type", "application/json")], &minimal_answer()).await;
    let (vllm, model) = compatible_at(&base, "vllm");
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "top_k": 20, "guided_json": {"type": "object"}, "reasoning_effort": "low",
        "response_format": {"type": "json_object"}}));
    vllm.chat(&model, &req, &opts()).await.unwrap();
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "json_object"},
            "top_k": 20, "guided_json": {"type": "object"}, "reasoning_effort": "low"})
    );
}

#[tokio::test]
async fn stream_options_are_removed_when_the_server_ignores_them() {
    let body = format!("{}data: [DONE]\n\n", sse(&[chunk(json!({"content": "ok"}), Some("stop"))]));
    let (base, log) = canned(200, &[("content-type", "text/event-stream")], &body).await;
    let (tgi, model) = compatible_at(&base, "tgi");
    assert!(!tgi.reports_stream_usage());
    let req = request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}],
        "stream": true, "stream_options": {"include_usage": true}}));
    let items = collect(tgi.chat_stream(&model, &req, &opts()).await.unwrap()).await;
    assert_eq!(items.len(), 1);
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": "Hi"}], "stream": true})
    );
}

#[tokio::test]
async fn embeddings_request_and_response() {
    let answer = json!({"object": "list", "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]},
                 {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}});
    let (base, log) = canned(200, &[("content-type", "application/json")], &answer.to_string()).await;
    let (openai, model) = openai_at(&base, "embed");
    let req: EmbeddingsRequest = serde_json::from_value(json!({"model": "chat", "input": ["a", "b"],
        "dimensions": 2, "encoding_format": "float", "truncate": "END"}))
    .unwrap();

    let resp = openai.embed(&model, &req, &opts()).await.unwrap();

    assert_eq!(resp, serde_json::from_value::<EmbeddingsResponse>(answer).unwrap());
    let sent = log.lock().unwrap()[0].clone();
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/embeddings"));
    assert_eq!(sent.headers["authorization"], "Bearer sk-test-123");
    assert_eq!(
        sent.body,
        json!({"model": "gpt-4o-2024-08-06", "input": ["a", "b"], "encoding_format": "float",
            "dimensions": 2, "truncate": "END"})
    );
}

#[test]
fn an_unreadable_api_key_disables_the_provider() {
    let missing = std::env::temp_dir().join(format!("gardefou-openai-test-{}-absent", std::process::id()));
    let text = format!(
        "[providers.up]\nkind = \"openai\"\napi_key = 'file:{}'\n\n[models.chat]\nprovider = \"up\"\n",
        missing.display()
    );
    let cfg = Config::parse(&text, "test.toml").unwrap();
    let err = OpenAi::new(&cfg.providers["up"], Duration::from_secs(1)).err().unwrap();
    assert!(err.contains("gardefou-openai-test"), "{err}");

    let text = "[providers.up]\nkind = \"openai\"\n\n[models.chat]\nprovider = \"up\"\n";
    let cfg = Config::parse(text, "test.toml").unwrap();
    assert!(OpenAi::new(&cfg.providers["up"], Duration::from_secs(1)).is_err());
}
