//! Config reload: build, then swap; an invalid file leaves the live config in place.

use serde_json::{json, Value};

use crate::harness::*;

const V1: &str = r#"
[providers.demo]
kind = "mock"
[models.a]
provider = "demo"
[routes.one]
targets = [{ model = "a" }]
"#;

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn rewrite(gw: &Gateway, text: &str) {
    let db = gw.dir.join("gardefou.db");
    let text = format!("{text}\n[store]\ndatabase_url = \"sqlite://{}\"\n", db.display());
    std::fs::write(&gw.config_path, text).unwrap();
}

#[tokio::test]
async fn reload_applies_a_valid_file_and_rejects_an_invalid_one_with_its_position() {
    let gw = Gateway::start(V1).await;
    assert_eq!(gw.chat(hello("two")).await.status(), 404);

    rewrite(&gw, &format!("{V1}\n[routes.two]\ntargets = [{{ model = \"a\" }}]\n"));
    let resp = gw.post("/admin/reload", json!({})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["routes"], json!(["one", "two"]));
    assert_eq!(gw.chat(hello("two")).await.status(), 200);

    rewrite(&gw, &format!("{V1}\n[routes.three]\ntargets = [{{ model = \"missing\" }}]\n"));
    let resp = gw.post("/admin/reload", json!({})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_config");
    assert_eq!(body["error"]["path"], "routes.three.targets[0].model");
    assert!(body["error"]["line"].as_u64().unwrap() > 0);
    assert_eq!(gw.chat(hello("two")).await.status(), 200, "the previous config stays live");
    let m = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(m.contains("gardefou_config_last_reload_success 0"), "{m}");
    assert!(m.contains(r#"gardefou_config_reloads_total{outcome="rejected"} 1"#));
    gw.stop().await;
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_config_they_started_with() {
    let slow = r#"
[providers.demo]
kind = "mock"
[models.a]
provider = "demo"
mock = { latency = "300ms" }
[routes.one]
targets = [{ model = "a" }]
"#;
    let gw = Gateway::start(slow).await;
    let url = gw.url("/v1/chat/completions");
    let pending =
        tokio::spawn(
            async move { reqwest::Client::new().post(url).json(&hello("one")).send().await.unwrap() },
        );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // the new config drops route `one`
    rewrite(&gw, "[providers.demo]\nkind = \"mock\"\n[models.b]\nprovider = \"demo\"\n[routes.other]\ntargets = [{ model = \"b\" }]\n");
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    assert_eq!(pending.await.unwrap().status(), 200, "the request that started on the old config completes");
    assert_eq!(gw.chat(hello("one")).await.status(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token_when_one_is_set() {
    let dir = temp_dir();
    let token = dir.join("admin-token");
    std::fs::write(&token, "s3cret-admin").unwrap();
    let gw = Gateway::start(&format!("{V1}\n[server]\nadmin_token = \"file:{}\"\n", token.display())).await;
    let client = reqwest::Client::new();
    assert_eq!(client.post(gw.url("/admin/reload")).send().await.unwrap().status(), 401);
    let wrong = client.post(gw.url("/admin/reload")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client.post(gw.url("/admin/reload")).bearer_auth("s3cret-admin").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let cfg = client
        .get(gw.url("/admin/config"))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!cfg.contains("s3cret-admin"), "secrets never leave");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
