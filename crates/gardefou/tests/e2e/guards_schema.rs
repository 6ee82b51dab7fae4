//! The `json_schema` output guard end to end: a fixed schema or the caller's own
//! `response_format` (`from_request`), enforced on whole answers (400 `guardrail_violation`
//! naming the guard, never the answer), flagged or escalated; a caller schema that does not
//! compile refused before any upstream call; streamed answers held back whole, then released or
//! ended with `content_filter` without a byte of the broken answer.

use serde_json::{json, Value};

use crate::harness::*;

const POLICIES: &str = r#"
[guards.answer]
json_schema = { schema = { type = "object", required = ["answer"], properties = { answer = { type = "string" } } }, action = "block" }
[guards.caller]
pii = "redact"
json_schema = { from_request = true, action = "block" }
[guards.lenient]
json_schema = { from_request = true, action = "flag" }
[guards.human]
json_schema = { schema = { type = "object" }, action = "escalate" }
"#;

/// A route `name` on a mock model of its own answering per `mock`, with `guards`.
fn route(name: &str, mock: &str, guards: &str) -> String {
    format!(
        "[models.{name}-m]\nprovider = \"demo\"\nmock = {mock}\n\
         [routes.{name}]\ntargets = [{{ model = \"{name}-m\" }}]\nguards = {guards}\n"
    )
}

fn fixed(text: &str) -> String {
    format!("{{ mode = \"fixed\", text = {} }}", Value::from(text))
}

const ECHO: &str = "{ mode = \"echo\" }";
const POLITE: &str = "{ mode = \"polite\" }";

/// The schema of the `from_request` tests.
fn city() -> Value {
    json!({"type": "object", "required": ["city", "population"], "additionalProperties": false,
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}})
}

fn structured(schema: Value) -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "city", "strict": true, "schema": schema}})
}

fn ask(route: &str, text: &str, format: Option<Value>, stream: bool) -> Value {
    let mut body = json!({"model": route, "stream": stream, "messages": [{"role": "user", "content": text}]});
    if let Some(f) = format {
        body["response_format"] = f;
    }
    body
}

/// Status and body of a 400, with the guard it names.
async fn blocked(r: reqwest::Response) -> (String, Value) {
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "guardrail_violation", "{err}");
    (body, err)
}

async fn content(r: reqwest::Response) -> String {
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned()
}

/// The content deltas of a streamed answer, its finish reasons, and whether it ended with [DONE].
fn streamed(body: &str) -> (Vec<String>, Vec<Value>, bool) {
    let (mut deltas, mut finishes) = (Vec::new(), Vec::new());
    let events = sse_events(body);
    for e in events.iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
            deltas.push(t.to_owned());
        }
        if !v["choices"][0]["finish_reason"].is_null() {
            finishes.push(v["choices"][0]["finish_reason"].clone());
        }
    }
    (deltas, finishes, events.last().is_some_and(|e| e == "[DONE]"))
}

