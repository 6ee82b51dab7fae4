//! `gardefou quality`: online quality rates (relevance, groundedness, compliance) of the sampled
//! production answers, per check and grouped, straight from the store.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use gardefou_store::{QualityDimension, QualityQuery, QualitySummary, StoreError};

use super::keys::StoreArgs;
use super::{align, humantime_duration, open_store};

#[derive(Args, Debug)]
pub struct QualityArgs {
    /// Group by any of route, model, provider, team, product (always per check)
    #[arg(long, value_delimiter = ',', value_parser = parse_dimension)]
    pub by: Vec<QualityDimension>,
    /// Only this route's answers
    #[arg(long)]
    pub route: Option<String>,
    /// The range: this long until now (e.g. 1h, 24h, 30d)
    #[arg(long, value_parser = humantime_duration, default_value = "24h")]
    pub since: Duration,
    /// JSON lines (one row each) instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_dimension(s: &str) -> Result<QualityDimension, String> {
    s.parse().map_err(|e: StoreError| e.to_string())
}

pub async fn run(args: QualityArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let to_ms = crate::auth::now_ms();
    let q = QualityQuery {
        from_ms: to_ms.saturating_sub(i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX)),
        to_ms,
        group_by: args.by,
        route: args.route,
    };
    let summary = match store.quality_summary(&q).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gardefou: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        for row in &summary.rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else if summary.rows.is_empty() {
        println!("no quality scores in this range (is `[routes.<name>.quality]` set, and the judge route answering?)");
    } else {
        print!("{}", table(&summary));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(s: &QualitySummary) -> String {
    let mut header: Vec<String> =
        s.group_by.iter().map(|d| if d == "name" { "check".to_owned() } else { d.clone() }).collect();
    header.extend(["judged", "errors", "mean score", "pass rate"].map(str::to_owned));
    let mut rows = vec![header];
    for r in &s.rows {
        let mut row: Vec<String> = s
            .group_by
            .iter()
            .map(|d| r.group.get(d).cloned().flatten().unwrap_or_else(|| "-".into()))
            .collect();
        row.push(r.count.to_string());
        row.push(r.errors.to_string());
        row.push(r.mean_score.map_or_else(|| "-".into(), |m| format!("{m:.3}")));
        row.push(r.pass_rate.map_or_else(|| "-".into(), |p| format!("{p:.3}")));
        rows.push(row);
    }
    align(&rows)
}
