//! `gardefou escalations list | show | claim | answer | close | export`: the human review queue
//! straight on the store (the config's `store.database_url`, or `--database`). Changes are
//! audited as `cli:<user>`; an answer is posted to the escalation's callback before the command
//! exits (5 s at most).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use gardefou_store::{Escalation, EscalationFilter};
use tokio_util::task::TaskTracker;

use super::keys::StoreArgs;
use super::{align, format_time, open_store};
use crate::control::escalations::{export_case, parse_status, Queue};
use crate::telemetry::Metrics;

#[derive(Args, Debug)]
pub struct EscalationsArgs {
    #[command(subcommand)]
    pub command: EscalationsCommand,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum EscalationsCommand {
    /// List escalations, oldest first.
    List {
        /// open, claimed, answered, closed, or all
        #[arg(long, default_value = "open")]
        status: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// JSON lines (with the conversations) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// One escalation as JSON, with its conversation.
    Show { id: String },
    /// Take an open escalation.
    Claim { id: String },
    /// Answer an open or claimed escalation; the client reads the answer with the id.
    Answer {
        id: String,
        #[arg(long)]
        text: String,
    },
    /// Close an escalation.
    Close { id: String },
    /// Write answered escalations as eval cases, one JSON object per line.
    ///
    /// `eval run` does not read these lines: `gardefou eval export --from escalations` writes the
    /// same escalations as a suite it runs unchanged.
    Export {
        /// answered, closed, or all (only escalations with an answer are written)
        #[arg(long, default_value = "answered")]
        status: String,
        #[arg(long)]
        team: Option<String>,
        /// Write to this file instead of stdout
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()))
}

fn filter(status: &str, team: Option<String>, limit: u32) -> Result<EscalationFilter, gardefou_core::Error> {
    let status = if status == "all" { None } else { Some(parse_status(status)?) };
    Ok(EscalationFilter { status, team, limit })
}

pub async fn run(args: EscalationsArgs) -> anyhow::Result<ExitCode> {
    let Some(store) = open_store(args.store.database, args.store.config).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let tracker = TaskTracker::new();
    let queue = Queue::new(store.clone(), Metrics::new(), tracker.clone());
    let result = match args.command {
        EscalationsCommand::List { status, team, limit, json } => {
            match filter(&status, team, limit.clamp(1, EscalationFilter::MAX_LIMIT)) {
                Ok(f) => queue.list(&f).await.map(|all| {
                    if json {
                        for e in &all {
                            println!("{}", serde_json::to_string(e).unwrap_or_default());
                        }
                    } else {
                        print!("{}", table_of(&all));
                    }
                }),
                Err(e) => Err(e),
            }
        }
        EscalationsCommand::Show { id } => queue.load(&id).await.map(|e| {
            println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
        }),
        EscalationsCommand::Claim { id } => {
            queue.claim(&actor(), &id).await.map(|_| eprintln!("claimed escalation {id}"))
        }
        EscalationsCommand::Answer { id, text } => {
            queue.answer(&actor(), &id, &text).await.map(|_| eprintln!("answered escalation {id}"))
        }
        EscalationsCommand::Close { id } => {
            queue.close(&actor(), &id).await.map(|_| eprintln!("closed escalation {id}"))
        }
        EscalationsCommand::Export { status, team, out } => {
            match filter(&status, team, EscalationFilter::MAX_LIMIT) {
                Ok(f) => match queue.list(&f).await {
                    Ok(all) => {
                        let cases: Vec<_> = all.iter().filter(|e| e.answer.is_some()).collect();
                        let mut text = String::new();
                        for e in &cases {
                            text.push_str(&export_case(e).to_string());
                            text.push('\n');
                        }
                        match out {
                            Some(path) => {
                                std::fs::write(&path, text)
                                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                                eprintln!("wrote {} eval cases to {}", cases.len(), path.display());
                            }
                            None => std::io::stdout().write_all(text.as_bytes())?,
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
    };
    // Webhook notices go out before the process ends.
    tracker.close();
    tracker.wait().await;
    store.close().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("gardefou: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn table_of(all: &[Escalation]) -> String {
    let mut lines = vec![["id", "opened (UTC)", "status", "reason", "route", "team", "claimed by"]
        .map(str::to_owned)
        .to_vec()];
    for e in all {
        lines.push(vec![
            e.id.clone(),
            format_time(e.created_at_ms),
            e.status.as_str().to_owned(),
            e.reason.clone(),
            e.route.clone(),
            e.team.clone().unwrap_or_else(|| "-".to_owned()),
            e.claimed_by.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let mut out = align(&lines);
    if all.is_empty() {
        out.push_str("(no escalations match)\n");
    }
    out
}
