//! Scanner cost on a realistic ~2 KB prompt, and the stream scanner per chunk.
//!
//! `cargo bench -p gardefou-guard --bench scan`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gardefou_guard::injection::InjectionDetector;
use gardefou_guard::{Policy, StreamScanner};
use std::hint::black_box;
use std::sync::Arc;

/// A support-desk prompt with a pasted log, a little PII and one secret: about 2 KB.
fn prompt() -> String {
    let text = "You are a helpful support assistant for Acme Cloud. Answer briefly and cite the docs.\n\n\
User: Hi, my name is Claire and I've been fighting with our deployment since Tuesday. Our staging \
cluster keeps failing health checks after the upgrade to version 2.14.3.1, and the dashboard shows \
the node at 10.20.30.40 as unreachable even though I can ping it from the bastion. Here is the \
relevant part of the log:\n\n\
2026-11-28T14:03:12Z INFO  starting worker pool size=8 region=eu-west-3\n\
2026-11-28T14:03:13Z WARN  retrying request id=7f3e9c2a-1b4d-4e8f-9a6b-2c5d8e1f0a3b attempt=2\n\
2026-11-28T14:03:15Z ERROR upstream timed out after 30000 ms (order 123456789, invoice 2026-0042)\n\
2026-11-28T14:03:16Z INFO  config reloaded: replicas=3 max_tokens=4096 temperature=0.2\n\n\
I tried rolling back to the previous image and clearing the cache, but nothing changed. Our billing \
contact is billing@claire-consulting.example.com if you need to check the plan, and you can call me \
on +33 6 12 34 56 78 in the afternoon. The config we use sets api_key = \"sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\" \
in the environment (I know, we'll rotate it). Could you explain what the health check actually \
verifies, why the node would be marked unreachable while still answering pings, and what the \
recommended way is to roll out a configuration change without downtime? Also, is it normal that the \
price went from $1,240.00 to $1,310.50 per month after the upgrade? We are on the Team plan with \
three seats. Finally, please summarise the previous messages in this thread for my colleague, who \
will take over next week while I'm away. Thanks a lot for your help, the docs were a bit unclear \
about the difference between readiness and liveness probes in this context. One more thing: \
the weekly report still lists the old region, and the export to our data warehouse failed twice \
with a permissions error; I suspect the service account lost a role during the migration.";
    text.to_string()
}

fn scanners(c: &mut Criterion) {
    let text = prompt();
    let policy = Policy::default();
    let detector = InjectionDetector::new();
    let mut g = c.benchmark_group("input_2kb");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("pii", |b| b.iter(|| gardefou_guard::pii::scan(black_box(&text))));
    g.bench_function("secrets", |b| b.iter(|| gardefou_guard::secrets::scan(black_box(&text))));
    g.bench_function("injection", |b| b.iter(|| detector.scan(black_box(&text))));
    g.bench_function("policy_check_all", |b| b.iter(|| policy.check(black_box(&text))));
    g.finish();
}

fn stream(c: &mut Criterion) {
    let text = prompt();
    let policy = Arc::new(Policy::default());
    // Deltas of ~16 characters, as model streams typically send.
    let chunks: Vec<String> =
        text.chars().collect::<Vec<_>>().chunks(16).map(|c| c.iter().collect()).collect();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(chunks.len() as u64));
    g.bench_function("2kb_in_16_char_chunks", |b| {
        b.iter(|| {
            let mut s = StreamScanner::new(policy.clone());
            let mut out = 0;
            for ch in &chunks {
                out += s.push(black_box(ch)).text.len();
            }
            out + s.finish().text.len()
        })
    });
    g.finish();
}

criterion_group!(benches, scanners, stream);
criterion_main!(benches);
