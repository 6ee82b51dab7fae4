//! Prompt-injection quality of the heuristics alone and combined with the similarity classifier.
//!
//! `cargo run -p gardefou-embed --release --example injection_eval [-- OPTIONS]`
//!
//! - `--write-reference` first rebuilds the shipped reference from the tuning split
//!   (`injection_tune.jsonl`, every text, never the held-out one): writes
//!   `data/injection_reference.bin` and its texts as `data/injection_reference.jsonl`.
//! - `--data DIR` the labelled files (default `bench/guard/data`), `--model DIR` the model folder
//!   (default `$GARDEFOU_EMBED_MODEL_DIR`, else `models/all-MiniLM-L6-v2`), `--reference FILE`
//!   the reference to evaluate or write, `--k N` neighbours per class when writing (default 3).
//!
//! Prints, for the tuning split's leave-one-out scores and the held-out split: TPR at the
//! threshold keeping FPR ≤ 1% on that split's benign texts, and TPR, FPR and F1 at the default
//! threshold 0.5, for the heuristics, the classifier and both (`max`, as the detector combines
//! them); then the classifier's time per prompt.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gardefou_embed::classifier::{Labelled, Reference, SimilarityClassifier, DEFAULT_K};
use gardefou_embed::Embedder;
use gardefou_guard::injection::{Classifier, InjectionDetector, DEFAULT_THRESHOLD};
use gardefou_guard::normalize::normalize;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct Row {
    text: String,
    label: String,
    #[serde(default)]
    source: String,
}

struct Options {
    write: bool,
    data: PathBuf,
    model: PathBuf,
    reference: PathBuf,
    k: usize,
}

