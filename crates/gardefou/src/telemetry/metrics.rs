//! Prometheus metrics: every name is a constant here; labels are bounded (route, model, provider,
//! status class, error kind) — never user ids or prompts.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const REQUESTS: &str = "gardefou_requests";
pub const ERRORS: &str = "gardefou_errors";
pub const ATTEMPTS: &str = "gardefou_provider_attempts";
pub const LATENCY: &str = "gardefou_request_duration_seconds";
pub const TTFT: &str = "gardefou_time_to_first_token_seconds";
pub const TOKENS: &str = "gardefou_tokens";
pub const COST: &str = "gardefou_cost_usd";
pub const UNKNOWN_PRICE: &str = "gardefou_unknown_price";
pub const CONFIG_RELOADS: &str = "gardefou_config_reloads";
pub const CONFIG_LAST_RELOAD_OK: &str = "gardefou_config_last_reload_success";
pub const RECORDS_DROPPED: &str = "gardefou_inference_records_dropped";
pub const RECORDS_WRITTEN: &str = "gardefou_inference_records_written";
pub const RECORD_QUEUE: &str = "gardefou_inference_record_queue_length";
pub const CIRCUIT_OPEN: &str = "gardefou_circuit_open";
pub const LIMITED: &str = "gardefou_rate_limited";
pub const BUDGET_REJECTIONS: &str = "gardefou_budget_rejections";
pub const BUDGET_DOWNGRADES: &str = "gardefou_budget_downgrades";
pub const BUDGET_ALERTS: &str = "gardefou_budget_alerts";
pub const SETTLES_DROPPED: &str = "gardefou_limit_settles_dropped";
pub const WEBHOOK_FAILURES: &str = "gardefou_webhook_failures";
pub const LIMITS_BACKEND_ERRORS: &str = "gardefou_limits_backend_errors";
pub const LIMITS_BACKEND_UP: &str = "gardefou_limits_backend_up";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `key_rpm`, `team_tpm`, `route_rpm`, `budget`…
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    /// The budget's name in the config (bounded).
    pub budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub budget: String,
    pub threshold: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub model: String,
    pub provider: String,
    pub status_class: &'static str,
    pub stream: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub route: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub model: String,
    pub provider: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub route: String,
    pub model: String,
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub route: String,
    pub model: String,
    pub provider: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub route: String,
    pub model: String,
}

