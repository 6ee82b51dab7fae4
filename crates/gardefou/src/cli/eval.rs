//! `gardefou eval run SUITE` (the release gate: exit 0 when every threshold holds, 1 when one
//! fails, 2 for a usage or suite error, 130 when interrupted; the run is stored) and
//! `gardefou eval compare A B` (report files or stored run ids).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use gardefou_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::eval::run::{Options, DEFAULT_JUDGE_ROUTE};
use crate::eval::{compare, report, run, Report, Suite};
use crate::state::AppState;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Run a suite through the gateway: exit 0 if every threshold holds, 1 if not, 2 on a bad suite.
    Run(RunArgs),
    /// Compare two runs (`--json` report files or stored run ids): regressions, fixes,
    /// pass-rate difference, score deltas. Exit 1 when a case regressed.
    Compare {
        a: String,
        b: String,
        /// The comparison as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: super::keys::StoreArgs,
    },
    /// Stored runs, newest first: CLI runs, scheduled replays and uploaded reports.
    Runs(super::eval_runs::RunsArgs),
    /// One stored run: its summary table, or its full JSON report.
    Show(super::eval_runs::ShowArgs),
    /// Write stored inferences or answered escalations as a suite `eval run` runs unchanged.
    Export(super::eval_export::ExportArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The suite file (TOML)
    pub suite: PathBuf,
    /// Run every case on this route instead of the suite's
    #[arg(long)]
    pub route: Option<String>,
    /// A running gardefou to send the cases to [default: one started in-process from the config]
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the API key sent as `Authorization: Bearer`
    #[arg(long, env = "GARDEFOU_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
    /// Runs of each case; a case passes when every run passes
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Write the full report as JSON (the stored artefact `eval compare` reads)
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Config file of the in-process gateway (with --url: only for prices) [default: as for `serve`]
    #[arg(long, short, env = "GARDEFOU_CONFIG")]
    pub config: Option<PathBuf>,
    /// With --url: an admin credential (operator or admin) to store the run on that gateway
    #[arg(long, env = "GARDEFOU_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Do not store the run (in-process: in the config's store; with --url: on the gateway)
    #[arg(long)]
    pub no_store: bool,
}

const USAGE_ERROR: u8 = 2;
const INTERRUPTED: u8 = 130;

pub async fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        EvalCommand::Run(args) => eval_run(args).await,
        EvalCommand::Compare { a, b, json, store } => eval_compare(&a, &b, json, store).await,
        EvalCommand::Runs(args) => super::eval_runs::runs(args).await,
        EvalCommand::Show(args) => super::eval_runs::show(args).await,
        EvalCommand::Export(args) => super::eval_export::run(args).await,
    }
}

async fn eval_compare(
    a: &str,
    b: &str,
    json: bool,
    store: super::keys::StoreArgs,
) -> anyhow::Result<ExitCode> {
    let (ra, rb) = match super::eval_runs::load_pair(a, b, store).await {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("gardefou: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let c = compare::compare(&ra, &rb);
    if json {
        println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
    } else {
        print!("{}", compare::render(&c));
    }
    Ok(if c.regressions.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The routes a suite calls, judges included.
fn routes_used(suite: &Suite, cli: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for case in &suite.cases {
        out.insert(suite.route_of(case, cli).to_owned());
        for a in &case.assert {
            if let Some(j) = a.judged() {
                out.insert(j.route.unwrap_or(DEFAULT_JUDGE_ROUTE).to_owned());
            }
        }
    }
    out
}

async fn eval_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let file = args.suite.display().to_string();
    let suite = match Suite::load(&args.suite) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let similarity = match crate::eval::similarity(&suite) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gardefou: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let stop = CancellationToken::new();
    let ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\ngardefou: interrupted: finishing the requests in flight (Ctrl-C again to quit now)"
                );
                stop.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(INTERRUPTED));
                }
            }
        })
    };
    let mut opts = Options {
        base: String::new(),
        router: None,
        key: args.key.clone(),
        route: args.route.clone(),
        concurrency: args.concurrency as usize,
        repeat: args.repeat,
        prices: BTreeMap::new(),
        similarity,
        target: String::new(),
        release: None,
    };
    let report = match &args.url {
        Some(url) => {
            if args.config.is_some() {
                match super::config_source(args.config.clone()).load() {
                    Ok(c) => opts.prices = crate::eval::prices(&c),
                    Err(e) => {
                        eprintln!("{e}");
                        return Ok(ExitCode::from(USAGE_ERROR));
                    }
                }
            }
            opts.base = url.clone();
            opts.target = url.clone();
            let report = run::run(suite, &file, opts, stop.clone()).await;
            match (&args.admin_key, args.no_store) {
                (_, true) => {}
                (Some(admin_key), false) => super::eval_runs::upload(url, admin_key, &report).await,
                (None, false) => eprintln!(
                    "gardefou: the run is not stored: pass --admin-key (or GARDEFOU_ADMIN_KEY) to store it on {url}"
                ),
            }
            report
        }
        None => match in_process(suite, &file, opts, &args, stop.clone()).await? {
            Some(r) => r,
            None => return Ok(ExitCode::from(USAGE_ERROR)),
        },
    };
    ctrl_c.abort();
    print!("{}", report::table(&report));
    if let Err(e) = write_reports(&report, &args) {
        eprintln!("gardefou: {e:#}");
        return Ok(ExitCode::from(USAGE_ERROR));
    }
    if report.interrupted {
        eprintln!("gardefou: interrupted: {} of {} cases finished", report.cases.len(), report.total_cases);
        return Ok(ExitCode::from(INTERRUPTED));
    }
    let failed: Vec<String> = report
        .thresholds
        .iter()
        .filter(|t| !t.passed)
        .map(|t| format!("{} = {:.4} (limit {})", t.name, t.actual, t.limit))
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("gardefou: suite `{}` failed its thresholds: {}", report.suite, failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

fn write_reports(report: &Report, args: &RunArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Builds the gateway from the config in-process and sends the cases through its router (no
/// socket, no key), then stores the run in the config's store (unless `--no-store`) and stops
/// the gateway with its records flushed. `None` after printing a config or route error (nothing
/// sent).
async fn in_process(
    suite: Suite,
    file: &str,
    mut opts: Options,
    args: &RunArgs,
    stop: CancellationToken,
) -> anyhow::Result<Option<Report>> {
    let source = super::config_source(args.config.clone());
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(None);
        }
    };
    let unknown: Vec<String> = routes_used(&suite, args.route.as_deref())
        .into_iter()
        .filter(|r| !config.routes.contains_key(r))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.routes.keys().map(String::as_str).collect();
        eprintln!(
            "{file}: unknown route(s) {} in {}\n  hint: defined routes: {}",
            unknown.join(", "),
            source.describe(),
            known.join(", ")
        );
        return Ok(None);
    }
    opts.prices = crate::eval::prices(&config);
    opts.release = Some(config.revision.clone());
    let store = Store::connect(&config.store.database_url)
        .await
        .with_context(|| format!("cannot open the store {}", config.store.database_url))?;
    let tracker = TaskTracker::new();
    let state = AppState::new(config, source, store, tracker.clone());
    opts.router = Some(crate::server::app(state.clone()));
    opts.target = "in-process".to_owned();
    let report = run::run(suite, file, opts, stop).await;
    if !args.no_store {
        super::eval_runs::store_locally(state.store(), &report).await;
    }
    state.shutdown().await;
    tracker.close();
    tracker.wait().await;
    Ok(Some(report))
}
