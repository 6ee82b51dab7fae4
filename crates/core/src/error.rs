//! The one error type of a request's life. Each variant says its HTTP status; errors know whose
//! fault they are, whether a retry may help, and a short label for metrics.

use std::time::Duration;

/// Who caused an error: the caller, an upstream provider, or gardefou itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Provider,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Error {
    /// 400: the request is malformed or asks for something invalid.
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String> },
    /// 401: no or an unknown credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: the credential may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown route, model or path.
    #[error("{message}")]
    NotFound { message: String, param: Option<String> },
    /// 408: the client was too slow sending its request.
    #[error("request timed out")]
    RequestTimeout,
    /// 413: the body is over the configured limit.
    #[error("request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    /// 429: the provider (or a limit) refused for now; `retry_after` is passed on to the client.
    #[error("rate limited by {provider}: {message}")]
    RateLimited { provider: String, message: String, retry_after: Option<Duration> },
    /// 429: a gardefou limit refused the request — `code` is `rate_limit_exceeded` or
    /// `budget_exceeded`; the message names the limit and when it resets. Never retried.
    #[error("{message}")]
    LimitExceeded { code: &'static str, message: String, retry_after: Option<Duration> },
    /// 400: a guard blocked the request (`direction` "input") or the answer ("output"). Names
    /// the guard and the finding types, never the matched text.
    #[error("The {direction} was blocked by the `{guard}` guard ({kinds}).")]
    GuardrailViolation { guard: String, kinds: String, direction: &'static str },
    /// 400 (or the provider's 4xx): the provider rejected the request as invalid.
    #[error("{provider} rejected the request: {message}")]
    ProviderRejected { provider: String, status: u16, message: String },
    /// 502: the provider refused gardefou's credentials (a configuration problem).
    #[error("{provider} refused the configured credentials (status {status})")]
    ProviderAuth { provider: String, status: u16 },
    /// 502: the provider answered with a server error.
    #[error("{provider} failed with status {status}: {message}")]
    ProviderServer { provider: String, status: u16, message: String, retry_after: Option<Duration> },
    /// 502: the provider could not be reached.
    #[error("could not reach {provider}: {message}")]
    Connect { provider: String, message: String },
    /// 502: the provider sent something that is not its documented format, or broke off a stream.
    #[error("{provider} sent an invalid response: {message}")]
    BadResponse { provider: String, message: String },
    /// 504: the provider did not answer within the route's deadline.
    #[error("{provider} timed out waiting for {phase}")]
    Timeout { provider: String, phase: &'static str },
    /// 503: no target could take the request (all circuits open or none configured).
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected state inside gardefou.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest { message: message.into(), param: None }
    }

    pub fn invalid_param(message: impl Into<String>, param: impl Into<String>) -> Self {
        Error::InvalidRequest { message: message.into(), param: Some(param.into()) }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidRequest { .. } | Error::GuardrailViolation { .. } => 400,
            Error::Unauthenticated(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound { .. } => 404,
            Error::RequestTimeout => 408,
            Error::PayloadTooLarge { .. } => 413,
            Error::RateLimited { .. } | Error::LimitExceeded { .. } => 429,
            Error::ProviderRejected { status, .. } => match status {
                400..=499 if *status != 401 && *status != 403 => *status,
                _ => 400,
            },
            Error::ProviderAuth { .. }
            | Error::ProviderServer { .. }
            | Error::Connect { .. }
            | Error::BadResponse { .. } => 502,
            Error::Timeout { .. } => 504,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            Error::InvalidRequest { .. }
            | Error::Unauthenticated(_)
            | Error::Forbidden(_)
            | Error::NotFound { .. }
            | Error::RequestTimeout
            | Error::PayloadTooLarge { .. }
            | Error::LimitExceeded { .. }
            | Error::GuardrailViolation { .. }
            | Error::ProviderRejected { .. } => Fault::Client,
            Error::RateLimited { .. }
            | Error::ProviderAuth { .. }
            | Error::ProviderServer { .. }
            | Error::Connect { .. }
            | Error::BadResponse { .. }
            | Error::Timeout { .. }
            | Error::Unavailable(_) => Fault::Provider,
            Error::Internal(_) => Fault::Internal,
        }
    }

    /// Whether the same request may succeed on a retry or on another target.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::RateLimited { .. }
                | Error::ProviderServer { .. }
                | Error::Connect { .. }
                | Error::BadResponse { .. }
                | Error::Timeout { .. }
                | Error::ProviderAuth { .. }
        )
    }

    /// Whether the error counts against a target's health (circuit breaker).
    pub fn is_target_failure(&self) -> bool {
        self.is_retryable() && !matches!(self, Error::RateLimited { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. }
            | Error::ProviderServer { retry_after, .. }
            | Error::LimitExceeded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound { .. } => "not_found",
            Error::RequestTimeout => "request_timeout",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::LimitExceeded { code, .. } => code,
            Error::GuardrailViolation { .. } => "guardrail_violation",
            Error::ProviderRejected { .. } => "provider_rejected",
            Error::ProviderAuth { .. } => "provider_auth",
            Error::ProviderServer { .. } => "provider_error",
            Error::Connect { .. } => "connect",
            Error::BadResponse { .. } => "bad_response",
            Error::Timeout { .. } => "timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// OpenAI's `error.type` for this error.
    pub fn openai_type(&self) -> &'static str {
        match self.status() {
            400 | 404 | 408 | 413 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            500 => "server_error",
            _ => "api_error",
        }
    }

    pub fn param(&self) -> Option<&str> {
        match self {
            Error::InvalidRequest { param, .. } | Error::NotFound { param, .. } => param.as_deref(),
            _ => None,
        }
    }

    /// The error in OpenAI's shape: `{"error":{"message","type","param","code"}}`.
    pub fn to_openai_json(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.to_string(),
                "type": self.openai_type(),
                "param": self.param(),
                "code": self.kind(),
            }
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_shapes() {
        let e = Error::invalid_param("messages must not be empty", "messages");
        assert_eq!(e.status(), 400);
        let j = e.to_openai_json();
        assert_eq!(j["error"]["type"], "invalid_request_error");
        assert_eq!(j["error"]["param"], "messages");
        assert_eq!(j["error"]["code"], "invalid_request");

        let rl = Error::RateLimited {
            provider: "openai".into(),
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(rl.status(), 429);
        assert!(rl.is_retryable());
        assert!(!rl.is_target_failure());
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(3)));

        let rej = Error::ProviderRejected { provider: "p".into(), status: 422, message: "m".into() };
        assert_eq!(rej.status(), 422);
        assert!(!rej.is_retryable());
        assert_eq!(Error::ProviderAuth { provider: "p".into(), status: 401 }.status(), 502);
        assert_eq!(Error::Timeout { provider: "p".into(), phase: "first byte" }.status(), 504);
    }
}
