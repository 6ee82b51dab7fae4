//! The human review queue end to end: escalations opened the way the request path opens them,
//! then worked by reviewers over the admin API (team scopes, roles, refused transitions), read
//! back by the client that opened them, announced to their callbacks, audited, counted, worked
//! from the CLI and exported as eval cases.

use std::time::{Duration, Instant};

use gardefou::control::escalations::{open, NewEscalation};
use serde_json::{json, Value};

use crate::harness::*;

fn escalation(team: &str, key_id: Option<&str>, callback_url: Option<String>) -> NewEscalation {
    NewEscalation {
        reason: "guard:pii".into(),
        route: "support".into(),
        team: Some(team.into()),
        product: Some("helpdesk".into()),
        key_id: key_id.map(str::to_owned),
        end_user: Some("user-7".into()),
        inference_id: None,
        conversation: json!([{"role": "user", "content": "my card is [REDACTED:card], can I get a refund?"}]),
        callback_url,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reviewers_work_the_queue_and_only_the_opening_key_reads_the_answer() {
    let gw = admin_gateway().await;
    let hook = Upstream::start(json_reply(200, json!({}))).await;
    let broken_hook = Upstream::start(json_reply(500, json!({}))).await;
    let (client_key, client_id) = make_key(&gw, json!({"team": "search"})).await;
    let (other_key, _) = make_key(&gw, json!({"team": "search"})).await;
    let (operator, operator_id) =
        make_key(&gw, json!({"kind": "admin", "role": "operator", "team": "search"})).await;
    let (ads_viewer, _) = make_key(&gw, json!({"kind": "admin", "role": "viewer", "team": "ads"})).await;

    let mine = open(&gw.state, escalation("search", Some(&client_id), Some(format!("{}/hook", hook.base))))
        .await
        .unwrap();
    let anonymous = open(&gw.state, escalation("ads", None, None)).await.unwrap();
    let bad = open(
        &gw.state,
        NewEscalation { callback_url: Some("file:///etc/passwd".into()), ..escalation("ads", None, None) },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.param(), Some("callback_url"));

    // The admin sees the whole queue, oldest first; a team-scoped viewer only its team's.
    let (status, list) =
        send_as(&gw, Some("root-token"), "GET", "/admin/escalations?status=open", None).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.as_str(), anonymous.as_str()]);
    assert_eq!(list["data"][0]["conversation"][0]["role"], "user", "reviewers see the conversation");
    let (_, list) = send_as(&gw, Some(&ads_viewer), "GET", "/admin/escalations", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        send_as(&gw, Some(&ads_viewer), "GET", &format!("/admin/escalations/{mine}"), None).await.0,
        404
    );
    assert_eq!(
        send_as(&gw, Some(&ads_viewer), "GET", &format!("/admin/escalations/{anonymous}"), None).await.0,
        200
    );
    assert_eq!(send_as(&gw, Some(&ads_viewer), "GET", "/admin/escalations?team=search", None).await.0, 403);
    // Viewers read; they do not work the queue.
    let (status, _) =
        send_as(&gw, Some(&ads_viewer), "POST", &format!("/admin/escalations/{anonymous}/claim"), None).await;
    assert_eq!(status, 403);
    // An operator of another team does not see it either.
    let (status, _) =
        send_as(&gw, Some(&operator), "POST", &format!("/admin/escalations/{anonymous}/claim"), None).await;
    assert_eq!(status, 404);
    for bad in
        ["/admin/escalations?status=pending", "/admin/escalations?limit=0", "/admin/escalations?colour=red"]
    {
        assert_eq!(send_as(&gw, Some("root-token"), "GET", bad, None).await.0, 400, "{bad}");
    }

    // Claim, then the client sees it is being worked on, without an answer yet.
    let (status, claimed) =
        send_as(&gw, Some(&operator), "POST", &format!("/admin/escalations/{mine}/claim"), None).await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(
        (claimed["status"].as_str(), claimed["claimed_by"].as_str()),
        (Some("claimed"), Some(&*format!("key:{operator_id}")))
    );
    let (status, again) =
        send_as(&gw, Some(&operator), "POST", &format!("/admin/escalations/{mine}/claim"), None).await;
    assert_eq!((status, again["error"]["code"].as_str()), (400, Some("invalid_request")), "{again}");
    assert!(again["error"]["message"].as_str().unwrap().contains("is claimed"), "{again}");
    let client_path = format!("/v1/escalations/{mine}");
    let (status, view) = send_as(&gw, Some(&client_key), "GET", &client_path, None).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("claimed")), "{view}");
    assert!(view.get("answer").is_none() && view.get("conversation").is_none(), "{view}");

    // Answers are checked, then given once.
    let answer_path = format!("/admin/escalations/{mine}/answer");
    for body in [json!({"answer": "  "}), json!({"text": "hi"}), json!({"answer": "x", "extra": 1})] {
        let (status, err) = send_as(&gw, Some(&operator), "POST", &answer_path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {err}");
    }
    let (status, answered) = send_as(
        &gw,
        Some(&operator),
        "POST",
        &answer_path,
        Some(json!({"answer": "Yes: we refunded it today."})),
    )
    .await;
    assert_eq!((status, answered["status"].as_str()), (200, Some("answered")), "{answered}");
    let (status, _) =
        send_as(&gw, Some(&operator), "POST", &answer_path, Some(json!({"answer": "twice"}))).await;
    assert_eq!(status, 400, "an answered escalation is not answered again");

    // Only the key that opened it reads the answer; an anonymous one is read with its id alone.
    let (status, view) = send_as(&gw, Some(&client_key), "GET", &client_path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (view["status"].as_str(), view["answer"].as_str()),
        (Some("answered"), Some("Yes: we refunded it today."))
    );
    assert!(view["answered_at"].as_i64().unwrap() >= view["created_at"].as_i64().unwrap());
    let (status, err) = send_as(&gw, Some(&other_key), "GET", &client_path, None).await;
    assert_eq!((status, err["error"]["type"].as_str()), (404, Some("invalid_request_error")), "{err}");
    assert_eq!(send_as(&gw, None, "GET", &client_path, None).await.0, 404);
    assert_eq!(send_as(&gw, None, "GET", &format!("/v1/escalations/{anonymous}"), None).await.0, 200);
    assert_eq!(
        send_as(&gw, Some(&other_key), "GET", &format!("/v1/escalations/{anonymous}"), None).await.0,
        200
    );
    assert_eq!(
        send_as(&gw, None, "GET", "/v1/escalations/0190b000-0000-7000-8000-000000000000", None).await.0,
        404
    );

    // Closed is final.
    let (status, closed) =
        send_as(&gw, Some(&operator), "POST", &format!("/admin/escalations/{mine}/close"), None).await;
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
    for action in ["claim", "close"] {
        let (status, _) =
            send_as(&gw, Some(&operator), "POST", &format!("/admin/escalations/{mine}/{action}"), None).await;
        assert_eq!(status, 400, "{action} after close");
    }
    assert_eq!(
        send_as(&gw, Some(&operator), "POST", &answer_path, Some(json!({"answer": "late"}))).await.0,
        400
    );

    // The callback heard the opening and the answer; a failing callback is counted.
    wait_for("the callback hears two events", || hook.seen().len() == 2).await;
    let events: Vec<Value> = hook.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(hook.seen()[0].path, "/v1/hook");
    assert_eq!(
        (events[0]["event"].as_str(), events[0]["id"].as_str()),
        (Some("escalation.opened"), Some(mine.as_str()))
    );
    assert!(events[0].get("conversation").is_none(), "{}", events[0]);
    assert_eq!(
        events[1],
        json!({"event": "escalation.answered", "id": mine, "status": "answered",
        "answer": "Yes: we refunded it today.", "answered_at": view["answered_at"]})
    );
    let failures = gw.state.metrics().webhook_failures().get();
    open(&gw.state, escalation("ads", None, Some(format!("{}/hook", broken_hook.base)))).await.unwrap();
    wait_for("the failed callback is counted", || {
        gw.state.metrics().webhook_failures().get() == failures + 1
    })
    .await;
    assert_eq!(broken_hook.seen().len(), 1, "never retried");

    // Every reviewer action is audited, without the conversation or the answer.
    let (_, audit) = send_as(&gw, Some("root-token"), "GET", "/admin/audit", None).await;
    let actions: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == mine)
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    let actor = format!("key:{operator_id}");
    assert_eq!(
        actions,
        [
            ("escalation.close", actor.as_str()),
            ("escalation.answer", actor.as_str()),
            ("escalation.claim", actor.as_str())
        ]
    );
    assert!(!audit.to_string().contains("REDACTED") && !audit.to_string().contains("refunded"), "{audit}");

    // Exported as an eval case once answered (closed ones too when asked).
    let export = |query: &'static str| {
        let url = gw.url(&format!("/admin/escalations/export{query}"));
        async move {
            let resp = reqwest::Client::new().get(url).bearer_auth("root-token").send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
            let text = resp.text().await.unwrap();
            text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>()
        }
    };
    assert!(export("").await.is_empty(), "the answered one is closed now");
    let cases = export("?status=closed").await;
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0]["name"], mine.as_str());
    assert_eq!(cases[0]["messages"][0]["content"], "my card is [REDACTED:card], can I get a refund?");
    assert_eq!(cases[0]["expected"], json!({"contains": "Yes: we refunded it today."}));

    // Metrics: opened by bounded reason, the backlog, the time to answer.
    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gardefou_escalations_opened_total{reason=\"guard:pii\"} 3"), "{metrics}");
    assert!(metrics.contains("gardefou_escalations_open 2"), "{metrics}");
    assert!(metrics.contains("gardefou_escalation_time_to_answer_seconds_count 1"), "{metrics}");
    assert!(metrics.contains("gardefou_escalation_oldest_open_age_seconds "), "{metrics}");
    gw.stop().await;
}

