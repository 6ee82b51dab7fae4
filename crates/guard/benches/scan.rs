//! Scanner cost on a realistic ~2 KB prompt, and the stream scanner per chunk.
//!
//! `cargo bench -p gardefou-guard --bench scan`
//! (`-- stream_push_5b` runs only the 5-byte-chunk group, the unit cost behind the gateway-level
//! figures of bench/guard/streaming.md)

// A bench whose fixed setup fails has nothing to measure: stop it there.
#![allow(clippy::unwrap_used)]

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

/// A ~2 KB support answer with PII (a card, an email, a phone number) and no secret: the answer
/// of bench/guard/stream.toml twice.
fn answer() -> String {
    let text = "Thanks for reaching out about the failed renewal. I looked at your account and here is \
what happened. The card on file, 4111 1111 1111 1111, was declined by the bank on the first attempt, \
so the invoice stayed open and the workspace switched to read-only mode after the grace period of \
seven days. Nothing was deleted: your projects, dashboards and saved queries are all intact and will \
be available again as soon as the payment goes through. To fix it, open the billing page, choose a \
different payment method or confirm the existing one with your bank, then click retry on the open \
invoice. If you prefer to pay by transfer, reply to this message and we will send the bank details \
together with a new invoice. Our billing team can also help directly: write to \
billing.support@acme-cloud.example.com or call +33 1 84 88 42 17 between nine and six on weekdays. \
Once the payment is confirmed, the workspace unlocks within a few minutes and every member of the \
team gets a notification. Let me know if anything is unclear and I will be happy to walk you \
through the steps.";
    format!("{text}\n\n{text}")
}

/// `StreamScanner::push` over a ~2 KB answer in 5-byte deltas (a token or two each): the output
/// policy of bench/guard/stream.toml (pii redact, secrets block) and the default policy (every
/// scanner). Throughput is in pushes; time per push = stream time / number of chunks.
fn stream_push(c: &mut Criterion) {
    let text = answer();
    let output: gardefou_guard::PolicyConfig =
        toml::from_str("pii = \"redact\"\nsecrets = \"block\"").unwrap();
    let policies = [
        ("output_pii_secrets", Arc::new(Policy::try_from(output).unwrap())),
        ("default_all_scanners", Arc::new(Policy::default())),
    ];
    let chunks: Vec<&str> = text.as_bytes().chunks(5).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let mut g = c.benchmark_group("stream_push_5b");
    g.throughput(Throughput::Elements(chunks.len() as u64));
    for (name, policy) in &policies {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let mut s = StreamScanner::new(policy.clone());
                let mut out = 0;
                for ch in &chunks {
                    let r = s.push(black_box(ch));
                    assert!(r.stop.is_none());
                    out += r.text.len();
                }
                out + s.finish().text.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, scanners, stream, stream_push);
criterion_main!(benches);
