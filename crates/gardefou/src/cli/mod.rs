//! The command line: `serve`, `config check`, `logs`, `usage`, `keys`, `audit`, `guard check`,
//! `escalations`, `feedback`, `eval`, `quality`, `models`. Errors are one line with the reason.

mod escalations;
mod eval;
mod eval_export;
mod eval_runs;
mod feedback;
mod guard;
mod keys;
mod models;
mod quality;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use gardefou_core::config::Config;
use gardefou_store::{
    Bucket, Dimension, InferenceRecord, LogFilter, Store, UsageFilter, UsageQuery, UsageReport,
};
use tokio_util::task::TaskTracker;

use crate::state::{AppState, ConfigSource};

#[derive(Parser, Debug)]
#[command(
    name = "gardefou",
    version,
    about = "An LLM Ops gateway: one OpenAI-compatible endpoint in front of every model"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The models folder: `models:` paths in the config, the embedding model [default: ./models]
    #[arg(long, global = true, env = "GARDEFOU_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the gateway.
    Serve(ServeArgs),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List recent inferences.
    Logs(LogsArgs),
    /// Usage analytics: requests, tokens, cost, errors and latency, grouped and bucketed.
    Usage(UsageArgs),
    /// Guardrails: check text against a guard policy.
    Guard(guard::GuardArgs),
    /// Virtual and admin keys: create, list, rotate, revoke.
    Keys(keys::KeysArgs),
    /// The audit log of changes (keys, config), newest first, as JSON lines.
    Audit(keys::AuditArgs),
    /// The human review queue: list, show, claim, answer, close, export as eval cases.
    Escalations(escalations::EscalationsArgs),
    /// Feedback attached to inferences: list one inference's scores, summarise them.
    Feedback(feedback::FeedbackArgs),
    /// Eval suites: run one as a release gate, list and compare stored runs, export datasets.
    Eval(eval::EvalArgs),
    /// Online quality rates of sampled production answers, per check (relevance, groundedness,
    /// compliance), grouped.
    Quality(quality::QualityArgs),
    /// Model files: pull a GGUF from the Hugging Face hub into the models folder.
    Models(models::ModelsArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Config file [default: ./gardefou.toml if present, else the bundled example config]
    #[arg(long, short, env = "GARDEFOU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address, overriding `server.listen` (e.g. 0.0.0.0:8080; port 0 picks a free port)
    #[arg(long, env = "GARDEFOU_LISTEN")]
    pub listen: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a config file: exit 0 if valid, 1 with file:line:column and a hint if not.
    Check { file: PathBuf },
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Config file whose store to read [default: as for `serve`]
    #[arg(long, short, env = "GARDEFOU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL, instead of the config's `store.database_url`
    #[arg(long)]
    pub database: Option<String>,
    #[arg(long)]
    pub route: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long)]
    pub product: Option<String>,
    /// Only inferences newer than this (e.g. 15m, 1h, 2d)
    #[arg(long, value_parser = humantime_duration)]
    pub since: Option<Duration>,
    /// Only failed inferences
    #[arg(long)]
    pub errors: bool,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// JSON lines instead of a table
    #[arg(long)]
    pub json: bool,
    /// One inference, as JSON, with its request and response bodies when its route kept them
    #[arg(long, conflicts_with_all = ["route", "model", "team", "product", "since", "errors"])]
    pub id: Option<String>,
}

#[derive(Args, Debug)]
pub struct UsageArgs {
    /// Config file whose store to read [default: as for `serve`]
    #[arg(long, short, env = "GARDEFOU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL, instead of the config's `store.database_url`
    #[arg(long)]
    pub database: Option<String>,
    /// Group by up to 3 of team, product, key, route, model, provider, endpoint, tag:<name>
    #[arg(long, value_delimiter = ',', value_parser = parse_dimension)]
    pub by: Vec<Dimension>,
    /// The range: this long until now (e.g. 1h, 24h, 30d)
    #[arg(long, value_parser = humantime_duration, default_value = "24h")]
    pub since: Duration,
    /// Time buckets: minute, hour or day [default: one row per group]
    #[arg(long, value_parser = parse_bucket)]
    pub bucket: Option<Bucket>,
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long)]
    pub product: Option<String>,
    #[arg(long)]
    pub route: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    /// JSON lines (one row each) instead of a table
    #[arg(long)]
    pub json: bool,
}

fn parse_dimension(s: &str) -> Result<Dimension, String> {
    s.parse().map_err(|e: gardefou_store::StoreError| e.to_string())
}

fn parse_bucket(s: &str) -> Result<Bucket, String> {
    s.parse().map_err(|e: gardefou_store::StoreError| e.to_string())
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("`{s}` is not a duration like 30s, 15m, 1h or 2d"))
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