#[tokio::test]
async fn the_cli_lists_answers_and_exports_and_the_callback_hears_the_answer() {
    let gw = admin_gateway().await;
    let hook = Upstream::start(json_reply(200, json!({}))).await;
    let id = open(&gw.state, escalation("search", None, Some(format!("{}/hook", hook.base)))).await.unwrap();
    wait_for("the opening is announced", || hook.seen().len() == 1).await;
    let url = format!("sqlite://{}", gw.dir.join("gardefou.db").display());
    // Off the runtime's thread: the callback receiver runs on it and must answer the CLI.
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gardefou"));
        cmd.args(args).args(["--database", &url]).env("USER", "ana");
        async move { tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap() }
    };

    let out = cli(&["escalations", "list"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains(&id) && table.contains("guard:pii") && table.contains("open"), "{table}");
    let out = cli(&["escalations", "list", "--status", "open", "--json"]).await;
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((line["id"].as_str(), line["team"].as_str()), (Some(id.as_str()), Some("search")));

    let out = cli(&["escalations", "answer", &id, "--text", "Refunded."]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The CLI waits for the callback before it exits.
    let events: Vec<Value> = hook.seen().into_iter().map(|s| s.body).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[1]["event"].as_str(), events[1]["answer"].as_str()),
        (Some("escalation.answered"), Some("Refunded."))
    );

    let out = cli(&["escalations", "answer", &id, "--text", "again"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is answered"), "{err}");
    let out = cli(&["escalations", "claim", "0190b000-0000-7000-8000-000000000000"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no escalation"));

    let out = cli(&["escalations", "show", &id]).await;
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (shown["answered_by"].as_str(), shown["answer"].as_str()),
        (Some("cli:ana"), Some("Refunded."))
    );

    let file = gw.dir.join("cases.jsonl");
    let out = cli(&["escalations", "export", "--out", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).unwrap();
    let cases: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(cases.len(), 1);
    assert_eq!(
        (cases[0]["name"].as_str(), &cases[0]["expected"]),
        (Some(id.as_str()), &json!({"contains": "Refunded."}))
    );

    let out = cli(&["escalations", "close", &id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, audit) = send_as(&gw, Some("root-token"), "GET", "/admin/audit", None).await;
    let actors: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(actors, [("escalation.close", "cli:ana"), ("escalation.answer", "cli:ana")]);
    gw.stop().await;
}
