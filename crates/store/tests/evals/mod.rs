//! Eval runs and online quality scores on both backends: a run stored with its report, listed
//! newest first without it, filtered; the previous complete run of a suite on a route; quality
//! scores per inference and their rates grouped by route and check.

use gardefou_store::{
    EvalRun, EvalRunFilter, EvalTrigger, QualityDimension, QualityQuery, QualityScore, StoreError,
};
use serde_json::json;

use crate::support::TestDb;

on_both_backends! {
    #[tokio::test] fn eval_run_round_trips_with_its_report_and_lists_without_it;
    #[tokio::test] fn eval_runs_list_newest_first_filtered_by_suite_route_trigger_and_since;
    #[tokio::test] fn previous_run_is_the_latest_complete_one_of_the_suite_on_the_route;
    #[tokio::test] fn quality_scores_are_listed_per_inference_and_summarised_per_check;
}

fn run(i: u32, suite: &str, route: Option<&str>, at: i64) -> EvalRun {
    EvalRun {
        id: format!("0190c000-0000-7000-8000-{i:012}"),
        started_at_ms: at,
        duration_ms: 1234.5,
        suite: suite.into(),
        suite_hash: "ab".repeat(32),
        route: route.map(Into::into),
        release: Some("cfg-1f2e".into()),
        target: "in-process".into(),
        trigger: EvalTrigger::Cli,
        cases: 4,
        passed: 3,
        failed: 1,
        errors: 0,
        pass_rate: 0.75,
        p95_latency_ms: 88.0,
        total_cost_usd: 0.0125,
        thresholds_passed: false,
        interrupted: false,
        regressions: None,
        report: Some(
            json!({"suite": suite, "cases": [{"id": "refund", "passed": true, "text": "ça marche 🦀"}]}),
        ),
    }
}