/// All metrics of the process. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub latency: Family<ModelLabels, Histogram>,
    pub ttft: Family<ModelLabels, Histogram>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost: Family<ModelLabels, Counter<f64, AtomicU64>>,
    pub unknown_price: Family<ModelLabels, Counter>,
    pub reloads: Family<OutcomeLabels, Counter>,
    pub last_reload_ok: Gauge,
    pub circuit_open: Family<TargetLabels, Gauge>,
    records_dropped: Counter,
    records_written: Counter,
    record_queue: Gauge,
    limited: Family<LimitLabels, Counter>,
    budget_rejections: Family<BudgetLabels, Counter>,
    budget_downgrades: Family<BudgetLabels, Counter>,
    budget_alerts: Family<AlertLabels, Counter>,
    settles_dropped: Counter,
    webhook_failures: Counter,
    limits_backend_errors: Counter,
    limits_backend_up: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            REQUESTS,
            "Requests answered, by route, model, provider and status class",
            requests.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(ERRORS, "Requests that ended in an error, by kind", errors.clone());
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            ATTEMPTS,
            "Calls to providers (retries and fallbacks included), by outcome",
            attempts.clone(),
        );
        let latency =
            Family::<ModelLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(LATENCY, "Time from request to last byte", latency.clone());
        let ttft =
            Family::<ModelLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(TTFT, "Time from request to the first streamed token", ttft.clone());
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(TOKENS, "Tokens by kind (input, cached_input, output, reasoning)", tokens.clone());
        let cost = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        registry.register(COST, "Cost in USD from the price table", cost.clone());
        let unknown_price = Family::<ModelLabels, Counter>::default();
        registry.register(
            UNKNOWN_PRICE,
            "Inferences whose cost is unknown (no price configured)",
            unknown_price.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(CONFIG_RELOADS, "Config reloads by outcome (applied, rejected)", reloads.clone());
        let last_reload_ok = Gauge::default();
        registry.register(
            CONFIG_LAST_RELOAD_OK,
            "1 if the last config reload was applied, 0 if rejected",
            last_reload_ok.clone(),
        );
        let circuit_open = Family::<TargetLabels, Gauge>::default();
        registry.register(CIRCUIT_OPEN, "1 while a target's circuit breaker is open", circuit_open.clone());
        let records_dropped = Counter::default();
        registry.register(
            RECORDS_DROPPED,
            "Inference records dropped because the write queue was full",
            records_dropped.clone(),
        );
        let records_written = Counter::default();
        registry.register(RECORDS_WRITTEN, "Inference records written to the store", records_written.clone());
        let record_queue = Gauge::default();
        registry.register(RECORD_QUEUE, "Inference records waiting to be written", record_queue.clone());
        let limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            LIMITED,
            "Requests refused by a gardefou rate limit or budget, by limit",
            limited.clone(),
        );
        let budget_rejections = Family::<BudgetLabels, Counter>::default();
        registry.register(
            BUDGET_REJECTIONS,
            "Requests refused because a budget is spent",
            budget_rejections.clone(),
        );
        let budget_downgrades = Family::<BudgetLabels, Counter>::default();
        registry.register(
            BUDGET_DOWNGRADES,
            "Requests moved to a cheaper route because a budget is spent",
            budget_downgrades.clone(),
        );
        let budget_alerts = Family::<AlertLabels, Counter>::default();
        registry.register(BUDGET_ALERTS, "Budget soft thresholds crossed", budget_alerts.clone());
        let settles_dropped = Counter::default();
        registry.register(
            SETTLES_DROPPED,
            "Budget or token settlements that could not be applied (spend stays at its worst case)",
            settles_dropped.clone(),
        );
        let webhook_failures = Counter::default();
        registry.register(
            WEBHOOK_FAILURES,
            "Webhook notices that could not be delivered",
            webhook_failures.clone(),
        );
        let limits_backend_errors = Counter::default();
        registry.register(
            LIMITS_BACKEND_ERRORS,
            "Limit checks the shared counters (Redis) did not answer; fail-open counted them locally",
            limits_backend_errors.clone(),
        );
        let limits_backend_up = Gauge::default();
        registry.register(
            LIMITS_BACKEND_UP,
            "1 while the limit counters answer (always 1 for in-process counters)",
            limits_backend_up.clone(),
        );
        last_reload_ok.set(1);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                errors,
                attempts,
                latency,
                ttft,
                tokens,
                cost,
                unknown_price,
                reloads,
                last_reload_ok,
                circuit_open,
                records_dropped,
                records_written,
                record_queue,
                limited,
                budget_rejections,
                budget_downgrades,
                budget_alerts,
                settles_dropped,
                webhook_failures,
                limits_backend_errors,
                limits_backend_up,
            }),
        }
    }

    pub fn requests(&self) -> &Family<RequestLabels, Counter> {
        &self.inner.requests
    }
    pub fn errors(&self) -> &Family<ErrorLabels, Counter> {
        &self.inner.errors
    }
    pub fn attempts(&self) -> &Family<AttemptLabels, Counter> {
        &self.inner.attempts
    }
    pub fn latency(&self) -> &Family<ModelLabels, Histogram> {
        &self.inner.latency
    }
    pub fn ttft(&self) -> &Family<ModelLabels, Histogram> {
        &self.inner.ttft
    }
    pub fn tokens(&self) -> &Family<TokenLabels, Counter> {
        &self.inner.tokens
    }
    pub fn cost(&self) -> &Family<ModelLabels, Counter<f64, AtomicU64>> {
        &self.inner.cost
    }
    pub fn unknown_price(&self) -> &Family<ModelLabels, Counter> {
        &self.inner.unknown_price
    }
    pub fn circuit_open(&self) -> &Family<TargetLabels, Gauge> {
        &self.inner.circuit_open
    }

    pub fn limited(&self) -> &Family<LimitLabels, Counter> {
        &self.inner.limited
    }
    pub fn budget_rejections(&self) -> &Family<BudgetLabels, Counter> {
        &self.inner.budget_rejections
    }
    pub fn budget_downgrades(&self) -> &Family<BudgetLabels, Counter> {
        &self.inner.budget_downgrades
    }
    pub fn budget_alerts(&self) -> &Family<AlertLabels, Counter> {
        &self.inner.budget_alerts
    }
    pub fn settles_dropped(&self) -> &Counter {
        &self.inner.settles_dropped
    }
    pub fn webhook_failures(&self) -> &Counter {
        &self.inner.webhook_failures
    }

    /// Copies the limit counters' backend health in (before rendering).
    pub fn sync_limiter(&self, limiter: &gardefou_store::limits::Limiter) {
        sync_counter(&self.inner.limits_backend_errors, limiter.backend_errors());
        self.inner.limits_backend_up.set(i64::from(limiter.backend_healthy()));
    }

    pub fn reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "rejected" };
        self.inner.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
        self.inner.last_reload_ok.set(i64::from(applied));
    }

    /// Renders the text exposition, first copying the recorder's counters in.
    pub fn render(&self, recorder: &gardefou_store::Recorder) -> String {
        sync_counter(&self.inner.records_dropped, recorder.dropped());
        sync_counter(&self.inner.records_written, recorder.written());
        self.inner.record_queue.set(i64::try_from(recorder.queue_len()).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(8192);
        if encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn sync_counter(c: &Counter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

/// `2xx`, `4xx`, `5xx` for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}
