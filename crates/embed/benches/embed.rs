//! Embedding latency: one short sentence, one 2 KB prompt (cut at the token limit), 16 short
//! sentences in one call. Needs the model (scripts/fetch-models.sh); exits early without it.
//!
//! `RAYON_NUM_THREADS=1 cargo bench -p gardefou-embed` measures one core. On a machine shared
//! with other work, add `EMBED_BENCH_CLOCK=cpu` to time only what the bench thread spends on a
//! CPU (Linux; meaningful with one thread only, as other threads' work is not counted).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Bencher, Criterion, Throughput};
use gardefou_embed::Embedder;

const SHORT: &str = "Summarise the attached quarterly report in three bullet points for the board.";

fn model_dir() -> PathBuf {
    match std::env::var_os("GARDEFOU_EMBED_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2"),
    }
}

/// About 2 KB of prose, the size of a typical chat prompt.
fn long_prompt() -> String {
    let sentence = "You are a careful assistant for a logistics company; answer questions about \
                    shipments, delays and invoices using only the context below. ";
    sentence.repeat(2048 / sentence.len() + 1)[..2048].to_owned()
}

/// Time this thread has spent running on a CPU (Linux schedstat), or `None` elsewhere.
fn on_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Times `iters` embeddings of `texts` by the chosen clock: wall time, or on-CPU time.
fn run(b: &mut Bencher, embedder: &Embedder, texts: &[&str], cpu_clock: bool) {
    b.iter_custom(|iters| {
        let (wall, cpu) = (Instant::now(), on_cpu());
        for _ in 0..iters {
            let _ = black_box(embedder.embed(black_box(texts)));
        }
        match (cpu_clock, cpu, on_cpu()) {
            (true, Some(start), Some(end)) => end.saturating_sub(start),
            _ => wall.elapsed(),
        }
    });
}

fn bench_embed(c: &mut Criterion) {
    let embedder = match Embedder::load(&model_dir()) {
        Ok(embedder) => embedder,
        Err(err) => {
            eprintln!("skipped: embedding benches ({err}); run scripts/fetch-models.sh");
            return;
        }
    };
    let cpu_clock = std::env::var("EMBED_BENCH_CLOCK").is_ok_and(|v| v == "cpu");
    let prompt = long_prompt();
    let batch: Vec<String> = (0..16).map(|i| format!("{SHORT} Item number {i}.")).collect();
    let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
    eprintln!(
        "clock: {}; tokens: short {}, 2 KB prompt {} (embedded: {}), batch item {}",
        if cpu_clock { "on-CPU time of the bench thread" } else { "wall" },
        embedder.count_tokens(SHORT).unwrap_or(0),
        embedder.count_tokens(&prompt).unwrap_or(0),
        embedder.max_tokens(),
        embedder.count_tokens(batch[0]).unwrap_or(0),
    );

    let mut group = c.benchmark_group("embed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("short_sentence", |b| run(b, &embedder, &[SHORT], cpu_clock));
    group.bench_function("prompt_2kb", |b| run(b, &embedder, &[&prompt], cpu_clock));
    group.throughput(Throughput::Elements(16));
    group.bench_function("batch_16_short", |b| run(b, &embedder, &batch, cpu_clock));
    group.finish();
}

criterion_group!(benches, bench_embed);
criterion_main!(benches);
