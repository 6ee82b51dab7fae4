//! Feedback end to end: a chat call through the mock provider, then scores posted on its
//! inference id (`x-gardefou-inference-id`) right away — before the recorder has written it —
//! by the key that made it, refused to other keys and teams (404, as for an unknown id), to a
//! client key asking for `source: reviewer` (403), and to malformed bodies (400 naming the
//! field); listed and summarised over the admin API, counted in the metrics, and summarised by
//! the CLI.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// One chat call with `key`; returns the inference id the gateway answered with.
async fn chat(gw: &Gateway, key: &str) -> String {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "support", "messages": [{"role": "user", "content": "where is my parcel?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned()
}

async fn feedback(gw: &Gateway, token: Option<&str>, body: Value) -> (u16, Value) {
    send_as(gw, token, "POST", "/v1/feedback", Some(body)).await
}

#[tokio::test]
async fn the_key_that_made_an_inference_scores_it_and_the_summary_reflects_it() {
    let gw = admin_gateway().await;
    let (client, client_id) = make_key(&gw, json!({"team": "search", "product": "assistant"})).await;
    let (other, _) = make_key(&gw, json!({"team": "search"})).await;
    let (ads_operator, _) = make_key(&gw, json!({"kind": "admin", "role": "operator", "team": "ads"})).await;
    let (search_operator, operator_id) =
        make_key(&gw, json!({"kind": "admin", "role": "operator", "team": "search"})).await;
    let (search_viewer, _) =
        make_key(&gw, json!({"kind": "admin", "role": "viewer", "team": "search"})).await;
    let (ads_viewer, _) = make_key(&gw, json!({"kind": "admin", "role": "viewer", "team": "ads"})).await;

    let id = chat(&gw, &client).await;
    // Posted at once: the lookup waits for the recorder.
    let (status, stored) =
        feedback(&gw, Some(&client), json!({"inference_id": id, "name": "helpful", "value": true})).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(
        (stored["value"].clone(), stored["kind"].as_str(), stored["source"].as_str()),
        (json!(true), Some("boolean"), Some("user"))
    );
    assert_eq!(stored["key_id"].as_str(), Some(client_id.as_str()));
    assert_eq!(
        (stored["route"].as_str(), stored["model"].as_str(), stored["provider"].as_str()),
        (Some("support"), Some("polite"), Some("demo")),
        "the inference's attribution is copied in"
    );
    assert_eq!((stored["team"].as_str(), stored["product"].as_str()), (Some("search"), Some("assistant")));
    assert!(stored["id"].as_str().is_some_and(|s| !s.is_empty()));

    for body in [
        json!({"inference_id": id, "name": "helpful", "value": false}),
        json!({"inference_id": id, "name": "accuracy", "value": 0.8}),
        json!({"inference_id": id, "name": "tone", "value": "friendly", "comment": "nice"}),
        json!({"inference_id": id, "name": "note", "comment": "answered in French"}),
    ] {
        let (status, v) = feedback(&gw, Some(&client), body).await;
        assert_eq!(status, 201, "{v}");
    }

    // Another key of the same team, another team's operator: as unknown as a missing id.
    let body = json!({"inference_id": id, "name": "helpful", "value": false});
    let (status, err) = feedback(&gw, Some(&other), body.clone()).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["param"], "inference_id");
    let (status, unknown) =
        feedback(&gw, Some(&ads_operator), json!({"inference_id": id, "name": "x", "value": 1})).await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["message"], unknown["error"]["message"], "the same answer either way");
    // A client key may not claim to be a reviewer; a viewer may not write.
    let reviewer = json!({"inference_id": id, "name": "correct", "value": true, "source": "reviewer"});
    let (status, err) = feedback(&gw, Some(&client), reviewer.clone()).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["type"], "permission_error", "{err}");
    assert_eq!(feedback(&gw, Some(&search_viewer), reviewer.clone()).await.0, 403);
    // A wrong key is a 401.
    assert_eq!(feedback(&gw, Some("gf_knope_0000"), body.clone()).await.0, 401);
    // Reviewers: the team's operator and the admin token.
    let (status, v) = feedback(&gw, Some(&search_operator), reviewer.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!((v["source"].as_str(), v["key_id"].as_str()), (Some("reviewer"), Some(operator_id.as_str())));
    let (status, v) = feedback(&gw, Some("root-token"), reviewer).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["key_id"], Value::Null);

    // The list, for the admin and for the team; another team sees nothing.
    let (status, list) =
        send_as(&gw, Some("root-token"), "GET", &format!("/admin/feedback?inference_id={id}"), None).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["helpful", "helpful", "accuracy", "tone", "note", "correct", "correct"]);
    assert_eq!(list["data"][3]["comment"], "nice");
    let (_, mine) =
        send_as(&gw, Some(&search_viewer), "GET", &format!("/admin/feedback?inference_id={id}"), None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 7);
    let (_, theirs) =
        send_as(&gw, Some(&ads_viewer), "GET", &format!("/admin/feedback?inference_id={id}"), None).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 0);
    assert_eq!(
        send_as(&gw, Some(&client), "GET", &format!("/admin/feedback?inference_id={id}"), None).await.0,
        401
    );
    assert_eq!(send_as(&gw, Some("root-token"), "GET", "/admin/feedback", None).await.0, 400);

    // The summary, by route and name.
    let (status, summary) =
        send_as(&gw, Some("root-token"), "GET", "/admin/feedback/summary?since=1h&group_by=route,name", None)
            .await;
    assert_eq!(status, 200, "{summary}");
    let rows = summary["rows"].as_array().unwrap();
    let row =
        |name: &str| rows.iter().find(|r| r["group"]["name"] == name).unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(row("helpful")["group"]["route"], "support");
    assert_eq!((row("helpful")["count"].as_i64(), row("helpful")["mean"].as_f64()), (Some(2), Some(0.5)));
    assert_eq!(row("accuracy")["mean"].as_f64(), Some(0.8));
    assert_eq!(row("tone")["categories"], json!({"friendly": 1}));
    assert_eq!((row("note")["count"].as_i64(), row("note")["mean"].clone()), (Some(1), Value::Null));
    let (_, helpful) =
        send_as(&gw, Some(&search_viewer), "GET", "/admin/feedback/summary?group_by=team&name=helpful", None)
            .await;
    assert_eq!(
        helpful["rows"],
        json!([{"group": {"team": "search"}, "count": 2, "scored": 2, "mean": 0.5, "categories": {}}])
    );
    let (_, ads) = send_as(&gw, Some(&ads_viewer), "GET", "/admin/feedback/summary", None).await;
    assert_eq!(ads["rows"], json!([]), "a team-scoped viewer sees only its team");
    assert_eq!(
        send_as(&gw, Some(&ads_viewer), "GET", "/admin/feedback/summary?team=search", None).await.0,
        403
    );
    let (status, err) =
        send_as(&gw, Some("root-token"), "GET", "/admin/feedback/summary?group_by=colour", None).await;
    assert_eq!((status, err["error"]["param"].as_str()), (400, Some("group_by")));

    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        r#"gardefou_feedback_total{name="helpful",kind="boolean",source="user"} 2"#,
        r#"gardefou_feedback_total{name="correct",kind="boolean",source="reviewer"} 2"#,
        r#"gardefou_feedback_total{name="note",kind="comment",source="user"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn malformed_feedback_is_a_400_naming_the_field() {
    let gw = admin_gateway().await;
    let (client, _) = make_key(&gw, json!({"team": "search"})).await;
    let id = chat(&gw, &client).await;
    for (body, param) in [
        (json!({"name": "helpful", "value": true}), "inference_id"),
        (json!({"inference_id": id, "value": true}), "name"),
        (json!({"inference_id": id, "name": "not ok!", "value": true}), "name"),
        (json!({"inference_id": id, "name": "helpful"}), "value"),
        (json!({"inference_id": id, "name": "helpful", "value": {"score": 1}}), "value"),
        (
            json!({"inference_id": id, "name": "helpful", "value": true, "comment": "x".repeat(4097)}),
            "comment",
        ),
        (json!({"inference_id": id, "name": "helpful", "value": true, "source": "robot"}), "source"),
        (json!({"inference_id": id, "name": "helpful", "value": true, "rating": 5}), "rating"),
    ] {
        let (status, err) = feedback(&gw, Some(&client), body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert_eq!(err["error"]["param"].as_str(), Some(param), "{body} → {err}");
        assert_eq!(err["error"]["type"], "invalid_request_error");
    }
    // A number too large for a float, and a body that is not JSON.
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/feedback"))
        .bearer_auth(&client)
        .header("content-type", "application/json")
        .body(format!(r#"{{"inference_id": "{id}", "name": "helpful", "value": 1e999}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/feedback"))
        .bearer_auth(&client)
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    gw.stop().await;
}

#[tokio::test]
async fn feedback_on_an_unknown_inference_is_a_404_after_the_lookup_window() {
    let gw = admin_gateway().await;
    let (client, _) = make_key(&gw, json!({"team": "search"})).await;
    let start = Instant::now();
    let (status, err) = feedback(
        &gw,
        Some(&client),
        json!({"inference_id": "0190a000-0000-7000-8000-000000000000", "name": "helpful", "value": true}),
    )
    .await;
    let waited = start.elapsed();
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["param"], "inference_id");
    assert!(
        waited >= Duration::from_millis(1800),
        "answered after {waited:?}, before the recorder could write"
    );
    gw.stop().await;
}

#[tokio::test]
async fn without_keys_an_anonymous_caller_scores_anonymous_inferences_only() {
    // Keys optional and an admin token set: a call without a key is an anonymous client.
    let gw = admin_gateway().await;
    let anonymous =
        gw.chat(json!({"model": "support", "messages": [{"role": "user", "content": "hi"}]})).await;
    let anonymous = anonymous.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let (client, _) = make_key(&gw, json!({"team": "search"})).await;
    let keyed = chat(&gw, &client).await;

    let score = |id: &str| json!({"inference_id": id, "name": "helpful", "value": true});
    assert_eq!(feedback(&gw, None, score(&anonymous)).await.0, 201);
    assert_eq!(feedback(&gw, None, score(&keyed)).await.0, 404);
    assert_eq!(feedback(&gw, Some(&client), score(&anonymous)).await.0, 404);
    let reviewer = json!({"inference_id": anonymous, "name": "helpful", "value": true, "source": "reviewer"});
    assert_eq!(feedback(&gw, None, reviewer).await.0, 403);
    gw.stop().await;
}

#[tokio::test]
async fn on_an_open_admin_plane_a_call_without_a_key_is_an_admin() {
    let gw = Gateway::start(&format!(
        "{MOCK}[models.polite]\nprovider = \"demo\"\n[routes.support]\ntargets = [{{ model = \"polite\" }}]\n"
    ))
    .await;
    let (status, created) = send_as(&gw, None, "POST", "/admin/keys", Some(json!({"team": "search"}))).await;
    assert_eq!(status, 201, "{created}");
    let client = created["key"].as_str().unwrap().to_owned();
    let keyed = chat(&gw, &client).await;
    let reviewer = json!({"inference_id": keyed, "name": "correct", "value": false, "source": "reviewer"});
    let (status, v) = feedback(&gw, None, reviewer.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!((v["source"].as_str(), v["key_id"].clone()), (Some("reviewer"), Value::Null));
    // A client key stays a client key.
    assert_eq!(feedback(&gw, Some(&client), reviewer).await.0, 403);
    gw.stop().await;
}

#[tokio::test]
async fn the_cli_lists_and_summarises_feedback() {
    let gw = admin_gateway().await;
    let (client, _) = make_key(&gw, json!({"team": "search"})).await;
    let id = chat(&gw, &client).await;
    for body in [
        json!({"inference_id": id, "name": "helpful", "value": true}),
        json!({"inference_id": id, "name": "helpful", "value": false}),
        json!({"inference_id": id, "name": "helpful", "value": true}),
        json!({"inference_id": id, "name": "tone", "value": "curt"}),
    ] {
        assert_eq!(feedback(&gw, Some(&client), body).await.0, 201);
    }
    let url = format!("sqlite://{}", gw.dir.join("gardefou.db").display());
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gardefou"));
        cmd.args(args).args(["--database", &url]);
        async move { tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap() }
    };

    let out = cli(&["feedback", "summary", "--group-by", "route,name", "--since", "1h"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["route", "name", "count", "scored", "mean", "categories"], "{table}");
    assert!(lines.contains(&vec!["support", "helpful", "3", "3", "0.667", "-"]), "{table}");
    assert!(lines.contains(&vec!["support", "tone", "1", "0", "-", "curt=1"]), "{table}");

    let out = cli(&["feedback", "summary", "--name", "helpful", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((row["count"].as_i64(), row["scored"].as_i64()), (Some(3), Some(3)));

    let out = cli(&["feedback", "list", "--inference", &id]).await;
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(table.contains("curt") && table.contains("boolean"), "{table}");
    let out = cli(&["feedback", "list", "--inference", &id, "--json"]).await;
    let first: Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!((first["name"].as_str(), first["value"].clone()), (Some("helpful"), json!(true)));

    let out = cli(&["feedback", "summary", "--group-by", "colour"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown dimension"));
    gw.stop().await;
}
