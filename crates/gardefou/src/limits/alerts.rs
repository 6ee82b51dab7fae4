//! Soft budget thresholds: when a reservation carries a budget across one of its `alert_at`
//! fractions, a metric counts it and the budget's webhook receives a JSON notice — once per
//! crossing, since only one reservation can cross a given level. Webhooks go out from one task
//! reading a bounded queue, with a short timeout; a notice that cannot be queued or delivered is
//! counted and logged, never retried forever.

use std::time::Duration;

use gardefou_core::config::BudgetConfig;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::NANO;
use crate::telemetry::metrics::AlertLabels;
use crate::telemetry::Metrics;

const QUEUE: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

/// The JSON a budget webhook receives.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub event: &'static str,
    pub budget: String,
    /// The counter, e.g. `budget:per-user:user=ana`.
    pub counter: String,
    pub threshold: f64,
    pub used_usd: f64,
    pub limit_usd: f64,
    pub window: &'static str,
    pub resets_at_ms: i64,
}

#[derive(Clone)]
pub(super) struct Alerts {
    tx: mpsc::Sender<(String, Alert)>,
    metrics: Metrics,
}

impl Alerts {
    pub(super) fn spawn(metrics: Metrics, tracker: &TaskTracker, stop: CancellationToken) -> Alerts {
        let (tx, mut rx) = mpsc::channel::<(String, Alert)>(QUEUE);
        let m = metrics.clone();
        tracker.spawn(async move {
            let client = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default();
            loop {
                let next = tokio::select! {
                    a = rx.recv() => a,
                    () = stop.cancelled() => {
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some((url, alert)) = next else { break };
                let sent = client.post(&url).json(&alert).send().await;
                let ok = sent.as_ref().is_ok_and(|r| r.status().is_success());
                if !ok {
                    m.webhook_failures().inc();
                    tracing::warn!(budget = %alert.budget, "budget alert webhook failed");
                }
            }
        });
        Alerts { tx, metrics }
    }

    /// Fires the alerts of `b` whose thresholds lie in `(before, after]` (nano-USD).
    pub(super) fn check(&self, b: &BudgetConfig, counter: &str, before: i64, after: i64, reset_ms: i64) {
        let limit = b.limit_usd * NANO;
        for &t in &b.alert_at {
            let level = t * limit;
            if (before as f64) < level && (after as f64) >= level {
                self.metrics
                    .budget_alerts()
                    .get_or_create(&AlertLabels { budget: b.name.clone(), threshold: format!("{t}") })
                    .inc();
                tracing::warn!(budget = %b.name, threshold = t, "budget threshold crossed");
                if let Some(url) = &b.webhook {
                    let alert = Alert {
                        event: "budget.threshold",
                        budget: b.name.clone(),
                        counter: counter.to_owned(),
                        threshold: t,
                        used_usd: after as f64 / NANO,
                        limit_usd: b.limit_usd,
                        window: b.window.as_str(),
                        resets_at_ms: reset_ms,
                    };
                    if self.tx.try_send((url.clone(), alert)).is_err() {
                        self.metrics.webhook_failures().inc();
                    }
                }
            }
        }
    }
}
