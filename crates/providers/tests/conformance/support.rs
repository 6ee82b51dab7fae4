//! The fake upstreams and fixtures the three adapters' conformance tests share: an axum upstream
//! answering canned responses, a raw TCP upstream writing in small pieces, the request each
//! received, key files, and the common request and stream helpers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use futures_util::StreamExt;
use gardefou_core::chat::{ChatChunk, ChatRequest};
use gardefou_core::config::Config;
use gardefou_core::Result;
use gardefou_providers::CallOptions;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the fake upstream received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Every header but `host` and `content-length`, names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl Captured {
    pub fn headers_json(&self) -> Value {
        serde_json::to_value(&self.headers).unwrap()
    }
}

pub type Log = Arc<Mutex<Vec<Captured>>>;

fn capture(
    method: &str,
    target: &str,
    headers: impl Iterator<Item = (String, String)>,
    body: &[u8],
) -> Captured {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let headers = headers
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| k != "host" && k != "content-length")
        .collect();
    let body = if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap() };
    Captured { method: method.to_owned(), path, query, headers, body }
}

struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    log: Log,
}

async fn canned_handler(
    State(c): State<Arc<Canned>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let pairs = headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()));
    c.log.lock().unwrap().push(capture(method.as_str(), &target, pairs, &body));
    let mut resp = Response::builder().status(c.status);
    for (k, v) in &c.headers {
        resp = resp.header(*k, v.as_str());
    }
    resp.body(axum::body::Body::from(c.body.clone())).unwrap()
}

/// An axum upstream answering every request with the same status, headers and body.
pub async fn canned(status: u16, headers: &[(&'static str, &str)], body: &str) -> (String, Log) {
    let log = Log::default();
    let state = Arc::new(Canned {
        status,
        headers: headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        body: body.to_owned(),
        log: log.clone(),
    });
    let app = axum::Router::new().fallback(canned_handler).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

/// What a raw upstream does after reading the request.
pub enum Step {
    /// Writes bytes as they are.
    Raw(Vec<u8>),
    /// Writes one `Transfer-Encoding: chunked` frame.
    Chunk(Vec<u8>),
    Pause(u64),
}

/// A raw TCP upstream: reads one request, then plays `steps` (flushing each) and closes the
/// connection. Lets tests split events and characters across reads and break streams.
pub async fn raw(steps: Vec<Step>) -> (String, tokio::sync::oneshot::Receiver<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        sock.set_nodelay(true).unwrap();
        let captured = read_request(&mut sock).await;
        let _ = tx.send(captured);
        for step in steps {
            match step {
                Step::Raw(bytes) => sock.write_all(&bytes).await.unwrap(),
                Step::Chunk(bytes) => {
                    let mut frame = format!("{:x}\r\n", bytes.len()).into_bytes();
                    frame.extend_from_slice(&bytes);
                    frame.extend_from_slice(b"\r\n");
                    sock.write_all(&frame).await.unwrap();
                }
                Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            }
            sock.flush().await.unwrap();
        }
        let _ = sock.shutdown().await;
    });
    (format!("http://{addr}"), rx)
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Captured {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut piece).await.unwrap();
        assert!(n > 0, "the client closed before sending a request");
        buf.extend_from_slice(&piece[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, target) = (request_line.next().unwrap().to_owned(), request_line.next().unwrap().to_owned());
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    while buf.len() < head_end + length {
        let n = sock.read(&mut piece).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&piece[..n]);
    }
    capture(&method, &target, headers.into_iter(), &buf[head_end..head_end + length])
}

pub const SSE_CHUNKED_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
pub const SSE_CLOSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

/// `body` as chunked frames cut one byte into every non-ASCII character and every 40 bytes, with
/// a short pause between frames so that each arrives in its own read.
pub fn split_frames(body: &str) -> Vec<Step> {
    let mut cuts: Vec<usize> =
        body.char_indices().filter(|(_, c)| !c.is_ascii()).map(|(i, _)| i + 1).collect();
    cuts.extend((40..body.len()).step_by(40));
    cuts.sort_unstable();
    cuts.dedup();
    let bytes = body.as_bytes();
    let mut steps = vec![Step::Raw(SSE_CHUNKED_HEAD.to_vec())];
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        if cut > start {
            steps.push(Step::Chunk(bytes[start..cut].to_vec()));
            steps.push(Step::Pause(3));
            start = cut;
        }
    }
    steps
}

/// A file holding a secret, unique to the test, removed on drop; the config refers to it as
/// `file:…`.
pub struct KeyFile(pub PathBuf);

impl KeyFile {
    pub fn display(&self) -> std::path::Display<'_> {
        self.0.display()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn key_file(tag: &str, key: &str) -> KeyFile {
    // unique per call: tests sharing a tag run in parallel and each removes its own file
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("gardefou-providers-test-{}-{tag}-{n}", std::process::id()));
    std::fs::write(&path, key).unwrap();
    KeyFile(path)
}

/// A one-provider config: provider `up` set by `provider_toml`, and model `chat` on it with the
/// upstream name `upstream`.
pub fn one_provider(provider_toml: &str, upstream: &str) -> Config {
    let text = format!(
        "[providers.up]\n{provider_toml}\n\n[models.chat]\nprovider = \"up\"\nupstream = \"{upstream}\"\n"
    );
    Config::parse(&text, "test.toml").unwrap()
}

pub fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

pub fn hello() -> ChatRequest {
    request(json!({"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}))
}

pub fn opts() -> CallOptions {
    CallOptions { first_byte_timeout: Some(Duration::from_secs(5)), headers: Vec::new() }
}

pub async fn collect(stream: gardefou_providers::ChunkStream) -> Vec<Result<ChatChunk>> {
    tokio::time::timeout(Duration::from_secs(10), stream.collect()).await.unwrap()
}

pub fn ok_chunks(items: Vec<Result<ChatChunk>>) -> Vec<ChatChunk> {
    items.into_iter().map(|i| i.unwrap()).collect()
}
