//! A provider key never shows: not in logs (JSON, debug level), metrics, traces, error answers,
//! the config dump, key listings or the audit log — while the provider itself does receive it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::harness::{temp_dir, Upstream};
use crate::otel::{http_collector, telemetry};

const SECRET: &str = "sk-live-SECRETVALUE-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_key_never_appears_in_logs_metrics_traces_errors_or_the_audit_log() {
    // The upstream answers 401 echoing the key it got (as some providers do) for model `deny`,
    // and a normal answer otherwise.
    let up = Upstream::start(std::sync::Arc::new(|body: &Value| {
        if body["model"] == "deny" {
            let msg = json!({"error": {"message": format!("Incorrect API key provided: {SECRET}"), "type": "invalid_request_error"}});
            (401, vec![], msg.to_string())
        } else {
            let ok = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
            (200, vec![], ok.to_string())
        }
    }))
    .await;
    let collector = http_collector().await;
    let dir = temp_dir();
    let config = dir.join("gardefou.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndatabase_url = \"sqlite://{}\"\nspill_path = \"{}\"\n\
             [providers.up]\nkind = \"openai_compatible\"\nbase_url = \"{}\"\napi_key = \"env:LEAK_TEST_KEY\"\n\
             [models.ok]\nprovider = \"up\"\nupstream = \"ok\"\n[models.deny]\nprovider = \"up\"\nupstream = \"deny\"\n\
             [routes.chat]\ntargets = [{{ model = \"ok\" }}]\n[routes.denied]\ntargets = [{{ model = \"deny\" }}]\n{}",
            dir.join("g.db").display(),
            dir.join("spill.jsonl").display(),
            up.base,
            telemetry(&collector, "capture_content = true")
        ),
    )
    .unwrap();
    let log = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("LEAK_TEST_KEY", SECRET)
        .env("RUST_LOG", "debug")
        .env("GARDEFOU_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for (route, stream) in [("chat", false), ("denied", false), ("denied", true), ("nope", false)] {
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": route, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = format!("{:?}", r.headers());
        seen.push(format!("{status} {headers} {}", r.text().await.unwrap()));
    }
    assert!(seen[0].starts_with("200"), "{}", seen[0]);
    assert!(seen[1].starts_with("502"), "{}", seen[1]);
    for path in ["/metrics", "/admin/config", "/v1/models", "/health", "/ready"] {
        seen.push(reqwest::get(format!("{base}{path}")).await.unwrap().text().await.unwrap());
    }
    let reload = client.post(format!("{base}/admin/reload")).send().await.unwrap();
    assert_eq!(reload.status(), 200);
    seen.push(client.get(format!("{base}/admin/audit")).send().await.unwrap().text().await.unwrap());
    let spans = collector.received.wait_for(3).await;
    seen.push(format!("{spans:?}"));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.lines().count() > 5, "debug logs were written: {logs}");
    seen.push(logs);

    // The provider got it; nothing else shows it.
    let sent: Vec<String> =
        up.seen().iter().map(|s| s.headers["authorization"].to_str().unwrap().to_owned()).collect();
    assert!(sent.iter().all(|h| h == &format!("Bearer {SECRET}")), "{sent:?}");
    for text in &seen {
        assert!(!text.contains("SECRETVALUE"), "the provider key leaked:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