async fn eval_run_round_trips_with_its_report_and_lists_without_it(db: TestDb) {
    let store = db.store().await;
    let a = EvalRun {
        regressions: Some(2),
        trigger: EvalTrigger::Schedule,
        thresholds_passed: true,
        ..run(1, "support", Some("chat"), 1_000)
    };
    store.insert_eval_run(&a).await.unwrap();
    assert_eq!(store.get_eval_run(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_eval_run("no-such-run").await.unwrap(), None);
    let listed = store.list_eval_runs(&EvalRunFilter::default()).await.unwrap();
    assert_eq!(listed, [EvalRun { report: None, ..a.clone() }]);
    // The id is the primary key.
    assert!(store.insert_eval_run(&a).await.is_err());
}

async fn eval_runs_list_newest_first_filtered_by_suite_route_trigger_and_since(db: TestDb) {
    let store = db.store().await;
    let runs = [
        run(1, "support", Some("chat"), 1_000),
        run(2, "support", Some("chat"), 3_000),
        run(3, "support", None, 2_000),
        EvalRun { trigger: EvalTrigger::Api, ..run(4, "billing", Some("chat"), 4_000) },
    ];
    for r in &runs {
        store.insert_eval_run(r).await.unwrap();
    }
    let ids = |v: Vec<EvalRun>| v.into_iter().map(|r| r.id[r.id.len() - 1..].to_owned()).collect::<Vec<_>>();
    let all = store.list_eval_runs(&EvalRunFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["4", "2", "3", "1"]);
    let f = EvalRunFilter { suite: Some("support".into()), ..EvalRunFilter::default() };
    assert_eq!(ids(store.list_eval_runs(&f).await.unwrap()), ["2", "3", "1"]);
    let f = EvalRunFilter { route: Some("chat".into()), since_ms: Some(2_000), ..EvalRunFilter::default() };
    assert_eq!(ids(store.list_eval_runs(&f).await.unwrap()), ["4", "2"]);
    let f = EvalRunFilter { trigger: Some(EvalTrigger::Api), ..EvalRunFilter::default() };
    assert_eq!(ids(store.list_eval_runs(&f).await.unwrap()), ["4"]);
    let f = EvalRunFilter { limit: 1, ..EvalRunFilter::default() };
    assert_eq!(ids(store.list_eval_runs(&f).await.unwrap()), ["4"]);
}

async fn previous_run_is_the_latest_complete_one_of_the_suite_on_the_route(db: TestDb) {
    let store = db.store().await;
    let runs = [
        run(1, "support", Some("chat"), 1_000),
        run(2, "support", Some("chat"), 2_000),
        EvalRun { interrupted: true, ..run(3, "support", Some("chat"), 3_000) },
        run(4, "support", Some("other"), 3_500),
        run(5, "support", None, 3_600),
        run(6, "support", Some("chat"), 5_000),
    ];
    for r in &runs {
        store.insert_eval_run(r).await.unwrap();
    }
    let prev = store.previous_eval_run("support", Some("chat"), 5_000).await.unwrap().unwrap();
    assert_eq!(prev, runs[1], "the interrupted run, other routes and later runs are skipped");
    assert!(prev.report.is_some());
    let prev = store.previous_eval_run("support", None, 5_000).await.unwrap().unwrap();
    assert_eq!(prev.id, runs[4].id);
    assert_eq!(store.previous_eval_run("support", Some("chat"), 1_000).await.unwrap(), None);
    assert_eq!(store.previous_eval_run("billing", Some("chat"), 9_000).await.unwrap(), None);
}

fn score(i: u32, inference: &str, route: &str, name: &str, at: i64, score: Option<f64>) -> QualityScore {
    QualityScore {
        id: format!("0190c000-0000-7000-9000-{i:012}"),
        created_at_ms: at,
        inference_id: inference.into(),
        name: name.into(),
        score,
        passed: score.map(|s| s >= 0.5),
        reasoning: score.map(|_| "the answer cites the refund policy".into()),
        error: score.is_none().then(|| "unparsable judge output".into()),
        judge_route: "judge".into(),
        route: Some(route.into()),
        model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        team: Some("support".into()),
        product: Some("helpdesk".into()),
    }
}

async fn quality_scores_are_listed_per_inference_and_summarised_per_check(db: TestDb) {
    let store = db.store().await;
    let all = [
        score(1, "a", "chat", "relevance", 10, Some(0.9)),
        score(2, "a", "chat", "groundedness", 11, Some(0.2)),
        score(3, "b", "chat", "relevance", 20, Some(0.4)),
        score(4, "b", "chat", "groundedness", 21, None),
        score(5, "c", "search", "relevance", 30, Some(1.0)),
        score(6, "d", "chat", "relevance", 5_000, Some(1.0)),
    ];
    for s in &all {
        store.insert_quality_score(s).await.unwrap();
    }
    assert_eq!(store.list_quality_scores("a").await.unwrap(), all[..2]);
    assert!(store.insert_quality_score(&all[0]).await.is_err(), "the id is the primary key");

    let q = QualityQuery { from_ms: 0, to_ms: 1_000, group_by: vec![QualityDimension::Route], route: None };
    let summary = store.quality_summary(&q).await.unwrap();
    assert_eq!(summary.group_by, ["route", "name"], "the check is always a group, last");
    let row = |route: &str, name: &str| {
        summary
            .rows
            .iter()
            .find(|r| r.group["route"].as_deref() == Some(route) && r.group["name"].as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no {route}/{name} row in {:?}", summary.rows))
    };
    let rel = row("chat", "relevance");
    assert_eq!((rel.count, rel.scored, rel.errors, rel.pass_rate), (2, 2, 0, Some(0.5)));
    assert!((rel.mean_score.unwrap() - 0.65).abs() < 1e-9);
    let grounded = row("chat", "groundedness");
    assert_eq!((grounded.count, grounded.scored, grounded.errors, grounded.pass_rate), (2, 1, 1, Some(0.0)));
    assert_eq!(row("search", "relevance").pass_rate, Some(1.0));
    assert_eq!(summary.rows.len(), 3, "the score at 5000 is out of range");

    let q = QualityQuery { route: Some("search".into()), ..q };
    assert_eq!(store.quality_summary(&q).await.unwrap().rows.len(), 1);
    let empty = QualityQuery { from_ms: 5, to_ms: 5, ..QualityQuery::default() };
    assert!(matches!(store.quality_summary(&empty).await, Err(StoreError::InvalidUsageQuery { .. })));
    assert!("flavour".parse::<QualityDimension>().is_err());
}
