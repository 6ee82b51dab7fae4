//! Rate limits and budgets in the request path.
//!
//! Before a call, `Limits::admit` reserves, all or nothing, on every counter that applies:
//! one request on each requests-per-minute limit (key, team, route), a check on each
//! tokens-per-minute limit, and the call's worst-case cost on each budget (key, team, product,
//! route, global, per end user). Worst case = prompt tokens × the highest input price among the
//! route's models + max output tokens × the highest output price. A reservation that does not fit
//! is a 429 (`rate_limit_exceeded` with `Retry-After`, or `budget_exceeded` naming the budget and
//! when it resets) — or, for a budget whose action is `downgrade`, the call moves to the cheaper
//! route. After the call, `settle` (off the hot path, through a bounded queue) turns each budget
//! reservation into the true cost and adds the tokens used to the tokens-per-minute counters.
//!
//! A budget can therefore not be overrun by concurrency: every call in flight holds its worst case.
//! Counters live in this process, or in Redis (`store.redis_url`) for every replica at once.

mod alerts;
mod seed;
mod settle;

use std::sync::Arc;

use gardefou_core::chat::{ChatRequest, EmbeddingInput, EmbeddingsRequest};
use gardefou_core::config::{BudgetAction, BudgetConfig, BudgetScope, BudgetWindow, Config, OnCounterError};
use gardefou_core::Error;
use gardefou_store::limits::{Charge, LimitError, Limiter, OnBackendError, Window};
use gardefou_store::KeyRecord;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::alerts::Alert;
use self::alerts::Alerts;
pub use self::seed::seed_budgets;
pub use self::settle::Reservation;
use self::settle::{Settle, Settler};
use crate::runtime::{Route, Runtime};
use crate::telemetry::Metrics;

/// Nano-USD per USD: budget counters are integers.
pub const NANO: f64 = 1e9;

/// What a request is, for the limits.
pub struct Ask<'a> {
    pub key: Option<&'a KeyRecord>,
    pub team: Option<&'a str>,
    pub product: Option<&'a str>,
    pub end_user: Option<&'a str>,
    pub input: Input<'a>,
}

/// The request whose worst-case cost a budget reserves.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    Chat(&'a ChatRequest),
    Embeddings(&'a EmbeddingsRequest),
}

impl Input<'_> {
    fn prompt_tokens(&self, model: &str) -> u64 {
        match self {
            Input::Chat(req) => crate::tokens::count_prompt(model, req),
            Input::Embeddings(req) => match &req.input {
                EmbeddingInput::One(s) => crate::tokens::count_text(model, s),
                EmbeddingInput::Many(v) => v.iter().map(|s| crate::tokens::count_text(model, s)).sum(),
                EmbeddingInput::Tokens(t) => t.len() as u64,
                EmbeddingInput::ManyTokens(v) => v.iter().map(|t| t.len() as u64).sum(),
            },
        }
    }

    /// The output tokens asked for; `None` when the request does not say. Embeddings have none.
    fn max_output(&self) -> Option<Option<u32>> {
        match self {
            Input::Chat(req) => Some(req.max_completion_tokens.or(req.max_tokens)),
            Input::Embeddings(_) => None,
        }
    }
}

