//! Google API errors (`{"error":{"code","message","status","details"}}`) → the gateway's error,
//! for an HTTP status and for an error object inside a 200 stream.
//!
//! 429 / RESOURCE_EXHAUSTED → RateLimited (the `retry-after` header, else `RetryInfo.retryDelay`
//! of `details`); 401, 403, UNAUTHENTICATED, PERMISSION_DENIED and a 400 whose `ErrorInfo` says
//! API_KEY_INVALID → ProviderAuth; 504 / DEADLINE_EXCEEDED → Timeout; 408, 409 and 5xx →
//! ProviderServer; other 4xx (400 INVALID_ARGUMENT, 404 NOT_FOUND, …) → ProviderRejected.

use std::time::Duration;

use gardefou_core::Error;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::http;

/// Maps a non-success status and its body.
pub(crate) fn from_status(provider: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    // Streamed requests may get the error wrapped in an array.
    let first = match &parsed {
        Some(Value::Array(items)) => items.first(),
        other => other.as_ref(),
    };
    let err = first.and_then(|v| v.get("error"));
    let message = match err.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(m) => http::error_message(m.as_bytes()),
        None => http::error_message(body),
    };
    classify(provider, status, err, message, http::retry_after(headers))
}

/// Maps the `error` object of a stream event (or of a 200 body): the status comes from its `code`,
/// else from its `status` name.
pub(crate) fn from_object(provider: &str, err: &Value) -> Error {
    let name = err.get("status").and_then(Value::as_str).unwrap_or("");
    let status = err
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..600).contains(c))
        .unwrap_or_else(|| status_of(name));
    let message = match err.get("message").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => http::error_message(m.as_bytes()),
        _ => "the upstream reported an error".to_owned(),
    };
    classify(provider, status, Some(err), message, None)
}

/// The HTTP status of a `google.rpc.Code` name.
fn status_of(name: &str) -> u16 {
    match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "ABORTED" | "ALREADY_EXISTS" => 409,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    }
}

fn classify(
    provider: &str,
    status: u16,
    err: Option<&Value>,
    message: String,
    header: Option<Duration>,
) -> Error {
    let provider = provider.to_owned();
    let name = err.and_then(|e| e.get("status")).and_then(Value::as_str).unwrap_or("");
    let details: &[Value] =
        err.and_then(|e| e.get("details")).and_then(Value::as_array).map_or(&[], Vec::as_slice);
    if status == 429 || name == "RESOURCE_EXHAUSTED" {
        return Error::RateLimited {
            provider,
            message,
            retry_after: header.or_else(|| retry_delay(details)),
        };
    }
    if matches!(status, 401 | 403)
        || matches!(name, "UNAUTHENTICATED" | "PERMISSION_DENIED")
        || key_invalid(details)
    {
        return Error::ProviderAuth {
            provider,
            status: if matches!(status, 401 | 403) { status } else { 401 },
        };
    }
    match status {
        504 => Error::Timeout { provider, phase: "upstream deadline" },
        408 | 409 | 500..=599 => Error::ProviderServer { provider, status, message, retry_after: header },
        400..=499 => Error::ProviderRejected { provider, status, message },
        _ => Error::BadResponse { provider, message: format!("unexpected status {status}") },
    }
}

fn is_type(detail: &Value, suffix: &str) -> bool {
    detail.get("@type").and_then(Value::as_str).is_some_and(|t| t.ends_with(suffix))
}

/// `RetryInfo.retryDelay`, a protobuf duration such as `"7s"` or `"45.837906927s"`.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details.iter().filter(|d| is_type(d, "google.rpc.RetryInfo")).find_map(|d| {
        let text = d.get("retryDelay")?.as_str()?.trim().strip_suffix('s')?;
        let secs = text.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
        Some(Duration::from_secs_f64(secs))
    })
}

/// The Gemini API answers a wrong key with 400 INVALID_ARGUMENT and `ErrorInfo.reason`
/// API_KEY_INVALID: a credentials problem, not the client's request.
fn key_invalid(details: &[Value]) -> bool {
    details.iter().any(|d| {
        is_type(d, "google.rpc.ErrorInfo")
            && d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn statuses_and_names_map_onto_errors() {
        let h = HeaderMap::new();
        let e = from_status(
            "g",
            400,
            &h,
            &body(json!({"error": {"code": 400, "message": "bad field",
            "status": "INVALID_ARGUMENT"}})),
        );
        assert_eq!(
            e,
            Error::ProviderRejected { provider: "g".into(), status: 400, message: "bad field".into() }
        );
        let e = from_status(
            "g",
            400,
            &h,
            &body(json!({"error": {"code": 400, "message": "API key not valid.",
            "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}})),
        );
        assert_eq!(e, Error::ProviderAuth { provider: "g".into(), status: 401 });
        let e = from_status("g", 403, &h, b"nope");
        assert_eq!(e, Error::ProviderAuth { provider: "g".into(), status: 403 });
        let e = from_status(
            "g",
            404,
            &h,
            &body(json!([{"error": {"code": 404, "message": "no such model",
            "status": "NOT_FOUND"}}])),
        );
        assert_eq!(
            e,
            Error::ProviderRejected { provider: "g".into(), status: 404, message: "no such model".into() }
        );
        let e = from_status(
            "g",
            503,
            &h,
            &body(json!({"error": {"code": 503, "message": "overloaded",
            "status": "UNAVAILABLE"}})),
        );
        assert!(
            matches!(e, Error::ProviderServer { status: 503, ref message, .. } if message == "overloaded")
        );
        assert_eq!(
            from_status("g", 504, &h, b""),
            Error::Timeout { provider: "g".into(), phase: "upstream deadline" }
        );
    }

    #[test]
    fn retry_delay_is_read_from_retry_info_unless_a_header_says() {
        let err = json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "45.5s"}]}});
        let e = from_status("g", 429, &HeaderMap::new(), &body(err.clone()));
        assert_eq!(e.retry_after(), Some(Duration::from_millis(45_500)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", reqwest::header::HeaderValue::from_static("3"));
        assert_eq!(from_status("g", 429, &h, &body(err)).retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn stream_error_objects_use_code_or_status_name() {
        let e = from_object("g", &json!({"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}));
        assert!(matches!(e, Error::RateLimited { .. }));
        let e = from_object("g", &json!({"message": "gone", "status": "INTERNAL"}));
        assert!(matches!(e, Error::ProviderServer { status: 500, .. }));
        let e = from_object("g", &json!({"message": "bad", "status": "INVALID_ARGUMENT"}));
        assert!(matches!(e, Error::ProviderRejected { status: 400, .. }));
    }
}
