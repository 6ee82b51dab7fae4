//! Rate limits and budgets as configured: per-team limits (`[teams.NAME]`), per-route limits
//! (`[routes.NAME] limits`), budgets (`[budgets.NAME]`) and how the shared counters behave
//! (`[limits]`, with `store.redis_url` for counters shared across replicas).

/// Requests and tokens per minute, and a per-request cost cap; `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    /// Routes only: no single request may cost more (max_tokens is lowered to fit; a stream is
    /// cut off when it reaches it).
    pub max_cost_usd: Option<f64>,
}

/// What the budget counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetScope {
    /// Every call.
    Global,
    /// Calls of this team / product / key / route.
    Team(String),
    Product(String),
    Key(String),
    Route(String),
    /// One budget of this size for each distinct team / product / key / end user.
    EachTeam,
    EachProduct,
    EachKey,
    EachUser,
}

/// A budget window: fixed UTC calendar days or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetWindow {
    Day,
    Month,
}

impl BudgetWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Day => "day",
            BudgetWindow::Month => "month",
        }
    }
}

/// What happens to a call the budget cannot cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetAction {
    /// 429 `budget_exceeded`.
    Reject,
    /// The call goes to this (cheaper) route instead; its cost still counts.
    Downgrade(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetConfig {
    pub name: String,
    pub scope: BudgetScope,
    pub limit_usd: f64,
    pub window: BudgetWindow,
    pub action: BudgetAction,
    /// Fractions of the limit (e.g. 0.8) at which a webhook fires and a metric counts, once per
    /// window.
    pub alert_at: Vec<f64>,
    pub webhook: Option<String>,
}

/// When the shared counter store (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCounterError {
    /// Refuse calls that have a limit or budget (503) until it is back.
    FailClosed,
    /// Count in this process only (limits become per replica), with a loud metric and log.
    FailOpen,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// `redis://…`: counters shared by every replica; `None`: counters in this process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (several deployments on one Redis).
    pub redis_prefix: String,
    pub on_redis_error: OnCounterError,
    /// The output tokens a budget reserves for a request that sets no `max_tokens`.
    pub default_max_output_tokens: u32,
    pub teams: std::collections::BTreeMap<String, RateLimits>,
    pub budgets: Vec<BudgetConfig>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            redis_url: None,
            redis_prefix: "gardefou".to_owned(),
            on_redis_error: OnCounterError::FailOpen,
            default_max_output_tokens: 4096,
            teams: Default::default(),
            budgets: Vec::new(),
        }
    }
}