async fn metrics(gw: &Gateway) -> String {
    reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_fixed_schema_blocks_answers_that_break_it_and_never_echoes_them() {
    let gw = Gateway::start(&format!(
        "{MOCK}{POLICIES}{}{}{}{}{}",
        route("prose", &fixed("Sure! The secret answer is 42."), "{ output = \"answer\" }"),
        route("wrong", &fixed(r#"{"answer": 4242}"#), "{ output = \"answer\" }"),
        route("good", &fixed(r#"{"answer": "42"}"#), "{ output = \"answer\" }"),
        route("both", &fixed(r#"{"answer": "42"}"#), "{ input = \"answer\", output = \"answer\" }"),
        route("tools", POLITE, "{ output = \"answer\" }"),
    ))
    .await;

    let (body, err) = blocked(gw.chat(ask("prose", "hi", None, false)).await).await;
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`json_schema`") && msg.contains("INVALID_JSON"), "{msg}");
    assert!(!body.contains("secret answer"), "the answer is never echoed: {body}");

    let (body, err) = blocked(gw.chat(ask("wrong", "hi", None, false)).await).await;
    assert!(err["error"]["message"].as_str().unwrap().contains("SCHEMA_VIOLATION"), "{err}");
    assert!(!body.contains("4242"), "{body}");

    assert_eq!(content(gw.chat(ask("good", "hi", None, false)).await).await, r#"{"answer": "42"}"#);
    // The schema is about answers: a prompt in plain text passes the same policy as input guard.
    assert_eq!(content(gw.chat(ask("both", "hi there", None, false)).await).await, r#"{"answer": "42"}"#);

    // A tool call answer is no document to check.
    let mut with_tools = ask("tools", "weather in Lyon?", None, false);
    with_tools["tools"] = json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let r = gw.chat(with_tools).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls", "{body}");

    // The Anthropic ingress gets the same decision in its own shape.
    let r = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "prose", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("json_schema") && !body.contains("secret answer"), "{body}");

    let m = metrics(&gw).await;
    assert!(
        m.contains("gardefou_guard_blocks_total{guard=\"json_schema\",kind=\"\",direction=\"output\"} 3"),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn from_request_checks_each_answer_against_what_its_caller_asked_for() {
    let up = Upstream::start(json_reply(
        200,
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}]}),
    ))
    .await;
    let gw = Gateway::start(&format!(
        "{MOCK}{POLICIES}{}{}\
         [providers.up]\nkind = \"openai_compatible\"\nbase_url = \"{}\"\n[models.up-m]\nprovider = \"up\"\n\
         [routes.counted]\ntargets = [{{ model = \"up-m\" }}]\nguards = {{ output = \"caller\" }}\n",
        route("polite", POLITE, "{ output = \"caller\" }"),
        route("echo", ECHO, "{ output = \"caller\" }"),
        up.base
    ))
    .await;

    // The polite mock answers JSON that fits the caller's schema: it passes.
    let answer =
        content(gw.chat(ask("polite", "Biggest city?", Some(structured(city())), false)).await).await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert!(answer["city"].is_string() && answer["population"].is_i64(), "{answer}");
    // The echo mock answers what it is told to.
    let good = r#"{"city": "Lyon", "population": 522000}"#;
    assert_eq!(content(gw.chat(ask("echo", good, Some(structured(city())), false)).await).await, good);
    let bad = r#"{"city": "Lyon", "population": "half a million"}"#;
    let (body, err) = blocked(gw.chat(ask("echo", bad, Some(structured(city())), false)).await).await;
    assert!(
        err["error"]["message"].as_str().unwrap().contains("`json_schema` guard (SCHEMA_VIOLATION)"),
        "{err}"
    );
    assert!(!body.contains("half a million"), "{body}");

    // json_object: any JSON document, but JSON.
    let prose = "The biggest city is Lyon.";
    let (_, err) =
        blocked(gw.chat(ask("echo", prose, Some(json!({"type": "json_object"})), false)).await).await;
    assert!(err["error"]["message"].as_str().unwrap().contains("INVALID_JSON"), "{err}");
    assert_eq!(
        content(gw.chat(ask("echo", good, Some(json!({"type": "json_object"})), false)).await).await,
        good
    );
    // No response_format, or text: the guard has nothing to say.
    assert_eq!(content(gw.chat(ask("echo", prose, None, false)).await).await, prose);
    assert_eq!(content(gw.chat(ask("echo", prose, Some(json!({"type": "text"})), false)).await).await, prose);

    // A schema that is not one is the caller's error, before any upstream call.
    let broken = structured(json!({"type": "strnig"}));
    for stream in [false, true] {
        let r = gw.chat(ask("counted", "hi", Some(broken.clone()), stream)).await;
        assert_eq!(r.status(), 400);
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
        assert_eq!(err["error"]["param"], "response_format.json_schema.schema", "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains("not a valid JSON schema"), "{err}");
    }
    assert!(up.seen().is_empty(), "the upstream was never called");
    assert_eq!(gw.chat(ask("counted", "hi", Some(structured(city())), false)).await.status(), 400);
    assert_eq!(up.seen().len(), 1, "a valid schema goes upstream; its empty answer breaks it");
    gw.stop().await;
}

#[tokio::test]
async fn flag_records_and_counts_a_broken_answer_and_escalate_hands_it_to_a_human() {
    let gw = Gateway::start(&format!(
        "{MOCK}{POLICIES}{}{}escalation = {{ answer = \"A colleague will answer (ticket {{id}}).\" }}\n",
        route("flagged", &fixed("not json, sorry"), "{ output = \"lenient\" }"),
        route("escalating", &fixed("not json, sorry"), "{ output = \"human\" }"),
    ))
    .await;
    let r = gw.chat(ask("flagged", "hi", Some(json!({"type": "json_object"})), false)).await;
    let id = r.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    assert_eq!(content(r).await, "not json, sorry");
    let m = metrics(&gw).await;
    assert!(
        m.contains(
            "gardefou_guard_findings_total{guard=\"json_schema\",kind=\"INVALID_JSON\",direction=\"output\"} 1"
        ),
        "{m}"
    );
    assert!(!m.contains("gardefou_guard_blocks_total{guard=\"json_schema\""), "{m}");
    let records = gw.records(1).await;
    let rec = records.iter().find(|r| r.id == id).unwrap();
    assert_eq!(rec.tags["guard_output"], "json_schema:INVALID_JSON");

    let r = gw.chat(ask("escalating", "hi", None, false)).await;
    let ticket = r.headers()["x-gardefou-escalation"].to_str().unwrap().to_owned();
    assert_eq!(content(r).await, format!("A colleague will answer (ticket {ticket})."));
    let one: Value =
        reqwest::get(gw.url(&format!("/admin/escalations/{ticket}"))).await.unwrap().json().await.unwrap();
    assert_eq!(one["reason"], "guard:json_schema", "{one}");
    gw.stop().await;
}

#[tokio::test]
async fn a_streamed_answer_is_held_whole_then_released_or_ended_without_leaking_a_byte() {
    let gw = Gateway::start(&format!(
        "{MOCK}{POLICIES}{}{}",
        route("polite", POLITE, "{ output = \"caller\" }"),
        route("echo", ECHO, "{ output = \"caller\" }"),
    ))
    .await;
    let stream = |route: &str, text: &str, format: Option<Value>| {
        let gw = &gw;
        let body = ask(route, text, format, true);
        async move { gw.chat(body).await.text().await.unwrap() }
    };

    // Valid: the whole document in one delta, with its finish reason.
    let body = stream("polite", "Biggest city?", Some(structured(city()))).await;
    let (deltas, finishes, done) = streamed(&body);
    assert_eq!(deltas.len(), 1, "held, then released whole: {body}");
    let answer: Value = serde_json::from_str(&deltas[0]).unwrap();
    assert!(answer["city"].is_string() && answer["population"].is_i64(), "{answer}");
    assert_eq!((finishes, done), (vec![json!("stop")], true));

    // Broken: not a piece of it reaches the client; the answer ends as other streamed blocks do.
    let bad = r#"{"city": "Lyon", "population": "half a million of people"}"#;
    let body = stream("echo", bad, Some(structured(city()))).await;
    let (deltas, finishes, done) = streamed(&body);
    assert!(deltas.is_empty(), "{body}");
    assert!(!body.contains("Lyon") && !body.contains("million"), "{body}");
    assert_eq!((finishes, done), (vec![json!("content_filter")], true), "{body}");

    // The other output guards still apply to the released document.
    let schema = json!({"type": "object", "properties": {"contact": {"type": "string"}}});
    let body = stream("echo", r#"{"contact": "ana.martin@example.com"}"#, Some(structured(schema))).await;
    let (deltas, _, _) = streamed(&body);
    assert_eq!(deltas.concat(), r#"{"contact": "[EMAIL_1]"}"#, "{body}");
    assert!(!body.contains("example.com"), "{body}");

    // Nothing asked, nothing held: the answer streams as it comes (past the pii guard's window).
    let prose = "The biggest city of the region is Lyon, by far: it has about half a million people, \
                 twice as many as the next one, and its metropolitan area is the second of the country.";
    let (deltas, finishes, _) = streamed(&stream("echo", prose, None).await);
    assert!(deltas.len() > 1, "{deltas:?}");
    assert_eq!((deltas.concat().as_str(), finishes), (prose, vec![json!("stop")]));

    let records = gw.records(4).await;
    let cut = records.iter().find(|r| r.finish_reason.as_deref() == Some("content_filter")).unwrap();
    assert_eq!(cut.tags["guard_output"], "json_schema:SCHEMA_VIOLATION", "{:?}", cut.tags);
    let m = metrics(&gw).await;
    assert!(
        m.contains("gardefou_guard_blocks_total{guard=\"json_schema\",kind=\"\",direction=\"output\"} 1"),
        "{m}"
    );
    gw.stop().await;
}
