//! Retention: which tables lose which rows when, and the task that deletes them in small
//! batches (one short `DELETE … LIMIT n` at a time, so the writer never waits long).
//!
//! `[store] retention` covers the inferences, their bodies, their quality scores, the minute
//! rollups (as detailed as the rows they summarise) and closed escalations (with their
//! conversations); `[store] usage_retention` covers the hourly and daily rollups, feedback and
//! eval runs, which are small and usually kept much longer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Store, StoreError};

/// How often the retention task looks for expired rows.
pub const RETENTION_PERIOD: Duration = Duration::from_secs(60);

/// A table that expires: its name, the key that identifies a row, and its time column.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expiring {
    pub table: &'static str,
    pub key: &'static str,
    pub time: &'static str,
    /// More conditions a row must meet to expire (`""` for none), e.g. only closed escalations.
    pub only: &'static str,
}

const DIM_KEY: &str = "ts, team, product, key_id, route, model, provider, endpoint";
const TAG_KEY: &str = "tag_key, ts, tag_value";

/// Tables under `retention`.
const DETAILED: [Expiring; 6] = [
    Expiring { table: "inferences", key: "id", time: "created_at_ms", only: "" },
    Expiring { table: "inference_bodies", key: "id", time: "created_at_ms", only: "" },
    Expiring { table: "quality_scores", key: "id", time: "created_at_ms", only: "" },
    Expiring { table: "usage_minute", key: DIM_KEY, time: "ts", only: "" },
    Expiring { table: "usage_minute_tags", key: TAG_KEY, time: "ts", only: "" },
    // Escalations go once closed (never while a reviewer may still need them).
    Expiring { table: "escalations", key: "id", time: "updated_at_ms", only: " AND status = 'closed'" },
];

/// Tables under `usage_retention`: aggregates, feedback (kept as long as the usage it explains,
/// past the inferences it scored) and eval runs (a suite's history).
const ROLLUPS: [Expiring; 6] = [
    Expiring { table: "usage_hour", key: DIM_KEY, time: "ts", only: "" },
    Expiring { table: "usage_hour_tags", key: TAG_KEY, time: "ts", only: "" },
    Expiring { table: "usage_day", key: DIM_KEY, time: "ts", only: "" },
    Expiring { table: "usage_day_tags", key: TAG_KEY, time: "ts", only: "" },
    Expiring { table: "feedback", key: "id", time: "created_at_ms", only: "" },
    Expiring { table: "eval_runs", key: "id", time: "started_at_ms", only: "" },
];

impl Expiring {
    /// The delete of at most `limit` rows older than the cutoff; `$1`/`$2` or `?`/`?`.
    pub(crate) fn delete_sql(&self, postgres: bool) -> String {
        let (cutoff, limit) = if postgres { ("$1", "$2") } else { ("?", "?") };
        let Expiring { table, key, time, only } = self;
        format!(
            "DELETE FROM {table} WHERE ({key}) IN \
             (SELECT {key} FROM {table} WHERE {time} < {cutoff}{only} LIMIT {limit})"
        )
    }
}

/// What the retention task deletes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetentionPolicy {
    /// Inferences, bodies and minute rollups older than this go.
    pub detailed: Option<Duration>,
    /// Hourly and daily rollups older than this go.
    pub usage: Option<Duration>,
    /// Rows per `DELETE` statement.
    pub batch: usize,
}

impl RetentionPolicy {
    pub fn is_empty(&self) -> bool {
        self.detailed.is_none() && self.usage.is_none()
    }
}

impl Store {
    /// Deletes at most `limit` inferences (and their bodies) created before `cutoff_ms`, one
    /// short statement per table; returns how many inferences went.
    pub async fn delete_older_than(&self, cutoff_ms: i64, limit: usize) -> Result<u64, StoreError> {
        let n = self.delete_expired(&DETAILED[0], cutoff_ms, limit).await?;
        self.delete_expired(&DETAILED[1], cutoff_ms, limit).await?;
        Ok(n)
    }

    /// Deletes every row the policy expires, `batch` rows per statement so writers wait at most
    /// one small delete; returns how many inferences were deleted. Stops early (between batches)
    /// when `stop` is cancelled.
    pub async fn purge_expired(
        &self,
        policy: &RetentionPolicy,
        stop: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let mut inferences = 0;
        let plan = [(policy.detailed, &DETAILED[..]), (policy.usage, &ROLLUPS[..])];
        for (keep, tables) in plan {
            let Some(keep) = keep else { continue };
            let cutoff_ms = now_ms().saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
            for t in tables {
                let n = self.purge_table(t, cutoff_ms, policy.batch, stop).await?;
                if t.table == "inferences" {
                    inferences = n;
                }
            }
        }
        Ok(inferences)
    }

    async fn purge_table(
        &self,
        t: &Expiring,
        cutoff_ms: i64,
        batch: usize,
        stop: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        while !stop.is_cancelled() {
            let deleted = self.delete_expired(t, cutoff_ms, batch).await?;
            total += deleted;
            if deleted < batch.max(1) as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }

    /// Spawns on `tracker` the task that runs [`Store::purge_expired`] at once and then every
    /// [`RETENTION_PERIOD`] until `shutdown` is cancelled. `Recorder::spawn` calls this when
    /// `[store] retention` or `usage_retention` is set.
    pub fn spawn_retention(
        &self,
        policy: RetentionPolicy,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) {
        let store = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(RETENTION_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                let purge = store.purge_expired(&policy, &shutdown);
                let result = tokio::select! {
                    result = purge => result,
                    () = shutdown.cancelled() => break,
                };
                match result {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "expired inference records deleted"),
                    Err(err) => {
                        tracing::warn!(kind = err.kind(), error = %err, "retention delete failed")
                    }
                }
            }
            tracing::debug!("retention task stopped");
        });
    }
}

/// Wall-clock unix milliseconds, the clock `created_at_ms` is written in.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
