//! The in-process limit counters: one map behind a mutex (never held across an await), its
//! expired counters pruned once a minute of the callers' clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{fits, time_to_live_ms, Charge, Exceeded, Level, LimitError, Window};

/// How often, in the callers' clock, expired counters are dropped.
const PRUNE_EVERY_MS: i64 = 60_000;

#[derive(Default)]
pub(crate) struct LocalCounters {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (key, window, window start) → counter.
    counters: HashMap<(String, Window, i64), Counter>,
    next_prune_ms: i64,
}

struct Counter {
    value: i64,
    /// In the callers' clock: after this the counter reads as absent.
    expires_ms: i64,
}

impl State {
    fn value(&self, key: &str, window: Window, start: i64, now_ms: i64) -> i64 {
        // A lookup by (&str, …) would need a borrowed key type; counters are few per request.
        match self.counters.get(&(key.to_owned(), window, start)) {
            Some(c) if c.expires_ms > now_ms => c.value,
            _ => 0,
        }
    }

    /// Adds `delta`, (re)starting an expired counter from zero; returns the new value.
    fn add(&mut self, key: &str, window: Window, start: i64, delta: i64, now_ms: i64) -> i64 {
        let expires_ms = now_ms.saturating_add(time_to_live_ms(window, start, now_ms));
        let counter =
            self.counters.entry((key.to_owned(), window, start)).or_insert(Counter { value: 0, expires_ms });
        if counter.expires_ms <= now_ms {
            counter.value = 0;
        }
        counter.value = counter.value.saturating_add(delta);
        counter.expires_ms = expires_ms;
        counter.value
    }

    fn prune(&mut self, now_ms: i64) {
        if now_ms < self.next_prune_ms {
            return;
        }
        self.counters.retain(|_, c| c.expires_ms > now_ms);
        self.next_prune_ms = now_ms.saturating_add(PRUNE_EVERY_MS);
    }
}

impl LocalCounters {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn reserve(&self, charges: &[Charge], now_ms: i64) -> Result<Vec<Level>, LimitError> {
        let mut state = self.lock();
        state.prune(now_ms);
        // Check every charge first, counting earlier charges on the same counter.
        for (index, charge) in charges.iter().enumerate() {
            let start = charge.window.start_ms(now_ms);
            let earlier: i64 = charges[..index]
                .iter()
                .filter(|c| c.key == charge.key && c.window == charge.window)
                .map(|c| c.amount)
                .sum();
            let used = state.value(&charge.key, charge.window, start, now_ms).saturating_add(earlier);
            if !fits(used, charge.amount, charge.limit) {
                return Err(LimitError::Exceeded(Exceeded {
                    index,
                    used,
                    limit: charge.limit,
                    reset_ms: charge.window.end_ms(now_ms),
                }));
            }
        }
        Ok(charges
            .iter()
            .map(|charge| {
                let start = charge.window.start_ms(now_ms);
                let used = if charge.amount == 0 {
                    state.value(&charge.key, charge.window, start, now_ms)
                } else {
                    state.add(&charge.key, charge.window, start, charge.amount, now_ms)
                };
                Level {
                    key: charge.key.clone(),
                    used,
                    limit: charge.limit,
                    window_start_ms: start,
                    reset_ms: charge.window.end_ms(now_ms),
                }
            })
            .collect())
    }

    /// The caller has checked that the window is not gone.
    pub(crate) fn adjust(&self, key: &str, window: Window, start: i64, delta: i64, now_ms: i64) {
        let mut state = self.lock();
        state.prune(now_ms);
        state.add(key, window, start, delta, now_ms);
    }

    pub(crate) fn seed(&self, key: &str, window: Window, now_ms: i64, value: i64) {
        let start = window.start_ms(now_ms);
        let mut state = self.lock();
        state.prune(now_ms);
        let live =
            state.counters.get(&(key.to_owned(), window, start)).is_some_and(|c| c.expires_ms > now_ms);
        if !live {
            state.add(key, window, start, value, now_ms);
        }
    }

    pub(crate) fn used(&self, key: &str, window: Window, now_ms: i64) -> i64 {
        self.lock().value(key, window, window.start_ms(now_ms), now_ms)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().counters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_windows_are_pruned_so_memory_stays_bounded() {
        let counters = LocalCounters::default();
        let t0 = 1_735_689_600_000;
        for minute in 0..500 {
            let now = t0 + minute * 60_000;
            let charge = Charge { key: "rpm:key:k".into(), window: Window::Minute, limit: 10, amount: 1 };
            counters.reserve(&[charge], now).unwrap();
        }
        // Minute counters outlive their window by an hour: about 61 remain, not 500.
        assert!(counters.len() <= 62, "{} counters kept", counters.len());
        counters.used("rpm:key:k", Window::Minute, t0 + 10 * 86_400_000);
        counters.adjust("x", Window::Minute, t0 + 10 * 86_400_000, 1, t0 + 10 * 86_400_000);
        assert_eq!(counters.len(), 1);
    }
}
