//! Config as code: one TOML file of providers, models and routes. `Config::parse` reads the raw
//! file (`raw`), then resolves and checks every reference and value (`validate`); any problem is a
//! `ConfigError` with file, line, column, TOML path and a hint.

mod limits;
mod raw;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use limits::{
    BudgetAction, BudgetConfig, BudgetScope, BudgetWindow, LimitsConfig, OnCounterError, RateLimits,
};
pub use secret::{Secret, SecretRef};

/// A validated config: every reference resolves, every value is in range.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: BTreeMap<String, ModelConfig>,
    pub routes: BTreeMap<String, RouteConfig>,
    /// `None` when the file has no `[telemetry]` section: nothing is exported.
    pub telemetry: Option<TelemetryConfig>,
    /// Team rate limits, budgets, and where their counters live.
    pub limits: LimitsConfig,
    /// Named guard policies, compiled; `default` (every scanner) is always there.
    pub guards: BTreeMap<String, std::sync::Arc<gardefou_guard::Policy>>,
    /// The first 12 hex digits of the SHA-256 of the config text: names what is deployed (an
    /// eval run's `release`).
    pub revision: String,
}

impl Config {
    /// Parses and validates `text`; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        validate::parse(text, file)
    }

    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(&file, "config file", &e))?;
        Config::parse(&text, &file)
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub max_body_bytes: usize,
    pub admin_token: Option<SecretRef>,
    pub shutdown_grace: Duration,
    /// How long a client may take to send its request body (408 after).
    pub body_read_timeout: Duration,
    /// Every API call needs a virtual key; without it, a valid key still attributes and limits
    /// the call, and calls without one are anonymous.
    pub require_keys: bool,
}

/// How spans reach the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    /// Protobuf over HTTP: `POST {endpoint}/v1/traces`.
    HttpProtobuf,
}

/// `[telemetry]`: a span per inference, exported over OTLP.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    pub service_name: String,
    /// Fraction of new traces sampled (0..=1); a client's `traceparent` decides for its own.
    pub sample_ratio: f64,
    /// Prompt and completion content on spans (`gen_ai.input.messages`, `gen_ai.output.messages`).
    pub capture_content: bool,
    /// Headers (gRPC metadata) for the collector, as secret references.
    pub headers: Vec<(String, SecretRef)>,
    /// The batch processor's scheduled delay.
    pub export_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Wait at most this long for room in the queue, then drop and count.
    Wait(Duration),
    /// Drop at once and count.
    Drop,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://…`, `sqlite::memory:`, `postgres://…` or `postgresql://…`.
    pub database_url: String,
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub on_full: OnFull,
    /// Inferences older than this are deleted (every minute); `None` keeps them forever.
    pub retention: Option<Duration>,
    /// Rows per retention `DELETE`, so writers are never blocked long.
    pub retention_batch: usize,
    /// Hourly and daily usage rollups older than this are deleted; `None` keeps them forever.
    /// (Minute rollups follow `retention`, like the inferences they summarise.)
    pub usage_retention: Option<Duration>,
    /// Where batches the store refuses wait (JSON lines) until they can be re-inserted.
    pub spill_path: std::path::PathBuf,
    /// Size bound of the spill file; past it records are dropped and counted. 0 = no spill file.
    pub spill_max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    OpenAiCompatible,
    Azure,
    Anthropic,
    /// Google Gemini API (generativelanguage, API key).
    Gemini,
    /// Gemini on Vertex AI (bearer access token, project/location URL).
    Vertex,
    Mock,
    /// GGUF models run in-process (gardefou-local); each model names its file with `path`.
    Local,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai_compatible",
            ProviderKind::Azure => "azure",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Mock => "mock",
            ProviderKind::Local => "local",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub api_key: Option<SecretRef>,
    pub base_url: Option<String>,
    pub api_version: Option<String>,
    pub quirks: Quirks,
    pub headers: Vec<(String, SecretRef)>,
    pub latency: Duration,
    /// Local providers: the models to load, by model name. Filled in once the models are read.
    pub local_models: BTreeMap<String, LocalModelSpec>,
}