fn config_source(explicit: Option<PathBuf>) -> ConfigSource {
    match explicit {
        Some(p) => ConfigSource::File(p),
        None if std::path::Path::new("gardefou.toml").exists() => ConfigSource::File("gardefou.toml".into()),
        None => ConfigSource::Bundled,
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Config(ConfigCommand::Check { file }) => Ok(check(&file)),
        Command::Logs(args) => logs(args).await,
        Command::Usage(args) => usage(args).await,
        Command::Guard(args) => Ok(guard::run(args)),
        Command::Keys(args) => keys::run(args).await,
        Command::Audit(args) => keys::audit(args).await,
        Command::Escalations(args) => escalations::run(args).await,
        Command::Feedback(args) => feedback::run(args).await,
        Command::Eval(args) => eval::run(args).await,
        Command::Quality(args) => quality::run(args).await,
        Command::Models(args) => models::run(args).await,
    }
}

fn check(file: &std::path::Path) -> ExitCode {
    match Config::load(file).and_then(|c| crate::eval::check_scheduled(&c).map(|n| (c, n))) {
        Ok((c, suites)) => {
            println!(
                "{}: ok ({} providers, {} models, {} routes, {suites} scheduled suites)",
                file.display(),
                c.providers.len(),
                c.models.len(),
                c.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let source = config_source(args.config);
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let listen = args.listen.unwrap_or_else(|| config.server.listen.clone());
    let store = Store::connect(&config.store.database_url)
        .await
        .with_context(|| format!("cannot open the store {}", config.store.database_url))?;
    let tracker = TaskTracker::new();
    let state = AppState::new(config, source.clone(), store, tracker.clone());
    let failed: Vec<String> = state
        .runtime()
        .load_errors
        .iter()
        .map(|(provider, reason)| format!("{}: providers.{provider}: {reason}", source.describe()))
        .collect();
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("{f}");
        }
        state.shutdown().await;
        return Ok(ExitCode::FAILURE);
    }
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let rt = state.runtime();
    tracing::info!(%addr, config = %source.describe(), routes = rt.routes.len(), disabled_providers = rt.disabled.len(), "gardefou started");
    // Two lines on stdout (the first names the address, for scripts); a closed stdout is no error.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "gardefou listening on http://{addr} (config: {})", source.describe());
        let _ = writeln!(out, "{}", local_models_line(&rt));
        let _ = out.flush();
    }
    drop(rt);

    let stop = tokio_util::sync::CancellationToken::new();
    tracker.spawn(reload_on_sighup(state.clone(), stop.clone()));
    crate::server::serve(listener, state.clone(), shutdown_signal()).await?;
    stop.cancel();
    tracing::info!("flushing inference records");
    state.shutdown().await;
    state.traces().shutdown().await;
    tracker.close();
    tracker.wait().await;
    tracing::info!(
        written = state.recorder().written(),
        dropped = state.recorder().dropped(),
        "gardefou stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// What answers without a key: the local models loaded in-process, or why none is.
fn local_models_line(rt: &crate::runtime::Runtime) -> String {
    let mut loaded = Vec::new();
    let mut absent = Vec::new();
    for m in rt.config.models.values() {
        match (&m.local, &m.unavailable) {
            (Some(spec), _) if !rt.disabled.contains_key(&m.provider) => {
                loaded.push(format!("{} ({})", m.name, spec.path.display()));
            }
            (_, Some(why)) => absent.push(format!("{}: {why}", m.name)),
            _ => {}
        }
    }
    let mock = if rt.has_mock() { "the mock provider" } else { "nothing (no mock provider configured)" };
    match (loaded.is_empty(), absent.is_empty()) {
        (false, _) => format!("local models: {}", loaded.join(", ")),
        (true, false) => format!(
            "no local model ({}); keyless routes answer with {mock} (scripts/fetch-models.sh fetches SmolLM2-135M)",
            absent.join("; ")
        ),
        (true, true) => format!("no local model configured; keyless routes answer with {mock}"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn reload_on_sighup(state: AppState, stop: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = hup.recv() => {
                    if r.is_none() { return; }
                    let _ = state.reload_by("signal:SIGHUP").await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    stop.cancelled().await;
}

/// The store of `--database`, else of the config; `None` after printing a config error.
async fn open_store(database: Option<String>, config: Option<PathBuf>) -> anyhow::Result<Option<Store>> {
    let url = match database {
        Some(u) => u,
        None => match config_source(config).load() {
            Ok(c) => c.store.database_url,
            Err(e) => {
                eprintln!("{e}");
                return Ok(None);
            }
        },
    };
    Ok(Some(Store::connect(&url).await.with_context(|| format!("cannot open the store {url}"))?))
}

async fn usage(args: UsageArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.database, args.config).await? else { return Ok(ExitCode::FAILURE) };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let to_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    let query = UsageQuery {
        from_ms: to_ms.saturating_sub(i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX)),
        to_ms,
        group_by: args.by,
        bucket: args.bucket,
        filter: UsageFilter {
            team: args.team,
            product: args.product,
            route: args.route,
            model: args.model,
            key: args.key,
            provider: args.provider,
        },
    };
    let report = match store.usage(&query).await {
        Ok(r) => r,
        Err(e @ gardefou_store::StoreError::InvalidUsageQuery { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        let mut out = String::new();
        for row in &report.rows {
            out.push_str(&serde_json::to_string(row)?);
            out.push('\n');
        }
        print!("{out}");
    } else {
        print!("{}", usage_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn usage_table(report: &UsageReport) -> String {
    let mut head: Vec<String> = Vec::new();
    if report.bucket.is_some() {
        head.push("bucket (UTC)".into());
    }
    head.extend(report.group_by.iter().cloned());
    for h in [
        "requests",
        "errors %",
        "avail %",
        "tokens in/cached/out",
        "cache %",
        "cost $",
        "unpriced",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p50",
    ] {
        head.push(h.into());
    }
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
    let mut lines = vec![head];
    for r in &report.rows {
        let mut l: Vec<String> = Vec::new();
        if let Some(b) = r.bucket_start {
            l.push(format_time(b)[..16].to_owned());
        }
        for g in &report.group_by {
            l.push(r.group.get(g).cloned().flatten().unwrap_or_else(|| "-".into()));
        }
        l.extend([
            r.requests.to_string(),
            format!("{:.2}", r.error_rate * 100.0),
            format!("{:.2}", r.availability * 100.0),
            format!("{}/{}/{}", r.input_tokens, r.cached_input_tokens, r.output_tokens),
            format!("{:.1}", r.cache_hit_rate * 100.0),
            format!("{:.4}", r.cost_usd),
            r.unknown_cost.to_string(),
            ms(r.latency_ms.p50),
            ms(r.latency_ms.p95),
            ms(r.latency_ms.p99),
            ms(r.ttft_ms.p50),
        ]);
        lines.push(l);
    }
    let mut out = align(&lines);
    if report.rows.is_empty() {
        out.push_str("(no usage in this range)\n");
    }
    out
}

/// Left-aligned columns two spaces apart.
fn align(lines: &[Vec<String>]) -> String {
    let mut widths = vec![0usize; lines.first().map_or(0, Vec::len)];
    for l in lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.database, args.config).await? else { return Ok(ExitCode::FAILURE) };
    if let Some(id) = &args.id {
        return match store.get_inference(id).await? {
            Some(rec) => {
                println!("{}", serde_json::to_string_pretty(&crate::server::inferences::record_json(&rec))?);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("gardefou: no inference `{id}` in the store");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let since_ms = args.since.map(|d| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(now.saturating_sub(d).as_millis()).unwrap_or(0)
    });
    let filter = LogFilter {
        route: args.route,
        model: args.model,
        team: args.team,
        product: args.product,
        since_ms,
        errors_only: args.errors,
        limit: args.limit,
    };
    let rows = store.list_inferences(&filter).await?;
    let mut out = String::new();
    if args.json {
        for r in &rows {
            out.push_str(&serde_json::to_string(&record_json(r))?);
            out.push('\n');
        }
    } else {
        out = table(&rows);
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn record_json(r: &InferenceRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "created_at_ms": r.created_at_ms, "request_id": r.request_id, "endpoint": r.endpoint,
        "route": r.route, "model": r.model, "provider": r.provider,
        "key_id": r.key_id, "team": r.team, "product": r.product, "end_user": r.end_user,
        "status": r.status, "error_kind": r.error_kind, "error_message": r.error_message, "stream": r.stream,
        "input_tokens": r.input_tokens, "cached_input_tokens": r.cached_input_tokens,
        "output_tokens": r.output_tokens, "reasoning_tokens": r.reasoning_tokens,
        "tokens_estimated": r.tokens_estimated, "cost_usd": r.cost_usd,
        "latency_ms": r.latency_ms, "ttft_ms": r.ttft_ms, "finish_reason": r.finish_reason,
        "attempts": r.attempts, "tags": r.tags,
    })
}

fn table(rows: &[InferenceRecord]) -> String {
    let mut lines = vec![[
        "time (UTC)".to_owned(),
        "route".to_owned(),
        "model".to_owned(),
        "status".to_owned(),
        "tokens in/out".to_owned(),
        "cost $".to_owned(),
        "latency ms".to_owned(),
        "attempts".to_owned(),
        "team/product".to_owned(),
        "error".to_owned(),
    ]];
    for r in rows {
        lines.push([
            format_time(r.created_at_ms),
            r.route.clone().unwrap_or_else(|| "-".into()),
            r.model.clone().unwrap_or_else(|| "-".into()),
            r.status.to_string(),
            match (r.input_tokens, r.output_tokens) {
                (Some(i), Some(o)) => format!("{i}/{o}{}", if r.tokens_estimated { "~" } else { "" }),
                _ => "-".into(),
            },
            r.cost_usd.map_or_else(|| "?".into(), |c| format!("{c:.6}")),
            format!("{:.0}", r.latency_ms),
            r.attempts.len().to_string(),
            format!("{}/{}", r.team.as_deref().unwrap_or("-"), r.product.as_deref().unwrap_or("-")),
            r.error_kind.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = [0usize; 10];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no inferences match)\n");
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` from unix milliseconds (UTC), without a date crate.
fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1y"), None);
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_735_689_600_000), "2025-01-01 00:00:00");
        assert_eq!(format_time(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03");
    }
}
