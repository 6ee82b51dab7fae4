//! Errors at the HTTP edge: every error leaves in OpenAI's shape with its status, a Retry-After
//! when known, and is logged once here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gardefou_core::{Error, Fault};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        match e.fault() {
            Fault::Internal => tracing::error!(kind = e.kind(), error = %e, "request failed"),
            Fault::Provider => tracing::warn!(kind = e.kind(), error = %e, "request failed"),
            Fault::Client => tracing::debug!(kind = e.kind(), error = %e, "request refused"),
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(e.to_openai_json())).into_response();
        if let Some(after) = e.retry_after() {
            let secs = after.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&after.as_millis().to_string()) {
                resp.headers_mut().insert("retry-after-ms", v);
            }
        }
        resp
    }
}