/// A model a `local` provider loads at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalModelSpec {
    /// The GGUF file of a chat model, or the folder of a sentence-transformers embedding model
    /// (`config.json`, `tokenizer.json`, `model.safetensors`); a relative `path` is taken from the
    /// working directory.
    pub path: std::path::PathBuf,
    /// The model's `context_window`, if set: caps prompt plus answer.
    pub context_window: Option<u32>,
    /// An embedding model (the path is a folder), served on `/v1/embeddings`.
    pub embeddings: bool,
}

/// The files of a sentence-transformers model folder a `local` provider serves embeddings from.
pub const EMBEDDING_MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// How an OpenAI-compatible server departs from OpenAI's API. A `vendor` preset fills these in;
/// explicit `quirks` settings win.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quirks {
    /// Send the output limit as `max_tokens` (most servers) instead of `max_completion_tokens`.
    pub legacy_max_tokens: bool,
    /// The server honours `stream_options.include_usage`; if not, it is removed and usage counted.
    pub stream_usage: bool,
    /// Send `developer` messages as `system`.
    pub developer_as_system: bool,
    /// The spelling of `tool_choice: "required"` (Mistral says `"any"`).
    pub tool_choice_required: Option<String>,
    /// Request fields removed before sending.
    pub drop_params: Vec<String>,
    /// Request fields renamed before sending (`seed` → `random_seed` for Mistral).
    pub rename_params: Vec<(String, String)>,
    /// The server refuses fields of other providers' formats (OpenAI, Azure): Anthropic's
    /// `cache_control`, `thinking` parts, `top_k` and `thinking` are removed (and reported as
    /// unsupported) instead of being sent.
    pub strict_schema: bool,
}

impl Quirks {
    pub fn openai() -> Self {
        Quirks { stream_usage: true, strict_schema: true, ..Quirks::default() }
    }

    /// The preset for a known OpenAI-compatible vendor, or `None` if the name is unknown.
    pub fn preset(vendor: &str) -> Option<Self> {
        let generic = Quirks {
            legacy_max_tokens: true,
            stream_usage: true,
            developer_as_system: true,
            ..Quirks::default()
        };
        Some(match vendor {
            "generic" | "vllm" | "llamacpp" | "together" | "deepseek" | "openrouter" => generic,
            "ollama" => generic,
            "tgi" => Quirks { stream_usage: false, ..generic },
            "groq" => Quirks { drop_params: vec!["logit_bias".into(), "top_logprobs".into()], ..generic },
            "mistral" => Quirks {
                tool_choice_required: Some("any".into()),
                rename_params: vec![("seed".into(), "random_seed".into())],
                drop_params: vec!["logit_bias".into()],
                ..generic
            },
            _ => return None,
        })
    }

    pub const VENDORS: &'static [&'static str] = &[
        "generic",
        "vllm",
        "ollama",
        "llamacpp",
        "tgi",
        "mistral",
        "groq",
        "together",
        "deepseek",
        "openrouter",
    ];
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub provider: String,
    pub upstream: String,
    /// The config's `price`, else the shipped table's for this provider and upstream model (on
    /// the day the config was loaded), else `None`: the cost is unknown.
    pub price: Option<Price>,
    /// Where `price` came from; `None` when there is no price.
    pub price_source: Option<PriceSource>,
    pub context_window: Option<u32>,
    pub capabilities: Capabilities,
    pub mock: MockSettings,
    /// Local provider only: the model file.
    pub local: Option<LocalModelSpec>,
    /// Why the model cannot answer although the config is valid (an `optional` local model
    /// whose file is absent): its routes skip it and fall back.
    pub unavailable: Option<String>,
}

/// The folder `models:` paths are read from: `GARDEFOU_MODELS_DIR`, else `./models`.
pub fn models_dir() -> std::path::PathBuf {
    std::env::var_os("GARDEFOU_MODELS_DIR")
        .map_or_else(|| std::path::PathBuf::from("models"), std::path::PathBuf::from)
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Fresh (uncached) input tokens.
    pub input: f64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_input: f64,
    /// Input tokens written to the prompt cache (Anthropic: the 5-minute write, 1.25 × input).
    pub cache_write: f64,
    /// Output tokens, reasoning included.
    pub output: f64,
    /// The provider's Batch API prices, where it has one. For information: gardefou proxies no
    /// batch endpoint, so no recorded cost uses them.
    pub batch_input: Option<f64>,
    pub batch_output: Option<f64>,
}

