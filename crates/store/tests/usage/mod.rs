//! Usage rollups and `Store::usage`, on both backends: rollups equal aggregates computed from the
//! raw records, group-by combinations, buckets, tags, percentiles, replays, validation.

mod bench;

use std::collections::BTreeMap;

use gardefou_store::usage::{bucket_lower_ms, HIST_GROWTH};
use gardefou_store::{
    Bucket, Dimension, InferenceRecord, Store, StoreError, UsageFilter, UsageQuery, UsageRow,
};

use crate::support::{minimal, TestDb};

on_both_backends! {
    #[tokio::test] fn rollups_equal_aggregates_of_the_raw_records_for_every_grouping_and_bucket;
    #[tokio::test] fn tags_group_by_their_value;
    #[tokio::test] fn percentiles_are_within_the_documented_bound;
    #[tokio::test] fn replaying_a_batch_does_not_count_it_twice;
    #[tokio::test] fn invalid_queries_are_rejected_with_the_parameter_named;
}

const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000;

/// A small deterministic generator (no rand in the test dependencies).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn random_records(n: u64, seed: u64) -> Vec<InferenceRecord> {
    let mut g = Lcg(seed);
    let pick = |g: &mut Lcg, xs: &[&str]| {
        let i = g.next(xs.len() as u64 + 1) as usize;
        xs.get(i).map(|s| (*s).to_owned())
    };
    (0..n)
        .map(|i| {
            let mut r = minimal(i, T0 + g.next(3 * DAY as u64) as i64);
            r.team = pick(&mut g, &["search", "ads", "infra"]);
            r.product = pick(&mut g, &["bot", "faq"]);
            r.key_id = pick(&mut g, &["k1", "k2", "k3", "k4"]);
            r.route = pick(&mut g, &["fast", "smart"]);
            r.model = pick(&mut g, &["m1", "m2", "m3"]);
            r.provider = r.model.as_ref().map(|m| format!("p{}", m.len()));
            r.endpoint = if g.next(5) == 0 { "embeddings" } else { "chat" }.into();
            r.status = [200, 200, 200, 200, 429, 500, 502][g.next(7) as usize];
            if r.status == 200 && g.next(10) == 0 {
                r.error_kind = Some("stream_interrupted".into());
            }
            r.input_tokens = Some(g.next(2000) as i64);
            r.cached_input_tokens = (g.next(2) == 0).then(|| g.next(500) as i64);
            r.output_tokens = Some(g.next(800) as i64);
            r.reasoning_tokens = (g.next(3) == 0).then(|| g.next(100) as i64);
            r.cost_usd = (g.next(6) != 0).then(|| g.next(10_000) as f64 / 1e6);
            r.latency_ms = 0.5 + g.next(30_000) as f64 / 3.0;
            r.ttft_ms = (g.next(2) == 0).then(|| 1.0 + g.next(2000) as f64);
            if g.next(4) == 0 {
                r.tags.insert("env".into(), ["prod", "dev"][g.next(2) as usize].into());
            }
            r
        })
        .collect()
}

fn value(r: &InferenceRecord, d: &Dimension) -> Option<String> {
    match d {
        Dimension::Team => r.team.clone(),
        Dimension::Product => r.product.clone(),
        Dimension::Key => r.key_id.clone(),
        Dimension::Route => r.route.clone(),
        Dimension::Model => r.model.clone(),
        Dimension::Provider => r.provider.clone(),
        Dimension::Endpoint => Some(r.endpoint.clone()),
        Dimension::Tag(t) => r.tags.get(t).cloned(),
    }
}

/// (bucket start, group values) → requests, successes, errors, 4 token counts, cost in µ$, unpriced.
type Totals = BTreeMap<(Option<i64>, Vec<Option<String>>), [i64; 9]>;

