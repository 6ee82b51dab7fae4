//! Errors in Anthropic's shape: the `error.type` of a gardefou error, the JSON error body, and
//! the `error` event that ends a broken stream.

use serde_json::{json, Value};

use super::wire::StreamEvent;
use crate::Error;

/// Anthropic's `error.type` for an error, by the HTTP status gardefou answers with (a provider's
/// 503/529 is `overloaded_error` although gardefou answers 502).
pub fn error_type(e: &Error) -> &'static str {
    if let Error::ProviderServer { status: 503 | 529, .. } = e {
        return "overloaded_error";
    }
    match e.status() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The error in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
pub fn error_json(e: &Error) -> Value {
    json!({"type": "error", "error": {"type": error_type(e), "message": e.to_string()}})
}

impl StreamEvent {
    /// The `error` event that ends a stream broken after its first byte.
    pub fn error(e: &Error) -> StreamEvent {
        StreamEvent::Error { error: error_json(e)["error"].clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_anthropic_types() {
        let cases = [
            (Error::invalid("x"), "invalid_request_error"),
            (Error::NotFound { message: "m".into(), param: None }, "not_found_error"),
            (Error::PayloadTooLarge { limit: 1 }, "request_too_large"),
            (
                Error::RateLimited { provider: "p".into(), message: "m".into(), retry_after: None },
                "rate_limit_error",
            ),
            (Error::Unavailable("none".into()), "overloaded_error"),
            (
                Error::ProviderServer {
                    provider: "p".into(),
                    status: 529,
                    message: "m".into(),
                    retry_after: None,
                },
                "overloaded_error",
            ),
            (Error::Connect { provider: "p".into(), message: "m".into() }, "api_error"),
            (Error::Unauthenticated("k".into()), "authentication_error"),
        ];
        for (e, t) in cases {
            assert_eq!(
                error_json(&e),
                json!({"type": "error", "error": {"type": t, "message": e.to_string()}})
            );
        }
    }
}
