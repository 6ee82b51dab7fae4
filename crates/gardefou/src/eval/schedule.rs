//! Scheduled replay: the suites attached to routes (`[[routes.x.evals]]`) run inside the server on
//! their cron schedules (UTC), through the gateway's own router, one run of an entry at a time.
//! Every run is stored (trigger `schedule`) and compared with the previous run of the suite on
//! the route. A run that fails a threshold, or in which a case that passed last time fails,
//! raises `gardefou_eval_regressions_total` / `gardefou_eval_runs_total{result}`, an audit entry
//! (`eval.regression`, `eval.threshold_failed`) and the entry's webhook.
//!
//! The schedules follow the live config: a reload adds, changes or removes entries; a run in
//! progress finishes on the runtime it started with.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gardefou_core::config::ScheduledSuite;
use gardefou_store::{AuditEntry, EvalTrigger};
use serde_json::json;

use super::history;
use super::run::{self, Options};
use super::Suite;
use crate::state::AppState;
use crate::telemetry::metrics::{EvalLabels, EvalRunLabels};

/// The longest sleep between looks at the config (a reload is noticed within this).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The audit log's actor for scheduled runs.
pub const ACTOR: &str = "scheduler";

struct Entry {
    route: String,
    spec: ScheduledSuite,
    /// Unix ms of the next fire.
    next_ms: Option<i64>,
    running: Arc<AtomicBool>,
}

/// Starts the scheduler on the state's task tracker; it stops with the state's background tasks.
pub fn start(state: &AppState, router: axum::Router) {
    let state = state.clone();
    let stop = state.stop_token();
    state.tracker().clone().spawn(async move {
        let mut entries: BTreeMap<(String, String, String), Entry> = BTreeMap::new();
        loop {
            let now = crate::auth::now_ms();
            let rt = state.runtime();
            let mut live = BTreeMap::new();
            for (name, route) in &rt.config.routes {
                for spec in &route.evals {
                    let key = (name.clone(), spec.suite.display().to_string(), spec.schedule.clone());
                    let entry = match entries.remove(&key) {
                        Some(mut e) => {
                            e.spec = spec.clone();
                            e
                        }
                        None => Entry {
                            route: name.clone(),
                            next_ms: spec.next_after_ms(now),
                            spec: spec.clone(),
                            running: Arc::default(),
                        },
                    };
                    live.insert(key, entry);
                }
            }
            drop(rt);
            entries = live;
            for e in entries.values_mut() {
                if e.next_ms.is_some_and(|t| t <= now) {
                    e.next_ms = e.spec.next_after_ms(now);
                    if e.running.swap(true, Ordering::AcqRel) {
                        tracing::warn!(suite = %e.spec.suite.display(), route = %e.route, "scheduled eval still running: this turn is skipped");
                        continue;
                    }
                    let (state, router, running) = (state.clone(), router.clone(), e.running.clone());
                    let (route, spec) = (e.route.clone(), e.spec.clone());
                    state.tracker().clone().spawn(async move {
                        run_once(&state, router, &route, &spec).await;
                        running.store(false, Ordering::Release);
                    });
                }
            }
            let next = entries.values().filter_map(|e| e.next_ms).min();
            let wait = next.map_or(MAX_SLEEP, |t| {
                Duration::from_millis(u64::try_from(t - crate::auth::now_ms()).unwrap_or(0)).min(MAX_SLEEP)
            });
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// Runs one scheduled suite, stores it and raises what it found.
pub async fn run_once(state: &AppState, router: axum::Router, route: &str, spec: &ScheduledSuite) {
    let file = spec.suite.display().to_string();
    let m = state.metrics();
    let suite = match Suite::load(&spec.suite) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, route, "scheduled eval: the suite cannot be read");
            let name =
                spec.suite.file_stem().map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
            let labels = EvalRunLabels { suite: name, route: route.to_owned(), result: "error" };
            m.eval_runs().get_or_create(&labels).inc();
            let notice =
                json!({ "event": "eval.error", "suite_file": file, "route": route, "error": e.to_string() });
            alert(state, spec, "eval.error", None, notice).await;
            return;
        }
    };
    let similarity = match super::similarity(&suite) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, route, suite = %suite.name, "scheduled eval: no embedding model");
            None
        }
    };
    let rt = state.runtime();
    let opts = Options {
        base: String::new(),
        router: Some(router),
        key: None,
        route: Some(route.to_owned()),
        concurrency: spec.concurrency as usize,
        repeat: 1,
        prices: super::prices(&rt.config),
        similarity,
        target: "schedule".to_owned(),
        release: Some(rt.config.revision.clone()),
    };
    drop(rt);
    let report = run::run(suite, &file, opts, state.stop_token().child_token()).await;
    let labels = EvalLabels { suite: report.suite.clone(), route: route.to_owned() };
    m.eval_pass_rate().get_or_create(&labels).set(report.summary.pass_rate);
    let recorded = match history::record(state.store(), &report, EvalTrigger::Schedule).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(kind = e.kind(), error = %e, suite = %report.suite, "scheduled eval: the run could not be stored");
            return;
        }
    };
    let failed: Vec<String> =
        report.thresholds.iter().filter(|t| !t.passed).map(|t| t.name.clone()).collect();
    let result = if report.interrupted {
        "interrupted"
    } else if !recorded.regressed.is_empty() {
        "regressed"
    } else if !failed.is_empty() {
        "failed"
    } else {
        "passed"
    };
    m.eval_runs()
        .get_or_create(&EvalRunLabels { suite: labels.suite.clone(), route: labels.route.clone(), result })
        .inc();
    m.eval_regressions().get_or_create(&labels).inc_by(recorded.regressed.len() as u64);
    tracing::info!(suite = %report.suite, route, result, pass_rate = report.summary.pass_rate, run = %recorded.run.id, "scheduled eval finished");
    if result != "failed" && result != "regressed" {
        return;
    }
    let event = if result == "regressed" { "eval.regression" } else { "eval.threshold_failed" };
    let notice = json!({
        "event": event,
        "suite": report.suite,
        "suite_file": file,
        "route": route,
        "run_id": recorded.run.id,
        "previous_run_id": recorded.previous,
        "release": report.release,
        "pass_rate": report.summary.pass_rate,
        "regressed_cases": recorded.regressed,
        "failed_thresholds": failed,
    });
    alert(state, spec, event, Some(&recorded.run.id), notice).await;
}

/// Writes the audit entry and posts the webhook of a scheduled run's problem.
async fn alert(
    state: &AppState,
    spec: &ScheduledSuite,
    action: &str,
    run_id: Option<&str>,
    notice: serde_json::Value,
) {
    let entry = AuditEntry {
        seq: 0,
        at_ms: crate::auth::now_ms(),
        actor: ACTOR.to_owned(),
        action: action.to_owned(),
        target: Some(run_id.map_or_else(|| spec.suite.display().to_string(), str::to_owned)),
        team: None,
        before: None,
        after: Some(notice.clone()),
    };
    if let Err(e) = state.store().append_audit(&entry).await {
        tracing::error!(kind = e.kind(), error = %e, "could not write the audit entry of a scheduled eval");
    }
    if let Some(url) = &spec.webhook {
        let sent = crate::control::escalations::webhook_client().post(url).json(&notice).send().await;
        if !sent.as_ref().is_ok_and(|r| r.status().is_success()) {
            state.metrics().webhook_failures().inc();
            tracing::warn!(event = action, status = ?sent.as_ref().ok().map(|r| r.status().as_u16()), "eval alert webhook failed");
        }
    }
}
