//! Health of one target of a route: a circuit breaker (consecutive failures or error rate over a
//! window open it; after a cooldown one probe is let through, half-open) and a latency EWMA used
//! by least-latency balancing. Time is tokio time, so tests run on a paused clock.

use std::sync::Mutex;
use std::time::Duration;

use gardefou_core::config::BreakerPolicy;
use tokio::time::Instant;

/// EWMA weight of the newest latency sample.
const EWMA_ALPHA: f64 = 0.3;

#[derive(Debug)]
pub struct Health {
    policy: BreakerPolicy,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    window_start: Instant,
    window_requests: u32,
    window_failures: u32,
    /// Latency EWMA in ms; `None` until a first success.
    ewma_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// One probe is in flight; others are refused until it reports.
    HalfOpen,
}

/// What `Health::admit` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The circuit is half-open and this request is its probe.
    Probe,
    Refused,
}

impl Health {
    pub fn new(policy: BreakerPolicy) -> Self {
        Health {
            policy,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                window_start: Instant::now(),
                window_requests: 0,
                window_failures: 0,
                ewma_ms: None,
            }),
        }
    }

    pub fn policy(&self) -> BreakerPolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a request may go to this target now.
    pub fn admit(&self) -> Admission {
        let mut g = self.lock();
        match g.state {
            State::Closed => Admission::Allowed,
            State::HalfOpen => Admission::Refused,
            State::Open { until } if Instant::now() >= until => {
                g.state = State::HalfOpen;
                Admission::Probe
            }
            State::Open { .. } => Admission::Refused,
        }
    }

    /// Cheap check without side effects, for selection.
    pub fn is_available(&self) -> bool {
        match self.lock().state {
            State::Closed => true,
            State::HalfOpen => false,
            State::Open { until } => Instant::now() >= until,
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.lock().state, State::Closed)
    }

    pub fn on_success(&self, latency: Duration) {
        let mut g = self.lock();
        let ms = latency.as_secs_f64() * 1000.0;
        g.ewma_ms = Some(match g.ewma_ms {
            Some(prev) => prev + EWMA_ALPHA * (ms - prev),
            None => ms,
        });
        g.consecutive_failures = 0;
        g.state = State::Closed;
        self.count(&mut g, false);
    }

    /// The upstream answered, though not with success (a client error, a rate limit): it is alive,
    /// so a half-open circuit closes; latency is not sampled.
    pub fn on_alive(&self) {
        let mut g = self.lock();
        g.consecutive_failures = 0;
        if g.state == State::HalfOpen {
            g.state = State::Closed;
        }
    }

    /// Returns true when this failure opened the circuit.
    pub fn on_failure(&self) -> bool {
        let mut g = self.lock();
        g.consecutive_failures += 1;
        self.count(&mut g, true);
        let p = &self.policy;
        let trip_consecutive = p.failures > 0 && g.consecutive_failures >= p.failures;
        let trip_rate = g.window_requests >= p.min_requests
            && f64::from(g.window_failures) / f64::from(g.window_requests) >= p.error_rate;
        if g.state == State::HalfOpen || trip_consecutive || trip_rate {
            g.state = State::Open { until: Instant::now() + p.cooldown };
            g.window_requests = 0;
            g.window_failures = 0;
            g.window_start = Instant::now();
            return true;
        }
        false
    }

    fn count(&self, g: &mut Inner, failed: bool) {
        let now = Instant::now();
        if now.duration_since(g.window_start) >= self.policy.window {
            g.window_start = now;
            g.window_requests = 0;
            g.window_failures = 0;
        }
        g.window_requests += 1;
        if failed {
            g.window_failures += 1;
        }
    }

    /// Latency EWMA in ms; targets never measured rank as fast so they get tried.
    pub fn ewma_ms(&self) -> f64 {
        self.lock().ewma_ms.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(15),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn three_failures_open_the_circuit_then_one_probe_closes_it() {
        let h = Health::new(policy());
        assert_eq!(h.admit(), Admission::Allowed);
        assert!(!h.on_failure());
        assert!(!h.on_failure());
        assert!(h.on_failure(), "third consecutive failure opens");
        assert_eq!(h.admit(), Admission::Refused);

        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(h.admit(), Admission::Refused, "still cooling down");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(h.admit(), Admission::Probe);
        assert_eq!(h.admit(), Admission::Refused, "only one probe at a time");
        h.on_success(Duration::from_millis(40));
        assert_eq!(h.admit(), Admission::Allowed);
        assert!(!h.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_another_cooldown() {
        let h = Health::new(policy());
        for _ in 0..3 {
            h.on_failure();
        }
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(h.admit(), Admission::Probe);
        assert!(h.on_failure());
        assert_eq!(h.admit(), Admission::Refused);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(h.admit(), Admission::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn error_rate_over_the_window_opens_without_consecutive_failures() {
        let h = Health::new(BreakerPolicy { failures: 0, ..policy() });
        // alternate success and failure: never 3 in a row, but 50 % errors over 10 requests
        for i in 0..10 {
            if i % 2 == 0 {
                h.on_success(Duration::from_millis(10));
            } else {
                h.on_failure();
            }
        }
        assert!(h.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_old_requests() {
        let h = Health::new(BreakerPolicy { failures: 0, ..policy() });
        for _ in 0..9 {
            h.on_success(Duration::from_millis(10));
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        for _ in 0..4 {
            h.on_failure();
        }
        assert!(!h.is_open(), "4 requests in the new window are under min_requests");
    }

    #[tokio::test]
    async fn ewma_moves_towards_new_samples() {
        let h = Health::new(policy());
        assert_eq!(h.ewma_ms(), 0.0);
        h.on_success(Duration::from_millis(100));
        assert!((h.ewma_ms() - 100.0).abs() < 1e-9);
        h.on_success(Duration::from_millis(200));
        assert!((h.ewma_ms() - 130.0).abs() < 1e-9);
    }
}
