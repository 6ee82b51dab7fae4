//! Retries, fallbacks, circuit breakers, deadlines and broken streams, seen from the client.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

fn streaming(model: &str) -> Value {
    let mut r = hello(model);
    r["stream"] = json!(true);
    r
}

#[tokio::test]
async fn a_failing_target_falls_back_after_its_retries() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.down]
provider = "demo"
mock = {{ mode = "fail", status = 503 }}
[models.up]
provider = "demo"
[routes.r]
targets = [{{ model = "down" }}]
fallbacks = ["up"]
retry = {{ attempts = 3, backoff = "1ms" }}
breaker = {{ failures = 100 }}
"#
    ))
    .await;
    let resp = gw.chat(hello("r")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-model"], "up");
    let recs = gw.records(1).await;
    let kinds: Vec<(String, Option<u16>)> =
        recs[0].attempts.iter().map(|a| (a.model.clone(), a.status)).collect();
    assert_eq!(
        kinds,
        [
            ("down".into(), Some(502)),
            ("down".into(), Some(502)),
            ("down".into(), Some(502)),
            ("up".into(), Some(200))
        ]
    );
    assert_eq!(recs[0].model.as_deref(), Some("up"));
    gw.stop().await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_on_the_same_target() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.flaky]
provider = "demo"
mock = {{ mode = "fail", status = 500, fail_times = 1 }}
[routes.r]
targets = [{{ model = "flaky" }}]
retry = {{ attempts = 2, backoff = "1ms" }}
"#
    ))
    .await;
    assert_eq!(gw.chat(hello("r")).await.status(), 200);
    let recs = gw.records(1).await;
    assert_eq!(recs[0].attempts.len(), 2);
    assert_eq!(recs[0].attempts[0].error_kind.as_deref(), Some("provider_error"));
    gw.stop().await;
}

#[tokio::test]
async fn a_rate_limit_reaches_the_client_with_its_retry_after() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.busy]
provider = "demo"
mock = {{ mode = "fail", status = 429, retry_after = "7s" }}
[routes.r]
targets = [{{ model = "busy" }}]
retry = {{ attempts = 2 }}
timeouts = {{ total = "5s" }}
"#
    ))
    .await;
    let started = std::time::Instant::now();
    let resp = gw.chat(hello("r")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a Retry-After beyond the deadline is not waited for"
    );
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["type"], "rate_limit_error");
    gw.stop().await;
}

#[tokio::test]
async fn client_errors_from_the_provider_are_not_retried() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.picky]
provider = "demo"
mock = {{ mode = "fail", status = 422 }}
[models.up]
provider = "demo"
[routes.r]
targets = [{{ model = "picky" }}]
fallbacks = ["up"]
retry = {{ attempts = 3 }}
"#
    ))
    .await;
    assert_eq!(gw.chat(hello("r")).await.status(), 422);
    let recs = gw.records(1).await;
    assert_eq!(recs[0].attempts.len(), 1, "no retry, no fallback for the caller's own error");
    gw.stop().await;
}

#[tokio::test]
async fn an_open_circuit_skips_its_target_until_the_cooldown() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.down]
provider = "demo"
mock = {{ mode = "fail", status = 500 }}
[models.up]
provider = "demo"
[routes.r]
targets = [{{ model = "down" }}]
fallbacks = ["up"]
retry = {{ attempts = 1 }}
breaker = {{ failures = 2, cooldown = "1h" }}
"#
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(gw.chat(hello("r")).await.status(), 200);
    }
    let mut recs = gw.records(3).await;
    recs.reverse();
    let third = &recs[2].attempts;
    assert_eq!(third[0].error_kind.as_deref(), Some("circuit_open"), "{third:?}");
    assert_eq!(third[0].status, None, "the open target was not called");
    let m = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(m.contains(r#"gardefou_circuit_open{route="r",model="down"} 1"#), "{m}");
    gw.stop().await;
}

#[tokio::test]
async fn a_hanging_upstream_hits_the_deadline_with_504() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.stuck]
provider = "demo"
mock = {{ mode = "hang" }}
[routes.r]
targets = [{{ model = "stuck" }}]
timeouts = {{ first_byte = "150ms", total = "400ms" }}
retry = {{ attempts = 2, backoff = "1ms" }}
"#
    ))
    .await;
    let resp = gw.chat(hello("r")).await;
    assert_eq!(resp.status(), 504);
    let recs = gw.records(1).await;
    assert_eq!(recs[0].error_kind.as_deref(), Some("timeout"));
    assert!(recs[0].latency_ms < 1000.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_failing_before_its_first_byte_falls_back() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.down]
provider = "demo"
mock = {{ mode = "fail", status = 503 }}
[models.up]
provider = "demo"
[routes.r]
targets = [{{ model = "down" }}]
fallbacks = ["up"]
retry = {{ attempts = 1 }}
"#
    ))
    .await;
    let resp = gw.chat(streaming("r")).await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_broken_after_its_first_byte_ends_with_an_error_event() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.breaks]
provider = "demo"
mock = {{ mode = "break_stream", break_after = 2 }}
[routes.r]
targets = [{{ model = "breaks" }}]
"#
    ))
    .await;
    let resp = gw.chat(streaming("r")).await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(&resp.text().await.unwrap());
    assert_ne!(events.last().unwrap(), "[DONE]", "never a silent truncation");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "bad_response");
    let recs = gw.records(1).await;
    assert_eq!((recs[0].status, recs[0].error_kind.as_deref()), (502, Some("bad_response")));
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_call_and_is_recorded() {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.slow]
provider = "demo"
mock = {{ chunk_delay = "200ms" }}
[routes.r]
targets = [{{ model = "slow" }}]
"#
    ))
    .await;
    let mut resp = gw.chat(streaming("r")).await;
    assert_eq!(resp.status(), 200);
    let _first = resp.chunk().await.unwrap();
    drop(resp);
    let recs = gw.records(1).await;
    assert_eq!(recs[0].status, 499);
    assert_eq!(recs[0].error_kind.as_deref(), Some("client_closed"));
    assert!(recs[0].latency_ms < 2000.0, "recorded at the disconnect, not at the stream's natural end");
    gw.stop().await;
}