/// Expected rows computed straight from the raw records: (bucket, group) → counters.
fn expected(records: &[InferenceRecord], q: &UsageQuery) -> Totals {
    let mut out = BTreeMap::new();
    let minute_start = |t: i64| t - t.rem_euclid(60_000);
    for r in records {
        let m = minute_start(r.created_at_ms);
        if m < q.from_ms || m >= q.to_ms {
            continue;
        }
        let f = &q.filter;
        if f.team.is_some() && f.team != r.team || f.route.is_some() && f.route != r.route {
            continue;
        }
        if q.group_by.iter().any(|d| matches!(d, Dimension::Tag(_)))
            && q.group_by.iter().any(|d| value(r, d).is_none())
        {
            continue;
        }
        let b = q.bucket.map(|b| r.created_at_ms - r.created_at_ms.rem_euclid(b.ms()));
        let key = (b, q.group_by.iter().map(|d| value(r, d)).collect());
        let e: &mut [i64; 9] = out.entry(key).or_default();
        e[0] += 1;
        e[1] += i64::from(r.status < 300 && r.error_kind.is_none());
        e[2] += i64::from(r.status >= 400 || r.error_kind.is_some());
        e[3] += r.input_tokens.unwrap_or(0);
        e[4] += r.cached_input_tokens.unwrap_or(0);
        e[5] += r.output_tokens.unwrap_or(0);
        e[6] += r.reasoning_tokens.unwrap_or(0);
        e[7] += (r.cost_usd.unwrap_or(0.0) * 1e6).round() as i64;
        e[8] += i64::from(r.cost_usd.is_none());
    }
    out
}

fn actual(rows: &[UsageRow], q: &UsageQuery) -> Totals {
    rows.iter()
        .map(|r| {
            let hit =
                if r.input_tokens > 0 { r.cached_input_tokens as f64 / r.input_tokens as f64 } else { 0.0 };
            assert!((r.cache_hit_rate - hit).abs() < 1e-12, "{r:?}");
            let group = q.group_names().iter().map(|n| r.group[n].clone()).collect();
            let c = [
                r.requests,
                r.successes,
                r.errors,
                r.input_tokens,
                r.cached_input_tokens,
                r.output_tokens,
                r.reasoning_tokens,
                (r.cost_usd * 1e6).round() as i64,
                r.unknown_cost,
            ];
            ((r.bucket_start, group), c)
        })
        .collect()
}

async fn check(store: &Store, records: &[InferenceRecord], q: UsageQuery) {
    let report = store.usage(&q).await.unwrap_or_else(|e| panic!("{q:?}: {e}"));
    assert_eq!(actual(&report.rows, &q), expected(records, &q), "{q:?}");
    for row in &report.rows {
        assert!((row.error_rate - row.errors as f64 / row.requests as f64).abs() < 1e-12);
        assert!((row.availability - row.successes as f64 / row.requests as f64).abs() < 1e-12);
    }
}

fn query(from_ms: i64, to_ms: i64, group_by: &[Dimension], bucket: Option<Bucket>) -> UsageQuery {
    UsageQuery { from_ms, to_ms, group_by: group_by.to_vec(), bucket, filter: UsageFilter::default() }
}

async fn rollups_equal_aggregates_of_the_raw_records_for_every_grouping_and_bucket(db: TestDb) {
    let store = db.store().await;
    let records = random_records(3000, 7);
    for batch in records.chunks(700) {
        store.insert_batch(batch).await.unwrap();
    }
    use Dimension::*;
    // Unaligned edges exercise the minute, hour and day grains together.
    let (from, to) = (T0 + 3 * 3_600_000 + 17 * 60_000 + 5, T0 + 2 * DAY + 5 * 3_600_000 + 42 * 60_000);
    let groupings: [&[Dimension]; 6] =
        [&[], &[Team], &[Team, Product], &[Model, Provider, Endpoint], &[Key, Route], &[Route, Team, Model]];
    for group_by in groupings {
        for bucket in [None, Some(Bucket::Day), Some(Bucket::Hour)] {
            check(&store, &records, query(from, to, group_by, bucket)).await;
        }
    }
    check(&store, &records, query(T0 + DAY, T0 + DAY + 90 * 60_000, &[Team], Some(Bucket::Minute))).await;
    check(&store, &records, query(T0 - DAY, T0 + 4 * DAY, &[], None)).await;
    let mut filtered = query(from, to, &[Model], Some(Bucket::Day));
    filtered.filter =
        UsageFilter { team: Some("ads".into()), route: Some("fast".into()), ..UsageFilter::default() };
    check(&store, &records, filtered).await;
    let total = store.usage(&query(T0, T0 + 3 * DAY, &[], None)).await.unwrap();
    assert_eq!(total.rows.len(), 1);
    assert_eq!(total.rows[0].requests, 3000);
    let empty = store.usage(&query(T0 - DAY, T0, &[Team], None)).await.unwrap();
    assert!(empty.rows.is_empty());
}

