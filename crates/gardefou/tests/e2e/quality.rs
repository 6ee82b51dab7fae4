//! Online quality: a route's sampled answers are judged after the fact by its judge route, the
//! verdicts stored with the inference, counted in metrics and aggregated by the API; context
//! comes from the `context` field or tool results; eval traffic and gardefou's own calls are
//! never sampled; a judge that answers garbage is an error, never a pass.

use std::time::{Duration, Instant};

use gardefou_store::QualityScore;
use serde_json::{json, Value};

use crate::harness::{Gateway, MOCK};

const CONFIG: &str = r#"
[models.answerer]
provider = "demo"
mock = { mode = "fixed", text = "A refund takes 5 days." }
[models.fair-judge]
provider = "demo"
mock = { mode = "fixed", text = "{\"score\": 0.8, \"reasoning\": \"supported\"}" }
[models.harsh-judge]
provider = "demo"
mock = { mode = "fixed", text = "{\"score\": 0.1, \"reasoning\": \"off-topic\"}" }
[models.rambling-judge]
provider = "demo"
mock = { mode = "fixed", text = "What a lovely answer!" }
[routes.judge]
targets = [{ model = "fair-judge" }]
[routes.harsh]
targets = [{ model = "harsh-judge" }]
[routes.rambling]
targets = [{ model = "rambling-judge" }]
[routes.support]
targets = [{ model = "answerer" }]
quality = { sample = 1.0, policy = "Never promise a refund date." }
[routes.strict]
targets = [{ model = "answerer" }]
quality = { sample = 1.0, judge = "harsh", checks = ["relevance"], threshold = 0.5 }
[routes.broken]
targets = [{ model = "answerer" }]
quality = { sample = 1.0, judge = "rambling", checks = ["relevance"] }
[routes.unsampled]
targets = [{ model = "answerer" }]
"#;

async fn scores(gw: &Gateway, inference: &str, n: usize) -> Vec<QualityScore> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = gw.state.store().list_quality_scores(inference).await.unwrap();
        if s.len() >= n {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{inference}: {} of {n} quality scores after 15 s: {s:?}",
            s.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn by_name<'a>(s: &'a [QualityScore], name: &str) -> &'a QualityScore {
    s.iter().find(|q| q.name == name).unwrap_or_else(|| panic!("no {name} score in {s:?}"))
}

async fn ask(gw: &Gateway, body: Value) -> String {
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let _ = resp.bytes().await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_answers_are_judged_stored_counted_and_aggregated() {
    let gw = Gateway::start(&format!("{MOCK}{CONFIG}")).await;
    let question = json!({"role": "user", "content": "How long does a refund take?"});

    // With a `context` field: relevance, groundedness and compliance.
    let grounded = ask(
        &gw,
        json!({"model": "support", "messages": [question], "context": ["Refunds are paid within 5 days."]}),
    )
    .await;
    let s = scores(&gw, &grounded, 3).await;
    assert_eq!(s.len(), 3, "{s:?}");
    for q in &s {
        assert_eq!((q.score, q.passed, q.error.as_deref()), (Some(0.8), Some(true), None), "{q:?}");
        assert_eq!(
            (q.route.as_deref(), q.model.as_deref(), q.judge_route.as_str()),
            (Some("support"), Some("answerer"), "judge")
        );
        assert_eq!(q.reasoning.as_deref(), Some("supported"));
    }
    by_name(&s, "groundedness");
    by_name(&s, "compliance");

    // Without context no groundedness; a tool result is context; a stream is judged too.
    let plain = ask(&gw, json!({"model": "support", "messages": [question]})).await;
    let s = scores(&gw, &plain, 2).await;
    assert!(s.iter().all(|q| q.name != "groundedness"), "{s:?}");
    let tool = ask(
        &gw,
        json!({"model": "support", "messages": [
            {"role": "user", "content": "refund delay?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "kb", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "Refunds: 5 days."},
            question
        ]}),
    )
    .await;
    by_name(&scores(&gw, &tool, 3).await, "groundedness");
    let streamed = ask(&gw, json!({"model": "support", "stream": true, "messages": [question]})).await;
    scores(&gw, &streamed, 2).await;

    // A low score fails the check; an unparsable verdict is an error after one retry.
    let strict = ask(&gw, json!({"model": "strict", "messages": [question]})).await;
    let s = scores(&gw, &strict, 1).await;
    assert_eq!((s[0].score, s[0].passed), (Some(0.1), Some(false)));
    let broken = ask(&gw, json!({"model": "broken", "messages": [question]})).await;
    let s = scores(&gw, &broken, 1).await;
    assert_eq!((s[0].score, s[0].passed), (None, None));
    assert!(s[0].error.as_deref().unwrap().contains("unparsable judge output"), "{s:?}");

    // Not sampled: a route without quality, eval traffic.
    let none = ask(&gw, json!({"model": "unsampled", "messages": [question]})).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-gardefou-tags", "eval_suite=s,eval_case=c")
        .json(&json!({"model": "support", "messages": [question]}))
        .send()
        .await
        .unwrap();
    let eval = resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [&none, &eval] {
        assert!(gw.state.store().list_quality_scores(id).await.unwrap().is_empty(), "{id} was judged");
    }

    // Bad `context` is a 400 naming it.
    let resp = gw.chat(json!({"model": "support", "messages": [question], "context": 42})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "context");

    // The inference shows its scores; judge calls are tagged inferences.
    let rec: Value =
        reqwest::get(gw.url(&format!("/admin/inferences/{grounded}"))).await.unwrap().json().await.unwrap();
    assert_eq!(rec["quality"].as_array().map(Vec::len), Some(3), "{rec}");
    let records = gw.records(20).await;
    let judge_calls: Vec<_> =
        records.iter().filter(|r| r.tags.get("quality_inference") == Some(&grounded)).collect();
    assert_eq!(judge_calls.len(), 3, "one judge call per check");
    assert!(judge_calls.iter().all(|r| r.route.as_deref() == Some("judge")));

    // Metrics and the aggregate.
    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    let count = |labels: &str| -> f64 {
        let prefix = format!("gardefou_quality_checks_total{{{labels}}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0.0, |v| v.parse().unwrap())
    };
    assert_eq!(
        count("route=\"support\",model=\"answerer\",product=\"\",check=\"groundedness\",result=\"pass\""),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        count("route=\"strict\",model=\"answerer\",product=\"\",check=\"relevance\",result=\"fail\""),
        1.0
    );
    assert_eq!(
        count("route=\"broken\",model=\"answerer\",product=\"\",check=\"relevance\",result=\"error\""),
        1.0
    );
    let v: Value = reqwest::get(gw.url("/admin/quality?group_by=route")).await.unwrap().json().await.unwrap();
    let row = |route: &str, check: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"]["route"] == route && r["group"]["name"] == check)
            .cloned()
    };
    let rel = row("support", "relevance").unwrap_or_else(|| panic!("{v}"));
    assert_eq!((rel["count"].as_i64(), rel["pass_rate"].as_f64()), (Some(4), Some(1.0)), "{v}");
    let strict_rel = row("strict", "relevance").unwrap();
    assert_eq!(strict_rel["pass_rate"].as_f64(), Some(0.0));
    let broken_rel = row("broken", "relevance").unwrap();
    assert_eq!((broken_rel["errors"].as_i64(), broken_rel["pass_rate"].clone()), (Some(1), Value::Null));
    assert_eq!(reqwest::get(gw.url("/admin/quality?group_by=flavour")).await.unwrap().status(), 400);
    gw.stop().await;
}