fn options() -> Result<Options, String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut o = Options {
        write: false,
        data: crate_dir.join("../../bench/guard/data"),
        model: std::env::var_os("GARDEFOU_EMBED_MODEL_DIR")
            .map_or_else(|| crate_dir.join("../../models/all-MiniLM-L6-v2"), PathBuf::from),
        reference: crate_dir.join("data").join(gardefou_embed::classifier::REFERENCE_FILE),
        k: DEFAULT_K,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--write-reference" => o.write = true,
            "--data" => o.data = value()?.into(),
            "--model" => o.model = value()?.into(),
            "--reference" => o.reference = value()?.into(),
            "--k" => o.k = value()?.parse().map_err(|e| format!("--k: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn read_jsonl(path: &Path) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

/// Rebuilds the reference from the tuning split and writes it with its texts.
fn write_reference(o: &Options, embedder: &Embedder) -> Result<Reference, String> {
    let rows = read_jsonl(&o.data.join("injection_tune.jsonl"))?;
    let folded: Vec<String> = rows.iter().map(|r| normalize(&r.text).text).collect();
    let texts: Vec<&str> = folded.iter().map(String::as_str).collect();
    let started = Instant::now();
    let vectors = embedder.embed(&texts).map_err(|e| e.to_string())?;
    let examples = vectors
        .into_iter()
        .zip(&rows)
        .map(|(vector, r)| Labelled { vector, injection: r.label == "injection" })
        .collect();
    let reference = Reference::fit(embedder.model_id(), examples, o.k).map_err(|e| e.to_string())?;
    let bytes = reference.to_bytes().map_err(|e| e.to_string())?;
    std::fs::write(&o.reference, &bytes).map_err(|e| format!("{}: {e}", o.reference.display()))?;
    let mut lines = String::new();
    for r in &rows {
        lines.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        lines.push('\n');
    }
    let texts_path = o.reference.with_extension("jsonl");
    std::fs::write(&texts_path, lines).map_err(|e| format!("{}: {e}", texts_path.display()))?;
    let c = reference.calibration;
    println!(
        "reference: {} examples ({} attacks) embedded in {:.1} s; k {}, slope {:.3}, intercept {:.3}; {} bytes",
        rows.len(),
        rows.iter().filter(|r| r.label == "injection").count(),
        started.elapsed().as_secs_f64(),
        c.k,
        c.slope,
        c.intercept,
        bytes.len()
    );
    Ok(reference)
}

/// Scores of one split: attacks and benign texts.
#[derive(Default)]
struct Split {
    pos: Vec<f32>,
    neg: Vec<f32>,
}

impl Split {
    fn push(&mut self, injection: bool, score: f32) {
        if injection { &mut self.pos } else { &mut self.neg }.push(score);
    }

    fn rate(scores: &[f32], t: f32) -> f64 {
        scores.iter().filter(|s| **s >= t).count() as f64 / scores.len().max(1) as f64
    }

    /// The smallest observed score keeping FPR ≤ 1%.
    fn threshold_at_1pct(&self) -> f32 {
        let allowed = self.neg.len() / 100;
        let mut candidates: Vec<f32> =
            self.pos.iter().chain(&self.neg).copied().filter(|s| *s > 0.0).collect();
        candidates.sort_by(f32::total_cmp);
        candidates.dedup();
        candidates
            .into_iter()
            .find(|t| self.neg.iter().filter(|s| *s >= t).count() <= allowed)
            .unwrap_or(f32::INFINITY)
    }

    fn row(&self, name: &str) -> String {
        let t = self.threshold_at_1pct();
        let tp = Self::rate(&self.pos, DEFAULT_THRESHOLD) * self.pos.len() as f64;
        let fp = Self::rate(&self.neg, DEFAULT_THRESHOLD) * self.neg.len() as f64;
        let precision = tp / (tp + fp).max(1.0);
        let recall = tp / self.pos.len().max(1) as f64;
        let f1 = 2.0 * precision * recall / (precision + recall).max(f64::EPSILON);
        format!(
            "| {name:<22} | {:.3} (thr {:.3}, FPR {:.4}) | {:.3} | {:.4} | {precision:.3} | {f1:.3} |",
            Self::rate(&self.pos, t),
            t,
            Self::rate(&self.neg, t),
            Self::rate(&self.pos, DEFAULT_THRESHOLD),
            Self::rate(&self.neg, DEFAULT_THRESHOLD),
        )
    }
}

const HEADER: &str = "| scorer | TPR at FPR <= 1% | TPR at 0.5 | FPR at 0.5 | precision | F1 at 0.5 |\n|---|---|---|---|---|---|";

/// The classifier, timing each call.
struct Timed {
    inner: SimilarityClassifier,
    times: Mutex<Vec<Duration>>,
}

impl Classifier for Timed {
    fn score(&self, normalized: &str) -> Option<f32> {
        let started = Instant::now();
        let score = self.inner.score(normalized);
        if let Ok(mut times) = self.times.lock() {
            times.push(started.elapsed());
        }
        score
    }
}

fn tune_leave_one_out(reference: &Reference, o: &Options) -> Result<(), String> {
    let rows = read_jsonl(&o.data.join("injection_tune.jsonl"))?;
    let heuristics = InjectionDetector::new();
    let (mut h, mut c, mut both) = (Split::default(), Split::default(), Split::default());
    for (r, (margin, injection)) in rows.iter().zip(reference.leave_one_out_margins()) {
        let heuristic = heuristics.scan(&r.text).score;
        let classifier = reference.calibration.probability(margin);
        h.push(injection, heuristic);
        c.push(injection, classifier);
        both.push(injection, heuristic.max(classifier));
    }
    println!(
        "\ntune split, classifier scores leave-one-out ({} attacks, {} benign)\n",
        h.pos.len(),
        h.neg.len()
    );
    println!(
        "{HEADER}\n{}\n{}\n{}",
        h.row("heuristics"),
        c.row("classifier"),
        both.row("heuristics + classifier")
    );
    Ok(())
}

fn heldout(classifier: SimilarityClassifier, o: &Options) -> Result<(), String> {
    let rows = read_jsonl(&o.data.join("injection_heldout.jsonl"))?;
    let timed = Arc::new(Timed { inner: classifier, times: Mutex::new(Vec::new()) });
    let detector = InjectionDetector::with_classifier(timed.clone());
    let (mut h, mut c, mut both) = (Split::default(), Split::default(), Split::default());
    let mut sources: Vec<(String, usize, usize, usize)> = Vec::new();
    let started = Instant::now();
    for r in &rows {
        let injection = r.label == "injection";
        let report = detector.scan(&r.text);
        h.push(injection, report.heuristic);
        c.push(injection, report.classifier.unwrap_or(0.0));
        both.push(injection, report.score);
        let source = format!("{} {}", r.label, r.source.split('/').next().unwrap_or("?"));
        let at = match sources.iter().position(|s| s.0 == source) {
            Some(at) => at,
            None => {
                sources.push((source, 0, 0, 0));
                sources.len() - 1
            }
        };
        sources[at].1 += 1;
        sources[at].2 += usize::from(report.heuristic >= DEFAULT_THRESHOLD);
        sources[at].3 += usize::from(report.score >= DEFAULT_THRESHOLD);
    }
    println!(
        "\nheld-out split ({} attacks, {} benign; {:.1} s)\n",
        h.pos.len(),
        h.neg.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{HEADER}\n{}\n{}\n{}",
        h.row("heuristics"),
        c.row("classifier"),
        both.row("heuristics + classifier")
    );
    println!("\nflagged at 0.5, heuristics -> combined:");
    for (source, n, alone, combined) in &sources {
        println!("  {source:<40} {alone:>4} -> {combined:>4} / {n}");
    }
    let mut times = timed.times.lock().map_err(|e| e.to_string())?.clone();
    times.sort();
    let q = |p: f64| {
        times.get(((times.len() as f64 - 1.0) * p).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "\nclassifier time per prompt ({} prompts, one at a time): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let o = options()?;
    let started = Instant::now();
    let embedder = Embedder::load(&o.model).map_err(|e| e.to_string())?;
    println!("model {} loaded in {:.2} s", embedder.model_id(), started.elapsed().as_secs_f64());
    if o.write {
        write_reference(&o, &embedder)?;
    }
    let reference = Reference::read(&o.reference).map_err(|e| e.to_string())?;
    tune_leave_one_out(&reference, &o)?;
    let classifier = SimilarityClassifier::from_parts(embedder, reference).map_err(|e| e.to_string())?;
    heldout(classifier, &o)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("injection_eval: {e}");
        std::process::exit(1);
    }
}
