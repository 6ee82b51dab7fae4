//! Settling reservations off the hot path: a finished call's budget reservations become its true
//! cost and its tokens are added to the tokens-per-minute counters, by one task reading a bounded
//! queue. A full queue never blocks a request: the settle is dropped and counted (a dropped
//! budget settle leaves the worst case counted — spend is over-, never under-estimated).

use gardefou_store::limits::{Limiter, Window};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::NANO;
use crate::telemetry::Metrics;

const QUEUE: usize = 65_536;

/// What a call reserved: (counter, window, window start, nano-USD reserved) per budget, and
/// (counter, window start) per tokens-per-minute limit.
#[derive(Debug, Default, Clone)]
pub struct Reservation {
    pub budgets: Vec<(String, Window, i64, i64)>,
    pub tokens: Vec<(String, i64)>,
}

pub(super) struct Settle {
    pub reservation: Reservation,
    /// `None`: the price is unknown, the reservation stays as it is.
    pub cost_usd: Option<f64>,
    pub tokens: u64,
}

#[derive(Clone)]
pub(super) struct Settler {
    tx: mpsc::Sender<Settle>,
    metrics: Metrics,
}

impl Settler {
    pub(super) fn spawn(
        limiter: Limiter,
        metrics: Metrics,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Settler {
        let (tx, mut rx) = mpsc::channel::<Settle>(QUEUE);
        let m = metrics.clone();
        tracker.spawn(async move {
            loop {
                let next = tokio::select! {
                    s = rx.recv() => s,
                    () = stop.cancelled() => {
                        // Drain what is queued, then stop.
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some(s) = next else { break };
                settle(&limiter, &m, s).await;
            }
        });
        Settler { tx, metrics }
    }

    pub(super) fn send(&self, s: Settle) {
        if self.tx.try_send(s).is_err() {
            self.metrics.settles_dropped().inc();
        }
    }
}

async fn settle(limiter: &Limiter, metrics: &Metrics, s: Settle) {
    let now = crate::auth::now_ms();
    if let Some(cost) = s.cost_usd {
        let actual = (cost * NANO).ceil() as i64;
        for (key, window, start, reserved) in &s.reservation.budgets {
            if let Err(e) = limiter.adjust(key, *window, *start, actual - reserved, now).await {
                metrics.settles_dropped().inc();
                tracing::warn!(kind = e.kind(), "a budget settle failed; the worst case stays counted");
            }
        }
    }
    let tokens = i64::try_from(s.tokens).unwrap_or(i64::MAX);
    for (key, start) in &s.reservation.tokens {
        if let Err(e) = limiter.adjust(key, Window::Minute, *start, tokens, now).await {
            metrics.settles_dropped().inc();
            tracing::warn!(kind = e.kind(), "a tokens-per-minute update failed");
        }
    }
}
