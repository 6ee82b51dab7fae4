//! Quality evaluation of the scanners on labelled JSONL files.
//!
//! `cargo run --release -p gardefou-guard --example eval -- bench/guard/data`
//!
//! Reads `injection_tune.jsonl` and `injection_heldout.jsonl` (`{"text", "label"}` with label
//! `injection` or `benign`) and `pii.jsonl` (`{"text", "entities": [{"type", "start", "end"}]}`,
//! character offsets). Prints, per injection split, TPR at the threshold that keeps FPR ≤ 1%
//! on that split's benign texts, and precision/recall/F1 at the default threshold; and per PII
//! type, precision and recall with exact span matching.

use gardefou_guard::injection::{InjectionDetector, DEFAULT_THRESHOLD};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

fn read_jsonl(path: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{path}: {e}")))
        .collect()
}

fn injection(dir: &str, split: &str) -> Result<(), String> {
    let rows = read_jsonl(&format!("{dir}/injection_{split}.jsonl"))?;
    let detector = InjectionDetector::new();
    let started = Instant::now();
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    let mut misses: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in &rows {
        let text = r["text"].as_str().unwrap_or("");
        let score = detector.scan(text).score;
        let source = r["source"].as_str().unwrap_or("?").split('/').next().unwrap_or("?").to_string();
        let e = misses.entry(format!("{} {source}", r["label"].as_str().unwrap_or("?"))).or_insert((0, 0));
        e.0 += 1;
        if r["label"] == "injection" {
            pos.push(score);
            e.1 += usize::from(score >= DEFAULT_THRESHOLD);
        } else {
            neg.push(score);
            e.1 += usize::from(score >= DEFAULT_THRESHOLD);
        }
    }
    let elapsed = started.elapsed();
    // Threshold for FPR ≤ 1%: the smallest observed score t with #(neg ≥ t) ≤ 1% of negatives.
    let allowed = neg.len() / 100;
    let mut candidates: Vec<f32> = pos.iter().chain(&neg).copied().filter(|s| *s > 0.0).collect();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let at_1pct = candidates
        .iter()
        .copied()
        .find(|t| neg.iter().filter(|s| **s >= *t).count() <= allowed)
        .unwrap_or(f32::INFINITY);
    let tpr = |t: f32| pos.iter().filter(|s| **s >= t).count() as f64 / pos.len().max(1) as f64;
    let fpr = |t: f32| neg.iter().filter(|s| **s >= t).count() as f64 / neg.len().max(1) as f64;
    let tp = pos.iter().filter(|s| **s >= DEFAULT_THRESHOLD).count() as f64;
    let fp = neg.iter().filter(|s| **s >= DEFAULT_THRESHOLD).count() as f64;
    let precision = tp / (tp + fp).max(1.0);
    let recall = tp / pos.len().max(1) as f64;
    let f1 = 2.0 * precision * recall / (precision + recall).max(f64::EPSILON);
    println!(
        "injection/{split}: {} attacks, {} benign, {:.1} ms total",
        pos.len(),
        neg.len(),
        elapsed.as_secs_f64() * 1e3
    );
    println!("  TPR at FPR<=1%: {:.3} (threshold {:.3}, FPR {:.4})", tpr(at_1pct), at_1pct, fpr(at_1pct));
    println!(
        "  at default threshold {DEFAULT_THRESHOLD}: TPR {:.3}, FPR {:.4}, precision {precision:.3}, recall {recall:.3}, F1 {f1:.3}",
        tpr(DEFAULT_THRESHOLD),
        fpr(DEFAULT_THRESHOLD)
    );
    for (source, (n, flagged)) in &misses {
        println!("    {source:<45} {flagged:>4}/{n:<4} flagged");
    }
    Ok(())
}

fn pii(dir: &str) -> Result<(), String> {
    let rows = read_jsonl(&format!("{dir}/pii.jsonl"))?;
    // type -> (true positives, false positives, false negatives)
    let mut stats: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut errors = Vec::new();
    for r in &rows {
        let text = r["text"].as_str().unwrap_or("");
        let gold: Vec<(String, usize, usize)> = r["entities"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let n = |k: &str| e[k].as_u64().unwrap_or(0) as usize;
                (e["type"].as_str().unwrap_or("").to_string(), n("start"), n("end"))
            })
            .collect();
        let found: Vec<(String, usize, usize)> =
            gardefou_guard::pii::scan(text).into_iter().map(|f| (f.kind, f.start, f.end)).collect();
        for g in &gold {
            let s = stats.entry(g.0.clone()).or_default();
            if found.contains(g) {
                s.0 += 1;
            } else {
                s.2 += 1;
                errors.push(format!("FN {} in {text:?}", g.0));
            }
        }
        for f in &found {
            if !gold.contains(f) {
                stats.entry(f.0.clone()).or_default().1 += 1;
                errors.push(format!("FP {} in {text:?}", f.0));
            }
        }
    }
    println!("pii: {} texts", rows.len());
    println!("  {:<14} {:>6} {:>9} {:>7}", "type", "gold", "precision", "recall");
    for (kind, (tp, fp, fn_)) in &stats {
        let p = *tp as f64 / (tp + fp).max(1) as f64;
        let r = *tp as f64 / (tp + fn_).max(1) as f64;
        println!("  {kind:<14} {:>6} {p:>9.3} {r:>7.3}", tp + fn_);
    }
    for e in errors.iter().take(20) {
        println!("    {e}");
    }
    Ok(())
}

/// Latency of the default policy (every input scanner) on eval texts of 1.5–2.5 KB.
fn latency(dir: &str) -> Result<(), String> {
    let policy = gardefou_guard::Policy::default();
    let mut texts: Vec<String> = Vec::new();
    for split in ["tune", "heldout"] {
        for r in read_jsonl(&format!("{dir}/injection_{split}.jsonl"))? {
            let t = r["text"].as_str().unwrap_or("");
            if (1536..=2560).contains(&t.len()) {
                texts.push(t.to_string());
            }
        }
    }
    // First pass: the lazy DFAs build their states (what a fresh process sees).
    let started = Instant::now();
    for t in &texts {
        std::hint::black_box(policy.check(std::hint::black_box(t)));
    }
    let cold = started.elapsed().as_secs_f64() * 1e6 / texts.len().max(1) as f64;
    let mut times: Vec<f64> = Vec::new();
    for _ in 0..20 {
        for t in &texts {
            let started = Instant::now();
            std::hint::black_box(policy.check(std::hint::black_box(t)));
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times.get(((times.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0.0);
    println!(
        "latency: Policy::default().check on {} texts of 1.5-2.5 KB: first pass mean {cold:.0} us; then x20: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        texts.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    Ok(())
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "bench/guard/data".to_string());
    let result = injection(&dir, "tune")
        .and_then(|()| injection(&dir, "heldout"))
        .and_then(|()| pii(&dir))
        .and_then(|()| latency(&dir));
    if let Err(e) = result {
        eprintln!("eval: {e}");
        std::process::exit(1);
    }
}