/// An admitted request: what to settle afterwards, the rate-limit headers, and the route to
/// call if a budget downgraded it.
#[derive(Default)]
pub struct Admission {
    pub reservation: Option<Reservation>,
    pub headers: Vec<(&'static str, String)>,
    /// Set when a budget moved the call to a cheaper route: (budget, route).
    pub downgraded: Option<(String, String)>,
    /// The `max_tokens` the route's per-request cost cap allows, when lower than asked.
    pub max_tokens: Option<u32>,
    /// The route's per-request cost cap and the output price it is measured with (USD per
    /// token), for cutting a stream off.
    pub cost_cap: Option<(f64, f64)>,
}

/// The rate limits and budgets of the running gateway.
#[derive(Clone)]
pub struct Limits {
    limiter: Limiter,
    settler: Settler,
    alerts: Alerts,
}

/// One charge and what it stands for, to explain a refusal.
enum What<'a> {
    Rpm(&'static str, String),
    Tpm(&'static str, String),
    Budget(&'a BudgetConfig, String),
    KeyBudget(&'a KeyRecord, f64, Window),
}

impl Limits {
    /// Counters per `config.limits` (Redis when `store.redis_url` is set; a bad URL falls back
    /// to local counters, loudly). Spawns the settle and alert tasks on `tracker`.
    pub fn new(config: &Config, metrics: &Metrics, tracker: &TaskTracker, stop: CancellationToken) -> Limits {
        let l = &config.limits;
        let limiter = match &l.redis_url {
            None => Limiter::local(),
            Some(url) => {
                let on_error = match l.on_redis_error {
                    OnCounterError::FailOpen => OnBackendError::FailOpen,
                    OnCounterError::FailClosed => OnBackendError::FailClosed,
                };
                Limiter::redis(url, &l.redis_prefix, on_error).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "the Redis URL is unusable; limits are counted in this process only");
                    Limiter::local()
                })
            }
        };
        let alerts = Alerts::spawn(metrics.clone(), tracker, stop.clone());
        let settler = Settler::spawn(limiter.clone(), metrics.clone(), tracker, stop);
        Limits { limiter, settler, alerts }
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Hands a finished call's reservation over for settling (never waits).
    pub fn settle(&self, reservation: Reservation, cost_usd: Option<f64>, tokens: u64) {
        self.settler.send(Settle { reservation, cost_usd, tokens });
    }

    /// Admits `ask` on `route` (see the module docs); the route may change on a downgrade.
    pub async fn admit(
        &self,
        rt: &Runtime,
        route: Arc<Route>,
        ask: &Ask<'_>,
        metrics: &Metrics,
    ) -> Result<(Arc<Route>, Admission), Error> {
        let mut route = route;
        let mut skipped: Vec<String> = Vec::new();
        let mut downgraded = None;
        loop {
            match self.try_admit(rt, &route, ask, &skipped, metrics).await? {
                Ok(mut admission) => {
                    admission.downgraded = downgraded;
                    return Ok((route, admission));
                }
                Err((budget, to)) => {
                    downgraded = Some((budget.clone(), to.clone()));
                    let Some(next) = rt.routes.get(&to) else {
                        return Err(Error::Internal(format!(
                            "budget `{budget}` downgrades to a missing route"
                        )));
                    };
                    metrics
                        .budget_downgrades()
                        .get_or_create(&crate::telemetry::metrics::BudgetLabels { budget: budget.clone() })
                        .inc();
                    skipped.push(budget);
                    route = next.clone();
                    if skipped.len() > rt.config.limits.budgets.len() {
                        return Err(Error::Internal("budget downgrades loop".to_owned()));
                    }
                }
            }
        }
    }

    /// `Ok(Err((budget, route)))`: a downgrade budget is spent, call `route` instead.
    async fn try_admit(
        &self,
        rt: &Runtime,
        route: &Route,
        ask: &Ask<'_>,
        skipped: &[String],
        metrics: &Metrics,
    ) -> Result<Result<Admission, (String, String)>, Error> {
        let mut charges = Vec::new();
        let mut what = Vec::new();
        let name = route.config.name.as_str();
        let team_limits = ask.team.and_then(|t| rt.config.limits.teams.get(t));
        let rates = [
            (
                "key",
                ask.key.map(|k| k.id.as_str()),
                ask.key.and_then(|k| k.limits.rpm),
                ask.key.and_then(|k| k.limits.tpm),
            ),
            ("team", ask.team, team_limits.and_then(|l| l.rpm), team_limits.and_then(|l| l.tpm)),
            ("route", Some(name), route.config.limits.rpm, route.config.limits.tpm),
        ];
        for (scope, id, rpm, tpm) in rates {
            let Some(id) = id else { continue };
            if let Some(limit) = rpm {
                charges.push(Charge {
                    key: format!("rpm:{scope}:{id}"),
                    window: Window::Minute,
                    limit,
                    amount: 1,
                });
                what.push(What::Rpm(scope, id.to_owned()));
            }
            if let Some(limit) = tpm {
                charges.push(Charge {
                    key: format!("tpm:{scope}:{id}"),
                    window: Window::Minute,
                    limit,
                    amount: 0,
                });
                what.push(What::Tpm(scope, id.to_owned()));
            }
        }
        let budgets: Vec<(&BudgetConfig, String)> = rt
            .config
            .limits
            .budgets
            .iter()
            .filter(|b| !skipped.contains(&b.name))
            .filter_map(|b| budget_counter(b, ask, name).map(|c| (b, c)))
            .collect();
        let key_budget = ask.key.and_then(|k| k.limits.budget_usd.map(|usd| (k, usd)));
        let cap = route.config.limits.max_cost_usd;
        let mut admission = Admission::default();
        let mut worst_nano = 0;
        if !budgets.is_empty() || key_budget.is_some() || cap.is_some() {
            let (input_price, output_price) = max_prices(route);
            let prompt =
                ask.input.prompt_tokens(route.targets.first().map_or("", |t| t.model.upstream.as_str()))
                    as f64;
            let mut max_out = match ask.input.max_output() {
                None => 0,
                Some(asked) => asked.unwrap_or(rt.config.limits.default_max_output_tokens),
            };
            if let Some(cap) = cap {
                let left = cap - prompt * input_price;
                if left <= 0.0 {
                    return Err(Error::invalid(format!(
                        "the prompt alone (~{prompt} tokens) costs more than route `{name}`'s cap of ${cap} per request"
                    )));
                }
                if output_price > 0.0 && max_out > 0 {
                    let fits = (left / output_price).floor().min(f64::from(u32::MAX)) as u32;
                    if fits < max_out {
                        max_out = fits.max(1);
                        admission.max_tokens = Some(max_out);
                    }
                    admission.cost_cap = Some((cap, output_price));
                }
            }
            let worst = prompt * input_price + f64::from(max_out) * output_price;
            worst_nano = (worst * NANO).ceil() as i64;
        }
        for (b, counter) in &budgets {
            charges.push(Charge {
                key: counter.clone(),
                window: window_of(b.window),
                limit: (b.limit_usd * NANO) as i64,
                amount: worst_nano,
            });
            what.push(What::Budget(b, counter.clone()));
        }
        if let Some((k, usd)) = key_budget {
            let window =
                if k.limits.budget_window.as_deref() == Some("day") { Window::Day } else { Window::Month };
            charges.push(Charge {
                key: format!("budget:key:{}", k.id),
                window,
                limit: (usd * NANO) as i64,
                amount: worst_nano,
            });
            what.push(What::KeyBudget(k, usd, window));
        }
        if charges.is_empty() {
            return Ok(Ok(admission));
        }
        let now = crate::auth::now_ms();
        match self.limiter.reserve(&charges, now).await {
            Ok(levels) => {
                let mut reservation = Reservation::default();
                let mut tightest_rpm: Option<(i64, i64, i64)> = None;
                let mut tightest_tpm: Option<(i64, i64, i64)> = None;
                for ((level, charge), w) in levels.iter().zip(&charges).zip(&what) {
                    match w {
                        What::Rpm(..) => {
                            let left = level.limit - level.used;
                            if tightest_rpm.is_none_or(|t| left < t.1) {
                                tightest_rpm = Some((level.limit, left, level.reset_ms));
                            }
                        }
                        What::Tpm(..) => {
                            let left = level.limit - level.used;
                            if tightest_tpm.is_none_or(|t| left < t.1) {
                                tightest_tpm = Some((level.limit, left, level.reset_ms));
                            }
                            reservation.tokens.push((charge.key.clone(), level.window_start_ms));
                        }
                        What::Budget(b, counter) => {
                            reservation.budgets.push((
                                counter.clone(),
                                charge.window,
                                level.window_start_ms,
                                charge.amount,
                            ));
                            // Budgets with one counter (not one per team, key or user).
                            if counter.len() == "budget:".len() + b.name.len() && level.limit > 0 {
                                metrics
                                    .budget_used_ratio()
                                    .get_or_create(&crate::telemetry::metrics::BudgetLabels {
                                        budget: b.name.clone(),
                                    })
                                    .set(level.used as f64 / level.limit as f64);
                            }
                            self.alerts.check(
                                b,
                                counter,
                                level.used - charge.amount,
                                level.used,
                                level.reset_ms,
                            );
                        }
                        What::KeyBudget(..) => {
                            reservation.budgets.push((
                                charge.key.clone(),
                                charge.window,
                                level.window_start_ms,
                                charge.amount,
                            ));
                        }
                    }
                }
                if let Some((limit, left, reset)) = tightest_rpm {
                    admission.headers.extend(rate_headers("requests", limit, left, reset, now));
                }
                if let Some((limit, left, reset)) = tightest_tpm {
                    admission.headers.extend(rate_headers("tokens", limit, left, reset, now));
                }
                admission.reservation = Some(reservation);
                Ok(Ok(admission))
            }
            Err(LimitError::Exceeded(ex)) => {
                let retry_after =
                    std::time::Duration::from_millis(u64::try_from(ex.reset_ms - now).unwrap_or(0));
                let reset = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(u64::try_from(ex.reset_ms).unwrap_or(0)),
                );
                let (code, message, label) = match what.get(ex.index) {
                    Some(What::Rpm(scope, id)) => (
                        "rate_limit_exceeded",
                        format!(
                            "Rate limit reached for {scope} `{id}`: {} requests per minute. Retry after {}s.",
                            ex.limit,
                            retry_after.as_secs().max(1)
                        ),
                        format!("{scope}_rpm"),
                    ),
                    Some(What::Tpm(scope, id)) => (
                        "rate_limit_exceeded",
                        format!(
                            "Rate limit reached for {scope} `{id}`: {} tokens per minute. Retry after {}s.",
                            ex.limit,
                            retry_after.as_secs().max(1)
                        ),
                        format!("{scope}_tpm"),
                    ),
                    Some(What::Budget(b, _)) => {
                        if let BudgetAction::Downgrade(to) = &b.action {
                            return Ok(Err((b.name.clone(), to.clone())));
                        }
                        metrics
                            .budget_rejections()
                            .get_or_create(&crate::telemetry::metrics::BudgetLabels {
                                budget: b.name.clone(),
                            })
                            .inc();
                        (
                            "budget_exceeded",
                            format!(
                                "Budget `{}` ({}) of ${} per {} is spent; it resets at {reset}.",
                                b.name,
                                scope_text(&b.scope, ask),
                                b.limit_usd,
                                b.window.as_str()
                            ),
                            "budget".to_owned(),
                        )
                    }
                    Some(What::KeyBudget(k, usd, w)) => (
                        "budget_exceeded",
                        format!(
                            "The budget of key `{}` (${usd} per {}) is spent; it resets at {reset}.",
                            k.prefix,
                            w.as_str()
                        ),
                        "budget".to_owned(),
                    ),
                    None => ("rate_limit_exceeded", "A limit was reached.".to_owned(), "unknown".to_owned()),
                };
                metrics
                    .limited()
                    .get_or_create(&crate::telemetry::metrics::LimitLabels { limit: label })
                    .inc();
                Err(Error::LimitExceeded {
                    code,
                    message,
                    retry_after: Some(retry_after.max(std::time::Duration::from_secs(1))),
                })
            }
            Err(LimitError::Unavailable(m)) => {
                tracing::warn!(error = %m, "limit counters unavailable; refusing (fail_closed)");
                Err(Error::Unavailable(
                    "rate limits and budgets cannot be checked right now; retry shortly".to_owned(),
                ))
            }
            Err(e) => Err(Error::Internal(e.to_string())),
        }
    }
}

fn window_of(w: BudgetWindow) -> Window {
    match w {
        BudgetWindow::Day => Window::Day,
        BudgetWindow::Month => Window::Month,
    }
}

/// The counter a budget charges for this request, or `None` when it does not apply.
fn budget_counter(b: &BudgetConfig, ask: &Ask<'_>, route: &str) -> Option<String> {
    let n = &b.name;
    match &b.scope {
        BudgetScope::Global => Some(format!("budget:{n}")),
        BudgetScope::Team(t) => (ask.team == Some(t.as_str())).then(|| format!("budget:{n}")),
        BudgetScope::Product(p) => (ask.product == Some(p.as_str())).then(|| format!("budget:{n}")),
        BudgetScope::Key(k) => {
            (ask.key.map(|k| k.id.as_str()) == Some(k.as_str())).then(|| format!("budget:{n}"))
        }
        BudgetScope::Route(r) => (route == r).then(|| format!("budget:{n}")),
        BudgetScope::EachTeam => ask.team.map(|t| format!("budget:{n}:team={t}")),
        BudgetScope::EachProduct => ask.product.map(|p| format!("budget:{n}:product={p}")),
        BudgetScope::EachKey => ask.key.map(|k| format!("budget:{n}:key={}", k.id)),
        BudgetScope::EachUser => ask.end_user.map(|u| format!("budget:{n}:user={u}")),
    }
}

fn scope_text(scope: &BudgetScope, ask: &Ask<'_>) -> String {
    match scope {
        BudgetScope::Global => "all traffic".to_owned(),
        BudgetScope::Team(t) => format!("team {t}"),
        BudgetScope::Product(p) => format!("product {p}"),
        BudgetScope::Key(k) => format!("key {k}"),
        BudgetScope::Route(r) => format!("route {r}"),
        BudgetScope::EachTeam => format!("team {}", ask.team.unwrap_or_default()),
        BudgetScope::EachProduct => format!("product {}", ask.product.unwrap_or_default()),
        BudgetScope::EachKey => format!("key {}", ask.key.map(|k| k.prefix.as_str()).unwrap_or_default()),
        BudgetScope::EachUser => format!("user {}", ask.end_user.unwrap_or_default()),
    }
}

/// The highest input and output prices (USD per token) among the route's models; a model
/// without a price counts as free (its calls are recorded with an unknown cost).
fn max_prices(route: &Route) -> (f64, f64) {
    route
        .targets
        .iter()
        .chain(&route.fallbacks)
        .filter_map(|t| t.model.price.as_ref())
        .fold((0.0, 0.0), |(i, o), p| {
            (f64::max(i, p.input.max(p.cache_write) / 1e6), f64::max(o, p.output / 1e6))
        })
}

/// OpenAI's `x-ratelimit-*` headers for one kind (`requests` or `tokens`).
fn rate_headers(kind: &str, limit: i64, left: i64, reset_ms: i64, now: i64) -> [(&'static str, String); 3] {
    let reset = format!("{}s", ((reset_ms - now).max(0) as f64 / 1000.0).ceil() as i64);
    match kind {
        "requests" => [
            ("x-ratelimit-limit-requests", limit.to_string()),
            ("x-ratelimit-remaining-requests", left.max(0).to_string()),
            ("x-ratelimit-reset-requests", reset),
        ],
        _ => [
            ("x-ratelimit-limit-tokens", limit.to_string()),
            ("x-ratelimit-remaining-tokens", left.max(0).to_string()),
            ("x-ratelimit-reset-tokens", reset),
        ],
    }
}
