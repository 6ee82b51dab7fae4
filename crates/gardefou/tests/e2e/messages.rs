//! The Anthropic Messages ingress (`POST /v1/messages`) as an Anthropic client sees it, answered
//! by the mock and by an OpenAI-compatible upstream: shapes, stream events, errors, recording;
//! and the official `anthropic` Python SDK, unchanged, against a real gardefou process.

use serde_json::{json, Value};

use crate::harness::*;

const ROUTES: &str = r#"
[models.polite]
provider = "demo"
price = { input = 1.0, output = 2.0 }
[models.breaks]
provider = "demo"
mock = { mode = "break_stream", break_after = 3 }
[models.busy]
provider = "demo"
mock = { mode = "fail", status = 429, retry_after = "7s" }
[routes.demo]
targets = [{ model = "polite" }]
[routes.broken]
targets = [{ model = "breaks" }]
retry = { attempts = 1 }
[routes.busy]
targets = [{ model = "busy" }]
retry = { attempts = 1 }
"#;

async fn gateway() -> Gateway {
    Gateway::start(&format!("{MOCK}{ROUTES}")).await
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "hello there"}]})
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "Current weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "unit"]}})
}

async fn messages(gw: &Gateway, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "sk-ant-anything")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A streamed body as (event name, data) pairs; every event's data names its own type.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let (head, data) = e.split_once('\n').unwrap_or_else(|| panic!("one-line event {e:?}"));
            let name = head.strip_prefix("event: ").unwrap_or_else(|| panic!("no event line in {e:?}"));
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name, "{e}");
            (name.to_owned(), data)
        })
        .collect()
}

/// The order of a well-formed stream: start, ping, whole blocks, delta, stop.
fn assert_well_formed(evs: &[(String, Value)]) {
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["message_start", "ping"], "{names:?}");
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"], "{names:?}");
    let mut open: Option<u64> = None;
    let mut next = 0;
    for (name, data) in &evs[2..evs.len() - 2] {
        let index = data["index"].as_u64().unwrap();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!((open, index), (None, next), "{names:?}");
                open = Some(index);
                next += 1;
            }
            "content_block_delta" => assert_eq!(open, Some(index), "{names:?}"),
            "content_block_stop" => {
                assert_eq!(open, Some(index), "{names:?}");
                open = None;
            }
            other => panic!("unexpected {other} in {names:?}"),
        }
    }
    assert_eq!(open, None, "every block is stopped");
}

fn streamed_text(evs: &[(String, Value)]) -> String {
    evs.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect()
}

