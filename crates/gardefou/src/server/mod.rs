//! The HTTP server: which path goes to which handler, and the few HTTP-generic layers. This file
//! holds only that list; handlers live in `handlers`, `admin`, `usage`.
//!
//! Every request passes, in order: (1) request id — the client's `x-request-id` or a new one,
//! echoed on the response; (2) panic catcher — a bug becomes a 500 in OpenAI's shape, never a
//! dropped connection; (3) the handler.

mod admin;
mod anthropic;
mod error;
mod escalations;
mod evals;
mod extract;
mod feedback;
mod handlers;
pub mod inferences;
mod keys;
mod usage;

use std::future::{Future, IntoFuture};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;

use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";
/// Body size limit of an answer read back by an internal call.
const INTERNAL_ANSWER_LIMIT: usize = 16 << 20;
pub const INFERENCE_ID: &str = "x-gardefou-inference-id";

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/chat/completions", post(handlers::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/embeddings", post(handlers::embeddings))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{id}", get(handlers::get_model))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .route("/admin/reload", post(admin::reload))
        .route("/admin/config", get(admin::config))
        .route("/admin/usage", get(usage::usage))
        .route("/admin/inferences/{id}", get(inferences::get))
        .route("/admin/keys", post(keys::create).get(keys::list))
        .route("/admin/keys/{id}", get(keys::get).delete(keys::revoke))
        .route("/admin/keys/{id}/rotate", post(keys::rotate))
        .route("/admin/keys/{id}/revoke", post(keys::revoke))
        .route("/admin/audit", get(keys::audit))
        .route("/admin/escalations", get(escalations::list))
        .route("/admin/escalations/export", get(escalations::export))
        .route("/admin/escalations/{id}", get(escalations::get))
        .route("/admin/escalations/{id}/claim", post(escalations::claim))
        .route("/admin/escalations/{id}/answer", post(escalations::answer))
        .route("/admin/escalations/{id}/close", post(escalations::close))
        .route("/v1/escalations/{id}", get(escalations::client_get))
        .route("/v1/feedback", post(feedback::post))
        .route("/admin/feedback", get(feedback::list))
        .route("/admin/feedback/summary", get(feedback::summary))
        .route("/admin/evals/runs", get(evals::list).post(evals::post))
        .route("/admin/evals/runs/{id}", get(evals::get))
        .route("/admin/quality", get(evals::quality))
        .fallback(handlers::not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(admin::panic_response))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Marks a request gardefou makes to itself (a scheduled eval, a quality judge): it passes
/// authentication without a key and is never sampled for online quality. It is a request
/// extension, which no client can set.
#[derive(Clone, Copy, Debug)]
pub struct Internal;

/// An answer to an internal call.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `x-gardefou-inference-id`.
    pub inference_id: Option<String>,
    /// `x-gardefou-model`: the model that answered.
    pub model: Option<String>,
    pub body: bytes::Bytes,
}

/// POSTs `body` to `path` on the gateway's own router, in-process: the full pipeline (routing,
/// guards, limits, recording) without a socket. `tags` become `x-gardefou-tags`.
pub async fn call_internal(
    router: &Router,
    path: &str,
    body: &serde_json::Value,
    tags: &str,
) -> Result<Answer, String> {
    use tower::ServiceExt;
    let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut req = axum::http::Request::post(path)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header("x-gardefou-tags", tags)
        .body(axum::body::Body::from(bytes))
        .map_err(|e| e.to_string())?;
    req.extensions_mut().insert(Internal);
    let Ok(resp) = router.clone().oneshot(req).await;
    let (parts, body) = resp.into_parts();
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (inference_id, model, status) =
        (header(INFERENCE_ID), header("x-gardefou-model"), parts.status.as_u16());
    let body = axum::body::to_bytes(body, INTERNAL_ANSWER_LIMIT).await.map_err(|e| e.to_string())?;
    Ok(Answer { status, inference_id, model, body })
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(REQUEST_ID) {
        Some(v) if !v.is_empty() && v.len() <= 128 => v.clone(),
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            let v = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"));
            req.headers_mut().insert(REQUEST_ID, v.clone());
            v
        }
    };
    let mut resp = next.run(req).await.into_response();
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (bounded by the config's shutdown grace).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Answers are written in several pieces: without TCP_NODELAY a keep-alive client would wait
    // for its delayed ACK on every reused connection.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Keys are checked in memory: load them before the first request can arrive.
    if let Err(e) = state.keys().refresh(state.store()).await {
        tracing::warn!(kind = e.kind(), error = %e, "could not load the keys at start; retrying in the background");
    }
    // Budgets start from what was spent so far in their window.
    let keys = state.keys().all();
    crate::limits::seed_budgets(&state.runtime().config, state.store(), state.limits().limiter(), &keys)
        .await;
    let grace = state.runtime().config.server.shutdown_grace;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Background work that calls the gateway itself, in-process: scheduled eval suites and the
    // online quality judge.
    let router = app(state.clone());
    crate::eval::schedule::start(&state, router.clone());
    state.quality().start(&state, router.clone());
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stop_rx2 = stop_rx.clone();
    tokio::select! {
        r = server.into_future() => r,
        _ = async move {
            let _ = stop_rx2.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish within the shutdown grace; closing");
            Ok(())
        }
    }
}
