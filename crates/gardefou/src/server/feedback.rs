//! Feedback endpoints:
//!
//! - `POST /v1/feedback` with `{"inference_id", "name", "value", "comment", "source"}`: a score
//!   on one inference, 201 with the stored score. A client key scores the inferences made with
//!   that same key; an admin credential (operator or admin role) those of its team scope (the
//!   admin token: any); a call without a key (when keys are optional) those made without one,
//!   unless the admin plane is open (no admin token, keys optional): it is then an admin.
//!   `source: "reviewer"` needs an admin credential: a client key asking for it is a 403, before
//!   any lookup. An unknown inference and one the caller may not see are the same 404. The
//!   recorder writes inferences off the request path, so the lookup is retried for up to
//!   [`LOOKUP_WAIT`] before answering 404. Feedback never goes through the model pipeline and
//!   is not rate-limited as a model call.
//! - `GET /admin/feedback?inference_id=ID` and
//!   `GET /admin/feedback/summary?from=&to=&since=&group_by=route,name&name=&team=` (viewers
//!   and up): a team-scoped caller sees only its team's scores.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gardefou_core::Error;
use gardefou_store::{
    FeedbackDimension, FeedbackQuery, FeedbackSource, FeedbackSummary, InferenceRecord, KeyKind, KeyRecord,
    StoreError,
};
use serde_json::{json, Map, Value};

use super::admin::authorize;
use super::error::ApiError;
use super::extract::AppJson;
use super::usage::{check_params, group_by, time_range};
use crate::auth::{authorize_admin, now_ms, AdminPrincipal, KeyRefusal, Need};
use crate::control::feedback::{parse, to_json, to_row};
use crate::state::AppState;

/// How long `POST /v1/feedback` waits for an inference the recorder has not written yet.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(2);
const LOOKUP_EVERY: Duration = Duration::from_millis(100);
const SUMMARY_PARAMS: [&str; 6] = ["since", "from", "to", "group_by", "name", "team"];
const DEFAULT_SINCE_MS: i64 = 86_400_000;

/// Who posts a score.
enum Poster {
    /// A client key: its own inferences.
    Key(Arc<KeyRecord>),
    /// An admin credential (operator or admin): its team scope's inferences.
    Admin(AdminPrincipal),
    /// No key, keys optional: inferences made without a key.
    Anonymous,
}

impl Poster {
    fn may_see(&self, rec: &InferenceRecord) -> bool {
        match self {
            Poster::Key(k) => rec.key_id.as_deref() == Some(k.id.as_str()),
            Poster::Admin(who) => who.covers(rec.team.as_deref()),
            Poster::Anonymous => rec.key_id.is_none(),
        }
    }

    /// The key recorded as the poster: the client key, or the admin key (none for the token).
    fn key_id(&self) -> Option<String> {
        match self {
            Poster::Key(k) => Some(k.id.clone()),
            Poster::Admin(who) => who.actor.strip_prefix("key:").map(str::to_owned),
            Poster::Anonymous => None,
        }
    }
}

/// The poster of `headers`: a client key (`Authorization: Bearer gf_…` or `x-api-key`), else an
/// admin credential (the admin token or an admin key, as a bearer), else anonymous when keys
/// are optional. A wrong, revoked or expired key is a 401; an admin key below operator a 403.
fn poster(state: &AppState, headers: &HeaderMap) -> Result<Poster, Error> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let presented = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok())).map(str::trim);
    let required = state.runtime().config.server.require_keys;
    let as_admin = || match authorize_admin(state, headers, Need::Operate) {
        Ok(who) => Ok(Poster::Admin(who)),
        Err(e @ Error::Forbidden(_)) => Err(e),
        Err(_) => Err(Error::Unauthenticated(KeyRefusal::Invalid.message().to_owned())),
    };
    match presented {
        Some(p) if p.starts_with("gf_") => match state.keys().check(p, KeyKind::Api, now_ms()) {
            Ok(k) => Ok(Poster::Key(k)),
            // An admin key, as a bearer.
            Err(KeyRefusal::Invalid) if bearer.is_some() => as_admin(),
            Err(KeyRefusal::Invalid) => Err(Error::Unauthenticated(KeyRefusal::Invalid.message().to_owned())),
            Err(refusal) => Err(Error::Unauthenticated(refusal.message().to_owned())),
        },
        // The admin token, or (no admin token, keys optional) the open admin plane.
        _ => match as_admin() {
            Ok(p) => Ok(p),
            Err(e @ Error::Forbidden(_)) => Err(e),
            Err(e) if required => Err(match presented {
                Some(_) => e,
                None => Error::Unauthenticated(
                    "You didn't provide an API key. Send it as `Authorization: Bearer gf_…`.".to_owned(),
                ),
            }),
            Err(_) => Ok(Poster::Anonymous),
        },
    }
}

fn not_found(id: &str) -> ApiError {
    Error::NotFound {
        message: format!("no inference `{id}` (unknown, not visible with this credential, or expired)"),
        param: Some("inference_id".to_owned()),
    }
    .into()
}

fn internal(e: &StoreError, what: &str) -> ApiError {
    tracing::error!(kind = e.kind(), error = %e, "{what} failed");
    Error::Internal(format!("the {what} failed")).into()
}

