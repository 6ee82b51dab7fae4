//! The config file as written: serde types that mirror the TOML, spans kept for error positions.
//! Nothing here is checked beyond its syntax; `super::validate` turns it into a `Config`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub providers: BTreeMap<Spanned<String>, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<Spanned<String>, RawModel>,
    #[serde(default)]
    pub routes: BTreeMap<Spanned<String>, RawRoute>,
    /// Absent = no trace export at all.
    pub telemetry: Option<Spanned<RawTelemetry>>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Per-team rate limits.
    #[serde(default)]
    pub teams: BTreeMap<Spanned<String>, RawRateLimits>,
    #[serde(default)]
    pub budgets: BTreeMap<Spanned<String>, RawBudget>,
    /// Named guard policies (the guard crate's `PolicyConfig`, checked when validated).
    #[serde(default)]
    pub guards: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// `guards = { input = "strict", output = "pii", on_error = "block", restore = true }` on a route.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRouteGuards {
    pub input: Option<Spanned<String>>,
    pub output: Option<Spanned<String>>,
    /// `"block"` (default) or `"allow"` when a guard fails internally.
    pub on_error: Option<Spanned<String>>,
    /// Put the originals of input placeholders (`[EMAIL_1]`) back into the answer.
    pub restore: Option<bool>,
    /// Plant a canary token in the system prompt and block answers that leak it.
    pub canary: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// `"fail_open"` (count locally, loudly) or `"fail_closed"` (503).
    pub on_redis_error: Option<Spanned<String>>,
    pub redis_prefix: Option<String>,
    pub default_max_output_tokens: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub rpm: Option<Spanned<i64>>,
    pub tpm: Option<Spanned<i64>>,
    pub max_cost_usd: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub scope: Spanned<String>,
    pub limit_usd: Spanned<f64>,
    pub window: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub downgrade_to: Option<Spanned<String>>,
    #[serde(default)]
    pub alert_at: Vec<Spanned<f64>>,
    pub webhook: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub admin_token: Option<Spanned<String>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub body_read_timeout: Option<Spanned<String>>,
    /// `true`: every API call needs a virtual key (401 without one).
    pub require_keys: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub database_url: Option<Spanned<String>>,
    pub queue_capacity: Option<Spanned<i64>>,
    pub batch_size: Option<Spanned<i64>>,
    pub flush_interval: Option<Spanned<String>>,
    /// `"wait"` (block the recording for at most `full_wait`) or `"drop"` (drop and count).
    pub on_full: Option<Spanned<String>>,
    pub full_wait: Option<Spanned<String>>,
    /// e.g. `"30d"`; unset = keep inferences forever.
    pub retention: Option<Spanned<String>>,
    pub retention_batch: Option<Spanned<i64>>,
    /// e.g. `"400d"`: how long the hourly and daily usage rollups are kept; unset = forever.
    pub usage_retention: Option<Spanned<String>>,
    pub spill_path: Option<Spanned<String>>,
    pub spill_max_bytes: Option<Spanned<i64>>,
    /// `redis://…`: rate-limit and budget counters shared by every replica.
    pub redis_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: Spanned<String>,
    pub api_key: Option<Spanned<String>>,
    pub base_url: Option<Spanned<String>>,
    /// Azure OpenAI: the `api-version` query parameter.
    pub api_version: Option<Spanned<String>>,
    /// openai_compatible: a preset of quirks (`vllm`, `ollama`, `llamacpp`, `tgi`, `mistral`,
    /// `groq`, `together`, `deepseek`, `openrouter`).
    pub vendor: Option<Spanned<String>>,
    #[serde(default)]
    pub quirks: RawQuirks,
    /// Extra headers sent upstream; values may be secret references.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Mock: latency before the first byte for every model of this provider.
    pub latency: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawQuirks {
    pub max_tokens_field: Option<Spanned<String>>,
    pub stream_usage: Option<bool>,
    pub developer_role: Option<Spanned<String>>,
    pub tool_choice_required: Option<String>,
    #[serde(default)]
    pub drop_params: Vec<String>,
    #[serde(default)]
    pub rename_params: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: Spanned<String>,
    pub upstream: Option<Spanned<String>>,
    pub price: Option<RawPrice>,
    /// `context_length` (GGUF's word) is accepted too.
    #[serde(alias = "context_length")]
    pub context_window: Option<Spanned<i64>>,
    pub capabilities: Option<Vec<Spanned<String>>>,
    /// Mock provider only: scripted behaviour.
    pub mock: Option<RawMock>,
    /// Local provider only: the GGUF model file (`models:NAME/model.gguf` is in the models
    /// folder).
    pub path: Option<Spanned<String>>,
    /// Local provider only: an absent file leaves the model out (its routes fall back) instead of
    /// being an error.
    pub optional: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: Spanned<f64>,
    pub output: Spanned<f64>,
    pub cached_input: Option<Spanned<f64>>,
    pub cache_write: Option<Spanned<f64>>,
    /// Batch API prices (both or neither).
    pub batch_input: Option<Spanned<f64>>,
    pub batch_output: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMock {
    pub mode: Option<Spanned<String>>,
    pub text: Option<String>,
    pub status: Option<Spanned<i64>>,
    pub retry_after: Option<Spanned<String>>,
    pub fail_times: Option<Spanned<i64>>,
    pub latency: Option<Spanned<String>>,
    pub chunk_delay: Option<Spanned<String>>,
    pub break_after: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub targets: Spanned<Vec<RawTarget>>,
    #[serde(default)]
    pub fallbacks: Vec<Spanned<String>>,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    pub balance: Option<Spanned<String>>,
    #[serde(default)]
    pub breaker: RawBreaker,
    pub description: Option<String>,
    /// What to do with a request parameter the chosen provider lacks: `drop` (and say so in the
    /// `x-gardefou-dropped-params` header) or `reject` (400 naming it).
    pub unsupported_params: Option<Spanned<String>>,
    /// Keep the request and response bodies with the inference record: `"off"` (default),
    /// `"on"`, or a fraction in (0, 1] of requests, sampled.
    pub store_bodies: Option<Spanned<RawBodies>>,
    /// Requests / tokens per minute and a per-request cost cap.
    pub limits: Option<RawRateLimits>,
    pub guards: Option<RawRouteGuards>,
    pub escalation: Option<RawEscalation>,
    pub quality: Option<RawQuality>,
    #[serde(default)]
    pub evals: Vec<RawScheduledSuite>,
}

/// `quality = { sample = 0.05, judge = "judge", checks = ["relevance"], threshold = 0.5, policy = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuality {
    pub sample: Spanned<f64>,
    pub judge: Option<Spanned<String>>,
    pub checks: Option<Vec<Spanned<String>>>,
    pub threshold: Option<Spanned<f64>>,
    pub policy: Option<Spanned<String>>,
}

