//! `gardefou eval export`: stored inferences (filtered by route, model, team, product, tags, time,
//! errors and a feedback score) or escalations a human answered, written as a suite that
//! `gardefou eval run` runs unchanged (stdout, or `--out FILE`). What could not become a case is
//! counted on stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use gardefou_store::{AnsweredFilter, DatasetFilter, FeedbackBound, Store};

use super::keys::StoreArgs;
use super::{humantime_duration, open_store};
use crate::eval::export::{self, Check, Draft};

const USAGE_ERROR: u8 = 2;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Stored inferences (their request bodies), or escalations a human answered
    #[arg(long, value_enum, default_value_t = Source::Inferences)]
    pub from: Source,
    /// Only what went to this route
    #[arg(long)]
    pub route: Option<String>,
    /// Inferences answered by this model
    #[arg(long)]
    pub model: Option<String>,
    /// Only this team's
    #[arg(long)]
    pub team: Option<String>,
    /// Only this product's
    #[arg(long)]
    pub product: Option<String>,
    /// Inferences carrying this tag, as key=value (repeatable: all must match)
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Only what is newer than this (e.g. 1h, 7d)
    #[arg(long, value_parser = humantime_duration)]
    pub since: Option<Duration>,
    /// Inferences with a feedback score of this name (within --min/--max; booleans are 0 or 1)
    #[arg(long, value_name = "NAME")]
    pub feedback: Option<String>,
    /// Lowest feedback value kept
    #[arg(long, requires = "feedback", allow_negative_numbers = true)]
    pub min: Option<f64>,
    /// Highest feedback value kept (`--feedback helpful --max 0`: the thumbs-down ones)
    #[arg(long, requires = "feedback", allow_negative_numbers = true)]
    pub max: Option<f64>,
    /// Only failed inferences
    #[arg(long)]
    pub errors: bool,
    /// At most this many cases, newest first
    #[arg(long, default_value_t = DatasetFilter::DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(DatasetFilter::MAX_LIMIT)))]
    pub limit: u32,
    /// Each case's assertion: none (passes when the route answers; the recorded answer is left
    /// as a comment), reference (`similar` to the recorded or human answer), exact (`equals` it),
    /// judge [default: judge with --judge-route, else none]
    #[arg(long = "assert", value_enum, value_name = "CHECK")]
    pub check: Option<CheckKind>,
    /// The `min` of a reference assertion
    #[arg(long, default_value_t = 0.8, value_parser = unit_interval)]
    pub similarity: f64,
    /// The route of the judge [default: the runner's, `judge`]
    #[arg(long)]
    pub judge_route: Option<String>,
    /// The suite's name
    #[arg(long, default_value = "exported")]
    pub name: String,
    /// Write the suite to this file instead of stdout
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Inferences,
    Escalations,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    None,
    Reference,
    Exact,
    Judge,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not a tag like key=value")),
    }
}

fn unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a number between 0 and 1")),
    }
}

impl ExportArgs {
    fn check(&self) -> Check {
        match (self.check, &self.judge_route) {
            (Some(CheckKind::None), _) | (None, None) => Check::None,
            (Some(CheckKind::Reference), _) => Check::Reference { min: self.similarity },
            (Some(CheckKind::Exact), _) => Check::Exact,
            (Some(CheckKind::Judge), route) | (None, route @ Some(_)) => {
                Check::Judge { route: route.clone() }
            }
        }
    }