/// Where a model's price came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceSource {
    /// The model's own `price` in the config file.
    Config,
    /// gardefou's shipped price table (`crates/core/prices/prices.toml`): its version and the
    /// date the entry used took effect.
    Table { version: String, effective: crate::prices::Date },
}

impl PriceSource {
    /// `config`, or `table <version> (effective <date>)`.
    pub fn describe(&self) -> String {
        match self {
            PriceSource::Config => "config".to_owned(),
            PriceSource::Table { version, effective } => format!("table {version} (effective {effective})"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub chat: bool,
    pub embeddings: bool,
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
}

impl Capabilities {
    pub const NAMES: &'static [&'static str] = &["chat", "embeddings", "tools", "vision", "json"];

    pub fn all_chat() -> Self {
        Capabilities { chat: true, embeddings: false, tools: true, vision: true, json: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockMode {
    /// Answers like a well-mannered model: text, tool calls fitting their schema, JSON in JSON mode.
    Polite,
    /// Answers with the last user message.
    Echo,
    /// Answers with the configured text.
    Fixed,
    /// Fails with the configured status (the first `fail_times` calls, or always).
    Fail,
    /// Never answers.
    Hang,
    /// Streams a few chunks, then breaks the connection.
    BreakStream,
    /// Answers with a body that is not valid JSON / SSE.
    Garbage,
}

impl MockMode {
    pub const NAMES: &'static [&'static str] =
        &["polite", "echo", "fixed", "fail", "hang", "break_stream", "garbage"];

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "polite" => MockMode::Polite,
            "echo" => MockMode::Echo,
            "fixed" => MockMode::Fixed,
            "fail" => MockMode::Fail,
            "hang" => MockMode::Hang,
            "break_stream" => MockMode::BreakStream,
            "garbage" => MockMode::Garbage,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MockSettings {
    pub mode: MockMode,
    pub text: Option<String>,
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub fail_times: Option<u32>,
    pub latency: Option<Duration>,
    pub chunk_delay: Duration,
    pub break_after: u32,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings {
            mode: MockMode::Polite,
            text: None,
            status: 500,
            retry_after: None,
            fail_times: None,
            latency: None,
            chunk_delay: Duration::ZERO,
            break_after: 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub description: Option<String>,
    pub targets: Vec<Target>,
    /// Models tried in order when every target failed.
    pub fallbacks: Vec<String>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    pub balance: Balance,
    pub breaker: BreakerPolicy,
    /// Reject (400) rather than drop a parameter the chosen provider lacks.
    pub reject_unsupported: bool,
    /// Which requests keep their request and response bodies in the store.
    pub store_bodies: StoreBodies,
    pub limits: RateLimits,
    pub guards: RouteGuards,
    pub escalation: EscalationRules,
    /// Online quality: a sample of this route's answers scored by a judge route.
    pub quality: Option<QualitySampling>,
    /// Eval suites replayed against this route on a schedule.
    pub evals: Vec<ScheduledSuite>,
}

/// `[routes.x.quality]`: which share of a route's answers a judge route scores, off the hot path,
/// and on what.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySampling {
    /// The fraction of answered requests scored, in (0, 1].
    pub sample: f64,
    /// The route that judges (never the route itself).
    pub judge: String,
    pub checks: Vec<QualityCheck>,
    /// A check passes when its score is at least this.
    pub threshold: f64,
    /// What `compliance` checks the answer against.
    pub policy: Option<String>,
}

/// What the judge scores an answer on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QualityCheck {
    /// The answer addresses the question.
    Relevance,
    /// Every claim is supported by the context the request carried (judged only when it carried
    /// one); failures are the hallucination rate.
    Groundedness,
    /// The answer follows the route's policy.
    Compliance,
}

impl QualityCheck {
    pub const ALL: [QualityCheck; 3] =
        [QualityCheck::Relevance, QualityCheck::Groundedness, QualityCheck::Compliance];

    pub fn as_str(self) -> &'static str {
        match self {
            QualityCheck::Relevance => "relevance",
            QualityCheck::Groundedness => "groundedness",
            QualityCheck::Compliance => "compliance",
        }
    }

    pub fn parse(s: &str) -> Option<QualityCheck> {
        QualityCheck::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// `[[routes.x.evals]]`: a suite the server runs against the route on a cron schedule.
#[derive(Debug, Clone)]
pub struct ScheduledSuite {
    /// The suite file, relative paths resolved against the config file's folder.
    pub suite: std::path::PathBuf,
    /// The schedule as written (5 fields, or 6–7 with seconds first), UTC.
    pub schedule: String,
    pub cron: cron::Schedule,
    /// Posted a JSON notice when a run regresses or fails its thresholds.
    pub webhook: Option<String>,
    pub concurrency: u32,
}

impl ScheduledSuite {
    /// The first fire strictly after `after_ms` (unix milliseconds), in unix milliseconds.
    pub fn next_after_ms(&self, after_ms: i64) -> Option<i64> {
        let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms)?;
        self.cron.after(&t).next().map(|d| d.timestamp_millis())
    }
}

/// When a route hands the conversation to a human, and what the client gets meanwhile.
#[derive(Debug, Clone)]
pub struct EscalationRules {
    /// The hand-off answer; `{id}` becomes the escalation id.
    pub answer: String,
    /// Escalate when the model refuses (its `refusal` field).
    pub on_refusal: bool,
    /// Escalate when the answer matches one of these ("I don't know" detectors).
    pub patterns: Option<regex::RegexSet>,
    /// Where the opened and answered notices are posted.
    pub callback_url: Option<String>,
    /// A caller may ask for a human with `x-gardefou-escalate: true`.
    pub on_request: bool,
}

impl Default for EscalationRules {
    fn default() -> Self {
        EscalationRules {
            answer: "A member of our team will follow up on this conversation (reference {id}).".to_owned(),
            on_refusal: false,
            patterns: None,
            callback_url: None,
            on_request: true,
        }
    }
}

/// The guard policies a route applies to what comes in and what goes out.
#[derive(Debug, Clone, Default)]
pub struct RouteGuards {
    /// (policy name, policy) for the request's messages.
    pub input: Option<(String, std::sync::Arc<gardefou_guard::Policy>)>,
    /// (policy name, policy) for the answer, streamed or not.
    pub output: Option<(String, std::sync::Arc<gardefou_guard::Policy>)>,
    /// A guard that fails internally blocks the request (`true`, default) or lets it through.
    pub fail_closed: bool,
    /// Restore input placeholders in the answer for the same caller.
    pub restore: bool,
    /// A per-request canary token goes into the system prompt; an answer that repeats it is a
    /// system-prompt leak and is blocked.
    pub canary: bool,
}

/// Whether a route keeps request and response bodies with its inference records.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum StoreBodies {
    #[default]
    Off,
    On,
    /// This fraction of requests, chosen at random.
    Sampled(f64),
}

impl StoreBodies {
    /// Whether this request keeps its bodies; `draw` is a uniform number in [0, 1).
    pub fn keep(self, draw: f64) -> bool {
        match self {
            StoreBodies::Off => false,
            StoreBodies::On => true,
            StoreBodies::Sampled(f) => draw < f,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub model: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts on one target, the first included.
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Random by weight.
    Weighted,
    /// Power of two random choices by weight, the lower latency EWMA wins.
    LeastLatency,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit (0 disables).
    pub failures: u32,
    /// Error rate over `window` that opens the circuit, once `min_requests` were seen.
    pub error_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    /// How long the circuit stays open before one probe request is let through.
    pub cooldown: Duration,
}

/// A config problem, located in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem has no position (e.g. the file cannot be read).
    pub line: usize,
    pub column: usize,
    /// The TOML path of the offending value, e.g. `routes.support.targets[0].model`.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    /// A file that cannot be read at all (`what`: "config file", "suite"), with no position.
    pub fn unreadable(file: &str, what: &str, e: &std::io::Error) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the {what}: {e}"),
            hint: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "{}", self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at `{}`)", self.path)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests;
