//! Endpoints of the human review queue:
//!
//! - reviewers (admin plane): `GET /admin/escalations?status=open&team=T&limit=N`,
//!   `GET /admin/escalations/{id}` (viewers and up), `POST /admin/escalations/{id}/claim`,
//!   `POST /admin/escalations/{id}/answer` with `{"answer": "…"}`,
//!   `POST /admin/escalations/{id}/close` (operators and up), and
//!   `GET /admin/escalations/export?status=answered` (viewers and up): eval cases as JSON lines.
//!   A team-scoped caller sees and works only its team's escalations; another team's is a 404.
//! - the client: `GET /v1/escalations/{id}`, the status and, once answered, the answer.
//!
//! The client endpoint answers the virtual key that opened the escalation, and nobody else (404,
//! as for an unknown id). An escalation opened without a key is readable by whoever holds its
//! id: ids are UUID v7, whose first 48 bits are the creation time but whose other 74 bits are
//! random, so an id cannot be guessed from another one or from the time.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gardefou_core::Error;
use gardefou_store::{Escalation, EscalationFilter, EscalationStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::authorize;
use super::error::ApiError;
use super::extract::AppJson;
use crate::auth::{AdminPrincipal, Need};
use crate::control::escalations::{client_view, export_case, parse_status, Queue};
use crate::pipeline::record::Caller;
use crate::state::AppState;

const MAX_LIST: u32 = 1000;
const MAX_EXPORT: u32 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    pub answer: String,
}

fn not_found(id: &str) -> ApiError {
    Error::NotFound { message: format!("no escalation `{id}`"), param: Some("id".to_owned()) }.into()
}

/// The escalation `id` if `who` may see it; another team's is as unknown as a missing one.
async fn visible(queue: &Queue, who: &AdminPrincipal, id: &str) -> Result<Escalation, ApiError> {
    let e = queue.load(id).await?;
    if !who.covers(e.team.as_deref()) {
        return Err(not_found(id));
    }
    Ok(e)
}

/// `status`, `team` and `limit` of a listing or an export; the team is the caller's own when it
/// is scoped to one. Unknown parameters are a 400.
fn filter(
    who: &AdminPrincipal,
    params: &HashMap<String, String>,
    default_status: Option<EscalationStatus>,
    max: u32,
) -> Result<EscalationFilter, ApiError> {
    if let Some(other) = params.keys().find(|k| !matches!(k.as_str(), "status" | "team" | "limit")) {
        return Err(Error::invalid_param(format!("unknown parameter `{other}`"), other.clone()).into());
    }
    let status = match params.get("status").map(String::as_str) {
        None => default_status,
        Some("all") => None,
        Some(s) => Some(parse_status(s)?),
    };
    let limit = match params.get("limit") {
        None => 0,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(
                    Error::invalid_param(format!("`limit` must be between 1 and {max}"), "limit").into()
                )
            }
        },
    };
    let team = match (params.get("team"), &who.team) {
        (Some(t), _) if !who.covers(Some(t)) => {
            return Err(
                Error::Forbidden(format!("this credential may not read escalations of team `{t}`")).into()
            )
        }
        (Some(t), _) => Some(t.clone()),
        (None, mine) => mine.clone(),
    };
    Ok(EscalationFilter { status, team, limit })
}

/// `GET /admin/escalations`: oldest first; every status unless `status` says which (or `all`).
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    let f = filter(&who, &params, None, MAX_LIST)?;
    let all = Queue::of(&state).list(&f).await?;
    Ok(Json(json!({"object": "list", "data": all})))
}

/// `GET /admin/escalations/{id}`: everything, the conversation included.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Escalation>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    Ok(Json(visible(&Queue::of(&state), &who, &id).await?))
}

/// `POST /admin/escalations/{id}/claim`: only an open escalation can be claimed.
pub async fn claim(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Escalation>, ApiError> {
    let who = authorize(&state, &headers, Need::Operate)?;
    let queue = Queue::of(&state);
    visible(&queue, &who, &id).await?;
    Ok(Json(queue.claim(&who.actor, &id).await?))
}

/// `POST /admin/escalations/{id}/answer` with `{"answer": "…"}`: an open or claimed one.
pub async fn answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<AppJson<AnswerBody>, ApiError>,
) -> Result<Json<Escalation>, ApiError> {
    let who = authorize(&state, &headers, Need::Operate)?;
    let AppJson(body) = body?;
    let queue = Queue::of(&state);
    visible(&queue, &who, &id).await?;
    Ok(Json(queue.answer(&who.actor, &id, &body.answer).await?))
}

/// `POST /admin/escalations/{id}/close`: anything not closed yet.
pub async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Escalation>, ApiError> {
    let who = authorize(&state, &headers, Need::Operate)?;
    let queue = Queue::of(&state);
    visible(&queue, &who, &id).await?;
    Ok(Json(queue.close(&who.actor, &id).await?))
}

/// `GET /admin/escalations/export?status=answered`: one eval case per line
/// (`control::escalations::export_case`), for escalations that carry an answer. `eval run` does
/// not read these lines: `gardefou eval export --from escalations` writes a suite it runs.
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    let f = filter(&who, &params, Some(EscalationStatus::Answered), MAX_EXPORT)?;
    let f = EscalationFilter { limit: if f.limit == 0 { MAX_EXPORT } else { f.limit }, ..f };
    let mut out = String::new();
    for e in Queue::of(&state).list(&f).await?.iter().filter(|e| e.answer.is_some()) {
        out.push_str(&export_case(e).to_string());
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], out).into_response())
}

/// `GET /v1/escalations/{id}`: the status and, once answered, the answer — for the key that
/// opened it, or for anyone holding the id of one opened without a key.
pub async fn client_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = Queue::of(&state).load(&id).await?;
    match (&e.key_id, &caller.key_id) {
        (None, _) => {}
        (Some(owner), Some(presented)) if owner == presented => {}
        _ => return Err(not_found(&id)),
    }
    Ok(Json(client_view(&e)))
}
