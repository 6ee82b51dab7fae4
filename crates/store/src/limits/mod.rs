//! Limit counters: the rate limits (requests and tokens per minute) and budgets (spend per UTC day
//! or month) of keys, teams, products and routes, counted in-process or in Redis so that every
//! replica sees the same counts.
//!
//! Every amount is an `i64` in the caller's unit: requests, tokens, or nano-USD (1e-9 USD) for
//! budgets; callers convert. A counter belongs to a fixed UTC window (`Window`) and outlives its
//! window by a margin, so a late settle still lands, then disappears (bounded memory either way).
//!
//! A request `reserve`s its estimated amounts on every limit that applies, all or nothing, then
//! `adjust`s each counter by the difference to the true cost, in the window it reserved in
//! (`Level::window_start_ms`). `seed` starts a budget's counter from the usage tables without
//! overwriting one another replica already keeps.
//!
//! - `local`: the in-process counters (the embedded default, and the fail-open fallback).
//! - `redis`: the shared counters, one atomic Lua script per reservation.

mod local;
mod redis;

use std::sync::Arc;

use gardefou_core::calendar::{civil_from_days, days_from_civil};
use gardefou_core::Fault;

use self::local::LocalCounters;
use self::redis::RedisCounters;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A fixed UTC window a counter lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// `floor(ms / 60 000)`: rate limits per minute.
    Minute,
    /// A UTC calendar day: daily budgets.
    Day,
    /// A UTC calendar month: monthly budgets.
    Month,
}

impl Window {
    /// The first millisecond (since the Unix epoch) of the window holding `now_ms`.
    pub fn start_ms(self, now_ms: i64) -> i64 {
        match self {
            Window::Minute => now_ms.div_euclid(MINUTE_MS) * MINUTE_MS,
            Window::Day => now_ms.div_euclid(DAY_MS) * DAY_MS,
            Window::Month => {
                let (year, month, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
                days_from_civil(year, month, 1) * DAY_MS
            }
        }
    }

    /// The first millisecond after the window holding `now_ms`: when its counters reset.
    pub fn end_ms(self, now_ms: i64) -> i64 {
        match self {
            Window::Minute => self.start_ms(now_ms) + MINUTE_MS,
            Window::Day => self.start_ms(now_ms) + DAY_MS,
            Window::Month => {
                let (year, month, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
                let (year, month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                days_from_civil(year, month, 1) * DAY_MS
            }
        }
    }

    /// A short label, also part of the counter's key (a minute and a day may start on the same
    /// millisecond).
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// How long a counter outlives its window: late settles of long requests still land.
    fn margin_ms(self) -> i64 {
        match self {
            Window::Minute => HOUR_MS,
            Window::Day | Window::Month => DAY_MS,
        }
    }

    /// The longest a window lasts.
    fn max_len_ms(self) -> i64 {
        match self {
            Window::Minute => MINUTE_MS,
            Window::Day => DAY_MS,
            Window::Month => 31 * DAY_MS,
        }
    }
}

/// How long, from `now_ms`, the counter of the window starting at `window_start_ms` is kept: until
/// its window ends plus the margin, never longer than a whole window plus the margin (a clock far
/// behind cannot make a counter live for ever). Zero or less: the window is gone, do not write.
fn time_to_live_ms(window: Window, window_start_ms: i64, now_ms: i64) -> i64 {
    let until = window.end_ms(window_start_ms).saturating_add(window.margin_ms());
    until.saturating_sub(now_ms).min(window.max_len_ms() + window.margin_ms())
}

/// One limit a request counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The counter, e.g. `budget:team:search` or `rpm:key:k_123`.
    pub key: String,
    pub window: Window,
    /// The most the counter may reach in one window.
    pub limit: i64,
    /// What this request adds. Zero only checks that the limit is not reached yet (`used <
    /// limit`), e.g. a budget whose cost is known only after the call.
    pub amount: i64,
}

/// A counter after a successful reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub key: String,
    /// The counter after this reservation.
    pub used: i64,
    pub limit: i64,
    /// The window the reservation counted in: hand it to `Limiter::adjust` when settling.
    pub window_start_ms: i64,
    /// When the window ends and the counter starts again from zero.
    pub reset_ms: i64,
}

/// The charge that did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// Its position in the charges handed to `reserve`.
    pub index: usize,
    /// The counter as it is (nothing was added).
    pub used: i64,
    pub limit: i64,
    /// When the window ends: the `Retry-After` of a rate limit.
    pub reset_ms: i64,
}

