//! The OpenAI-compatible API handlers and the operational endpoints (health, readiness, metrics).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gardefou_core::chat::{ChatRequest, EmbeddingsRequest};
use gardefou_core::Error;
use serde_json::json;

use super::error::ApiError;
use super::extract::{insert_tag, AppJson, RequestId};
use super::INFERENCE_ID;
use crate::pipeline::record::{Caller, Inflight, Outcome};
use crate::pipeline::{self, stream};
use crate::state::AppState;

pub(super) fn with_header(mut resp: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
    resp
}

/// Adds the headers the pipeline gave the client (`x-ratelimit-*`, a budget downgrade).
pub(super) fn with_headers(mut resp: Response, extra: &[(&'static str, String)]) -> Response {
    for (name, value) in extra {
        resp = with_header(resp, name, value);
    }
    resp
}

/// Names the request parameters the answering provider lacks and that were dropped.
pub const DROPPED_PARAMS: &str = "x-gardefou-dropped-params";

pub fn with_dropped(resp: Response, dropped: &[&'static str]) -> Response {
    if dropped.is_empty() {
        resp
    } else {
        with_header(resp, DROPPED_PARAMS, &dropped.join(","))
    }
}

fn fail(inflight: Inflight, e: Error) -> Response {
    let id = inflight.id().to_owned();
    inflight.finish_err(&e, Outcome::default());
    with_header(ApiError(e).into_response(), INFERENCE_ID, &id)
}

/// The request's `context` field (gardefou's own: the documents an answer should be grounded in,
/// for the quality judge): a string or an array of strings. It is not sent upstream.
fn take_context(v: Option<serde_json::Value>) -> Result<Vec<String>, Error> {
    let bad = || Error::invalid_param("`context` must be a string or an array of strings", "context");
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::String(s)) => Ok(vec![s]),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|i| if let serde_json::Value::String(s) = i { Ok(s) } else { Err(bad()) })
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Moves the request's `metadata` into the caller's tags (validated, bounded).
fn take_metadata(
    req_meta: Option<serde_json::Map<String, serde_json::Value>>,
    mut caller: crate::pipeline::record::CallerMut<'_>,
) -> Result<(), Error> {
    let Some(tags) = caller.tags() else { return Ok(()) };
    for (k, v) in req_meta.into_iter().flatten() {
        let v = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        insert_tag(tags, &k, &v).map_err(|e| e.0)?;
    }
    Ok(())
}

/// Starts the record of an inference under a fresh id. A caller whose attribution headers are
/// invalid is still recorded: the error comes back to be answered (and finished) by the handler.
pub(super) fn start_inflight(
    state: &AppState,
    request_id: String,
    endpoint: &str,
    stream: bool,
    caller: Result<Caller, ApiError>,
) -> (Inflight, Option<Error>) {
    let id = uuid::Uuid::now_v7().to_string();
    let (caller, caller_err) = match caller {
        Ok(c) => (c, None),
        Err(e) => (Caller::default(), Some(e.0)),
    };
    (Inflight::new(state, id, request_id, endpoint, stream, caller), caller_err)
}

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    caller: Result<Caller, ApiError>,
    body: Result<AppJson<ChatRequest>, ApiError>,
) -> Response {
    let rt = state.runtime();
    let stream = body.as_ref().is_ok_and(|b| b.0.is_stream());
    let (mut inflight, caller_err) = start_inflight(&state, request_id, "chat", stream, caller);
    if let Some(e) = caller_err {
        return fail(inflight, e);
    }
    let mut req = match body {
        Ok(AppJson(r)) => r,
        Err(e) => return fail(inflight, e.0),
    };
    if let Err(e) = take_metadata(req.metadata.take(), inflight.caller_mut()) {
        return fail(inflight, e);
    }
    match take_context(req.extra.remove("context")) {
        Ok(c) => inflight.set_context(c),
        Err(e) => return fail(inflight, e),
    }
    inflight.set_end_user(req.user.as_deref());
    let inference_id = inflight.id().to_owned();
    if stream {
        match pipeline::chat_stream(&rt, &req, &mut inflight).await {
            Ok(started) => {
                let extra = inflight.response_headers().to_vec();
                let model = started.target.model.name.clone();
                let dropped = started.dropped_params.clone();
                let body = Body::from_stream(stream::sse_body(started, &req, inflight));
                let resp = Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(body)
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
                let resp =
                    with_header(with_header(resp, INFERENCE_ID, &inference_id), "x-gardefou-model", &model);
                with_headers(with_dropped(resp, &dropped), &extra)
            }
            Err(e) => fail(inflight, e),
        }
    } else {
        match pipeline::chat(&rt, &req, &mut inflight).await {
            Ok((resp, mut outcome)) => {
                let extra = inflight.response_headers().to_vec();
                let model = inflight.model_name();
                let dropped = std::mem::take(&mut outcome.dropped_params);
                inflight.finish_ok(outcome);
                let resp = Json(resp).into_response();
                let resp =
                    with_header(with_header(resp, INFERENCE_ID, &inference_id), "x-gardefou-model", &model);
                with_headers(with_dropped(resp, &dropped), &extra)
            }
            Err(e) => fail(inflight, e),
        }
    }
}

/// `POST /v1/embeddings`
pub async fn embeddings(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    caller: Result<Caller, ApiError>,
    body: Result<AppJson<EmbeddingsRequest>, ApiError>,
) -> Response {
    let rt = state.runtime();
    let (mut inflight, caller_err) = start_inflight(&state, request_id, "embeddings", false, caller);
    if let Some(e) = caller_err {
        return fail(inflight, e);
    }
    let req = match body {
        Ok(AppJson(r)) => r,
        Err(e) => return fail(inflight, e.0),
    };
    inflight.set_end_user(req.user.as_deref());
    let inference_id = inflight.id().to_owned();
    match pipeline::embeddings(&rt, &req, &mut inflight).await {
        Ok((resp, outcome)) => {
            let model = inflight.model_name();
            let extra = inflight.response_headers().to_vec();
            inflight.finish_ok(outcome);
            let resp = with_header(
                with_header(Json(resp).into_response(), INFERENCE_ID, &inference_id),
                "x-gardefou-model",
                &model,
            );
            with_headers(resp, &extra)
        }
        Err(e) => fail(inflight, e),
    }
}

fn model_entry(id: &str, description: Option<&str>) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "gardefou", "description": description})
}