#[tokio::test]
async fn a_text_answer_has_anthropic_shape_and_is_recorded() {
    let gw = gateway().await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("authorization", "Bearer sk-ant-x")
        .header("anthropic-version", "2099-01-01")
        .header("x-request-id", "req-anthropic")
        .json(&json!({"model": "demo", "max_tokens": 256,
            "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
            "metadata": {"user_id": "u-9"},
            "messages": [
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
                {"role": "user", "content": [{"type": "text", "text": "and the second one?"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-model"], "polite");
    let inference_id = resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["role"].as_str()), (Some("message"), Some("assistant")));
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(body["model"], "demo");
    assert_eq!(body["content"].as_array().unwrap().len(), 1);
    assert_eq!(body["content"][0]["type"], "text");
    let text = body["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("«and the second one?»"), "the last user turn is answered: {text}");
    assert_eq!((body["stop_reason"].as_str(), &body["stop_sequence"]), (Some("end_turn"), &Value::Null));
    // The mock counts words plus 3 per message: system 3+3, then 2+3, 2+3, 4+3.
    let usage = &body["usage"];
    assert_eq!(
        usage,
        &json!({"input_tokens": 23, "output_tokens": text.split_whitespace().count(),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );

    let recs = gw.records(1).await;
    let r = recs.iter().find(|r| r.id == inference_id).unwrap();
    assert_eq!((r.endpoint.as_str(), r.status, r.stream), ("messages", 200, false));
    assert_eq!((r.request_id.as_str(), r.end_user.as_deref()), ("req-anthropic", Some("u-9")));
    assert_eq!(
        (r.input_tokens, r.output_tokens),
        (usage["input_tokens"].as_i64(), usage["output_tokens"].as_i64())
    );
    assert!(r.cost_usd.unwrap() > 0.0);
    gw.stop().await;
}

#[tokio::test]
async fn a_tool_use_answer_and_its_tool_result_follow_up() {
    let gw = gateway().await;
    let mut req = hello("demo");
    req["messages"][0]["content"] = json!("What is the weather in Paris?");
    req["tools"] = json!([weather_tool()]);
    req["tool_choice"] = json!({"type": "any"});
    let body: Value = messages(&gw, req.clone()).await.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_use", "{body}");
    let call = body["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
    assert_eq!(call["name"], "get_weather");
    assert!(call["input"]["city"].is_string() && call["input"]["unit"].is_string(), "{call}");

    let messages_so_far = req["messages"].as_array().unwrap().clone();
    let mut follow = req.clone();
    follow["messages"] = json!([messages_so_far[0], {"role": "assistant", "content": body["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
            "content": [{"type": "text", "text": "18 degrees and sunny"}]}]}]);
    let answer: Value = messages(&gw, follow).await.json().await.unwrap();
    assert_eq!(answer["stop_reason"], "end_turn", "{answer}");
    let text = answer["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("the tool returned «18 degrees and sunny»"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_comes_in_anthropic_order_and_equals_the_whole_answer() {
    let gw = gateway().await;
    let whole: Value = messages(&gw, hello("demo")).await.json().await.unwrap();
    let mut req = hello("demo");
    req["stream"] = json!(true);
    let resp = messages(&gw, req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let evs = events(&resp.text().await.unwrap());
    assert_well_formed(&evs);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "content_block_start").count(), 1, "{names:?}");
    assert!(names.iter().filter(|n| **n == "content_block_delta").count() > 3, "several deltas");

    let start = &evs[0].1["message"];
    assert_eq!((start["role"].as_str(), start["model"].as_str()), (Some("assistant"), Some("demo")));
    assert_eq!(start["content"], json!([]));
    assert_eq!(evs[2].1["content_block"], json!({"type": "text", "text": ""}));
    assert!(evs.iter().all(|(n, d)| n != "content_block_delta" || d["delta"]["type"] == "text_delta"));
    assert_eq!(streamed_text(&evs), whole["content"][0]["text"].as_str().unwrap());
    let delta = &evs[evs.len() - 2].1;
    assert_eq!(delta["delta"], json!({"stop_reason": "end_turn", "stop_sequence": null}));
    assert_eq!(delta["usage"]["output_tokens"], whole["usage"]["output_tokens"]);
    assert_eq!(delta["usage"]["input_tokens"], whole["usage"]["input_tokens"]);

    let recs = gw.records(2).await;
    let streamed = recs.iter().find(|r| r.stream).unwrap();
    assert_eq!((streamed.endpoint.as_str(), streamed.status), ("messages", 200));
    assert!(streamed.ttft_ms.is_some() && streamed.output_tokens == whole["usage"]["output_tokens"].as_i64());
    gw.stop().await;
}

#[tokio::test]
async fn streamed_tool_use_reassembles_its_input_json() {
    let gw = gateway().await;
    let time_tool = json!({"name": "get_time", "input_schema": {"type": "object",
        "properties": {"zone": {"type": "string"}}, "required": ["zone"]}});
    let mut req = hello("demo");
    req["tools"] = json!([weather_tool(), time_tool]);
    let whole: Value = messages(&gw, req.clone()).await.json().await.unwrap();
    req["stream"] = json!(true);
    let evs = events(&messages(&gw, req).await.text().await.unwrap());
    assert_well_formed(&evs);

    let starts: Vec<&Value> =
        evs.iter().filter(|(n, _)| n == "content_block_start").map(|(_, d)| &d["content_block"]).collect();
    assert_eq!(starts.len(), 2, "two parallel calls, two tool_use blocks");
    for (i, (start, expected)) in starts.iter().zip(whole["content"].as_array().unwrap()).enumerate() {
        assert_eq!((start["type"].as_str(), &start["name"]), (Some("tool_use"), &expected["name"]));
        assert_eq!(start["input"], json!({}));
        let json_text: String = evs
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["index"] == i)
            .map(|(_, d)| {
                assert_eq!(d["delta"]["type"], "input_json_delta");
                d["delta"]["partial_json"].as_str().unwrap()
            })
            .collect();
        let input: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(input, expected["input"], "the streamed input equals the whole answer's");
    }
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "tool_use");
    gw.stop().await;
}

#[tokio::test]
async fn stop_sequences_cut_the_text_and_max_tokens_sets_the_stop_reason() {
    let gw = gateway().await;
    let mut req = hello("demo");
    req["stop_sequences"] = json!(["scripted"]);
    let body: Value = messages(&gw, req).await.json().await.unwrap();
    let text = body["content"][0]["text"].as_str().unwrap();
    assert!(text.ends_with("This is a "), "{text}");
    // Canonical answers do not say which sequence stopped them: see anthropic::stop_reason.
    assert_eq!(body["stop_reason"], "end_turn");

    let mut req = hello("demo");
    req["max_tokens"] = json!(3);
    let body: Value = messages(&gw, req.clone()).await.json().await.unwrap();
    assert_eq!(
        (body["stop_reason"].as_str(), body["usage"]["output_tokens"].as_u64()),
        (Some("max_tokens"), Some(3))
    );
    req["stream"] = json!(true);
    let evs = events(&messages(&gw, req).await.text().await.unwrap());
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "max_tokens");
    assert_eq!(streamed_text(&evs), body["content"][0]["text"].as_str().unwrap());
    gw.stop().await;
}

async fn upstream_gateway(up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        r#"
[providers.up]
kind = "openai_compatible"
base_url = "{}"
[models.m]
provider = "up"
upstream = "gpt-4o-mini"
[routes.r]
targets = [{{ model = "m" }}]
retry = {{ attempts = 1 }}
"#,
        up.base
    ))
    .await
}

#[tokio::test]
async fn an_openai_compatible_upstream_receives_the_translated_request() {
    let up = Upstream::start(json_reply(
        200,
        json!({"id": "chatcmpl-u1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": "Checking.", "tool_calls": [{"id": "call_9", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"c\"}"}}]}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 14, "total_tokens": 134,
                "prompt_tokens_details": {"cached_tokens": 100}}}),
    ))
    .await;
    let gw = upstream_gateway(&up).await;
    let body: Value = messages(
        &gw,
        json!({
            "model": "r", "max_tokens": 300, "temperature": 0.5, "top_k": 20,
            "stop_sequences": ["\n\nHuman:"], "metadata": {"user_id": "u-1"},
            "system": "You are a weather bot.",
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "text", "text": "Where is this, and what is the weather?"}]}],
            "tools": [weather_tool()],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].body,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a weather bot."},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                    {"type": "text", "text": "Where is this, and what is the weather?"}]}],
            "temperature": 0.5,
            // a generic OpenAI-compatible server gets the legacy spelling (the vendor's quirk)
            "max_tokens": 300,
            "stop": ["\n\nHuman:"],
            "user": "u-1",
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "description": "Current weather in a city.", "parameters": weather_tool()["input_schema"]}}],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "top_k": 20
        })
    );
    assert_eq!(
        body,
        json!({"id": "msg_chatcmpl-u1", "type": "message", "role": "assistant", "model": "r",
            "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 14,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100}})
    );
    let recs = gw.records(1).await;
    assert_eq!((recs[0].input_tokens, recs[0].cached_input_tokens), (Some(120), Some(100)));
    gw.stop().await;
}

#[tokio::test]
async fn a_streamed_upstream_answer_reports_its_usage_in_message_delta() {
    let up = Upstream::start(sse_reply(&[
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"content":"Sunny"}}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        r#"{"id":"c2","object":"chat.completion.chunk","created":1,"model":"g","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":32}}}"#,
        "[DONE]",
    ]))
    .await;
    let gw = upstream_gateway(&up).await;
    let mut req = hello("r");
    req["stream"] = json!(true);
    req["tools"] = json!([weather_tool()]);
    let evs = events(&messages(&gw, req).await.text().await.unwrap());
    assert_well_formed(&evs);
    assert_eq!(up.seen()[0].body["stream_options"], json!({"include_usage": true}));
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(evs[0].1["message"]["id"], "msg_c2");
    assert_eq!(evs[0].1["message"]["usage"]["input_tokens"], 0, "unknown until the usage chunk");
    assert_eq!(
        evs[5].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        evs[9].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 9, "input_tokens": 18, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 32}})
    );
    gw.stop().await;
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    (status, body)
}

