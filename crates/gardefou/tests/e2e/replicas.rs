//! Two gardefou processes sharing Postgres (keys, inferences) and Redis (limit counters) enforce
//! one rate limit together; when Redis stops, `fail_open` keeps serving on local counters with a
//! loud metric and `fail_closed` refuses with 503, then recovers when Redis is back.
//! Needs Postgres (`GARDEFOU_TEST_POSTGRES`, default the local server) and `redis-server`; fails
//! in CI without them, skips elsewhere.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::temp_dir;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn skip_or_fail(what: &str) -> bool {
    assert!(std::env::var("CI").is_err(), "CI must provide {what}");
    eprintln!("skipped: {what} not available");
    true
}

fn redis(port: u16) -> Option<Proc> {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Proc(child))
}

fn serve(config: &std::path::Path) -> (Proc, String) {
    let (child, base) = crate::harness::spawn_gateway(config);
    (Proc(child), base)
}

async fn call(base: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Polls until `base` answers `want` for `key` (keys reach a replica within a second).
async fn until(base: &str, key: &str, want: u16) {
    let start = Instant::now();
    loop {
        let got = call(base, key).await;
        if got == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "{base} still answers {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_rate_limit_and_a_redis_outage_follows_the_configured_policy() {
    let pg = std::env::var("GARDEFOU_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("gardefou_replicas_{}", std::process::id());
    let created = Command::new("psql")
        .args([
            pg.as_str(),
            "-q",
            "-c",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
        ])
        .output();
    if !created.is_ok_and(|o| o.status.success()) && skip_or_fail("Postgres (psql)") {
        return;
    }
    let port = free_port();
    let Some(redis_proc) = redis(port) else {
        skip_or_fail("redis-server");
        return;
    };
    let dir = temp_dir();
    let sep = if pg.contains('?') { '&' } else { '?' };
    let config = |policy: &str, name: &str| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[server]\nrequire_keys = true\n\
                 [store]\ndatabase_url = \"{pg}{sep}options=-c%20search_path%3D{schema}\"\n\
                 redis_url = \"redis://127.0.0.1:{port}\"\nspill_path = \"{}\"\nflush_interval = \"20ms\"\n\
                 [limits]\non_redis_error = \"{policy}\"\nredis_prefix = \"{schema}\"\n\
                 [providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n\
                 [routes.chat]\ntargets = [{{ model = \"m\" }}]\n",
                dir.join(format!("{name}-spill.jsonl")).display()
            ),
        )
        .unwrap();
        path
    };
    let open = config("fail_open", "open");
    let closed = config("fail_closed", "closed");
    let out = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["keys", "create", "--team", "search", "--rpm", "10", "--config"])
        .arg(&open)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let (_a, a) = serve(&open);
    let (_b, b) = serve(&open);
    let (_c, c) = serve(&closed);
    // Start early in a minute: the 10 requests per minute are counted in fixed minutes.
    let into =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 60_000;
    if into > 40_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into + 200) as u64)).await;
    }
    until(&a, &key, 200).await;
    until(&b, &key, 200).await;
    // Two calls made; eight left in this minute for both replicas together.
    let mut ok = 2;
    let mut refused = 0;
    for i in 0..20 {
        match call(if i % 2 == 0 { &a } else { &b }, &key).await {
            200 => ok += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, refused), (10, 12), "one limit across both replicas");
    assert_eq!(metric(&a, "gardefou_limits_backend_up").await, 1.0);

    // Redis stops: the fail-open replicas keep serving (on their own counters, loudly), the
    // fail-closed one refuses.
    let other = {
        let out = Command::new(env!("CARGO_BIN_EXE_gardefou"))
            .args(["keys", "create", "--team", "ads", "--rpm", "1000", "--config"])
            .arg(&open)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    until(&a, &other, 200).await;
    until(&c, &other, 200).await;
    drop(redis_proc);
    assert_eq!(call(&a, &other).await, 200);
    assert_eq!(call(&b, &other).await, 200);
    assert!(metric(&a, "gardefou_limits_backend_errors_total").await >= 1.0);
    assert_eq!(metric(&a, "gardefou_limits_backend_up").await, 0.0);
    let refused = reqwest::Client::new()
        .post(format!("{c}/v1/chat/completions"))
        .bearer_auth(&other)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let err: Value = refused.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("limits"), "{err}");

    // Redis is back: the fail-closed replica serves again.
    let _redis_again = redis(port).unwrap();
    until(&c, &other, 200).await;
    let _ = Command::new("psql")
        .args([pg.as_str(), "-q", "-c", &format!("DROP SCHEMA {schema} CASCADE")])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
}