async fn tags_group_by_their_value(db: TestDb) {
    let store = db.store().await;
    let records = random_records(1500, 11);
    store.insert_batch(&records).await.unwrap();
    let tag = Dimension::Tag("env".into());
    for bucket in [None, Some(Bucket::Hour), Some(Bucket::Day)] {
        check(&store, &records, query(T0 + 1234, T0 + 3 * DAY - 4321, std::slice::from_ref(&tag), bucket))
            .await;
    }
    let report = store.usage(&query(T0, T0 + 3 * DAY, &[tag], None)).await.unwrap();
    let values: Vec<_> = report.rows.iter().map(|r| r.group["tag:env"].clone()).collect();
    assert_eq!(values, [Some("dev".to_owned()), Some("prod".to_owned())]);
}

async fn percentiles_are_within_the_documented_bound(db: TestDb) {
    let store = db.store().await;
    let records = random_records(2000, 3);
    store.insert_batch(&records).await.unwrap();
    let report = store.usage(&query(T0, T0 + 3 * DAY, &[Dimension::Team], None)).await.unwrap();
    for row in &report.rows {
        let team = &row.group["team"];
        let mut lat: Vec<f64> = records.iter().filter(|r| &r.team == team).map(|r| r.latency_ms).collect();
        let mut ttft: Vec<f64> =
            records.iter().filter(|r| &r.team == team).filter_map(|r| r.ttft_ms).collect();
        lat.sort_by(f64::total_cmp);
        ttft.sort_by(f64::total_cmp);
        for (values, p) in [(&lat, &row.latency_ms), (&ttft, &row.ttft_ms)] {
            for (q, est) in [(0.5, p.p50), (0.95, p.p95), (0.99, p.p99)] {
                let truth = values[((q * values.len() as f64).ceil() as usize).max(1) - 1];
                let est = est.unwrap();
                let ok = if truth < bucket_lower_ms(1) {
                    (est - truth).abs() <= 1.0
                } else {
                    est / truth < HIST_GROWTH && truth / est < HIST_GROWTH
                };
                assert!(ok, "team {team:?} q={q}: estimate {est} vs true {truth}");
            }
        }
    }
}

async fn replaying_a_batch_does_not_count_it_twice(db: TestDb) {
    let store = db.store().await;
    let records = random_records(200, 5);
    store.insert_batch(&records[..150]).await.unwrap();
    // A spill replay: the same records again, some new ones, and a duplicate inside the batch.
    let mut replay = records.clone();
    replay.push(records[199].clone());
    store.insert_batch(&replay).await.unwrap();
    store.insert_batch(&replay).await.unwrap();
    let q = query(T0, T0 + 3 * DAY, &[Dimension::Team, Dimension::Model], Some(Bucket::Hour));
    check(&store, &records, q).await;
    let tag = query(T0, T0 + 3 * DAY, &[Dimension::Tag("env".into())], None);
    check(&store, &records, tag).await;
}

async fn invalid_queries_are_rejected_with_the_parameter_named(db: TestDb) {
    let store = db.store().await;
    use Dimension::*;
    let param = |r: Result<(), StoreError>| match r {
        Err(StoreError::InvalidUsageQuery { param, .. }) => param,
        other => panic!("expected an invalid query, got {other:?}"),
    };
    assert_eq!(param(store.usage(&query(T0, T0, &[], None)).await.map(|_| ())), "from");
    assert_eq!(
        param(store.usage(&query(T0, T0 + DAY, &[Team, Product, Model, Route], None)).await.map(|_| ())),
        "group_by"
    );
    assert_eq!(param(store.usage(&query(T0, T0 + DAY, &[Team, Team], None)).await.map(|_| ())), "group_by");
    assert_eq!(
        param(store.usage(&query(T0, T0 + DAY, &[Tag("env".into()), Team], None)).await.map(|_| ())),
        "group_by"
    );
    assert_eq!(
        param(store.usage(&query(T0, T0 + 30 * DAY, &[], Some(Bucket::Minute))).await.map(|_| ())),
        "bucket"
    );
    assert_eq!(param("colour".parse::<Dimension>().map(|_| ())), "group_by");
    assert_eq!(param("week".parse::<Bucket>().map(|_| ())), "bucket");
    // Too many groups: 10,001 distinct keys in one hour.
    let many: Vec<_> = (0..10_001u64)
        .map(|i| InferenceRecord { key_id: Some(format!("k{i}")), ..minimal(i, T0 + 1000) })
        .collect();
    store.insert_batch(&many).await.unwrap();
    assert_eq!(param(store.usage(&query(T0, T0 + DAY, &[Key], None)).await.map(|_| ())), "bucket");
}
