//! `GET /admin/inferences/{id}`: one inference record, with its request and response bodies
//! when its route keeps them (`store_bodies`) and its online quality scores when it was
//! sampled. Viewers and up; a team-scoped caller sees only its team's inferences.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use gardefou_core::Error;
use gardefou_store::InferenceRecord;

use super::admin::authorize;
use super::error::ApiError;
use crate::auth::Need;
use crate::state::AppState;

/// `GET /admin/inferences/{id}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    match state.store().get_inference(&id).await {
        // Another team's inference is as unknown as a missing one.
        Ok(Some(rec)) if who.covers(rec.team.as_deref()) => {
            let mut v = record_json(&rec);
            match state.store().list_quality_scores(&id).await {
                Ok(scores) if !scores.is_empty() => {
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("quality".to_owned(), serde_json::to_value(scores).unwrap_or_default());
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(kind = e.kind(), error = %e, "quality scores lookup failed"),
            }
            Ok(Json(v))
        }
        Ok(_) => Err(Error::NotFound {
            message: format!("no inference `{id}` (unknown, not written yet, or expired)"),
            param: Some("id".to_owned()),
        }
        .into()),
        Err(e) => {
            tracing::error!(kind = e.kind(), error = %e, "inference lookup failed");
            Err(Error::Internal("the inference lookup failed".to_owned()).into())
        }
    }
}

/// A record as JSON, its bodies (stored as JSON text) inlined as JSON values.
pub fn record_json(rec: &InferenceRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    if let (Some(obj), Some(b)) = (v.as_object_mut(), &rec.bodies) {
        let parse =
            |s: &str| serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_owned()));
        obj.insert(
            "bodies".to_owned(),
            serde_json::json!({
                "request": parse(&b.request),
                "response": b.response.as_deref().map(parse),
            }),
        );
    }
    v
}
