//! The `gardefou` binary as an operator runs it: config check, SIGHUP reload, SIGTERM with the
//! records flushed, and `gardefou logs`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{spawn_gateway, temp_dir};

fn gardefou() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gardefou"))
}

#[test]
fn config_check_exits_0_on_a_valid_file_and_1_with_the_position_on_a_bad_one() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gardefou.toml");
    let ok = gardefou().args(["config", "check"]).arg(&example).output().unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains(": ok ("));

    let dir = temp_dir();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n[routes.r]\ntargets = [{ model = \"mm\" }]\n").unwrap();
    let out = gardefou().args(["config", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("{}:6:22: unknown model `mm`", bad.display())), "{err}");
    assert!(err.contains("hint: defined models: m"), "{err}");

    let missing = gardefou().args(["config", "check", "/nonexistent/gardefou.toml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(dir);
}

fn write_config(path: &Path, db: &Path, routes: &[&str]) {
    let mut text = format!(
        "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n[store]\ndatabase_url = \"sqlite://{}\"\n",
        db.display()
    );
    for r in routes {
        text.push_str(&format!("[routes.{r}]\ntargets = [{{ model = \"m\" }}]\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn start(config: &Path) -> (Child, String) {
    spawn_gateway(config)
}

fn signal(child: &Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

async fn route_ids(base: &str) -> Vec<String> {
    let v: Value = reqwest::get(format!("{base}/v1/models")).await.unwrap().json().await.unwrap();
    v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn sighup_reloads_sigterm_flushes_and_logs_lists_what_was_recorded() {
    let dir = temp_dir();
    let config = dir.join("gardefou.toml");
    let db = dir.join("gardefou.db");
    write_config(&config, &db, &["one"]);
    let (mut child, base) = start(&config);
    assert_eq!(route_ids(&base).await, ["one"]);

    write_config(&config, &db, &["one", "two"]);
    signal(&child, "-HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if route_ids(&base).await == ["one", "two"] {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reloaded, "SIGHUP applied the new config");

    // an invalid file is rejected and the live config stays
    std::fs::write(&config, "[routes.x]\ntargets = []\n").unwrap();
    signal(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(route_ids(&base).await, ["one", "two"]);

    let client = reqwest::Client::new();
    for route in ["one", "two", "nope"] {
        client
            .post(format!("{base}/v1/chat/completions"))
            .header("x-gardefou-team", "ops")
            .json(&json!({"model": route, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
    }
    signal(&child, "-TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit: {status:?}");

    let url = format!("sqlite://{}", db.display());
    let out = gardefou().args(["logs", "--json", "--database", &url]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3, "every request was flushed at shutdown");
    assert!(rows.iter().all(|r| r["team"] == "ops"));
    let errors = gardefou().args(["logs", "--errors", "--json", "--database", &url]).output().unwrap();
    let errors: Vec<Value> =
        String::from_utf8_lossy(&errors.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["status"], 404);
    let table = gardefou().args(["logs", "--route", "two", "--database", &url]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.lines().count(), 2, "header and one row:\n{table}");
    assert!(table.lines().nth(1).unwrap().contains("two"));

    let bad = gardefou().args(["logs", "--since", "soon", "--database", &url]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}
