//! `gardefou models pull` against a fake Hugging Face hub on loopback (`HF_ENDPOINT`): the hub
//! redirects `resolve` to a CDN path carrying the file's SHA-256 as `X-Linked-Etag`, as the real
//! one does for LFS files; the CDN honours `Range`. A fresh pull lands verified in the models
//! folder, an interrupted one resumes from its part file, a wrong checksum deletes the download,
//! a missing file is a one-line error.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::harness::temp_dir;

#[derive(Clone)]
struct Hub {
    content: Arc<Vec<u8>>,
    etag: String,
    /// The `Range` headers the CDN saw.
    ranges: Arc<Mutex<Vec<String>>>,
}

async fn resolve(
    State(hub): State<Hub>,
    UrlPath((org, repo, _rev, file)): UrlPath<(String, String, String, String)>,
) -> Response {
    if file != "model.gguf" {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    }
    let mut resp = StatusCode::FOUND.into_response();
    let h = resp.headers_mut();
    h.insert("location", format!("/cdn/{org}/{repo}/blob").parse().unwrap());
    h.insert("x-linked-etag", format!("\"{}\"", hub.etag).parse().unwrap());
    h.insert("x-linked-size", hub.content.len().to_string().parse().unwrap());
    resp
}

async fn cdn(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    let range = headers.get("range").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let start = match &range {
        Some(r) => {
            hub.ranges.lock().unwrap().push(r.clone());
            r.trim_start_matches("bytes=").trim_end_matches('-').parse::<usize>().unwrap()
        }
        None => 0,
    };
    if start >= hub.content.len() {
        return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    }
    let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    (status, hub.content[start..].to_vec()).into_response()
}

async fn start_hub(content: Vec<u8>, etag: Option<String>) -> (String, Hub) {
    let sum: String = Sha256::digest(&content).iter().map(|b| format!("{b:02x}")).collect();
    let hub = Hub { content: Arc::new(content), etag: etag.unwrap_or(sum), ranges: Arc::default() };
    let app = axum::Router::new()
        .route("/{org}/{repo}/resolve/{rev}/{file}", axum::routing::get(resolve))
        .route("/cdn/{org}/{repo}/blob", axum::routing::get(cdn))
        .with_state(hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hub)
}

async fn pull(endpoint: &str, models: &Path, file: &str) -> Output {
    let (endpoint, models, file) = (endpoint.to_owned(), models.to_owned(), file.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gardefou"))
            .args(["models", "pull", "acme/Tiny-GGUF", &file, "--models-dir"])
            .arg(&models)
            .env("HF_ENDPOINT", &endpoint)
            .env_remove("HF_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn content() -> Vec<u8> {
    let mut c = b"GGUF".to_vec();
    c.extend((0..200_000u32).map(|i| (i * 31 % 251) as u8));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_lands_verified_and_an_interrupted_one_resumes_from_its_part_file() {
    let (endpoint, hub) = start_hub(content(), None).await;
    let models = temp_dir();
    let out = pull(&endpoint, &models, "model.gguf").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dest = models.join("Tiny-GGUF/model.gguf");
    assert_eq!(std::fs::read(&dest).unwrap(), content());
    assert!(text(&out.stdout).contains(&format!("sha256 {}, verified", hub.etag)), "{}", text(&out.stdout));
    assert!(hub.ranges.lock().unwrap().is_empty(), "a fresh pull asks for the whole file");

    // An interrupted pull left the first 50 000 bytes: only the rest is fetched.
    std::fs::remove_file(&dest).unwrap();
    std::fs::write(models.join("Tiny-GGUF/model.gguf.part"), &content()[..50_000]).unwrap();
    let out = pull(&endpoint, &models, "model.gguf").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(hub.ranges.lock().unwrap().as_slice(), ["bytes=50000-"]);
    assert_eq!(std::fs::read(&dest).unwrap(), content());
    assert!(!models.join("Tiny-GGUF/model.gguf.part").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_deletes_the_download_and_a_missing_file_is_a_one_line_error() {
    let (endpoint, _hub) = start_hub(content(), Some("0".repeat(64))).await;
    let models = temp_dir();
    let out = pull(&endpoint, &models, "model.gguf").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("checksum mismatch: expected sha256 0000") && stderr.contains("deleted"),
        "{stderr}"
    );
    assert!(
        !models.join("Tiny-GGUF/model.gguf").exists() && !models.join("Tiny-GGUF/model.gguf.part").exists()
    );

    let out = pull(&endpoint, &models, "nope.gguf").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
}
