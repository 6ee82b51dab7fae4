//! Rate limits and budgets end to end: per-key, per-team and per-route limits with OpenAI's
//! headers and 429 + Retry-After; a budget that fits 50 calls holds against 500 concurrent ones;
//! soft thresholds fire a webhook once; a spent budget downgrades to a cheaper route; a route's
//! cost cap lowers max_tokens and cuts a stream off.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::harness::*;

/// Fixed windows start on the minute: a test counting within one minute starts early in one.
async fn early_in_a_minute() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let into = now.as_millis() % 60_000;
    if into > 45_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into + 200) as u64)).await;
    }
}

async fn create_key(gw: &Gateway, body: Value) -> String {
    let resp = reqwest::Client::new().post(gw.url("/admin/keys")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_owned()
}

async fn ask(gw: &Gateway, key: &str, route: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"model": route, "messages": [{"role": "user", "content": "hello there"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn rate_limits_per_key_team_and_route_answer_429_with_retry_after_and_openai_headers() {
    let gw = Gateway::start(&format!(
        "{MOCK}
[models.polite]
provider = \"demo\"
[routes.chat]
targets = [{{ model = \"polite\" }}]
[routes.metered]
targets = [{{ model = \"polite\" }}]
limits = {{ tpm = 40 }}
[teams.search]
rpm = 5
"
    ))
    .await;
    early_in_a_minute().await;
    let first = create_key(&gw, json!({"team": "search", "limits": {"rpm": 3}})).await;
    for remaining in ["2", "1", "0"] {
        let r = ask(&gw, &first, "chat", json!({})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit-requests").as_deref(), Some("3"));
        assert_eq!(header(&r, "x-ratelimit-remaining-requests").as_deref(), Some(remaining));
        assert!(header(&r, "x-ratelimit-reset-requests").unwrap().ends_with('s'));
    }
    let refused = ask(&gw, &first, "chat", json!({})).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limit_exceeded");
    assert_eq!(err["error"]["type"], "rate_limit_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("key"), "{err}");

    // The team's 5 per minute: 3 used by the first key (the refused call counted nowhere).
    let second = create_key(&gw, json!({"team": "search"})).await;
    assert_eq!(ask(&gw, &second, "chat", json!({})).await.status(), 200);
    assert_eq!(ask(&gw, &second, "chat", json!({})).await.status(), 200);
    let refused = ask(&gw, &second, "chat", json!({})).await;
    assert_eq!(refused.status(), 429);
    let err: Value = refused.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("team `search`"), "{err}");

    // Tokens per minute on a route: counted after each call, refused once spent.
    let other = create_key(&gw, json!({"team": "ads"})).await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = ask(&gw, &other, "metered", json!({})).await;
        if r.status() == 200 {
            assert_eq!(header(&r, "x-ratelimit-limit-tokens").as_deref(), Some("40"));
        }
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let err: Value = r.json().await.unwrap();
            assert!(err["error"]["message"].as_str().unwrap().contains("tokens per minute"), "{err}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 2, "{statuses:?}");

    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gardefou_rate_limited_total{limit=\"key_rpm\"} 1"), "{metrics}");
    assert!(metrics.contains("gardefou_rate_limited_total{limit=\"team_rpm\"} 1"));
    assert!(metrics.contains("gardefou_limits_backend_up 1"));
    gw.stop().await;
}

/// 500 concurrent calls at a budget that fits 50 worst cases: exactly 50 are served and the
/// spend never passes the limit. Each call costs exactly its worst case here (100 output tokens
/// at $0.01, no input price), so no settle frees room for more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_fits_50_calls_is_never_overrun_by_500_concurrent_calls() {
    let hook = Upstream::start(json_reply(200, json!({}))).await;
    let words = "word ".repeat(400);
    let gw = Gateway::start(&format!(
        "{MOCK}
[models.pricey]
provider = \"demo\"
price = {{ input = 0.0, output = 10000.0 }}
mock = {{ mode = \"fixed\", text = \"{words}\", latency = \"100ms\" }}
[routes.chat]
targets = [{{ model = \"pricey\" }}]
[budgets.search-monthly]
scope = \"team:search\"
limit_usd = 50
window = \"month\"
alert_at = [0.5, 0.8]
webhook = \"{}/budget-hook\"
",
        hook.base
    ))
    .await;
    let key = create_key(&gw, json!({"team": "search"})).await;
    let calls = (0..500).map(|_| ask(&gw, &key, "chat", json!({"max_tokens": 100})));
    let responses = join_all(calls).await;
    let mut ok = 0;
    let mut refused = 0;
    for r in responses {
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                refused += 1;
                let err: Value = r.json().await.unwrap();
                assert_eq!(err["error"]["code"], "budget_exceeded");
                let msg = err["error"]["message"].as_str().unwrap();
                assert!(msg.contains("search-monthly") && msg.contains("resets at"), "{msg}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let records = gw.records(500).await;
    let spent: f64 = records.iter().filter_map(|r| r.cost_usd).sum();
    assert_eq!((ok, refused), (50, 450));
    assert!(spent <= 50.0 + 1e-9, "spent {spent}");
    assert!((spent - 50.0).abs() < 1e-6, "each call costs its worst case: {spent}");

    // The 50% and 80% thresholds each fired once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hooks: Vec<Value> = hook.seen().into_iter().map(|s| s.body).collect();
    let thresholds: Vec<f64> = hooks.iter().map(|h| h["threshold"].as_f64().unwrap()).collect();
    assert_eq!(thresholds.len(), 2, "{hooks:?}");
    assert!(thresholds.contains(&0.5) && thresholds.contains(&0.8));
    assert_eq!(hooks[0]["budget"], "search-monthly");
    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gardefou_budget_rejections_total{budget=\"search-monthly\"} 450"), "{metrics}");
    assert!(metrics.contains("gardefou_budget_alerts_total{budget=\"search-monthly\",threshold=\"0.8\"} 1"));
    gw.stop().await;
}

#[tokio::test]
async fn a_spent_budget_downgrades_to_the_cheaper_route_and_key_budgets_reject() {
    let gw = Gateway::start(&format!(
        "{MOCK}
[models.strong]
provider = \"demo\"
price = {{ input = 0.0, output = 10000.0 }}
mock = {{ mode = \"fixed\", text = \"{}\" }}
[models.light]
provider = \"demo\"
price = {{ input = 0.0, output = 10.0 }}
[routes.smart]
targets = [{{ model = \"strong\" }}]
[routes.cheap]
targets = [{{ model = \"light\" }}]
[models.embedder]
provider = \"demo\"
capabilities = [\"embeddings\"]
[routes.vectors]
targets = [{{ model = \"embedder\" }}]
[budgets.smart-daily]
scope = \"route:smart\"
limit_usd = 0.25
window = \"day\"
action = \"downgrade\"
downgrade_to = \"cheap\"
",
        "word ".repeat(40)
    ))
    .await;
    let key = create_key(&gw, json!({"team": "ads"})).await;
    let first = ask(&gw, &key, "smart", json!({"max_tokens": 20})).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-gardefou-model").as_deref(), Some("strong"));
    // 20 tokens at $0.01 reserve $0.20: the next one does not fit and goes to `cheap`.
    let second = ask(&gw, &key, "smart", json!({"max_tokens": 20})).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-gardefou-model").as_deref(), Some("light"));
    assert_eq!(header(&second, "x-gardefou-downgraded").as_deref(), Some("smart-daily: cheap"));
    let records = gw.records(2).await;
    assert!(records.iter().any(|r| r.route.as_deref() == Some("cheap")));

    // Embeddings count too: their input is reserved on the budgets, and rate limits apply.
    let metered = create_key(&gw, json!({"team": "ads", "limits": {"rpm": 1}})).await;
    let embed = |key: String| {
        let gw = &gw;
        async move {
            reqwest::Client::new()
                .post(gw.url("/v1/embeddings"))
                .bearer_auth(key)
                .json(&json!({"model": "vectors", "input": ["one", "two"]}))
                .send()
                .await
                .unwrap()
        }
    };
    let first = embed(metered.clone()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert_eq!(embed(metered).await.status(), 429);

    let small =
        create_key(&gw, json!({"team": "ads", "limits": {"budget_usd": 0.3, "budget_window": "day"}})).await;
    assert_eq!(ask(&gw, &small, "cheap", json!({"max_tokens": 10000})).await.status(), 200);
    let refused = ask(&gw, &small, "cheap", json!({"max_tokens": 30000})).await;
    assert_eq!(refused.status(), 429);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "budget_exceeded");
    assert!(err["error"]["message"].as_str().unwrap().contains("per day"), "{err}");
    gw.stop().await;
}

#[tokio::test]
async fn a_route_cost_cap_lowers_max_tokens_and_cuts_a_stream_that_ignores_it() {
    // An upstream that ignores max_tokens and streams 200 words.
    let mut events: Vec<String> = (0..200)
        .map(|i| {
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"content": format!("word{i} ")}, "finish_reason": null}]})
            .to_string()
        })
        .collect();
    events.push(
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        .to_string(),
    );
    events.push("[DONE]".to_owned());
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let up = Upstream::start(sse_reply(&refs)).await;
    let gw = Gateway::start(&format!(
        "{MOCK}
[providers.up]
kind = \"openai_compatible\"
base_url = \"{}\"
[models.capped]
provider = \"up\"
price = {{ input = 0.0, output = 1000.0 }}
[models.polite]
provider = \"demo\"
price = {{ input = 0.0, output = 1000.0 }}
[routes.streamy]
targets = [{{ model = \"capped\" }}]
limits = {{ max_cost_usd = 0.02 }}
[routes.chat]
targets = [{{ model = \"polite\" }}]
limits = {{ max_cost_usd = 0.005 }}
",
        up.base
    ))
    .await;
    let key = create_key(&gw, json!({"team": "ads"})).await;
    // $0.005 at $0.001 per output token: max_tokens becomes 5.
    let r = ask(&gw, &key, "chat", json!({"max_tokens": 500})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 5, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");

    let r = ask(&gw, &key, "streamy", json!({"stream": true})).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = sse_events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let finish: Vec<&Value> =
        chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
    assert_eq!(finish, [&json!("length")], "cut once, as max_tokens would");
    assert!(chunks.len() < 100, "cut well before the 200 upstream chunks: {}", chunks.len());
    let records = gw.records(2).await;
    let cut = records.iter().find(|r| r.route.as_deref() == Some("streamy")).unwrap();
    assert_eq!(cut.tags.get("gardefou_cut").map(String::as_str), Some("cost_cap"));
    assert!(cut.cost_usd.unwrap() <= 0.02 + 1e-9, "{:?}", cut.cost_usd);
    gw.stop().await;
}