#[tokio::test]
async fn errors_have_anthropic_shape_and_are_recorded() {
    let gw = gateway().await;
    let raw = |body: &'static [u8]| {
        reqwest::Client::new()
            .post(gw.url("/v1/messages"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let kind = |e: &Value| e["error"]["type"].as_str().unwrap().to_owned();

    let (s, e) = error_of(raw(b"{\"model\": \"demo\", ").await.unwrap()).await;
    assert_eq!((s, kind(&e).as_str()), (400, "invalid_request_error"));

    let mut no_max = hello("demo");
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let (s, e) = error_of(messages(&gw, no_max).await).await;
    assert_eq!((s, kind(&e).as_str()), (400, "invalid_request_error"));
    assert!(e["error"]["message"].as_str().unwrap().contains("max_tokens"), "{e}");

    let (s, e) = error_of(
        messages(&gw, json!({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("model"), "{e}");

    let (s, _) =
        error_of(messages(&gw, json!({"model": "demo", "max_tokens": 5, "messages": []})).await).await;
    assert_eq!(s, 400);

    let mut doc = hello("demo");
    doc["messages"][0]["content"] = json!([{"type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]);
    let (s, e) = error_of(messages(&gw, doc).await).await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("`document` content blocks"), "{e}");

    let (s, e) = error_of(messages(&gw, hello("no-such-route")).await).await;
    assert_eq!((s, kind(&e).as_str()), (404, "not_found_error"));

    let resp = messages(&gw, hello("busy")).await;
    assert_eq!(resp.headers()["retry-after"], "7");
    let (s, e) = error_of(resp).await;
    assert_eq!((s, kind(&e).as_str()), (429, "rate_limit_error"));

    let recs = gw.records(7).await;
    assert_eq!(recs.len(), 7);
    assert!(recs.iter().all(|r| r.endpoint == "messages" && r.error_kind.is_some()));
    let mut statuses: Vec<u16> = recs.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 400, 400, 400, 400, 404, 429]);
    assert_eq!(messages(&gw, hello("demo")).await.status(), 200, "the server stays healthy");
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_broken_mid_way_ends_with_an_error_event() {
    let gw = gateway().await;
    let mut req = hello("broken");
    req["stream"] = json!(true);
    let resp = messages(&gw, req).await;
    assert_eq!(resp.status(), 200, "the break comes after the first byte");
    let evs = events(&resp.text().await.unwrap());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "message_start");
    assert_eq!(names.last(), Some(&"error"), "{names:?}");
    assert!(!names.contains(&"message_stop") && !names.contains(&"message_delta"), "{names:?}");
    let (_, error) = evs.last().unwrap();
    assert_eq!(error["error"]["type"], "api_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("connection"), "{error}");
    let recs = gw.records(1).await;
    assert_eq!((recs[0].status, recs[0].stream, recs[0].endpoint.as_str()), (502, true, "messages"));
    gw.stop().await;
}

#[tokio::test]
async fn count_tokens_counts_the_prompt_without_recording_it() {
    let gw = gateway().await;
    let mut req = hello("demo");
    req.as_object_mut().unwrap().remove("max_tokens");
    let body: Value = reqwest::Client::new()
        .post(gw.url("/v1/messages/count_tokens"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["input_tokens"].as_u64().unwrap() > 2, "{body}");
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages/count_tokens"))
        .json(&hello("nope"))
        .send()
        .await
        .unwrap();
    let (s, e) = error_of(resp).await;
    assert_eq!((s, e["error"]["type"].as_str()), (404, Some("not_found_error")));
    let state = gw.stop().await;
    assert_eq!(state.recorder().written(), 0);
}

#[test]
fn official_anthropic_sdk_works_unchanged() {
    let Some(stdout) = run_python_clients("anthropic_client.py", "anthropic", "the anthropic Python package")
    else {
        return;
    };
    assert!(stdout.contains("anthropic: ") && stdout.contains(" passed, 0 failed"), "{stdout}");
}
