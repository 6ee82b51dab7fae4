//! Admin endpoints for keys and the audit log:
//!
//! - `POST /admin/keys` (201, the secret shown once), `GET /admin/keys`, `GET /admin/keys/{id}`,
//!   `POST /admin/keys/{id}/rotate`, `POST /admin/keys/{id}/revoke` (also `DELETE`);
//! - `GET /admin/audit?limit=N`.
//!
//! Virtual keys need an operator (of the key's team) or an admin; admin keys need an admin.
//! Team-scoped callers see only their team's keys and audit entries; another team's key is a 404.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gardefou_core::Error;
use gardefou_store::{KeyKind, KeyRecord};
use serde_json::json;

use super::admin::authorize;
use super::error::ApiError;
use super::extract::AppJson;
use crate::auth::{AdminPrincipal, Need};
use crate::control::keys::{self, KeySpec};
use crate::state::AppState;

fn forbidden_team(team: Option<&str>) -> ApiError {
    Error::Forbidden(format!("this credential may not manage keys of team `{}`", team.unwrap_or("(none)")))
        .into()
}

/// 403 unless `who` may change `key` (its kind and team).
fn may_change(who: &AdminPrincipal, kind: KeyKind, team: Option<&str>) -> Result<(), ApiError> {
    if kind == KeyKind::Admin && who.role != crate::auth::Role::Admin {
        return Err(Error::Forbidden("only admins manage admin keys".to_owned()).into());
    }
    if !who.covers(team) {
        return Err(forbidden_team(team));
    }
    Ok(())
}

/// `POST /admin/keys`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<AppJson<KeySpec>, ApiError>,
) -> Result<Response, ApiError> {
    let who = authorize(&state, &headers, Need::Operate)?;
    let AppJson(mut spec) = body?;
    // An operator's keys belong to its team unless it says otherwise (and then it must match).
    if spec.team.is_none() {
        spec.team.clone_from(&who.team);
    }
    let record = keys::validate(&spec)?;
    may_change(&who, record.kind, record.team.as_deref())?;
    let issued = keys::create(state.store(), state.keys(), &who.actor, record).await?;
    let mut body = serde_json::to_value(&issued.record).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("key".to_owned(), json!(issued.secret));
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /admin/keys`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    let all = state.store().list_keys(who.team.as_deref()).await.map_err(|e| {
        tracing::error!(kind = e.kind(), error = %e, "key listing failed");
        ApiError(Error::Internal("the key store is unavailable".to_owned()))
    })?;
    Ok(Json(json!({"object": "list", "data": all})))
}

async fn visible(state: &AppState, who: &AdminPrincipal, id: &str) -> Result<KeyRecord, ApiError> {
    let key = keys::load(state.store(), id).await?;
    if !who.covers(key.team.as_deref()) {
        return Err(
            Error::NotFound { message: format!("no key `{id}`"), param: Some("id".to_owned()) }.into()
        );
    }
    Ok(key)
}

/// `GET /admin/keys/{id}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    Ok(Json(visible(&state, &who, &id).await?))
}

/// `POST /admin/keys/{id}/rotate`: a new secret, shown once; the old one stops working.
pub async fn rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Need::Operate)?;
    let key = visible(&state, &who, &id).await?;
    may_change(&who, key.kind, key.team.as_deref())?;
    let issued = keys::rotate(state.store(), state.keys(), &who.actor, &id).await?;
    let mut body = serde_json::to_value(&issued.record).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("key".to_owned(), json!(issued.secret));
    }
    Ok(Json(body))
}

/// `POST /admin/keys/{id}/revoke` and `DELETE /admin/keys/{id}`.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    let who = authorize(&state, &headers, Need::Operate)?;
    let key = visible(&state, &who, &id).await?;
    may_change(&who, key.kind, key.team.as_deref())?;
    Ok(Json(keys::revoke(state.store(), state.keys(), &who.actor, &id).await?))
}

/// `GET /admin/audit?limit=N` (default 100, at most 1000), newest first.
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    let limit = match params.get("limit") {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(Error::invalid_param("`limit` must be between 1 and 1000", "limit").into()),
        },
    };
    if let Some(other) = params.keys().find(|k| k.as_str() != "limit") {
        return Err(Error::invalid_param(format!("unknown parameter `{other}`"), other.clone()).into());
    }
    let entries = state.store().list_audit(who.team.as_deref(), limit).await.map_err(|e| {
        tracing::error!(kind = e.kind(), error = %e, "audit listing failed");
        ApiError(Error::Internal("the audit log is unavailable".to_owned()))
    })?;
    Ok(Json(json!({"object": "list", "data": entries})))
}