/// What a limit check can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// 429: a charge does not fit in its limit; nothing was counted.
    #[error("limit reached: charge {} at {} of {} until {}", .0.index, .0.used, .0.limit, .0.reset_ms)]
    Exceeded(Exceeded),
    /// 503: the shared counters did not answer and the policy is to fail closed.
    #[error("limit counters unavailable: {0}")]
    Unavailable(String),
    /// 500 at startup: the Redis URL cannot be parsed.
    #[error("invalid redis url: {0}")]
    InvalidUrl(String),
}

impl LimitError {
    /// A reached limit is the client's; the counters being down or misconfigured is ours.
    pub fn fault(&self) -> Fault {
        match self {
            LimitError::Exceeded(_) => Fault::Client,
            LimitError::Unavailable(_) | LimitError::InvalidUrl(_) => Fault::Internal,
        }
    }

    /// True when the same request may succeed later without changing it.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, LimitError::InvalidUrl(_))
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LimitError::Exceeded(_) => "limit_exceeded",
            LimitError::Unavailable(_) => "limit_backend_unavailable",
            LimitError::InvalidUrl(_) => "invalid_redis_url",
        }
    }
}

/// What to do when the shared counters do not answer (error, timeout, connection down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Refuse the request (`LimitError::Unavailable`).
    FailClosed,
    /// Count in this replica's own counters until the shared ones answer again; each such call
    /// shows in `Limiter::backend_errors`.
    FailOpen,
}

/// The limit counters. Cheap to clone: clones share the same counters.
#[derive(Clone)]
pub struct Limiter {
    backend: Arc<Backend>,
}

#[allow(clippy::large_enum_variant, reason = "built once per process and kept behind an Arc")]
enum Backend {
    Local(LocalCounters),
    Redis(RedisCounters),
}

impl std::fmt::Debug for Limiter {
    // The Redis URL may carry a password: only the backend is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("backend", &self.backend_name()).finish()
    }
}

impl Limiter {
    /// Counters in this process only: correct for one replica.
    pub fn local() -> Limiter {
        Limiter { backend: Arc::new(Backend::Local(LocalCounters::default())) }
    }

    /// Counters in the Redis at `url`, shared by every replica using it. Connects on first use
    /// (a Redis down at start is not fatal) and reconnects after an outage. `prefix` starts every
    /// key, so deployments and tests can share one Redis.
    pub fn redis(url: &str, prefix: &str, on_error: OnBackendError) -> Result<Limiter, LimitError> {
        let counters = RedisCounters::new(url, prefix, on_error)?;
        Ok(Limiter { backend: Arc::new(Backend::Redis(counters)) })
    }

    /// All or nothing: if every charge fits (`used + amount <= limit`; an amount of zero fits
    /// while `used < limit`), adds every amount and returns each counter's level, in the order
    /// of `charges`; otherwise adds nothing and names the first charge that does not fit.
    /// Atomic across tasks, and on Redis across replicas.
    pub async fn reserve(&self, charges: &[Charge], now_ms: i64) -> Result<Vec<Level>, LimitError> {
        if charges.is_empty() {
            return Ok(Vec::new());
        }
        match &*self.backend {
            Backend::Local(local) => local.reserve(charges, now_ms),
            Backend::Redis(redis) => redis.reserve(charges, now_ms).await,
        }
    }

    /// Adds `delta` (negative to give back what a reservation over-estimated) to `key`'s counter
    /// of the window starting at `window_start_ms` (`Level::window_start_ms`), so that a request
    /// straddling a window boundary settles where it reserved. A window gone past its margin at
    /// `now_ms` is left alone.
    pub async fn adjust(
        &self,
        key: &str,
        window: Window,
        window_start_ms: i64,
        delta: i64,
        now_ms: i64,
    ) -> Result<(), LimitError> {
        if delta == 0 || time_to_live_ms(window, window_start_ms, now_ms) <= 0 {
            return Ok(());
        }
        match &*self.backend {
            Backend::Local(local) => {
                local.adjust(key, window, window_start_ms, delta, now_ms);
                Ok(())
            }
            Backend::Redis(redis) => redis.adjust(key, window, window_start_ms, delta, now_ms).await,
        }
    }

