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
pub const GUARD_FINDINGS: &str = "gardefou_guard_findings";
pub const GUARD_BLOCKS: &str = "gardefou_guard_blocks";
pub const BUDGET_REJECTIONS: &str = "gardefou_budget_rejections";
pub const BUDGET_DOWNGRADES: &str = "gardefou_budget_downgrades";
pub const BUDGET_ALERTS: &str = "gardefou_budget_alerts";
pub const BUDGET_USED_RATIO: &str = "gardefou_budget_used_ratio";
pub const SETTLES_DROPPED: &str = "gardefou_limit_settles_dropped";
pub const WEBHOOK_FAILURES: &str = "gardefou_webhook_failures";
pub const LIMITS_BACKEND_ERRORS: &str = "gardefou_limits_backend_errors";
pub const LIMITS_BACKEND_UP: &str = "gardefou_limits_backend_up";
pub const ESCALATIONS_OPENED: &str = "gardefou_escalations_opened";
pub const ESCALATIONS_OPEN: &str = "gardefou_escalations_open";
pub const ESCALATION_OLDEST_OPEN_AGE: &str = "gardefou_escalation_oldest_open_age_seconds";
pub const ESCALATION_TIME_TO_ANSWER: &str = "gardefou_escalation_time_to_answer_seconds";
pub const FEEDBACK: &str = "gardefou_feedback";
pub const EVAL_RUNS: &str = "gardefou_eval_runs";
pub const EVAL_PASS_RATE: &str = "gardefou_eval_pass_rate";
pub const EVAL_REGRESSIONS: &str = "gardefou_eval_regressions";
pub const QUALITY_CHECKS: &str = "gardefou_quality_checks";
pub const QUALITY_DROPPED: &str = "gardefou_quality_samples_dropped";
/// Distinct feedback names counted under their own label; later names count as `other`.
pub const MAX_FEEDBACK_NAMES: usize = 100;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuardLabels {
    /// `pii`, `secrets`, `injection`, `topics`, `regex`, `json_schema` (`any` on blocks).
    pub guard: &'static str,
    /// The finding type (`EMAIL`, a rule or pattern name from the config: bounded); empty on
    /// blocks.
    pub kind: String,
    /// `input` or `output`.
    pub direction: &'static str,
}

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
pub struct FeedbackLabels {
    /// The score's name, chosen by clients: the first [`MAX_FEEDBACK_NAMES`] distinct names
    /// seen by this process, then `other` (bounded).
    pub name: String,
    /// `boolean`, `float`, `category` or `comment`.
    pub kind: &'static str,
    /// `user` or `reviewer`.
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `guard:<name>`, `refusal`, `requested` or `other` (guard names come from the config).
    pub reason: String,
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvalLabels {
    /// Suite names come from the config's scheduled suites: bounded.
    pub suite: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvalRunLabels {
    pub suite: String,
    pub route: String,
    /// `passed`; `regressed` (a case that passed in the previous run fails); `failed` (a
    /// threshold failed, with no new regression); `interrupted`; `error` (the suite could not
    /// be read).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QualityLabels {
    pub route: String,
    pub model: String,
    pub product: String,
    /// `relevance`, `groundedness`, `compliance`.
    pub check: &'static str,
    /// `pass`, `fail`, or `error` (the judge gave no usable verdict).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `queue_full` or `shutdown`.
    pub reason: &'static str,
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
    guard_findings: Family<GuardLabels, Counter>,
    guard_blocks: Family<GuardLabels, Counter>,
    budget_rejections: Family<BudgetLabels, Counter>,
    budget_downgrades: Family<BudgetLabels, Counter>,
    budget_alerts: Family<AlertLabels, Counter>,
    budget_used_ratio: Family<BudgetLabels, Gauge<f64, AtomicU64>>,
    settles_dropped: Counter,
    webhook_failures: Counter,
    limits_backend_errors: Counter,
    limits_backend_up: Gauge,
    escalations_opened: Family<ReasonLabels, Counter>,
    escalations_open: Gauge,
    escalation_oldest_open_age: Gauge,
    escalation_time_to_answer: Histogram,
    feedback: Family<FeedbackLabels, Counter>,
    feedback_names: std::sync::Mutex<std::collections::HashSet<String>>,
    eval_runs: Family<EvalRunLabels, Counter>,
    eval_pass_rate: Family<EvalLabels, Gauge<f64, AtomicU64>>,
    eval_regressions: Family<EvalLabels, Counter>,
    quality_checks: Family<QualityLabels, Counter>,
    quality_dropped: Family<DropLabels, Counter>,
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
        let guard_findings = Family::<GuardLabels, Counter>::default();
        registry.register(
            GUARD_FINDINGS,
            "Guard findings by guard, type and direction (input or output)",
            guard_findings.clone(),
        );
        let guard_blocks = Family::<GuardLabels, Counter>::default();
        registry.register(GUARD_BLOCKS, "Requests or answers blocked by a guard", guard_blocks.clone());
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
        let budget_used_ratio = Family::<BudgetLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            BUDGET_USED_RATIO,
            "Share of a budget spent or reserved in its current window, as of the last call it covered (budgets with one counter)",
            budget_used_ratio.clone(),
        );
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
        let escalations_opened = Family::<ReasonLabels, Counter>::default();
        registry.register(
            ESCALATIONS_OPENED,
            "Conversations handed to a human reviewer, by reason",
            escalations_opened.clone(),
        );
        let escalations_open = Gauge::default();
        registry.register(
            ESCALATIONS_OPEN,
            "Escalations waiting for an answer (open or claimed), as of this process's last queue change",
            escalations_open.clone(),
        );
        let escalation_oldest_open_age = Gauge::default();
        registry.register(
            ESCALATION_OLDEST_OPEN_AGE,
            "Age of the oldest escalation waiting for an answer, as of this process's last queue change",
            escalation_oldest_open_age.clone(),
        );
        // From seconds to a week: reviewers answer on a human scale.
        let escalation_time_to_answer = Histogram::new([
            10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0,
            604_800.0,
        ]);
        registry.register(
            ESCALATION_TIME_TO_ANSWER,
            "Time from an escalation being opened to its answer",
            escalation_time_to_answer.clone(),
        );
        let feedback = Family::<FeedbackLabels, Counter>::default();
        registry.register(FEEDBACK, "Feedback scores attached to inferences", feedback.clone());
        let eval_runs = Family::<EvalRunLabels, Counter>::default();
        registry.register(EVAL_RUNS, "Scheduled eval suite runs, by result", eval_runs.clone());
        let eval_pass_rate = Family::<EvalLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            EVAL_PASS_RATE,
            "Pass rate of the last scheduled run of a suite",
            eval_pass_rate.clone(),
        );
        let eval_regressions = Family::<EvalLabels, Counter>::default();
        registry.register(
            EVAL_REGRESSIONS,
            "Cases that passed in a suite's previous run and failed in the next",
            eval_regressions.clone(),
        );
        let quality_checks = Family::<QualityLabels, Counter>::default();
        registry.register(
            QUALITY_CHECKS,
            "Online quality checks of sampled answers by the judge route, by result",
            quality_checks.clone(),
        );
        let quality_dropped = Family::<DropLabels, Counter>::default();
        for reason in ["queue_full", "shutdown"] {
            // Known from the start, so a scrape shows 0 rather than nothing.
            let _ = quality_dropped.get_or_create(&DropLabels { reason });
        }
        registry.register(
            QUALITY_DROPPED,
            "Answers sampled for online quality that were never judged",
            quality_dropped.clone(),
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
                guard_findings,
                guard_blocks,
                budget_rejections,
                budget_downgrades,
                budget_alerts,
                budget_used_ratio,
                settles_dropped,
                webhook_failures,
                limits_backend_errors,
                limits_backend_up,
                escalations_opened,
                escalations_open,
                escalation_oldest_open_age,
                escalation_time_to_answer,
                feedback,
                feedback_names: std::sync::Mutex::default(),
                eval_runs,
                eval_pass_rate,
                eval_regressions,
                quality_checks,
                quality_dropped,
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

    pub fn guard_findings(&self) -> &Family<GuardLabels, Counter> {
        &self.inner.guard_findings
    }
    pub fn guard_blocks(&self) -> &Family<GuardLabels, Counter> {
        &self.inner.guard_blocks
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
    pub fn budget_used_ratio(&self) -> &Family<BudgetLabels, Gauge<f64, AtomicU64>> {
        &self.inner.budget_used_ratio
    }
    pub fn settles_dropped(&self) -> &Counter {
        &self.inner.settles_dropped
    }
    pub fn webhook_failures(&self) -> &Counter {
        &self.inner.webhook_failures
    }
    pub fn escalations_opened(&self) -> &Family<ReasonLabels, Counter> {
        &self.inner.escalations_opened
    }
    pub fn escalations_open(&self) -> &Gauge {
        &self.inner.escalations_open
    }
    pub fn escalation_oldest_open_age(&self) -> &Gauge {
        &self.inner.escalation_oldest_open_age
    }
    pub fn escalation_time_to_answer(&self) -> &Histogram {
        &self.inner.escalation_time_to_answer
    }

    /// Counts one feedback score (`gardefou_feedback_total`), its name bounded to the first
    /// [`MAX_FEEDBACK_NAMES`] distinct names.
    pub fn feedback(&self, name: &str, kind: &'static str, source: &'static str) {
        let name = {
            let mut names = self.inner.feedback_names.lock().unwrap_or_else(|p| p.into_inner());
            if names.contains(name) || names.len() < MAX_FEEDBACK_NAMES {
                names.insert(name.to_owned());
                name.to_owned()
            } else {
                "other".to_owned()
            }
        };
        self.inner.feedback.get_or_create(&FeedbackLabels { name, kind, source }).inc();
    }

    pub fn eval_runs(&self) -> &Family<EvalRunLabels, Counter> {
        &self.inner.eval_runs
    }
    pub fn eval_pass_rate(&self) -> &Family<EvalLabels, Gauge<f64, AtomicU64>> {
        &self.inner.eval_pass_rate
    }
    pub fn eval_regressions(&self) -> &Family<EvalLabels, Counter> {
        &self.inner.eval_regressions
    }
    pub fn quality_checks(&self) -> &Family<QualityLabels, Counter> {
        &self.inner.quality_checks
    }
    pub fn quality_dropped(&self, reason: &'static str) -> Counter {
        self.inner.quality_dropped.get_or_create(&DropLabels { reason }).clone()
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
