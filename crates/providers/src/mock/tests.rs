//! The mock provider as the pipeline sees it: modes, latency on tokio's paused clock, `fail_times`,
//! and streams that reassemble to the whole answer.

use std::time::Duration;

use futures_util::StreamExt;
use gardefou_core::chat::{ChatChunk, EmbeddingVector, FinishReason};
use gardefou_core::config::Config;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::*;

const CONFIG: &str = r#"
[providers.demo]
kind = "mock"
latency = "250ms"

[models.polite]
provider = "demo"
upstream = "mock-polite-1"

[models.quick]
provider = "demo"
mock = { latency = "40ms", chunk_delay = "5ms" }

[models.echo]
provider = "demo"
mock = { mode = "echo", latency = "0s" }

[models.fixed]
provider = "demo"
mock = { mode = "fixed", text = "All good here", latency = "0s" }

[models.fixed-default]
provider = "demo"
mock = { mode = "fixed", latency = "0s" }

[models.flaky]
provider = "demo"
mock = { mode = "fail", status = 503, fail_times = 2, retry_after = "2s" }

[models.flaky-too]
provider = "demo"
mock = { mode = "fail", status = 503, fail_times = 1 }

[models.hang]
provider = "demo"
mock = { mode = "hang" }

[models.broken]
provider = "demo"
mock = { mode = "break_stream", break_after = 3, latency = "0s" }

[models.garbage]
provider = "demo"
mock = { mode = "garbage", latency = "0s" }

[routes.r]
targets = [{ model = "polite" }]
"#;

fn setup() -> (Mock, Config) {
    let config = Config::parse(CONFIG, "test.toml").unwrap();
    (Mock::new(&config.providers["demo"]), config)
}

fn failing(status: u16) -> (Mock, ModelConfig) {
    let text = format!(
        "[providers.p]\nkind = \"mock\"\n[models.m]\nprovider = \"p\"\n\
         mock = {{ mode = \"fail\", status = {status}, retry_after = \"3s\" }}\n\
         [routes.r]\ntargets = [{{ model = \"m\" }}]\n"
    );
    let config = Config::parse(&text, "test.toml").unwrap();
    (Mock::new(&config.providers["p"]), config.models["m"].clone())
}

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn hello() -> ChatRequest {
    request(json!({"model": "polite", "messages": [{"role": "user", "content": "hello mock"}]}))
}

async fn collect(stream: ChunkStream) -> Vec<Result<ChatChunk>> {
    stream.collect().await
}

/// The text of choice `index` in a stream.
fn streamed_text(chunks: &[ChatChunk], index: u32) -> String {
    let choices = chunks.iter().flat_map(|c| &c.choices).filter(|c| c.index == index);
    choices.filter_map(|c| c.delta.content.as_deref()).collect()
}

#[tokio::test(start_paused = true)]
async fn polite_answer_has_openai_shape_and_mentions_the_message() {
    let (mock, config) = setup();
    assert_eq!(mock.name(), "demo");
    let r = mock.chat(&config.models["polite"], &hello()).await.unwrap();
    assert!(r.id.starts_with("chatcmpl-mock-"), "{}", r.id);
    assert_eq!((r.object.as_str(), r.model.as_str()), ("chat.completion", "mock-polite-1"));
    assert!(r.created > 1_600_000_000);
    let content = r.choices[0].message.content.as_deref().unwrap();
    assert!(content.starts_with("Mock answer: you said «hello mock»."), "{content}");
    assert_eq!(r.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = r.usage.unwrap();
    assert_eq!((usage.input, usage.output), (2 + 3, content.split_whitespace().count() as u64));
    let again = mock.chat(&config.models["polite"], &hello()).await.unwrap();
    assert_ne!(again.id, r.id);
    assert_eq!(again.choices, r.choices, "the same question gets the same answer");
}

#[tokio::test(start_paused = true)]
async fn latency_is_the_models_else_the_providers() {
    let (mock, config) = setup();
    let start = Instant::now();
    mock.chat(&config.models["polite"], &hello()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));

    let start = Instant::now();
    let stream = mock.chat_stream(&config.models["quick"], &hello()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(40), "the stream starts after the model's latency");
    let chunks = collect(stream).await;
    let gaps = chunks.len() as u32 - 1;
    assert_eq!(start.elapsed(), Duration::from_millis(40) + Duration::from_millis(5) * gaps);

    let start = Instant::now();
    mock.chat(&config.models["echo"], &hello()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_stream_reassembles_to_the_whole_answer_with_usage_last() {
    let (mock, config) = setup();
    let model = &config.models["quick"];
    let req = request(json!({"model": "quick", "n": 2, "stream": true,
        "messages": [{"role": "user", "content": "tell me a story"}]}));
    let whole = mock.chat(model, &req).await.unwrap();
    let chunks: Vec<ChatChunk> = collect(mock.chat_stream(model, &req).await.unwrap())
        .await
        .into_iter()
        .collect::<Result<_>>()
        .unwrap();
    assert!(chunks.len() > 10, "the text arrives in several chunks");
    for choice in &whole.choices {
        assert_eq!(Some(streamed_text(&chunks, choice.index)), choice.message.content);
    }
    let first = &chunks[0];
    assert_eq!(first.choices[0].delta.role, Some(gardefou_core::chat::Role::Assistant));
    assert_eq!(first.choices[0].delta.content.as_deref(), Some(""));
    assert!(chunks.iter().all(|c| c.id == first.id && c.created == first.created && c.model == first.model));
    let finishes = chunks.iter().flat_map(|c| &c.choices).filter_map(|c| c.finish_reason);
    assert_eq!(finishes.collect::<Vec<_>>(), [FinishReason::Stop, FinishReason::Stop]);
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage, whole.usage);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.usage.is_none()));
}

