//! Usage analytics end to end: traffic with teams, products and tags through the real server,
//! then `GET /admin/usage` (counts, cost, tags, auth, 400s) and `gardefou usage` (the table).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::harness::*;

const CONFIG: &str = r#"
[models.polite]
provider = "demo"
price = { input = 1.0, output = 2.0 }
[models.unpriced]
provider = "demo"
[routes.demo]
targets = [{ model = "polite" }]
[routes.free]
targets = [{ model = "unpriced" }]
"#;

async fn send(gw: &Gateway, route: &str, team: &str, product: &str, tags: &str) -> u16 {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-gardefou-team", team)
        .header("x-gardefou-product", product)
        .header("x-gardefou-tags", tags)
        .json(&json!({"model": route, "messages": [{"role": "user", "content": "hello usage"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn admin_usage_counts_traffic_by_team_and_tag_and_the_cli_prints_it() {
    let dir = temp_dir();
    let token = dir.join("admin-token");
    std::fs::write(&token, "usage-admin").unwrap();
    let gw =
        Gateway::start(&format!("{MOCK}{CONFIG}\n[server]\nadmin_token = \"file:{}\"\n", token.display()))
            .await;
    for _ in 0..3 {
        assert_eq!(send(&gw, "demo", "search", "bot", "env=prod").await, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(&gw, "free", "ads", "faq", "env=dev").await, 200);
    }
    assert_eq!(send(&gw, "nope", "ads", "faq", "env=dev").await, 404);
    let records = gw.records(6).await;
    assert_eq!(records.len(), 6);

    let client = reqwest::Client::new();
    let get =
        |query: &str| client.get(gw.url(&format!("/admin/usage?{query}"))).bearer_auth("usage-admin").send();
    let resp = get("since=1h&group_by=team").await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let rows = body["rows"].as_array().unwrap();
    let by_team: BTreeMap<&str, &Value> =
        rows.iter().map(|r| (r["group"]["team"].as_str().unwrap(), r)).collect();
    assert_eq!(by_team.keys().copied().collect::<Vec<_>>(), ["ads", "search"]);
    for (team, row) in &by_team {
        let mine: Vec<_> = records.iter().filter(|r| r.team.as_deref() == Some(*team)).collect();
        let cost: f64 = mine.iter().filter_map(|r| r.cost_usd).sum();
        let input: i64 = mine.iter().filter_map(|r| r.input_tokens).sum();
        assert_eq!(row["requests"], mine.len(), "{team}");
        assert!((row["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-12, "{team}: {row}");
        assert_eq!(row["input_tokens"], input, "{team}");
        assert_eq!(row["unknown_cost"], mine.iter().filter(|r| r.cost_usd.is_none()).count(), "{team}");
        assert!(row["latency_ms"]["p50"].as_f64().is_some(), "{row}");
    }
    assert_eq!(by_team["search"]["errors"], 0);
    assert_eq!(by_team["search"]["availability"], 1.0);
    assert!(by_team["search"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(by_team["ads"]["errors"], 1, "the unknown route is an error");
    assert_eq!(by_team["ads"]["unknown_cost"], 3);

    let tags: Value = get("since=1h&group_by=tag:env&bucket=hour").await.unwrap().json().await.unwrap();
    let counts: BTreeMap<String, i64> = tags["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"]["tag:env"].as_str().unwrap().to_owned(), r["requests"].as_i64().unwrap()))
        .fold(BTreeMap::new(), |mut m, (k, v)| {
            *m.entry(k).or_default() += v;
            m
        });
    assert_eq!(counts, BTreeMap::from([("dev".to_owned(), 3), ("prod".to_owned(), 3)]));
    let filtered: Value =
        get("since=1h&route=demo&group_by=product,model").await.unwrap().json().await.unwrap();
    assert_eq!(filtered["rows"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["rows"][0]["group"], json!({"product": "bot", "model": "polite"}));

    for (query, param) in [
        ("since=1y", "since"),
        ("since=1h&group_by=colour", "group_by"),
        ("since=1h&bucket=week", "bucket"),
        ("from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z", "from"),
        ("since=30d&bucket=minute", "bucket"),
        ("since=1h&group_by=team,product,model,route", "group_by"),
    ] {
        let resp = get(query).await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["type"], "invalid_request_error", "{query}");
        assert_eq!(err["error"]["param"], param, "{query}: {err}");
    }
    let anonymous = client.get(gw.url("/admin/usage?since=1h")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let url = format!("sqlite://{}", gw.dir.join("gardefou.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["usage", "--by", "team,product", "--since", "1h", "--database", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(cells(lines[0])[..3], ["team", "product", "requests"], "{table}");
    assert!(lines.iter().any(|l| cells(l)[..3] == ["search", "bot", "3"]), "{table}");
    assert!(lines.iter().any(|l| cells(l)[..3] == ["ads", "faq", "3"]), "{table}");
    let json_out = std::process::Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["usage", "--by", "team", "--bucket", "hour", "--route", "demo", "--json", "--database", &url])
        .output()
        .unwrap();
    let rows: Vec<Value> =
        String::from_utf8_lossy(&json_out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["requests"].as_i64().unwrap()).sum::<i64>(), 3);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `store_bodies` per route: `on` keeps the request and the answer (whole response, or the
/// streamed text), `off` keeps neither, `0.5` keeps some; `GET /admin/inferences/{id}` and
/// `gardefou logs --id` show them.
#[tokio::test]
async fn routes_that_store_bodies_keep_request_and_answer_and_others_keep_none() {
    let gw = Gateway::start(&format!(
        "{MOCK}
[models.polite]
provider = \"demo\"
[routes.kept]
targets = [{{ model = \"polite\" }}]
store_bodies = \"on\"
[routes.plain]
targets = [{{ model = \"polite\" }}]
[routes.sampled]
targets = [{{ model = \"polite\" }}]
store_bodies = 0.5
"
    ))
    .await;
    let ask = |route: &str, stream: bool| json!({"model": route, "stream": stream, "messages": [{"role": "user", "content": "keep me 🦀"}]});
    let id_of = |r: &reqwest::Response| r.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let kept = gw.chat(ask("kept", false)).await;
    let kept_id = id_of(&kept);
    let answer: Value = kept.json().await.unwrap();
    let streamed = gw.chat(ask("kept", true)).await;
    let streamed_id = id_of(&streamed);
    let streamed_text = streamed.text().await.unwrap();
    let plain_id = id_of(&gw.chat(ask("plain", false)).await);
    for _ in 0..40 {
        assert_eq!(gw.chat(ask("sampled", false)).await.status(), 200);
    }
    gw.records(43).await;

    let get = |id: String| reqwest::Client::new().get(gw.url(&format!("/admin/inferences/{id}"))).send();
    let rec: Value = get(kept_id.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(rec["bodies"]["request"]["messages"][0]["content"], "keep me 🦀", "{rec}");
    assert_eq!(rec["bodies"]["response"], answer, "the whole response is kept");
    let rec: Value = get(streamed_id).await.unwrap().json().await.unwrap();
    let text = rec["bodies"]["response"]["content"].as_str().unwrap();
    assert!(!text.is_empty() && streamed_text.contains(&text[..text.len().min(8)]), "{rec}");
    assert_eq!(rec["bodies"]["response"]["finish_reason"], "stop");
    let rec: Value = get(plain_id).await.unwrap().json().await.unwrap();
    assert_eq!(rec.get("bodies"), None, "{rec}");
    let missing = get("no-such-id".into()).await.unwrap();
    assert_eq!(missing.status(), 404);

    let filter =
        gardefou_store::LogFilter { route: Some("sampled".into()), limit: 100, ..Default::default() };
    let sampled = gw.state.store().list_inferences(&filter).await.unwrap();
    let mut with_bodies = 0;
    for r in sampled {
        if gw.state.store().get_inference(&r.id).await.unwrap().unwrap().bodies.is_some() {
            with_bodies += 1;
        }
    }
    assert!((5..=35).contains(&with_bodies), "about half of 40 sampled requests keep bodies: {with_bodies}");

    let url = format!("sqlite://{}", gw.dir.join("gardefou.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["logs", "--id", &kept_id, "--database", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["bodies"]["response"], answer);
    gw.stop().await;
}
