//! Eval runs, the storage side: `EvalRun` (a suite's run: where and when it ran, its headline
//! figures, the full JSON report), its insert, the history listing and the previous run of the
//! same suite on the same route, which scheduled replays compare against.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::keys::{json, numbered, on_backend, parse};
use crate::store::{Backend, Store};
use crate::StoreError;

/// At most this many runs come back from one listing.
pub const MAX_RUNS: i64 = 1000;

/// What started a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EvalTrigger {
    /// `gardefou eval run`.
    Cli,
    /// A suite attached to a route, run by the server on its cron schedule.
    Schedule,
    /// A report posted to `POST /admin/evals/runs` (a remote `gardefou eval run --url`).
    Api,
}

impl EvalTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalTrigger::Cli => "cli",
            EvalTrigger::Schedule => "schedule",
            EvalTrigger::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<EvalTrigger> {
        match s {
            "cli" => Some(EvalTrigger::Cli),
            "schedule" => Some(EvalTrigger::Schedule),
            "api" => Some(EvalTrigger::Api),
            _ => None,
        }
    }
}

/// One run as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EvalRun {
    /// A UUID v7 (text).
    pub id: String,
    pub started_at_ms: i64,
    pub duration_ms: f64,
    pub suite: String,
    /// SHA-256 (hex) of the suite file.
    pub suite_hash: String,
    /// The route every case was sent to when one was forced (`--route`, a schedule's route).
    pub route: Option<String>,
    /// What was deployed: the gateway's config revision.
    pub release: Option<String>,
    /// `in-process` or the gateway's URL.
    pub target: String,
    pub trigger: EvalTrigger,
    pub cases: i64,
    pub passed: i64,
    pub failed: i64,
    pub errors: i64,
    pub pass_rate: f64,
    pub p95_latency_ms: f64,
    pub total_cost_usd: f64,
    pub thresholds_passed: bool,
    pub interrupted: bool,
    /// Cases that passed in the previous run of the suite on the route and fail in this one.
    pub regressions: Option<i64>,
    /// The JSON report; `None` in listings, which leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

/// Which runs a listing returns, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalRunFilter {
    pub suite: Option<String>,
    pub route: Option<String>,
    pub trigger: Option<EvalTrigger>,
    /// Only runs started at or after this unix millisecond.
    pub since_ms: Option<i64>,
    /// At most this many; 0 means 50, capped at [`MAX_RUNS`].
    pub limit: i64,
}

impl EvalRunFilter {
    pub fn effective_limit(&self) -> i64 {
        if self.limit <= 0 {
            50
        } else {
            self.limit.min(MAX_RUNS)
        }
    }
}

const SUMMARY_COLUMNS: &str = "id, started_at_ms, duration_ms, suite, suite_hash, route, release, target, \
    trigger, cases, passed, failed, errors, pass_rate, p95_latency_ms, total_cost_usd, \
    thresholds_passed, interrupted, regressions";

macro_rules! decode_run {
    ($row:expr, $with_report:expr) => {{
        let row = $row;
        let id: String = row.try_get("id")?;
        let trigger: String = row.try_get("trigger")?;
        let report = if $with_report {
            let text: String = row.try_get("report")?;
            Some(parse::<serde_json::Value>(&text, "report")?)
        } else {
            None
        };
        EvalRun {
            trigger: EvalTrigger::parse(&trigger).ok_or_else(|| StoreError::Corrupt {
                id: id.clone(),
                column: "trigger",
                reason: format!("unknown trigger `{trigger}`"),
            })?,
            started_at_ms: row.try_get("started_at_ms")?,
            duration_ms: row.try_get("duration_ms")?,
            suite: row.try_get("suite")?,
            suite_hash: row.try_get("suite_hash")?,
            route: row.try_get("route")?,
            release: row.try_get("release")?,
            target: row.try_get("target")?,
            cases: row.try_get("cases")?,
            passed: row.try_get("passed")?,
            failed: row.try_get("failed")?,
            errors: row.try_get("errors")?,
            pass_rate: row.try_get("pass_rate")?,
            p95_latency_ms: row.try_get("p95_latency_ms")?,
            total_cost_usd: row.try_get("total_cost_usd")?,
            thresholds_passed: row.try_get("thresholds_passed")?,
            interrupted: row.try_get("interrupted")?,
            regressions: row.try_get("regressions")?,
            report,
            id,
        }
    }};
}

