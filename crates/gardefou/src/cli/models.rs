//! `gardefou models pull REPO FILE`: downloads a model file (a GGUF) from the Hugging Face hub
//! into the models folder, for users who are online.
//!
//! - The file goes to `<models-dir>/<repo name>/<file name>` (or `--out`), through
//!   `<dest>.part`: an interrupted pull resumes from what the part file holds (`Range`), and the
//!   file appears under its name only once complete and verified.
//! - The SHA-256 is checked against `--sha256`, else the hub's LFS ETag (`X-Linked-Etag` on its
//!   redirect); a mismatch deletes the part file and fails. A file with no known checksum is kept
//!   and its SHA-256 printed, said as unverified.
//! - `HF_ENDPOINT` replaces `https://huggingface.co` (a mirror); `HF_TOKEN` is sent as a bearer
//!   token for gated repositories and never printed.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Download a model file from the Hugging Face hub (resumable, checksummed).
    Pull {
        /// The repository, e.g. `HuggingFaceTB/SmolLM2-135M-Instruct-GGUF`
        repo: String,
        /// The file in it, e.g. `smollm2-135m-instruct-q4_k_m.gguf`
        file: String,
        /// Branch, tag or commit
        #[arg(long, default_value = "main")]
        revision: String,
        /// Where to write it [default: <models-dir>/<repo name>/<file name>]
        #[arg(long)]
        out: Option<PathBuf>,
        /// The expected SHA-256 (hex) [default: the hub's LFS checksum]
        #[arg(long)]
        sha256: Option<String>,
    },
}

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const MAX_REDIRECTS: usize = 5;

pub async fn run(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ModelsCommand::Pull { repo, file, revision, out, sha256 } => {
            let dest = out.unwrap_or_else(|| default_dest(&repo, &file));
            match pull(&repo, &file, &revision, &dest, sha256.as_deref()).await {
                Ok(line) => {
                    println!("{line}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("gardefou: models pull {repo} {file}: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// `<models-dir>/<repo name>/<file name>`.
fn default_dest(repo: &str, file: &str) -> PathBuf {
    let name = repo.rsplit('/').next().unwrap_or(repo);
    let base = file.rsplit('/').next().unwrap_or(file);
    gardefou_core::config::models_dir().join(name).join(base)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hub's checksum of an LFS file: its (quoted) ETag when it is a SHA-256.
fn etag_sha256(headers: &reqwest::header::HeaderMap) -> Option<String> {
    ["x-linked-etag", "etag"].iter().find_map(|h| {
        let v = headers.get(*h)?.to_str().ok()?;
        let v = v.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
        is_sha256(&v).then_some(v)
    })
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

async fn pull(
    repo: &str,
    file: &str,
    revision: &str,
    dest: &Path,
    sha256: Option<&str>,
) -> Result<String, String> {
    let wanted = match sha256 {
        Some(s) if is_sha256(s.trim()) => Some(s.trim().to_ascii_lowercase()),
        Some(s) => return Err(format!("--sha256 `{s}` is not 64 hex digits")),
        None => None,
    };
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
    let url = format!("{}/{repo}/resolve/{revision}/{file}", endpoint.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty());
    let part = PathBuf::from(format!("{}.part", dest.display()));
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let have = std::fs::metadata(&part).map_or(0, |m| m.len());

    // Follow the redirects by hand: the hub says the checksum on its own answer, not the CDN's.
    let (mut resp, mut expected) = (None, wanted.clone());
    let mut next = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut req = client.get(&next);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        // The token goes to the hub only, never to a CDN on another host.
        if let (Some(t), true) = (&token, next.starts_with(endpoint.trim_end_matches('/'))) {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.map_err(|e| format!("cannot reach {next}: {e}"))?;
        if expected.is_none() {
            expected = etag_sha256(r.headers());
        }
        if r.status().is_redirection() {
            let location = r
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("{next} redirects nowhere"))?;
            next = reqwest::Url::parse(&next)
                .and_then(|base| base.join(location))
                .map_err(|e| format!("bad redirect `{location}`: {e}"))?
                .to_string();
            continue;
        }
        resp = Some(r);
        break;
    }
    let resp = resp.ok_or_else(|| format!("more than {MAX_REDIRECTS} redirects from {url}"))?;
    let status = resp.status();
    let append = match status.as_u16() {
        206 => true,
        200 => false,
        // The part file already holds the whole file.
        416 if have > 0 => return finish(&part, dest, expected.as_deref()),
        401 | 403 => {
            return Err(format!("HTTP {status} from {url}: a gated or private repository needs HF_TOKEN"))
        }
        _ => return Err(format!("HTTP {status} from {url}")),
    };
    let total = resp.content_length().map(|n| n + if append { have } else { 0 });
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&part)
        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    let mut done = if append { have } else { 0 };
    let progress = std::io::stderr().is_terminal();
    let mut shown = Instant::now();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        format!("the download stopped at {done} bytes ({e}); run the same command again to resume")
    })? {
        out.write_all(&chunk).map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        done += chunk.len() as u64;
        if progress && shown.elapsed() > Duration::from_millis(500) {
            shown = Instant::now();
            match total {
                Some(t) => eprint!("\r{done}/{t} bytes ({:.0}%)", done as f64 * 100.0 / t.max(1) as f64),
                None => eprint!("\r{done} bytes"),
            }
        }
    }
    if progress {
        eprintln!();
    }
    out.flush().map_err(|e| format!("cannot write {}: {e}", part.display()))?;
    drop(out);
    if let Some(t) = total.filter(|t| *t != done) {
        return Err(format!("got {done} of {t} bytes; run the same command again to resume"));
    }
    finish(&part, dest, expected.as_deref())
}

/// Verifies the complete part file and moves it to `dest`.
fn finish(part: &Path, dest: &Path, expected: Option<&str>) -> Result<String, String> {
    let got = sha256_of(part).map_err(|e| format!("cannot read {}: {e}", part.display()))?;
    if let Some(want) = expected {
        if want != got {
            let _ = std::fs::remove_file(part);
            return Err(format!(
                "checksum mismatch: expected sha256 {want}, got {got}; the download was deleted"
            ));
        }
    }
    std::fs::rename(part, dest)
        .map_err(|e| format!("cannot move the download to {}: {e}", dest.display()))?;
    let size = std::fs::metadata(dest).map_or(0, |m| m.len());
    let verified = if expected.is_some() { "verified" } else { "not verified: the hub gave no checksum" };
    Ok(format!("{} ({size} bytes, sha256 {got}, {verified})", dest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_checksum_is_a_quoted_sha256_etag() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("etag", "\"abc\"".parse().unwrap());
        assert_eq!(etag_sha256(&h), None, "a git blob ETag is no SHA-256");
        let sum = "A".repeat(64);
        h.insert("x-linked-etag", format!("\"{sum}\"").parse().unwrap());
        assert_eq!(etag_sha256(&h), Some("a".repeat(64)));
    }

    #[test]
    fn the_default_destination_is_the_repo_name_in_the_models_folder() {
        let d = default_dest("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "sub/model-q4.gguf");
        assert!(d.ends_with("SmolLM2-135M-Instruct-GGUF/model-q4.gguf"), "{}", d.display());
    }
}
