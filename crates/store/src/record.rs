//! The stored nouns: one `InferenceRecord` per answered request, its `Attempt`s, and the
//! `LogFilter` that `gardefou logs` queries with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One request answered by the gateway. Holds no prompt, no completion and no key: only ids,
/// labels, counts, cost and timing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct InferenceRecord {
    /// uuid v7 text, primary key.
    pub id: String,
    /// Unix milliseconds when the request arrived.
    pub created_at_ms: i64,
    pub request_id: String,
    /// `"chat"` or `"embeddings"`.
    pub endpoint: String,
    /// `None` when the route was unknown.
    pub route: Option<String>,
    /// The model that answered (or was tried last).
    pub model: Option<String>,
    pub provider: Option<String>,
    pub key_id: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
    pub end_user: Option<String>,
    /// HTTP status returned to the client.
    pub status: u16,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub stream: bool,
    pub input_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    /// Counted by gardefou because the provider gave no usage.
    pub tokens_estimated: bool,
    /// `None` = unknown price (never a silent 0).
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub finish_reason: Option<String>,
    /// Every provider call made for this request, in order; stored as JSON text.
    pub attempts: Vec<Attempt>,
    /// Free-form labels; stored as JSON text.
    pub tags: BTreeMap<String, String>,
    /// The request and response bodies, only when the route keeps them (`store_bodies`);
    /// stored in their own table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bodies: Option<Bodies>,
}

/// The bodies of one inference, as JSON text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Bodies {
    /// The request as gardefou understood it (canonical OpenAI chat shape).
    pub request: String,
    /// The answer; `None` when there was none (an error, a client gone early).
    pub response: Option<String>,
}

/// One call to one provider while answering a request (fallbacks and retries add more).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Attempt {
    pub model: String,
    pub provider: String,
    /// `None` when no HTTP response came back (connect error, timeout).
    pub status: Option<u16>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub latency_ms: f64,
}

/// What `gardefou logs` asks for. Every set field narrows the result; rows come newest first.
#[derive(Default, Clone, Debug)]
pub struct LogFilter {
    pub route: Option<String>,
    pub model: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
    /// Only records created at or after this unix millisecond.
    pub since_ms: Option<i64>,
    /// Only records whose status is 400 or more, or that carry an `error_kind` (a stream that
    /// failed after its 200 was sent).
    pub errors_only: bool,
    /// At most this many rows; 0 means [`LogFilter::DEFAULT_LIMIT`].
    pub limit: u32,
}

impl LogFilter {
    /// The row limit used when `limit` is 0.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The limit to apply: `limit`, or [`LogFilter::DEFAULT_LIMIT`] when it is 0.
    pub fn effective_limit(&self) -> u32 {
        if self.limit == 0 {
            Self::DEFAULT_LIMIT
        } else {
            self.limit
        }
    }
}