impl Store {
    /// Stores one run with its report (`run.report`, `null` if absent).
    pub async fn insert_eval_run(&self, run: &EvalRun) -> Result<(), StoreError> {
        let report = json(run.report.as_ref().unwrap_or(&serde_json::Value::Null), "report")?;
        on_backend!(self, |pool, sql| {
            sqlx::query(&sql(&format!(
                "INSERT INTO eval_runs ({SUMMARY_COLUMNS}, report) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )))
            .bind(&run.id)
            .bind(run.started_at_ms)
            .bind(run.duration_ms)
            .bind(&run.suite)
            .bind(&run.suite_hash)
            .bind(&run.route)
            .bind(&run.release)
            .bind(&run.target)
            .bind(run.trigger.as_str())
            .bind(run.cases)
            .bind(run.passed)
            .bind(run.failed)
            .bind(run.errors)
            .bind(run.pass_rate)
            .bind(run.p95_latency_ms)
            .bind(run.total_cost_usd)
            .bind(run.thresholds_passed)
            .bind(run.interrupted)
            .bind(run.regressions)
            .bind(report)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// One run with its report.
    pub async fn get_eval_run(&self, id: &str) -> Result<Option<EvalRun>, StoreError> {
        on_backend!(self, |pool, sql| {
            let row =
                sqlx::query(&sql(&format!("SELECT {SUMMARY_COLUMNS}, report FROM eval_runs WHERE id = ?")))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
            Ok(match row {
                Some(r) => Some(decode_run!(&r, true)),
                None => None,
            })
        })
    }

    /// Runs matching `filter`, newest first, without their reports.
    pub async fn list_eval_runs(&self, filter: &EvalRunFilter) -> Result<Vec<EvalRun>, StoreError> {
        let mut text = format!("SELECT {SUMMARY_COLUMNS} FROM eval_runs WHERE 1 = 1");
        if filter.suite.is_some() {
            text.push_str(" AND suite = ?");
        }
        if filter.route.is_some() {
            text.push_str(" AND route = ?");
        }
        if filter.trigger.is_some() {
            text.push_str(" AND trigger = ?");
        }
        if filter.since_ms.is_some() {
            text.push_str(" AND started_at_ms >= ?");
        }
        text.push_str(" ORDER BY started_at_ms DESC, id DESC LIMIT ?");
        on_backend!(self, |pool, sql| {
            let text = sql(&text);
            let mut q = sqlx::query(&text);
            if let Some(s) = &filter.suite {
                q = q.bind(s);
            }
            if let Some(r) = &filter.route {
                q = q.bind(r);
            }
            if let Some(t) = filter.trigger {
                q = q.bind(t.as_str());
            }
            if let Some(s) = filter.since_ms {
                q = q.bind(s);
            }
            let rows = q.bind(filter.effective_limit()).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(decode_run!(r, false));
            }
            Ok(out)
        })
    }

    /// The latest complete (not interrupted) run of `suite` on `route` that started before
    /// `before_ms`, with its report: what a new run's regressions are counted against.
    pub async fn previous_eval_run(
        &self,
        suite: &str,
        route: Option<&str>,
        before_ms: i64,
    ) -> Result<Option<EvalRun>, StoreError> {
        let route_test = if route.is_some() { "route = ?" } else { "route IS NULL" };
        let text = format!(
            "SELECT {SUMMARY_COLUMNS}, report FROM eval_runs WHERE suite = ? AND {route_test} \
             AND started_at_ms < ? AND NOT interrupted ORDER BY started_at_ms DESC, id DESC LIMIT 1"
        );
        on_backend!(self, |pool, sql| {
            let text = sql(&text);
            let mut q = sqlx::query(&text).bind(suite);
            if let Some(r) = route {
                q = q.bind(r);
            }
            let row = q.bind(before_ms).fetch_optional(pool).await?;
            Ok(match row {
                Some(r) => Some(decode_run!(&r, true)),
                None => None,
            })
        })
    }
}