/// `[[routes.x.evals]] suite = "evals/support.toml", schedule = "0 */6 * * *"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduledSuite {
    pub suite: Spanned<String>,
    pub schedule: Spanned<String>,
    pub webhook: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<i64>>,
}

/// `escalation = { answer = "…{id}…", on_refusal = true, patterns = ["(?i)i don't know"] }`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEscalation {
    pub answer: Option<String>,
    pub on_refusal: Option<bool>,
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
    pub callback_url: Option<Spanned<String>>,
    /// Whether a caller may ask for a human (`x-gardefou-escalate: true`); default true.
    pub on_request: Option<bool>,
}

/// `store_bodies = "on"` or `store_bodies = 0.1`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawBodies {
    Word(String),
    Fraction(f64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub model: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
    pub max_backoff: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Spanned<String>>,
    pub first_byte: Option<Spanned<String>>,
    pub total: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failures: Option<Spanned<i64>>,
    pub error_rate: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<i64>>,
    pub window: Option<Spanned<String>>,
    pub cooldown: Option<Spanned<String>>,
}

/// `[telemetry]`: OpenTelemetry traces over OTLP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Spanned<String>,
    /// `"grpc"` (default) or `"http/protobuf"`.
    pub otlp_protocol: Option<Spanned<String>>,
    pub service_name: Option<Spanned<String>>,
    pub sample_ratio: Option<Spanned<f64>>,
    /// Prompt and completion content on spans; off unless set.
    pub capture_content: Option<bool>,
    /// Headers (or gRPC metadata) sent to the collector; values are secret references.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// The batch processor's scheduled delay (default 5s).
    pub export_interval: Option<Spanned<String>>,
}
