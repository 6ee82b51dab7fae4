//! Stored runs: a report turned into its stored row, with the cases that regressed against the
//! previous complete run of the same suite on the same route.

use gardefou_store::{EvalRun, EvalTrigger, Store, StoreError};

use super::compare;
use super::report::Report;

/// The row of `report`; `regressions` counted against the previous run, if any.
pub fn stored(
    report: &Report,
    trigger: EvalTrigger,
    regressions: Option<i64>,
) -> Result<EvalRun, StoreError> {
    let s = &report.summary;
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(EvalRun {
        id: uuid::Uuid::now_v7().to_string(),
        started_at_ms: report.started_at_ms,
        duration_ms: report.duration_ms,
        suite: report.suite.clone(),
        suite_hash: report.suite_hash.clone(),
        route: report.route.clone(),
        release: report.release.clone(),
        target: report.target.clone(),
        trigger,
        cases: count(s.cases),
        passed: count(s.passed),
        failed: count(s.failed),
        errors: count(s.errors),
        pass_rate: s.pass_rate,
        p95_latency_ms: s.p95_latency_ms,
        total_cost_usd: s.total_cost_usd,
        thresholds_passed: report.passed(),
        interrupted: report.interrupted,
        regressions,
        report: Some(
            serde_json::to_value(report).map_err(|source| StoreError::Json { column: "report", source })?,
        ),
    })
}

/// What a stored run found: the row, and the ids of the cases that passed in the previous run and
/// fail in this one (empty without a previous run).
#[derive(Debug)]
pub struct Recorded {
    pub run: EvalRun,
    pub regressed: Vec<String>,
    /// The previous run compared against.
    pub previous: Option<String>,
}

/// Stores `report`, comparing it with the previous complete run of its suite on its route. An
/// interrupted run is stored but compared with nothing.
pub async fn record(store: &Store, report: &Report, trigger: EvalTrigger) -> Result<Recorded, StoreError> {
    let previous = if report.interrupted {
        None
    } else {
        store.previous_eval_run(&report.suite, report.route.as_deref(), report.started_at_ms + 1).await?
    };
    let before = previous
        .as_ref()
        .and_then(|p| p.report.as_ref())
        .and_then(|v| serde_json::from_value::<Report>(v.clone()).ok());
    let regressed = before.as_ref().map(|b| compare::compare(b, report).regressions).unwrap_or_default();
    let count = before.as_ref().map(|_| i64::try_from(regressed.len()).unwrap_or(i64::MAX));
    let run = stored(report, trigger, count)?;
    store.insert_eval_run(&run).await?;
    Ok(Recorded { run, regressed, previous: previous.map(|p| p.id) })
}
