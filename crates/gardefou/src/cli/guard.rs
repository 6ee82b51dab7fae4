//! `gardefou guard check`: one text on stdin (or one `{"text": …}` per line with `--jsonl`)
//! through a guard policy — a `[guards.NAME]` of the config, or `default` (every scanner) — and
//! one JSON verdict per text on stdout: `{"verdict","score","findings":[{"guard","type","start",
//! "end"}],"redacted"}`, offsets in Unicode characters. How operators try a policy before a route
//! uses it, and how detection quality is measured (bench/guard).

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use gardefou_guard::Policy;

#[derive(Args, Debug)]
pub struct GuardArgs {
    #[command(subcommand)]
    pub command: GuardCommand,
}

#[derive(Subcommand, Debug)]
pub enum GuardCommand {
    /// Check text from stdin against a guard policy and print the verdict as JSON.
    Check {
        /// A `[guards.NAME]` policy of the config [default: every scanner]
        #[arg(long, default_value = "default")]
        policy: String,
        /// Config file with the policies [default: as for `serve`]
        #[arg(long, short, env = "GARDEFOU_CONFIG")]
        config: Option<PathBuf>,
        /// One JSON object `{"text": …}` per input line, one verdict per output line
        #[arg(long)]
        jsonl: bool,
    },
}

pub fn run(args: GuardArgs) -> ExitCode {
    let GuardCommand::Check { policy, config, jsonl } = args.command;
    let policies = match super::config_source(config).load() {
        Ok(c) => c.guards,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(policy) = policies.get(&policy).cloned() else {
        let known: Vec<&str> = policies.keys().map(String::as_str).collect();
        eprintln!("gardefou: no guard policy `{policy}` (known: {})", known.join(", "));
        return ExitCode::FAILURE;
    };
    if jsonl {
        check_lines(&policy)
    } else {
        check_one(&policy)
    }
}

fn check_one(policy: &Policy) -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("gardefou: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("gardefou: stdin is not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to());
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string(&policy.check(&text)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gardefou: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One verdict per line; a line that is not `{"text": "…"}` gets `{"line": n, "error": "…"}`
/// and the run goes on (exit status 1 at the end).
fn check_lines(policy: &Arc<Policy>) -> ExitCode {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gardefou: cannot read stdin: {e}");
                return ExitCode::FAILURE;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let verdict = std::str::from_utf8(&line)
            .map_err(|e| format!("not valid UTF-8 (at byte {})", e.valid_up_to()))
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).map_err(|e| format!("not JSON: {e}")))
            .and_then(|v| match v.get("text").and_then(|t| t.as_str()) {
                Some(t) => serde_json::to_value(policy.check(t)).map_err(|e| e.to_string()),
                None => Err("expected an object with a string `text`".to_owned()),
            });
        let json = match verdict {
            Ok(v) => v,
            Err(error) => {
                failed = true;
                serde_json::json!({"line": n + 1, "error": error})
            }
        };
        if writeln!(out, "{json}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() || failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
