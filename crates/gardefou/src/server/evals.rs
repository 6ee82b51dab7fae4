//! Stored eval runs and online quality rates:
//!
//! - `GET /admin/evals/runs?suite=&route=&trigger=&since=&limit=` (viewers and up): runs, newest
//!   first, without their reports.
//! - `GET /admin/evals/runs/{id}` (viewers and up): one run with its full JSON report.
//! - `POST /admin/evals/runs` with a JSON report (operators and up): stores a run made
//!   elsewhere (`gardefou eval run --url … --admin-key …`), compared with the suite's previous
//!   run on the same route; 201 with the stored run and the ids of the cases that regressed.
//! - `GET /admin/quality?since=&from=&to=&group_by=route,model&route=` (viewers and up): online
//!   quality rates per check (relevance, groundedness, compliance), grouped.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gardefou_core::Error;
use gardefou_store::{EvalRunFilter, EvalTrigger, QualityDimension, QualityQuery, StoreError};
use serde_json::json;

use super::admin::authorize;
use super::error::ApiError;
use super::extract::AppJson;
use super::usage::{check_params, group_by, time_range};
use crate::auth::{now_ms, Need};
use crate::eval::{history, Report};
use crate::state::AppState;

const RUN_PARAMS: [&str; 5] = ["suite", "route", "trigger", "since", "limit"];
const QUALITY_PARAMS: [&str; 5] = ["since", "from", "to", "group_by", "route"];
const DEFAULT_SINCE_MS: i64 = 86_400_000;

fn internal(e: &StoreError, what: &str) -> ApiError {
    tracing::error!(kind = e.kind(), error = %e, "{what} failed");
    Error::Internal(format!("the {what} failed")).into()
}

/// `GET /admin/evals/runs`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers, Need::Read)?;
    let filter = run_filter(&params, now_ms())?;
    match state.store().list_eval_runs(&filter).await {
        Ok(runs) => Ok(Json(json!({ "object": "list", "data": runs }))),
        Err(e) => Err(internal(&e, "eval run listing")),
    }
}

/// The listing filter of `params`.
pub fn run_filter(params: &HashMap<String, String>, now: i64) -> Result<EvalRunFilter, Error> {
    check_params(params, &RUN_PARAMS)?;
    let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let trigger = get("trigger")
        .map(|t| {
            EvalTrigger::parse(t).ok_or_else(|| {
                Error::invalid_param(
                    format!("unknown trigger `{t}`: expected cli, schedule or api"),
                    "trigger",
                )
            })
        })
        .transpose()?;
    let since_ms = get("since")
        .map(|s| {
            humantime::parse_duration(s)
                .map(|d| now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .map_err(|e| Error::invalid_param(format!("`since` is not a duration: {e}"), "since"))
        })
        .transpose()?;
    let limit = get("limit")
        .map(|l| match l.parse::<i64>() {
            Ok(n) if (1..=gardefou_store::MAX_RUNS).contains(&n) => Ok(n),
            _ => Err(Error::invalid_param(
                format!("`limit` must be an integer in 1..={}", gardefou_store::MAX_RUNS),
                "limit",
            )),
        })
        .transpose()?
        .unwrap_or(0);
    Ok(EvalRunFilter {
        suite: get("suite").map(str::to_owned),
        route: get("route").map(str::to_owned),
        trigger,
        since_ms,
        limit,
    })
}

/// `GET /admin/evals/runs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<gardefou_store::EvalRun>, ApiError> {
    authorize(&state, &headers, Need::Read)?;
    match state.store().get_eval_run(&id).await {
        Ok(Some(run)) => Ok(Json(run)),
        Ok(None) => {
            Err(Error::NotFound { message: format!("no eval run `{id}`"), param: Some("id".to_owned()) }
                .into())
        }
        Err(e) => Err(internal(&e, "eval run lookup")),
    }
}

/// `POST /admin/evals/runs`.
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<AppJson<Report>, ApiError>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Need::Operate)?;
    let AppJson(report) = body?;
    if report.suite.trim().is_empty() {
        return Err(Error::invalid_param("the report names no suite", "suite").into());
    }
    match history::record(state.store(), &report, EvalTrigger::Api).await {
        Ok(r) => {
            let mut run = r.run;
            run.report = None;
            let body = json!({ "run": run, "regressed_cases": r.regressed, "previous_run_id": r.previous });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Err(e) => Err(internal(&e, "eval run insert")),
    }
}

/// `GET /admin/quality`.
pub async fn quality(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<gardefou_store::QualitySummary>, ApiError> {
    authorize(&state, &headers, Need::Read)?;
    let q = quality_query(&params, now_ms())?;
    match state.store().quality_summary(&q).await {
        Ok(s) => Ok(Json(s)),
        Err(StoreError::InvalidUsageQuery { param, message }) => {
            Err(Error::invalid_param(message, param).into())
        }
        Err(e) => Err(internal(&e, "quality summary")),
    }
}

/// The quality query of `params`: the last 24 hours unless `since` or `from`/`to` say otherwise.
pub fn quality_query(params: &HashMap<String, String>, now: i64) -> Result<QualityQuery, Error> {
    check_params(params, &QUALITY_PARAMS)?;
    let (from_ms, to_ms) = time_range(params, now, Some(DEFAULT_SINCE_MS))?;
    let get = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let group_by = group_by::<QualityDimension>(get("group_by"))?;
    Ok(QualityQuery { from_ms, to_ms, group_by, route: get("route").map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn run_filter_reads_every_parameter_and_refuses_bad_ones() {
        let f = run_filter(
            &params(&[("suite", "support"), ("trigger", "schedule"), ("since", "1h"), ("limit", "5")]),
            10_000_000,
        )
        .unwrap();
        assert_eq!(f.suite.as_deref(), Some("support"));
        assert_eq!(f.trigger, Some(EvalTrigger::Schedule));
        assert_eq!((f.since_ms, f.limit), (Some(10_000_000 - 3_600_000), 5));
        for bad in
            [("trigger", "cron"), ("since", "soon"), ("limit", "0"), ("limit", "100000"), ("colour", "x")]
        {
            assert!(run_filter(&params(&[bad]), 0).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn quality_query_defaults_to_a_day_and_refuses_unknown_dimensions() {
        let q = quality_query(&params(&[("group_by", "route,check")]), 100_000_000).unwrap();
        assert_eq!((q.from_ms, q.to_ms), (100_000_000 - DEFAULT_SINCE_MS, 100_000_000));
        assert_eq!(q.group_by, [QualityDimension::Route, QualityDimension::Name]);
        assert!(quality_query(&params(&[("group_by", "flavour")]), 0).is_err());
    }
}