    /// Sets `key`'s counter of the current window to `value` unless it exists already: a budget's
    /// spend seeded from the usage tables at start never overwrites a running replica's count.
    pub async fn seed(&self, key: &str, window: Window, now_ms: i64, value: i64) -> Result<(), LimitError> {
        match &*self.backend {
            Backend::Local(local) => {
                local.seed(key, window, now_ms, value);
                Ok(())
            }
            Backend::Redis(redis) => redis.seed(key, window, now_ms, value).await,
        }
    }

    /// `key`'s counter in the window holding `now_ms` (zero when nothing was counted).
    pub async fn used(&self, key: &str, window: Window, now_ms: i64) -> Result<i64, LimitError> {
        match &*self.backend {
            Backend::Local(local) => Ok(local.used(key, window, now_ms)),
            Backend::Redis(redis) => redis.used(key, window, now_ms).await,
        }
    }

    /// How many calls the shared counters did not answer so far (errors, timeouts, and calls made
    /// while they were resting after one); with `FailOpen`, the calls served by local counters.
    /// Always zero on the local backend.
    pub fn backend_errors(&self) -> u64 {
        match &*self.backend {
            Backend::Local(_) => 0,
            Backend::Redis(redis) => redis.errors(),
        }
    }

    /// False while the shared counters are failing: their last call did not answer. True before
    /// the first call and on the local backend.
    pub fn backend_healthy(&self) -> bool {
        match &*self.backend {
            Backend::Local(_) => true,
            Backend::Redis(redis) => redis.healthy(),
        }
    }

    /// `"local"` or `"redis"`, for logs and metrics labels.
    pub fn backend_name(&self) -> &'static str {
        match &*self.backend {
            Backend::Local(_) => "local",
            Backend::Redis(_) => "redis",
        }
    }
}

/// Whether `amount` fits on a counter at `used`.
fn fits(used: i64, amount: i64, limit: i64) -> bool {
    if amount == 0 {
        used < limit
    } else {
        used.saturating_add(amount) <= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-01T00:00:00Z.
    const NEW_YEAR_2025: i64 = 1_735_689_600_000;

    #[test]
    fn civil_dates_round_trip_over_four_centuries() {
        for days in (-146_097 * 2)..(146_097 * 2) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(NEW_YEAR_2025 / DAY_MS), (2025, 1, 1));
    }

    #[test]
    fn month_window_of_the_last_millisecond_of_december_ends_on_new_year() {
        let last = NEW_YEAR_2025 - 1;
        assert_eq!(Window::Month.start_ms(last), NEW_YEAR_2025 - 31 * DAY_MS);
        assert_eq!(Window::Month.end_ms(last), NEW_YEAR_2025);
        assert_eq!(Window::Month.start_ms(NEW_YEAR_2025), NEW_YEAR_2025);
        assert_eq!(Window::Month.end_ms(NEW_YEAR_2025), NEW_YEAR_2025 + 31 * DAY_MS);
    }

    #[test]
    fn february_has_29_days_in_leap_years_only() {
        let feb = |y| days_from_civil(y, 2, 1) * DAY_MS + 5;
        for (year, days) in [(2024, 29), (2023, 28), (2000, 29), (2100, 28)] {
            let len = Window::Month.end_ms(feb(year)) - Window::Month.start_ms(feb(year));
            assert_eq!(len, days * DAY_MS, "{year}");
        }
    }

    #[test]
    fn minute_and_day_windows_are_floors_also_before_1970() {
        assert_eq!(Window::Minute.start_ms(NEW_YEAR_2025 + 59_999), NEW_YEAR_2025);
        assert_eq!(Window::Minute.end_ms(NEW_YEAR_2025 + 59_999), NEW_YEAR_2025 + MINUTE_MS);
        assert_eq!(Window::Day.start_ms(NEW_YEAR_2025 - 1), NEW_YEAR_2025 - DAY_MS);
        assert_eq!(Window::Minute.start_ms(-1), -MINUTE_MS);
        assert_eq!(Window::Month.start_ms(-1), -31 * DAY_MS);
    }

    #[test]
    fn counters_live_until_their_window_ends_plus_the_margin_and_no_longer() {
        let start = NEW_YEAR_2025;
        assert_eq!(time_to_live_ms(Window::Minute, start, start), MINUTE_MS + HOUR_MS);
        assert_eq!(time_to_live_ms(Window::Minute, start, start + MINUTE_MS + HOUR_MS), 0);
        // A clock far behind the window cannot make the counter live longer than a window.
        assert_eq!(time_to_live_ms(Window::Day, start, 0), 2 * DAY_MS);
    }
}