/// `GET /v1/models`: the routes a caller may use.
/// Lists the routes the caller may call: every route, or those its key is scoped to.
pub async fn list_models(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let rt = state.runtime();
    let allowed = |n: &str| caller.key.as_ref().is_none_or(|k| crate::auth::route_allowed(&k.routes, n));
    let mut names: Vec<&String> = rt.routes.keys().filter(|n| allowed(n)).collect();
    names.sort();
    let data: Vec<_> =
        names.into_iter().map(|n| model_entry(n, rt.routes[n].config.description.as_deref())).collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// `GET /v1/models/{id}`
pub async fn get_model(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Response {
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let rt = state.runtime();
    let allowed = caller.key.as_ref().is_none_or(|k| crate::auth::route_allowed(&k.routes, &id));
    match rt.routes.get(&id).filter(|_| allowed) {
        Some(r) => Json(model_entry(&id, r.config.description.as_deref())).into_response(),
        None => ApiError(Error::NotFound {
            message: format!("The model `{id}` does not exist or you do not have access to it."),
            param: Some("model".to_owned()),
        })
        .into_response(),
    }
}

/// `GET /health`: the process is up.
pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /ready`: a config is live and the store answers.
pub async fn ready(State(state): State<AppState>) -> Response {
    let rt = state.runtime();
    match state.store().ping().await {
        Ok(()) => Json(json!({"status": "ready", "routes": rt.routes.len()})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": format!("store: {e}")})),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus / OpenMetrics text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics().sync_limiter(state.limits().limiter());
    let body = state.metrics().render(state.recorder());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError(Error::NotFound { message: format!("no such endpoint: {}", uri.path()), param: None })
        .into_response()
}