#[tokio::test(start_paused = true)]
async fn streamed_tool_call_arguments_concatenate_to_valid_json() {
    let (mock, config) = setup();
    let model = &config.models["quick"];
    let params = json!({"type": "object", "properties": {
        "query": {"type": "string"}, "limit": {"type": "integer", "maximum": 5},
        "filters": {"type": "object", "properties": {"since": {"type": "string", "format": "date"}}, "required": ["since"]}},
        "required": ["query", "limit", "filters"]});
    let req = request(json!({"model": "quick", "messages": [{"role": "user", "content": "search"}],
        "tools": [{"type": "function", "function": {"name": "search", "parameters": params}}]}));
    let whole = mock.chat(model, &req).await.unwrap();
    assert_eq!(whole.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let call = &whole.choices[0].message.tool_calls.as_ref().unwrap()[0];
    assert!(call.id.starts_with("call_mock_"));

    let chunks: Vec<ChatChunk> =
        collect(mock.chat_stream(model, &req).await.unwrap()).await.into_iter().map(Result::unwrap).collect();
    let deltas: Vec<_> =
        chunks.iter().flat_map(|c| &c.choices).flat_map(|c| c.delta.tool_calls.iter().flatten()).collect();
    let name = deltas[0].function.as_ref().and_then(|f| f.name.as_deref());
    assert_eq!((deltas[0].index, name), (0, Some("search")));
    assert!(deltas[0].id.as_deref().is_some_and(|id| id.starts_with("call_mock_")));
    let fragments: Vec<&str> =
        deltas[1..].iter().filter_map(|d| d.function.as_ref()?.arguments.as_deref()).collect();
    assert!(fragments.len() >= 2);
    let args: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(fragments.concat(), call.function.arguments);
    schema::check(&args, &params).unwrap();
    assert!(chunks.last().unwrap().usage.is_some_and(|u| u.output > 0));
}

#[tokio::test(start_paused = true)]
async fn echo_and_fixed_answer_and_stream_their_text() {
    let (mock, config) = setup();
    let req = request(json!({"model": "echo", "messages": [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "repeat   after me, please, every word of it"}]}));
    for (model, expected) in [
        ("echo", "repeat   after me, please, every word of it"),
        ("fixed", "All good here"),
        ("fixed-default", "OK"),
    ] {
        let model = &config.models[model];
        let whole = mock.chat(model, &req).await.unwrap();
        assert_eq!(whole.choices[0].message.content.as_deref(), Some(expected));
        let chunks: Vec<_> = collect(mock.chat_stream(model, &req).await.unwrap())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(streamed_text(&chunks, 0), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn fail_times_fails_the_first_calls_per_model_then_answers() {
    let (mock, config) = setup();
    let flaky = &config.models["flaky"];
    for _ in 0..2 {
        let start = Instant::now();
        let err = mock.chat(flaky, &hello()).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(250), "a failure takes the latency too");
        assert_eq!(
            err,
            Error::ProviderServer {
                provider: "demo".into(),
                status: 503,
                message: "mock upstream failed with status 503".into(),
                retry_after: Some(Duration::from_secs(2)),
            }
        );
    }
    assert!(mock.chat(flaky, &hello()).await.is_ok());
    assert!(mock.chat_stream(flaky, &hello()).await.is_ok());

    // Another model has its own count; a stream fails before it starts.
    let flaky_too = &config.models["flaky-too"];
    assert!(mock.chat_stream(flaky_too, &hello()).await.is_err());
    assert!(mock.chat_stream(flaky_too, &hello()).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn fail_maps_statuses_like_an_upstream() {
    let (mock, model) = failing(429);
    let err = mock.chat(&model, &hello()).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { ref provider, .. } if provider == "p"), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    for status in [401, 403] {
        let (mock, model) = failing(status);
        let err = mock.chat(&model, &hello()).await.unwrap_err();
        assert_eq!(err, Error::ProviderAuth { provider: "p".into(), status });
    }
    let (mock, model) = failing(504);
    assert_eq!(mock.chat(&model, &hello()).await.unwrap_err().kind(), "timeout");
    let (mock, model) = failing(500);
    assert_eq!(mock.chat(&model, &hello()).await.unwrap_err().status(), 502);
    let (mock, model) = failing(422);
    let err = mock.chat_stream(&model, &hello()).await.err().unwrap();
    assert!(matches!(err, Error::ProviderRejected { status: 422, .. }), "{err:?}");
    let embed = serde_json::from_value(json!({"model": "m", "input": "x"})).unwrap();
    assert!(mock.embed(&model, &embed).await.is_err(), "embeddings fail too");
}

#[tokio::test(start_paused = true)]
async fn a_hanging_model_never_answers() {
    let (mock, config) = setup();
    let model = &config.models["hang"];
    let deadline = Duration::from_secs(3600);
    assert!(tokio::time::timeout(deadline, mock.chat(model, &hello())).await.is_err());
    assert!(tokio::time::timeout(deadline, mock.chat_stream(model, &hello())).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_broken_stream_ends_with_an_error_after_some_content() {
    let (mock, config) = setup();
    let model = &config.models["broken"];
    let items = collect(mock.chat_stream(model, &hello()).await.unwrap()).await;
    assert_eq!(items.len(), 1 + 3 + 1, "role chunk, three content chunks, the error");
    let text: String =
        items[..4].iter().map(|c| streamed_text(std::slice::from_ref(c.as_ref().unwrap()), 0)).collect();
    assert_eq!(text, "Mock answer: you said «hello mock». ");
    assert_eq!(
        items.last().unwrap().as_ref().unwrap_err(),
        &Error::BadResponse {
            provider: "demo".into(),
            message: "connection closed before the end of the stream".into()
        }
    );
    let err = mock.chat(model, &hello()).await.unwrap_err();
    assert!(matches!(err, Error::Connect { ref message, .. } if message == "connection reset"), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn garbage_is_a_bad_response() {
    let (mock, config) = setup();
    let model = &config.models["garbage"];
    let err = mock.chat(model, &hello()).await.unwrap_err();
    assert_eq!(
        err,
        Error::BadResponse { provider: "demo".into(), message: "response is not valid JSON".into() }
    );
    let items = collect(mock.chat_stream(model, &hello()).await.unwrap()).await;
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(matches!(items[1], Err(Error::BadResponse { .. })));
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_deterministic_unit_vectors() {
    let (mock, config) = setup();
    let model = &config.models["polite"];
    let req = serde_json::from_value(json!({"model": "polite", "input": ["a b c", "a b c", "d"],
        "encoding_format": "base64", "dimensions": 32}))
    .unwrap();
    let start = Instant::now();
    let r = mock.embed(model, &req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert_eq!((r.model.as_str(), r.usage.prompt_tokens), ("mock-polite-1", 7));
    let vectors: Vec<Vec<f32>> = r
        .data
        .iter()
        .map(|e| match &e.embedding {
            EmbeddingVector::Base64(b) => embed::decode_f32_le(b),
            EmbeddingVector::Float(_) => panic!("base64 expected"),
        })
        .collect();
    assert_eq!(vectors[0], vectors[1]);
    assert_ne!(vectors[0], vectors[2]);
    for v in &vectors {
        assert_eq!(v.len(), 32);
        assert!((v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5);
    }
}