#[tokio::test]
async fn openai_compatible_upstream_gets_the_request_with_quirks_and_unknown_fields() {
    let up = Upstream::start(json_reply(
        200,
        json!({"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "llama-3",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13,
                      "prompt_tokens_details": {"cached_tokens": 8}}}),
    ))
    .await;
    let gw = Gateway::start(&format!(
        r#"
[providers.vllm]
kind = "openai_compatible"
vendor = "vllm"
base_url = "{}"
[models.llama]
provider = "vllm"
upstream = "meta-llama/Llama-3.1-8B-Instruct"
price = {{ input = 1.0, cached_input = 0.5, output = 2.0 }}
[routes.r]
targets = [{{ model = "llama" }}]
"#,
        up.base
    ))
    .await;
    let mut req = hello("r");
    req["max_completion_tokens"] = json!(50);
    req["guided_json"] = json!({"type": "object"});
    req["metadata"] = json!({"team_feature": "x"});
    let resp = gw.chat(req).await;
    assert_eq!(resp.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    let body = &seen[0].body;
    assert_eq!(body["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(body["max_tokens"], 50, "vLLM preset sends the legacy field");
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["guided_json"], json!({"type": "object"}), "unknown fields pass through");
    assert!(body.get("metadata").is_none(), "attribution metadata stays in gardefou");
    let recs = gw.records(1).await;
    assert_eq!(
        (recs[0].input_tokens, recs[0].cached_input_tokens, recs[0].output_tokens),
        (Some(11), Some(8), Some(2))
    );
    // 3 fresh × 1.0 + 8 cached × 0.5 + 2 × 2.0 = 11 µ$
    assert!((recs[0].cost_usd.unwrap() - 11e-6).abs() < 1e-12);
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_sending_garbage_gets_a_502_and_the_stream_an_error_event() {
    let up = Upstream::start(std::sync::Arc::new(|body: &Value| {
        if body["stream"] == json!(true) {
            (200, vec![("content-type", "text/event-stream".to_owned())], "data: {\"id\": \"x\", \"choices\": [{\"index\":0,\"delta\":{\"content\":\"a\"}}], \"model\":\"m\"}\n\ndata: {not json}\n\n".to_owned())
        } else {
            (200, vec![("content-type", "application/json".to_owned())], "{\"choices\": [".to_owned())
        }
    }))
    .await;
    let gw = Gateway::start(&format!(
        r#"
[providers.up]
kind = "openai_compatible"
base_url = "{}"
[models.m]
provider = "up"
[routes.r]
targets = [{{ model = "m" }}]
retry = {{ attempts = 1 }}
"#,
        up.base
    ))
    .await;
    let resp = gw.chat(hello("r")).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "bad_response");
    let resp = gw.chat(streaming("r")).await;
    assert_eq!(resp.status(), 200);
    let events = sse_events(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "bad_response");
    assert_eq!(reqwest::get(gw.url("/health")).await.unwrap().status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_429_keeps_its_retry_after_through_the_gateway() {
    let up = Upstream::start(std::sync::Arc::new(|_: &Value| {
        (429, vec![("content-type", "application/json".to_owned()), ("retry-after", "12".to_owned())],
         json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}).to_string())
    }))
    .await;
    let gw = Gateway::start(&format!(
        r#"
[providers.up]
kind = "openai_compatible"
base_url = "{}"
[models.m]
provider = "up"
[routes.r]
targets = [{{ model = "m" }}]
retry = {{ attempts = 3 }}
timeouts = {{ total = "3s" }}
"#,
        up.base
    ))
    .await;
    let resp = gw.chat(hello("r")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "12");
    assert_eq!(up.seen().len(), 1, "a Retry-After longer than the deadline is not waited for");
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_stream_is_relayed_with_its_key_and_its_usage_kept_for_the_record() {
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
        )
    };
    let events = [
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"Bonjour "}"#, "null"),
        chunk(r#"{"content":"à vous"}"#, "null"),
        chunk("{}", r#""stop""#),
        r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#.to_owned(),
        "[DONE]".to_owned(),
    ];
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let up = Upstream::start(sse_reply(&refs)).await;
    let dir = temp_dir();
    let key = dir.join("key");
    std::fs::write(&key, "sk-upstream-secret\n").unwrap();
    let gw = Gateway::start(&format!(
        r#"
[providers.up]
kind = "openai_compatible"
base_url = "{}"
api_key = "file:{}"
[models.m]
provider = "up"
[routes.r]
targets = [{{ model = "m" }}]
"#,
        up.base,
        key.display()
    ))
    .await;
    let body = gw.chat(streaming("r")).await.text().await.unwrap();
    let events = sse_events(&body);
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Bonjour à vous");
    assert!(!body.contains("usage"), "the client did not ask for usage");
    let seen = up.seen();
    assert_eq!(seen[0].headers["authorization"], "Bearer sk-upstream-secret");
    assert_eq!(
        seen[0].body["stream_options"],
        json!({"include_usage": true}),
        "usage is asked for the record"
    );
    let recs = gw.records(1).await;
    assert_eq!(
        (recs[0].input_tokens, recs[0].output_tokens, recs[0].tokens_estimated),
        (Some(9), Some(3), false)
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