    fn since_ms(&self) -> Option<i64> {
        self.since.map(|d| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            i64::try_from(now.saturating_sub(d).as_millis()).unwrap_or(0)
        })
    }

    /// The filters that only inferences have, as given.
    fn inference_only_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--model", self.model.is_some()),
            ("--tag", !self.tags.is_empty()),
            ("--feedback", self.feedback.is_some()),
            ("--errors", self.errors),
        ];
        given.into_iter().filter(|(_, set)| *set).map(|(flag, _)| flag).collect()
    }

    /// What was exported, in words: the suite's description.
    fn describe(&self, cases: usize) -> String {
        let mut parts = vec![format!(
            "{cases} case(s) exported by `gardefou eval export` from {}",
            match self.from {
                Source::Inferences => "stored inferences",
                Source::Escalations => "answered escalations",
            }
        )];
        let labels = [
            ("route", &self.route),
            ("model", &self.model),
            ("team", &self.team),
            ("product", &self.product),
        ];
        for (label, value) in labels {
            if let Some(v) = value {
                parts.push(format!("{label} {v}"));
            }
        }
        for (k, v) in &self.tags {
            parts.push(format!("tag {k}={v}"));
        }
        if let Some(f) = &self.feedback {
            let bounds = match (self.min, self.max) {
                (Some(lo), Some(hi)) => format!(" in [{lo}, {hi}]"),
                (Some(lo), None) => format!(" ≥ {lo}"),
                (None, Some(hi)) => format!(" ≤ {hi}"),
                (None, None) => String::new(),
            };
            parts.push(format!("feedback {f}{bounds}"));
        }
        if let Some(d) = self.since {
            parts.push(format!("since {} ago", humantime::format_duration(d)));
        }
        if self.errors {
            parts.push("errors only".to_owned());
        }
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        format!("{}, at {now}", parts.join(", "))
    }
}

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.from == Source::Escalations {
        let flags = args.inference_only_flags();
        if !flags.is_empty() {
            eprintln!("gardefou: {} only appl(ies) to --from inferences", flags.join(", "));
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    }
    let Some(store) = open_store(args.store.database.clone(), args.store.config.clone()).await? else {
        return Ok(ExitCode::from(USAGE_ERROR));
    };
    let drafts = match args.from {
        Source::Inferences => inference_drafts(&store, &args).await,
        Source::Escalations => escalation_drafts(&store, &args).await,
    };
    store.close().await;
    let drafts = drafts?;
    if drafts.is_empty() {
        eprintln!("gardefou: nothing to export: no case matched");
        return Ok(ExitCode::FAILURE);
    }
    let text = match export::render(&args.name, &args.describe(drafts.len()), &drafts, &args.check()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gardefou: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {} case(s) to {}", drafts.len(), path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn inference_drafts(store: &Store, args: &ExportArgs) -> anyhow::Result<Vec<Draft>> {
    let filter = DatasetFilter {
        route: args.route.clone(),
        model: args.model.clone(),
        team: args.team.clone(),
        product: args.product.clone(),
        tags: args.tags.clone(),
        since_ms: args.since_ms(),
        errors_only: args.errors,
        feedback: args.feedback.clone().map(|name| FeedbackBound { name, min: args.min, max: args.max }),
        limit: args.limit,
    };
    let found = store.dataset_inferences(&filter).await?;
    let drafts = keep_usable(found.records.iter().map(|r| (r.id.as_str(), export::from_inference(r))));
    if found.without_body > 0 {
        eprintln!(
            "gardefou: skipped {} matching inference(s) without a stored request body\n  hint: `store_bodies = \"on\"` on a route keeps them",
            found.without_body
        );
    }
    Ok(drafts)
}

async fn escalation_drafts(store: &Store, args: &ExportArgs) -> anyhow::Result<Vec<Draft>> {
    let filter = AnsweredFilter {
        route: args.route.clone(),
        team: args.team.clone(),
        product: args.product.clone(),
        since_ms: args.since_ms(),
        limit: args.limit,
    };
    let found = store.answered_escalations(&filter).await?;
    Ok(keep_usable(found.iter().map(|e| (e.id.as_str(), export::from_escalation(e)))))
}

/// The drafts that could be made; each one that could not is named on stderr.
fn keep_usable<'a>(all: impl Iterator<Item = (&'a str, Result<Draft, String>)>) -> Vec<Draft> {
    let mut out = Vec::new();
    for (id, draft) in all {
        match draft {
            Ok(d) => out.push(d),
            Err(e) => eprintln!("gardefou: skipped {id}: {e}"),
        }
    }
    out
}
