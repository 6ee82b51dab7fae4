//! Admin endpoints: reload the config (admins), show the live config (never a secret; viewers
//! and up). Every admin endpoint checks its caller with `authorize` (`auth::authorize_admin`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gardefou_core::Error;
use serde_json::json;

use super::error::ApiError;
use crate::auth::{authorize_admin, AdminPrincipal, Need};
use crate::state::AppState;

/// The admin caller of `headers`, if it may do what `need` says (`auth::authorize_admin`).
pub(super) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    need: Need,
) -> Result<AdminPrincipal, ApiError> {
    authorize_admin(state, headers, need).map_err(ApiError)
}

/// `POST /admin/reload`: re-read the config; 200 with the routes when applied, 400 with the
/// located error when rejected (the previous config stays live).
pub async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Need::Admin)?;
    match state.reload_by(&who.actor).await {
        Ok(rt) => {
            let mut routes: Vec<&String> = rt.routes.keys().collect();
            routes.sort();
            Ok(Json(json!({"status": "applied", "routes": routes, "disabled_providers": rt.disabled})).into_response())
        }
        Err(e) => Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {
                "message": e.to_string(), "type": "invalid_request_error", "param": null, "code": "invalid_config",
                "file": e.file, "line": e.line, "column": e.column, "path": e.path,
            }})),
        )
            .into_response()),
    }
}

/// `GET /admin/config`: routes, models and providers of the live config, without secrets.
pub async fn config(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&state, &headers, Need::Read)?;
    let rt = state.runtime();
    let c = &rt.config;
    let providers: serde_json::Map<String, serde_json::Value> = c
        .providers
        .iter()
        .map(|(n, p)| {
            let status = match rt.disabled.get(n) {
                Some(reason) => json!({"enabled": false, "reason": reason}),
                None => json!({"enabled": true}),
            };
            (n.clone(), json!({"kind": p.kind.as_str(), "base_url": p.base_url, "api_key": p.api_key.as_ref().map(|r| r.to_string()), "status": status}))
        })
        .collect();
    let routes: serde_json::Map<String, serde_json::Value> = c
        .routes
        .iter()
        .map(|(n, r)| {
            (n.clone(), json!({
                "description": r.description,
                "targets": r.targets.iter().map(|t| json!({"model": t.model, "weight": t.weight})).collect::<Vec<_>>(),
                "fallbacks": r.fallbacks,
                "retry_attempts": r.retry.attempts,
                "timeouts_ms": {"connect": r.timeouts.connect.as_millis() as u64, "first_byte": r.timeouts.first_byte.as_millis() as u64, "total": r.timeouts.total.as_millis() as u64},
            }))
        })
        .collect();
    let models: serde_json::Map<String, serde_json::Value> = c
        .models
        .iter()
        .map(|(n, m)| {
            (n.clone(), json!({"provider": m.provider, "upstream": m.upstream, "context_window": m.context_window,
                "price": m.price.map(|p| json!({"input": p.input, "cached_input": p.cached_input,
                    "cache_write": p.cache_write, "output": p.output, "batch_input": p.batch_input, "batch_output": p.batch_output})),
                "price_source": m.price_source.as_ref().map(|s| s.describe())}))
        })
        .collect();
    Ok(Json(json!({"providers": providers, "models": models, "routes": routes})).into_response())
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError(Error::Internal("unexpected failure while handling the request".to_owned())).into_response()
}
