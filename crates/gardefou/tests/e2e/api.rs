//! The OpenAI-compatible API as a client sees it: shapes, headers, streams, errors, recording.

use serde_json::{json, Value};

use crate::harness::*;

const ROUTES: &str = r#"
[models.polite]
provider = "demo"
price = { input = 1.0, output = 2.0 }
[models.unpriced]
provider = "demo"
[models.vec]
provider = "demo"
capabilities = ["embeddings"]
[routes.demo]
targets = [{ model = "polite" }]
[routes.free]
targets = [{ model = "unpriced" }]
[routes.embed]
targets = [{ model = "vec" }]
"#;

async fn gateway() -> Gateway {
    Gateway::start(&format!("{MOCK}{ROUTES}\n[server]\nmax_body_bytes = 2048\n")).await
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

#[tokio::test]
async fn chat_completion_has_openai_shape_ids_and_is_recorded_with_cost() {
    let gw = gateway().await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "req-123")
        .header("x-gardefou-team", "search")
        .header("x-gardefou-product", "faq-bot")
        .json(&json!({"model": "demo", "user": "u-42", "metadata": {"feature": "answers"},
            "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-123");
    let inference_id = resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(body["choices"][0]["message"]["content"].as_str().unwrap().contains("hello there"));
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let recs = gw.records(1).await;
    let r = recs
        .iter()
        .find(|r| r.id == inference_id)
        .expect("the inference is recorded under the id the client got");
    assert_eq!(r.request_id, "req-123");
    assert_eq!(
        (r.route.as_deref(), r.model.as_deref(), r.provider.as_deref()),
        (Some("demo"), Some("polite"), Some("demo"))
    );
    assert_eq!(
        (r.team.as_deref(), r.product.as_deref(), r.end_user.as_deref()),
        (Some("search"), Some("faq-bot"), Some("u-42"))
    );
    assert_eq!(r.tags.get("feature").map(String::as_str), Some("answers"));
    assert_eq!(r.status, 200);
    assert_eq!(r.input_tokens, usage["prompt_tokens"].as_i64());
    assert_eq!(r.output_tokens, usage["completion_tokens"].as_i64());
    let expected = (r.input_tokens.unwrap() as f64 * 1.0 + r.output_tokens.unwrap() as f64 * 2.0) / 1e6;
    assert!((r.cost_usd.unwrap() - expected).abs() < 1e-12);
    assert_eq!(r.attempts.len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_price_is_recorded_as_null_and_counted() {
    let gw = gateway().await;
    assert_eq!(gw.chat(hello("free")).await.status(), 200);
    let recs = gw.records(1).await;
    assert_eq!(recs[0].cost_usd, None);
    assert!(recs[0].output_tokens.unwrap() > 0);
    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"gardefou_unknown_price_total{route="free",model="unpriced",provider="demo"} 1"#),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn stream_sends_usage_only_when_asked_and_ends_with_done() {
    let gw = gateway().await;
    let mut req = hello("demo");
    req["stream"] = json!(true);
    let resp = gw.chat(req.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.len() > 3, "several chunks");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "no usage chunk for a client that did not ask");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let whole: Value = gw.chat(hello("demo")).await.json().await.unwrap();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap(),
        "stream and whole answer agree"
    );

    req["stream_options"] = json!({"include_usage": true});
    let events = sse_events(&gw.chat(req).await.text().await.unwrap());
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    let recs = gw.records(3).await;
    let streamed: Vec<_> = recs.iter().filter(|r| r.stream).collect();
    assert_eq!(streamed.len(), 2);
    assert!(streamed.iter().all(|r| r.output_tokens.unwrap() > 0 && r.ttft_ms.is_some() && r.status == 200));
    gw.stop().await;
}

#[tokio::test]
async fn tools_json_mode_and_limits_pass_through_the_pipeline() {
    let gw = gateway().await;
    let tool = json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}});
    let mut req = hello("demo");
    req["tools"] = json!([tool]);
    req["tool_choice"] = json!("required");
    let body: Value = gw.chat(req).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let args: Value = serde_json::from_str(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str().unwrap(),
    )
    .unwrap();
    assert!(args["city"].is_string());

    let mut req = hello("demo");
    req["response_format"] = json!({"type": "json_object"});
    let body: Value = gw.chat(req).await.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(serde_json::from_str::<Value>(content).unwrap().is_object());

    let mut req = hello("demo");
    req["max_completion_tokens"] = json!(3);
    let body: Value = gw.chat(req).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    gw.stop().await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let gw = gateway().await;
    let body: Value = gw
        .post("/v1/embeddings", json!({"model": "embed", "input": ["a", "b"], "encoding_format": "float"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let v: Vec<f64> =
        body["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert!(((v.iter().map(|x| x * x).sum::<f64>()) - 1.0).abs() < 1e-3);
    let b64: Value = gw
        .post("/v1/embeddings", json!({"model": "embed", "input": "a", "encoding_format": "base64"}))
        .await
        .json()
        .await
        .unwrap();
    assert!(b64["data"][0]["embedding"].is_string());
    // a chat route cannot embed
    let resp = gw.post("/v1/embeddings", json!({"model": "demo", "input": "a"})).await;
    assert_eq!(resp.status(), 400);

    let models: Value = reqwest::get(gw.url("/v1/models")).await.unwrap().json().await.unwrap();
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["demo", "embed", "free"]);
    let one = reqwest::get(gw.url("/v1/models/demo")).await.unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(reqwest::get(gw.url("/v1/models/nope")).await.unwrap().status(), 404);
    gw.stop().await;
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-request-id"));
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn bad_input_gets_openai_errors_is_recorded_and_leaves_the_server_healthy() {
    let gw = gateway().await;
    let client = reqwest::Client::new();
    let raw = |body: Vec<u8>| {
        client
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let (s, e) = error_of(raw(b"{\"model\": \"demo\", ".to_vec()).await.unwrap()).await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("EOF"));

    let (s, e) = error_of(gw.chat(json!({"messages": [{"role": "user", "content": "x"}]})).await).await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("model")));

    let (s, e) = error_of(gw.chat(json!({"model": "demo", "messages": "not a list"})).await).await;
    assert_eq!(s, 400, "{e}");

    let (s, e) = error_of(gw.chat(json!({"model": "demo", "messages": []})).await).await;
    assert_eq!((s, e["error"]["param"].as_str()), (400, Some("messages")));

    let (s, e) = error_of(gw.chat(hello("no-such-route")).await).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));

    let (s, _) = error_of(raw(vec![b'{', 0xff, 0xfe, b'}']).await.unwrap()).await;
    assert_eq!(s, 400);

    let big = json!({"model": "demo", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let (s, e) = error_of(gw.chat(big).await).await;
    assert_eq!((s, e["error"]["code"].as_str()), (413, Some("payload_too_large")));

    let (s, e) = error_of(client.get(gw.url("/v1/nothing")).send().await.unwrap()).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));

    let recs = gw.records(7).await;
    let statuses: Vec<u16> = recs.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 5, "{statuses:?}");
    assert!(statuses.contains(&404) && statuses.contains(&413));
    assert!(recs.iter().all(|r| r.error_kind.is_some()));

    assert_eq!(reqwest::get(gw.url("/health")).await.unwrap().status(), 200);
    assert_eq!(gw.chat(hello("demo")).await.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_body_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start(&format!("{MOCK}{ROUTES}\n[server]\nbody_read_timeout = \"200ms\"\n")).await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let gw = gateway().await;
    assert_eq!(gw.chat(hello("demo")).await.status(), 200);
    let ready: Value = reqwest::get(gw.url("/ready")).await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    let m = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        r#"gardefou_requests_total{route="demo",model="polite",provider="demo",status_class="2xx",stream="false"} 1"#,
        "gardefou_request_duration_seconds_bucket",
        r#"gardefou_tokens_total{route="demo",model="polite",provider="demo",kind="output"}"#,
        "gardefou_cost_usd_total",
        "gardefou_inference_records_dropped_total 0",
        "gardefou_config_last_reload_success 1",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_every_record() {
    let gw = gateway().await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let url = gw.url("/v1/chat/completions");
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new().post(url).json(&hello("demo")).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let state = gw.stop().await;
    assert_eq!(state.recorder().written(), 50);
    assert_eq!(state.recorder().dropped(), 0);
}
