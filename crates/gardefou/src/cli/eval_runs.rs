//! Stored eval runs from the command line: `gardefou eval runs` (the history, newest first),
//! `gardefou eval show ID`, storing a finished `eval run` (in the config's store, or on a remote
//! gateway through `POST /admin/evals/runs`), and loading `eval compare`'s operands by run id.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use gardefou_store::{EvalRun, EvalRunFilter, EvalTrigger, Store};

use super::keys::StoreArgs;
use super::{align, format_time, humantime_duration, open_store};
use crate::eval::{history, report, Report};

#[derive(Args, Debug)]
pub struct RunsArgs {
    #[arg(long)]
    pub suite: Option<String>,
    #[arg(long)]
    pub route: Option<String>,
    /// cli, schedule or api
    #[arg(long, value_parser = parse_trigger)]
    pub trigger: Option<EvalTrigger>,
    /// Only runs newer than this (e.g. 1h, 7d)
    #[arg(long, value_parser = humantime_duration)]
    pub since: Option<Duration>,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=gardefou_store::MAX_RUNS))]
    pub limit: i64,
    /// JSON lines instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The run id (from `gardefou eval runs`)
    pub id: String,
    /// The full JSON report instead of the table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_trigger(s: &str) -> Result<EvalTrigger, String> {
    EvalTrigger::parse(s).ok_or_else(|| format!("unknown trigger `{s}`: expected cli, schedule or api"))
}

pub async fn runs(args: RunsArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let since_ms =
        args.since.map(|d| crate::auth::now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let filter = EvalRunFilter {
        suite: args.suite,
        route: args.route,
        trigger: args.trigger,
        since_ms,
        limit: args.limit,
    };
    let runs = match store.list_eval_runs(&filter).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gardefou: cannot list eval runs: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        for r in &runs {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print!("{}", table(&runs));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(runs: &[EvalRun]) -> String {
    let mut rows =
        vec![["id", "started", "suite", "route", "trigger", "passed", "pass rate", "regressions", "gate"]
            .map(str::to_owned)
            .to_vec()];
    for r in runs {
        rows.push(vec![
            r.id.clone(),
            format_time(r.started_at_ms),
            r.suite.clone(),
            r.route.clone().unwrap_or_else(|| "-".into()),
            r.trigger.as_str().to_owned(),
            format!("{}/{}", r.passed, r.cases),
            format!("{:.3}", r.pass_rate),
            r.regressions.map_or_else(|| "-".into(), |n| n.to_string()),
            if r.interrupted {
                "interrupted"
            } else if r.thresholds_passed {
                "pass"
            } else {
                "FAIL"
            }
            .to_owned(),
        ]);
    }
    align(&rows)
}

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let report = match stored_report(&store, &args.id).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gardefou: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report of stored run `id`.
async fn stored_report(store: &Store, id: &str) -> Result<Report, String> {
    let run = store.get_eval_run(id).await.map_err(|e| format!("cannot read eval run `{id}`: {e}"))?;
    let run = run.ok_or_else(|| format!("no eval run `{id}` in the store"))?;
    let value = run.report.unwrap_or_default();
    serde_json::from_value(value).map_err(|e| format!("eval run `{id}` has no readable report: {e}"))
}

/// `eval compare`'s two operands: a path to a `--json` report, else a stored run id.
pub async fn load_pair(a: &str, b: &str, store: StoreArgs) -> Result<(Report, Report), String> {
    let is_file = |s: &str| std::path::Path::new(s).is_file();
    let store = if is_file(a) && is_file(b) {
        None
    } else {
        match open_store(store.database, store.config).await {
            Ok(Some(s)) => Some(s),
            Ok(None) => return Err("cannot open the store to read stored runs".to_owned()),
            Err(e) => return Err(format!("{e:#}")),
        }
    };
    let mut out = Vec::with_capacity(2);
    for operand in [a, b] {
        let report = match (&store, is_file(operand)) {
            (_, true) => read_report(std::path::Path::new(operand))?,
            (Some(store), false) => stored_report(store, operand)
                .await
                .map_err(|e| format!("{e} (and `{operand}` is not a report file)"))?,
            (None, false) => return Err(format!("`{operand}` is neither a report file nor a stored run id")),
        };
        out.push(report);
    }
    let b = out.pop().ok_or("no second report")?;
    let a = out.pop().ok_or("no first report")?;
    Ok((a, b))
}

fn read_report(path: &std::path::Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not an eval report: {e}", path.display()))
}

/// Stores a finished in-process run and says where; a failure is reported, never fatal.
pub async fn store_locally(store: &Store, report: &Report) {
    match history::record(store, report, EvalTrigger::Cli).await {
        Ok(r) => eprintln!("{}", stored_line(&r.run.id, r.previous.as_deref(), &r.regressed)),
        Err(e) => eprintln!("gardefou: the run could not be stored: {e}"),
    }
}

/// Stores a run made against `url` on that gateway.
pub async fn upload(url: &str, admin_key: &str, report: &Report) {
    let endpoint = format!("{}/admin/evals/runs", url.trim_end_matches('/'));
    let sent = reqwest::Client::new().post(&endpoint).bearer_auth(admin_key).json(report).send().await;
    match sent {
        Ok(resp) if resp.status().is_success() => {
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let regressed: Vec<String> = v["regressed_cases"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let id = v["run"]["id"].as_str().unwrap_or("?");
            eprintln!("{}", stored_line(id, v["previous_run_id"].as_str(), &regressed));
        }
        Ok(resp) => {
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let why = v["error"]["message"].as_str().unwrap_or_default();
            eprintln!("gardefou: the run could not be stored on {url}: HTTP {status} {why}");
        }
        Err(e) => eprintln!("gardefou: the run could not be stored on {url}: {e}"),
    }
}

fn stored_line(id: &str, previous: Option<&str>, regressed: &[String]) -> String {
    match previous {
        None => format!("stored as eval run {id} (no previous run to compare with)"),
        Some(p) if regressed.is_empty() => format!("stored as eval run {id}: no regression against {p}"),
        Some(p) => format!(
            "stored as eval run {id}: {} case(s) regressed against {p}: {}",
            regressed.len(),
            regressed.join(", ")
        ),
    }
}
