//! `gardefou feedback list | summary`: the scores attached to inferences, straight from the
//! store (the config's `store.database_url`, or `--database`), as a table or `--json`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use gardefou_store::{Feedback, FeedbackDimension, FeedbackQuery, FeedbackSummary, StoreError};

use super::keys::StoreArgs;
use super::{align, format_time, humantime_duration, open_store};
use crate::control::feedback::to_json;

#[derive(Args, Debug)]
pub struct FeedbackArgs {
    #[command(subcommand)]
    pub command: FeedbackCommand,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum FeedbackCommand {
    /// The scores of one inference, oldest first.
    List {
        /// The inference id (`x-gardefou-inference-id`)
        #[arg(long)]
        inference: String,
        /// JSON lines instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Counts, mean values and category counts, grouped.
    Summary {
        /// Group by any of route, model, provider, team, product, name
        #[arg(long, value_delimiter = ',', value_parser = parse_dimension)]
        group_by: Vec<FeedbackDimension>,
        /// Only scores with this name
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// The range: this long until now (e.g. 1h, 24h, 30d)
        #[arg(long, value_parser = humantime_duration, default_value = "24h")]
        since: Duration,
        /// JSON lines (one row each) instead of a table
        #[arg(long)]
        json: bool,
    },
}

fn parse_dimension(s: &str) -> Result<FeedbackDimension, String> {
    s.parse().map_err(|e: StoreError| e.to_string())
}

pub async fn run(args: FeedbackArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let result = match args.command {
        FeedbackCommand::List { inference, json } => store.list_feedback(&inference).await.map(|all| {
            if json {
                for f in &all {
                    println!("{}", to_json(f));
                }
            } else {
                print!("{}", list_table(&all));
            }
        }),
        FeedbackCommand::Summary { group_by, name, team, since, json } => {
            let to_ms = crate::auth::now_ms();
            let q = FeedbackQuery {
                from_ms: to_ms.saturating_sub(i64::try_from(since.as_millis()).unwrap_or(i64::MAX)),
                to_ms,
                group_by,
                name,
                team,
            };
            store.feedback_summary(&q).await.map(|summary| {
                if json {
                    for row in &summary.rows {
                        println!("{}", serde_json::to_string(row).unwrap_or_default());
                    }
                } else {
                    print!("{}", summary_table(&summary));
                }
            })
        }
    };
    store.close().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("gardefou: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn list_table(all: &[Feedback]) -> String {
    let mut lines =
        vec![["id", "at (UTC)", "name", "kind", "value", "source", "comment"].map(str::to_owned).to_vec()];
    for f in all {
        let value = match f.value() {
            serde_json::Value::Null => "-".to_owned(),
            serde_json::Value::String(s) => s,
            v => v.to_string(),
        };
        let comment = f.comment.as_deref().map_or_else(|| "-".to_owned(), |c| one_line(c, 60));
        lines.push(vec![
            f.id.clone(),
            format_time(f.created_at_ms),
            f.name.clone(),
            f.kind.as_str().to_owned(),
            value,
            f.source.as_str().to_owned(),
            comment,
        ]);
    }
    let mut out = align(&lines);
    if all.is_empty() {
        out.push_str("(no feedback for this inference)\n");
    }
    out
}

fn summary_table(s: &FeedbackSummary) -> String {
    let mut head = s.group_by.clone();
    head.extend(["count", "scored", "mean", "categories"].map(str::to_owned));
    let mut lines = vec![head];
    for row in &s.rows {
        let mut line: Vec<String> = s
            .group_by
            .iter()
            .map(|d| row.group.get(d).cloned().flatten().unwrap_or_else(|| "-".to_owned()))
            .collect();
        let categories: Vec<String> = row.categories.iter().map(|(c, n)| format!("{c}={n}")).collect();
        line.extend([
            row.count.to_string(),
            row.scored.to_string(),
            row.mean.map_or_else(|| "-".to_owned(), |m| format!("{m:.3}")),
            if categories.is_empty() { "-".to_owned() } else { categories.join(",") },
        ]);
        lines.push(line);
    }
    let mut out = align(&lines);
    if s.rows.is_empty() {
        out.push_str("(no feedback in this range)\n");
    }
    out
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    }
}
