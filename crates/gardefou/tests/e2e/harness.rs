//! A gateway on 127.0.0.1:0 with its own config file and SQLite store in a fresh temp dir,
//! small fake upstreams speaking OpenAI's wire format, and the runner of the Python client
//! scripts against a real gardefou process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gardefou::state::{AppState, ConfigSource};
use gardefou_core::config::Config;
use gardefou_store::{InferenceRecord, LogFilter, Store};
use tokio_util::task::TaskTracker;

/// Keeps tests that load every core (a local model generating) apart from tests that assert a
/// deadline: the heavy ones hold it for writing, the timed ones for reading.
pub static CPU_HEAVY: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

static NEXT: AtomicU64 = AtomicU64::new(0);

pub struct Gateway {
    pub base: String,
    pub state: AppState,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    tracker: TaskTracker,
}

pub fn temp_dir() -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gardefou-e2e-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Gateway {
    /// Starts a gateway on `config` (TOML without a `[store]` section: one is added).
    pub async fn start(config: &str) -> Gateway {
        let dir = temp_dir();
        let db = dir.join("gardefou.db");
        let text = format!(
            "{config}\n[store]\ndatabase_url = \"sqlite://{}\"\nflush_interval = \"20ms\"\n",
            db.display()
        );
        let config_path = dir.join("gardefou.toml");
        std::fs::write(&config_path, &text).unwrap();
        let cfg = Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::connect(&cfg.store.database_url).await.unwrap();
        let tracker = TaskTracker::new();
        let state = AppState::new(cfg, ConfigSource::File(config_path.clone()), store, tracker.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let server = tokio::spawn(async move {
            gardefou::server::serve(listener, st, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Gateway {
            base: format!("http://{addr}"),
            state,
            dir,
            config_path,
            stop: Some(tx),
            server: Some(server),
            tracker,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        reqwest::Client::new().post(self.url(path)).json(&body).send().await.unwrap()
    }

    pub async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body).await
    }

    /// Waits until the recorder has written `n` records (bounded wait), then reads them.
    pub async fn records(&self, n: u64) -> Vec<InferenceRecord> {
        for _ in 0..200 {
            if self.state.recorder().written() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let filter = LogFilter { limit: 1000, ..LogFilter::default() };
        self.state.store().list_inferences(&filter).await.unwrap()
    }

    /// Graceful stop: server drained, recorder flushed.
    pub async fn stop(mut self) -> AppState {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.await.unwrap();
        }
        self.state.shutdown().await;
        self.tracker.close();
        self.tracker.wait().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        self.state.clone()
    }
}

/// What a fake upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: axum::http::HeaderMap,
    pub body: serde_json::Value,
}

/// A fake OpenAI-compatible upstream answering every request with `reply(body)`.
pub struct Upstream {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub type Reply = Arc<dyn Fn(&serde_json::Value) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync>;

impl Upstream {
    pub async fn start(reply: Reply) -> Upstream {
        use axum::extract::State;
        use axum::response::IntoResponse;
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let st = (seen.clone(), reply);
        let app = axum::Router::new()
            .fallback(
                |State((seen, reply)): State<(Arc<Mutex<Vec<Seen>>>, Reply)>,
                 uri: axum::http::Uri,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let json: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    seen.lock().unwrap().push(Seen { path: uri.to_string(), headers, body: json.clone() });
                    let (status, hdrs, text) = reply(&json);
                    let mut resp = (axum::http::StatusCode::from_u16(status).unwrap(), text).into_response();
                    for (k, v) in hdrs {
                        resp.headers_mut().insert(k, v.parse().unwrap());
                    }
                    resp
                },
            )
            .with_state(st);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Upstream { base: format!("http://{addr}/v1"), seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub fn json_reply(status: u16, body: serde_json::Value) -> Reply {
    let text = body.to_string();
    Arc::new(move |_| (status, vec![("content-type", "application/json".to_owned())], text.clone()))
}

pub fn sse_reply(events: &[&str]) -> Reply {
    let text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    Arc::new(move |_| (200, vec![("content-type", "text/event-stream".to_owned())], text.clone()))
}

/// Reads an SSE body into its `data:` payloads.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect()
}

pub const MOCK: &str = r#"
[providers.demo]
kind = "mock"
"#;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_can_import(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `gardefou serve` on `config` at 127.0.0.1:0 (stderr discarded) and returns the process
/// and its base URL, read from the first line it prints.
pub fn spawn_gateway(config: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    // Keep reading what it prints later, so that it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, base)
}

/// Runs the Python script `tests/e2e/{script}` against a real gardefou process (the binary on
/// tests/e2e/gardefou-e2e.toml, port 0, its address read from stdout) and returns the script's
/// stdout, once it has exited successfully and reported ` passed, 0 failed`.
///
/// `import_check` names the modules the script needs (`openai, langchain_openai`); `pip_hint`
/// says which packages provide them. When they are missing the test is skipped (`None`) outside
/// CI, and fails in CI, where `.ci/run` installs tests/e2e/requirements.txt.
pub fn run_python_clients(script: &str, import_check: &str, pip_hint: &str) -> Option<String> {
    if !python_can_import(import_check) {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have {pip_hint} (pip install -r tests/e2e/requirements.txt)"
        );
        eprintln!("skipped {script}: pip install -r tests/e2e/requirements.txt to run it");
        return None;
    }
    let root = repo_root();
    let dir = temp_dir();
    let mut server = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(root.join("tests/e2e/gardefou-e2e.toml"))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let out = Command::new("python3").arg(root.join("tests/e2e").join(script)).arg(&base).output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    Some(stdout)
}

/// A gateway on the mock provider with one route, `support`, and the admin token `root-token`.
pub async fn admin_gateway() -> Gateway {
    let dir = temp_dir();
    let token = dir.join("admin-token");
    std::fs::write(&token, "root-token").unwrap();
    Gateway::start(&format!(
        "{MOCK}[models.polite]\nprovider = \"demo\"\n[routes.support]\ntargets = [{{ model = \"polite\" }}]\n\
         [server]\nadmin_token = \"file:{}\"\n",
        token.display()
    ))
    .await
}

/// A GET or POST with an optional bearer token and JSON body: (status, JSON body or null).
pub async fn send_as(
    gw: &Gateway,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut req = if method == "POST" { client.post(gw.url(path)) } else { client.get(gw.url(path)) };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// Creates a key with the root token of [`admin_gateway`]; returns (secret, id).
pub async fn make_key(gw: &Gateway, body: serde_json::Value) -> (String, String) {
    let (status, v) = send_as(gw, Some("root-token"), "POST", "/admin/keys", Some(body)).await;
    assert_eq!(status, 201, "{v}");
    (v["key"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
}