/// The inference `id` if `poster` may score it, waiting up to [`LOOKUP_WAIT`] for the recorder.
async fn lookup(state: &AppState, poster: &Poster, id: &str) -> Result<InferenceRecord, ApiError> {
    let deadline = tokio::time::Instant::now() + LOOKUP_WAIT;
    loop {
        match state.store().get_inference(id).await {
            Ok(Some(rec)) if poster.may_see(&rec) => return Ok(rec),
            // Stored but not the caller's: the same answer as unknown, without the wait.
            Ok(Some(_)) => return Err(not_found(id)),
            Ok(None) if tokio::time::Instant::now() + LOOKUP_EVERY > deadline => return Err(not_found(id)),
            Ok(None) => tokio::time::sleep(LOOKUP_EVERY).await,
            Err(e) => return Err(internal(&e, "inference lookup")),
        }
    }
}

/// `POST /v1/feedback`.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<AppJson<Map<String, Value>>, ApiError>,
) -> Result<Response, ApiError> {
    let poster = poster(&state, &headers)?;
    let AppJson(body) = body?;
    let new = parse(&body)?;
    if new.source == FeedbackSource::Reviewer && !matches!(poster, Poster::Admin(_)) {
        return Err(Error::Forbidden(
            "`source: reviewer` needs an admin credential (operator or admin role)".to_owned(),
        )
        .into());
    }
    let rec = lookup(&state, &poster, &new.inference_id).await?;
    let row = to_row(new, &rec, poster.key_id(), now_ms());
    if let Err(e) = state.store().insert_feedback(&row).await {
        return Err(internal(&e, "feedback insert"));
    }
    state.metrics().feedback(&row.name, row.kind.as_str(), row.source.as_str());
    Ok((StatusCode::CREATED, Json(to_json(&row))).into_response())
}

/// `GET /admin/feedback?inference_id=ID`: the scores of one inference, oldest first.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    if let Some(other) = params.keys().find(|k| k.as_str() != "inference_id") {
        return Err(Error::invalid_param(format!("unknown parameter `{other}`"), other.clone()).into());
    }
    let Some(id) = params.get("inference_id").filter(|v| !v.trim().is_empty()) else {
        return Err(Error::invalid_param("`inference_id` is required", "inference_id").into());
    };
    let all = state.store().list_feedback(id).await.map_err(|e| internal(&e, "feedback listing"))?;
    let data: Vec<Value> = all.iter().filter(|f| who.covers(f.team.as_deref())).map(to_json).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /admin/feedback/summary`: counts, means and category counts per group.
pub async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<FeedbackSummary>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    let mut q = summary_query(&params, now_ms())?;
    if let Some(team) = &who.team {
        match &q.team {
            Some(asked) if asked != team => {
                return Err(Error::Forbidden(format!("this credential may only read team `{team}`")).into())
            }
            _ => q.team = Some(team.clone()),
        }
    }
    match state.store().feedback_summary(&q).await {
        Ok(s) => Ok(Json(s)),
        Err(StoreError::InvalidUsageQuery { param, message }) => {
            Err(Error::invalid_param(message, param).into())
        }
        Err(e) => Err(internal(&e, "feedback summary")),
    }
}

/// The summary query of `params`: `since` (a duration) or `from` (RFC 3339 or unix ms), `to`
/// (default now), the last 24 hours when neither is given; `group_by`, `name`, `team`.
pub fn summary_query(params: &HashMap<String, String>, now: i64) -> Result<FeedbackQuery, Error> {
    check_params(params, &SUMMARY_PARAMS)?;
    let (from_ms, to_ms) = time_range(params, now, Some(DEFAULT_SINCE_MS))?;
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.trim().is_empty());
    let group_by = group_by::<FeedbackDimension>(get("group_by"))?;
    Ok(FeedbackQuery {
        from_ms,
        to_ms,
        group_by,
        name: get("name").map(str::to_owned),
        team: get("team").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<FeedbackQuery, Error> {
        let params = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        summary_query(&params, 1_000_000_000)
    }

    #[test]
    fn summary_parameters_become_a_query_or_a_400_naming_the_parameter() {
        let d = q(&[]).unwrap();
        assert_eq!(
            (d.from_ms, d.to_ms, d.group_by.len()),
            (1_000_000_000 - DEFAULT_SINCE_MS, 1_000_000_000, 0)
        );
        let ok = q(&[("since", "1h"), ("group_by", "route,name"), ("name", "helpful")]).unwrap();
        assert_eq!(ok.group_by, [FeedbackDimension::Route, FeedbackDimension::Name]);
        assert_eq!((ok.from_ms, ok.name.as_deref()), (1_000_000_000 - 3_600_000, Some("helpful")));
        for (bad, param) in [
            (&[("since", "1y")][..], "since"),
            (&[("from", "yesterday")][..], "from"),
            (&[("group_by", "colour")][..], "group_by"),
            (&[("since", "1h"), ("from", "0")][..], "since"),
            (&[("bucket", "hour")][..], "bucket"),
        ] {
            let err = q(bad).unwrap_err();
            assert_eq!((err.status(), err.param()), (400, Some(param)), "{bad:?}");
        }
    }
}
