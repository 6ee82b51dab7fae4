//! Virtual keys, admin roles and the audit log end to end: keys gate the API and scope routes,
//! rotation and revocation take effect at once here and within a second on another process
//! sharing the store, roles and team scopes limit the admin plane and the data it shows.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

const ROUTES: &str = r#"
[models.polite]
provider = "demo"
[routes.chat-a]
targets = [{ model = "polite" }]
[routes.chat-b]
targets = [{ model = "polite" }]
[routes.other]
targets = [{ model = "polite" }]
"#;

async fn gateway(require_keys: bool) -> (Gateway, String) {
    let dir = temp_dir();
    let token = dir.join("admin-token");
    std::fs::write(&token, "root-token").unwrap();
    let gw = Gateway::start(&format!(
        "{MOCK}{ROUTES}\n[server]\nadmin_token = \"file:{}\"\nrequire_keys = {require_keys}\n",
        token.display()
    ))
    .await;
    (gw, "root-token".to_owned())
}

async fn call(gw: &Gateway, key: Option<&str>, route: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": route, "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn admin(gw: &Gateway, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = match method {
        "POST" => client.post(gw.url(path)),
        "DELETE" => client.delete(gw.url(path)),
        _ => client.get(gw.url(path)),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn keys_gate_the_api_scope_routes_and_rotation_and_revocation_take_effect_at_once() {
    let (gw, root) = gateway(true).await;
    let (status, err) = call(&gw, None, "chat-a").await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error"]["type"], "authentication_error");
    for wrong in ["sk-not-a-gardefou-key", "gf_kdoesnotexist_0123", "gf_", "Bearer"] {
        let (status, err) = call(&gw, Some(wrong), "chat-a").await;
        assert_eq!(status, 401, "{wrong}: {err}");
        assert_eq!(err["error"]["message"], "Incorrect API key provided.", "nothing says which keys exist");
    }

    let (status, created) = admin(
        &gw,
        &root,
        "POST",
        "/admin/keys",
        Some(json!({"team": "search", "product": "bot", "routes": ["chat-*"], "metadata": {"owner": "ana"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert!(created.get("hash").is_none());

    assert_eq!(call(&gw, Some(&key), "chat-a").await.0, 200);
    assert_eq!(call(&gw, Some(&key), "chat-b").await.0, 200);
    // /v1/models lists what the key may call, and nothing without a key when keys are required.
    let models = |k: Option<&str>, path: &str| {
        let mut req = reqwest::Client::new().get(gw.url(path));
        if let Some(k) = k {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let listed: Value = models(Some(&key), "/v1/models").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> =
        listed["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["chat-a", "chat-b"]);
    assert_eq!(models(Some(&key), "/v1/models/other").await.unwrap().status(), 404);
    assert_eq!(models(Some(&key), "/v1/models/chat-a").await.unwrap().status(), 200);
    assert_eq!(models(None, "/v1/models").await.unwrap().status(), 401);
    let (status, err) = call(&gw, Some(&key), "other").await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["type"], "permission_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("`other`"), "{err}");
    // Anthropic clients send x-api-key.
    let messages = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "chat-a", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 200);

    // The key's team and product attribute the calls; headers cannot override them.
    let spoof = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-gardefou-team", "someone-else")
        .json(&json!({"model": "chat-a", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoof.status(), 200);
    let records = gw.records(10).await;
    let mine: Vec<_> = records.iter().filter(|r| r.key_id.as_deref() == Some(id.as_str())).collect();
    assert_eq!(mine.len(), 5, "2 chats, 1 forbidden, 1 messages, 1 spoof");
    assert!(mine.iter().all(|r| r.team.as_deref() == Some("search") && r.product.as_deref() == Some("bot")));
    assert_eq!(records.iter().filter(|r| r.status == 401).count(), 5, "refused calls are recorded too");

    let (status, rotated) = admin(&gw, &root, "POST", &format!("/admin/keys/{id}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(call(&gw, Some(&key), "chat-a").await.0, 401, "the old secret stops at once");
    assert_eq!(call(&gw, Some(&new_key), "chat-a").await.0, 200);

    let (status, _) = admin(&gw, &root, "DELETE", &format!("/admin/keys/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, err) = call(&gw, Some(&new_key), "chat-a").await;
    assert_eq!((status, err["error"]["message"].as_str()), (401, Some("This API key has been revoked.")));
    let (status, _) = admin(&gw, &root, "POST", &format!("/admin/keys/{id}/revoke"), None).await;
    assert_eq!(status, 400, "already revoked");

    let (_, short) =
        admin(&gw, &root, "POST", "/admin/keys", Some(json!({"team": "search", "expires_in": "50ms"}))).await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let (status, err) = call(&gw, short["key"].as_str(), "chat-a").await;
    assert_eq!((status, err["error"]["message"].as_str()), (401, Some("This API key has expired.")));

    // Bad specs are 400s naming the field.
    for (body, param) in [
        (json!({"product": "x"}), "team"),
        (json!({"team": "t", "limits": {"budget_usd": -5.0}}), "limits.budget_usd"),
        (json!({"team": "t", "limits": {"budget_usd": 1e12}}), "limits.budget_usd"),
        (json!({"team": "t", "limits": {"rpm": 0}}), "limits.rpm"),
        (json!({"team": "t", "expires_in": "soon"}), "expires_in"),
        (json!({"kind": "admin", "role": "god"}), "role"),
    ] {
        let (status, err) = admin(&gw, &root, "POST", "/admin/keys", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["param"], param, "{body}: {err}");
    }
    let (status, _) =
        admin(&gw, &root, "POST", "/admin/keys", Some(json!({"team": "t", "colour": "red"}))).await;
    assert_eq!(status, 400);

    // Listings and the audit log never carry a secret or a hash.
    let (_, list) = admin(&gw, &root, "GET", "/admin/keys", None).await;
    let (_, audit) = admin(&gw, &root, "GET", "/admin/audit", None).await;
    for text in [list.to_string(), audit.to_string()] {
        for secret in [&key, &new_key] {
            assert!(!text.contains(&secret[secret.len() - 40..]), "a secret leaked: {text}");
        }
        assert!(!text.contains("\"hash\""), "{text}");
    }
    let actions: Vec<&str> =
        audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key.create", "key.revoke", "key.rotate", "key.create"]);
    assert!(audit["data"].as_array().unwrap().iter().all(|e| e["actor"] == "admin-token"));
    gw.stop().await;
}

#[tokio::test]
async fn roles_and_team_scopes_limit_the_admin_plane_and_the_data_it_shows() {
    let (gw, root) = gateway(false).await;
    let mk = |body: Value| {
        let gw = &gw;
        let root = root.clone();
        async move {
            let (status, v) = admin(gw, &root, "POST", "/admin/keys", Some(body)).await;
            assert_eq!(status, 201, "{v}");
            (v["key"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
        }
    };
    let (operator, _) = mk(json!({"kind": "admin", "role": "operator", "team": "search"})).await;
    let (viewer, _) = mk(json!({"kind": "admin", "role": "viewer", "team": "ads"})).await;
    let (search_key, _) = mk(json!({"team": "search"})).await;
    let (ads_key, ads_id) = mk(json!({"team": "ads"})).await;
    assert_eq!(call(&gw, Some(&search_key), "chat-a").await.0, 200);
    assert_eq!(call(&gw, Some(&ads_key), "chat-a").await.0, 200);
    assert_eq!(call(&gw, None, "chat-a").await.0, 200, "keys are optional without require_keys");
    // An admin key is not an API key, and the reverse.
    assert_eq!(call(&gw, Some(&viewer), "chat-a").await.0, 401);
    assert_eq!(admin(&gw, &search_key, "GET", "/admin/keys", None).await.0, 401);
    let records = gw.records(4).await;
    let search_inference = records.iter().find(|r| r.team.as_deref() == Some("search")).unwrap().id.clone();

    // The viewer reads its team only, and writes nothing.
    let (status, list) = admin(&gw, &viewer, "GET", "/admin/keys", None).await;
    assert_eq!(status, 200);
    let teams: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|k| k["team"].as_str().unwrap()).collect();
    assert_eq!(teams, ["ads", "ads"], "{list}");
    assert_eq!(admin(&gw, &viewer, "POST", "/admin/keys", Some(json!({"team": "ads"}))).await.0, 403);
    assert_eq!(admin(&gw, &viewer, "POST", &format!("/admin/keys/{ads_id}/revoke"), None).await.0, 403);
    assert_eq!(admin(&gw, &viewer, "POST", "/admin/reload", None).await.0, 403);
    let (status, usage) = admin(&gw, &viewer, "GET", "/admin/usage?since=1h&group_by=team", None).await;
    assert_eq!(status, 200, "{usage}");
    let rows = usage["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{usage}");
    assert_eq!(rows[0]["group"]["team"], "ads");
    assert_eq!(admin(&gw, &viewer, "GET", "/admin/usage?since=1h&team=search", None).await.0, 403);
    let path = format!("/admin/inferences/{search_inference}");
    assert_eq!(admin(&gw, &viewer, "GET", &path, None).await.0, 404, "another team's data is invisible");
    assert_eq!(admin(&gw, &root, "GET", &path, None).await.0, 200);

    // The operator manages its team's keys, not another's, and no admin keys or config.
    let (status, own) = admin(&gw, &operator, "POST", "/admin/keys", Some(json!({"product": "bot"}))).await;
    assert_eq!((status, own["team"].as_str()), (201, Some("search")), "{own}");
    assert_eq!(admin(&gw, &operator, "POST", "/admin/keys", Some(json!({"team": "ads"}))).await.0, 403);
    assert_eq!(admin(&gw, &operator, "POST", &format!("/admin/keys/{ads_id}/revoke"), None).await.0, 404);
    let admin_key = json!({"kind": "admin", "role": "viewer", "team": "search"});
    assert_eq!(admin(&gw, &operator, "POST", "/admin/keys", Some(admin_key)).await.0, 403);
    assert_eq!(admin(&gw, &operator, "POST", "/admin/reload", None).await.0, 403);
    let (_, audit) = admin(&gw, &operator, "GET", "/admin/audit", None).await;
    assert!(audit["data"].as_array().unwrap().iter().all(|e| e["team"] == "search"), "{audit}");

    // The admin token reloads, and the reload is audited.
    assert_eq!(admin(&gw, &root, "POST", "/admin/reload", None).await.0, 200);
    let (_, audit) = admin(&gw, &root, "GET", "/admin/audit?limit=1", None).await;
    assert_eq!(audit["data"][0]["action"], "config.reload");
    assert_eq!(audit["data"][0]["after"]["routes"], json!(["chat-a", "chat-b", "other"]));
    assert_eq!(admin(&gw, &root, "GET", "/admin/audit?limit=0", None).await.0, 400);
    gw.stop().await;
}

/// The CLI writes the store; a running gateway sharing it picks the change up within a second.
#[tokio::test]
async fn keys_made_and_revoked_by_the_cli_reach_a_running_gateway_within_a_second() {
    let _timed = CPU_HEAVY.read().await;
    let (gw, _) = gateway(true).await;
    let url = format!("sqlite://{}", gw.dir.join("gardefou.db").display());
    // Off the runtime's thread: the gateway runs on it and must keep writing while the CLI waits.
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gardefou"));
        cmd.args(args).args(["--database", &url]);
        async move { tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap() }
    };
    let out = cli(&["keys", "create", "--team", "search", "--routes", "chat-a", "--rpm", "100"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let until = |want: u16| {
        let gw = &gw;
        let key = key.clone();
        async move {
            let start = Instant::now();
            loop {
                let got = call(gw, Some(&key), "chat-a").await.0;
                if got == want {
                    return start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(1), "still {got} after a second");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    until(200).await;
    let list = cli(&["keys", "list", "--json"]).await;
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed["limits"]["rpm"], 100);
    let id = listed["id"].as_str().unwrap().to_owned();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&key[key.len() - 40..]));

    assert!(cli(&["keys", "revoke", &id]).await.status.success());
    until(401).await;
    let again = cli(&["keys", "revoke", &id]).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"), "{again:?}");
    let bad = cli(&["keys", "create", "--team", "t", "--budget-usd=-1"]).await;
    assert!(!bad.status.success());
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1, "one line of reason");

    let audit = cli(&["audit"]).await;
    let actions: Vec<String> = String::from_utf8_lossy(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["key.revoke", "key.create"]);
    gw.stop().await;
}
