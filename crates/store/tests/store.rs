//! Integration tests of gardefou-store. Every test body runs on both backends (`sqlite::…` on a
//! fresh file, `postgres::…` in a fresh schema of the server at `GARDEFOU_TEST_POSTGRES`).

// Helpers outside `#[test]` fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;
#[path = "dataset/mod.rs"]
mod dataset;
#[path = "escalations/mod.rs"]
mod escalations;
#[path = "evals/mod.rs"]
mod evals;
#[path = "feedback/mod.rs"]
mod feedback;
#[path = "keys/mod.rs"]
mod keys;
#[path = "limits/mod.rs"]
mod limits;
#[path = "usage/mod.rs"]
mod usage;

use std::time::{Duration, Instant};

use gardefou_core::config::OnFull;
use gardefou_store::{
    Bodies, InferenceRecord, LogFilter, Recorder, RetentionPolicy, Store, StoreError, UsageQuery, MAX_WAITING,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use support::{count, full, minimal, now_ms, wait_until, TestDb};

on_both_backends! {
    #[tokio::test] fn round_trip_keeps_every_field;
    #[tokio::test] fn insert_batch_skips_an_id_already_stored_instead_of_failing_the_batch;
    #[tokio::test] fn list_filters_by_route_team_since_errors_and_limit_newest_first;
    #[tokio::test] fn list_limit_zero_means_fifty;
    #[tokio::test] fn migrations_run_twice_on_the_same_database;
    #[tokio::test] fn text_with_nul_characters_is_stored;
    #[tokio::test] fn recorder_writes_everything_recorded_before_shutdown;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn flush_interval_writes_a_partial_batch_without_shutdown;
    #[tokio::test] fn drop_policy_with_full_queue_counts_every_lost_record;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn wait_policy_delivers_when_room_appears_in_time;
    #[tokio::test] fn wait_policy_bounds_the_number_of_waiting_records;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn shutdown_is_idempotent_and_later_records_are_dropped;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn failed_batch_without_spill_file_is_retried_once_then_dropped;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn store_outage_spills_records_then_replays_every_one;
    #[tokio::test] fn spill_file_past_its_bound_drops_and_counts_the_rest;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn spill_file_left_by_an_earlier_run_is_replayed_at_start;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn retention_deletes_only_records_older_than_the_retention;
    #[tokio::test] fn bodies_are_kept_only_for_records_that_carry_them_and_expire_with_them;
    #[tokio::test] fn usage_retention_expires_rollups_and_feedback_minute_rollups_follow_retention;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] #[ignore] fn batch_insert_speed;
}

async fn round_trip_keeps_every_field(db: TestDb) {
    let store = db.store().await;
    store.ping().await.unwrap();
    let (a, b) = (full(1), minimal(2, 5));
    store.insert_batch(&[a.clone(), b.clone()]).await.unwrap();

    assert_eq!(store.get_inference(&a.id).await.unwrap(), Some(a));
    assert_eq!(store.get_inference(&b.id).await.unwrap(), Some(b));
    assert_eq!(store.get_inference("no-such-id").await.unwrap(), None);
}

async fn insert_batch_skips_an_id_already_stored_instead_of_failing_the_batch(db: TestDb) {
    let store = db.store().await;
    store.insert_batch(&[minimal(1, 1)]).await.unwrap();
    store.insert_batch(&[minimal(1, 1), minimal(2, 2), minimal(2, 2)]).await.unwrap();
    assert_eq!(count(&store).await, 2);
}

async fn list_filters_by_route_team_since_errors_and_limit_newest_first(db: TestDb) {
    let store = db.store().await;
    let mut records = Vec::new();
    for i in 0..10u64 {
        let mut r = minimal(i, 1_000 + i as i64 * 10);
        r.route = Some(if i % 2 == 0 { "fast" } else { "smart" }.into());
        r.team = Some(if i < 5 { "search" } else { "ads" }.into());
        r.model = Some(format!("m{}", i % 3));
        r.product = Some("p".into());
        if i == 3 {
            r.status = 429;
        }
        if i == 8 {
            // A stream that failed after its 200 was sent.
            r.error_kind = Some("stream_interrupted".into());
        }
        records.push(r);
    }
    store.insert_batch(&records).await.unwrap();
    let ids = |rows: Vec<InferenceRecord>| rows.into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    let list = |filter: LogFilter| {
        let store = store.clone();
        async move { ids(store.list_inferences(&filter).await.unwrap()) }
    };

    assert_eq!(list(LogFilter::default()).await.len(), 10);
    assert_eq!(list(LogFilter::default()).await[0], "req-9", "newest first");
    assert_eq!(
        list(LogFilter { route: Some("smart".into()), ..LogFilter::default() }).await,
        ["req-9", "req-7", "req-5", "req-3", "req-1"]
    );
    assert_eq!(
        list(LogFilter { team: Some("search".into()), route: Some("fast".into()), ..LogFilter::default() })
            .await,
        ["req-4", "req-2", "req-0"]
    );
    assert_eq!(list(LogFilter { model: Some("m0".into()), ..LogFilter::default() }).await.len(), 4);
    assert_eq!(list(LogFilter { product: Some("other".into()), ..LogFilter::default() }).await.len(), 0);
    assert_eq!(
        list(LogFilter { since_ms: Some(1_070), ..LogFilter::default() }).await,
        ["req-9", "req-8", "req-7"]
    );
    assert_eq!(list(LogFilter { errors_only: true, ..LogFilter::default() }).await, ["req-8", "req-3"]);
    assert_eq!(list(LogFilter { limit: 2, ..LogFilter::default() }).await, ["req-9", "req-8"]);
}

async fn list_limit_zero_means_fifty(db: TestDb) {
    let store = db.store().await;
    let records: Vec<_> = (0..60).map(|i| minimal(i, i as i64)).collect();
    store.insert_batch(&records).await.unwrap();
    assert_eq!(store.list_inferences(&LogFilter::default()).await.unwrap().len(), 50);
}

async fn migrations_run_twice_on_the_same_database(db: TestDb) {
    let store = db.store().await;
    store.insert_batch(&[full(7)]).await.unwrap();
    store.close().await;

    let reopened = db.store().await;
    assert_eq!(reopened.get_inference(&full(7).id).await.unwrap(), Some(full(7)));
}

/// Postgres rejects NUL in TEXT and JSONB; one such record must not fail its batch forever.
async fn text_with_nul_characters_is_stored(db: TestDb) {
    let store = db.store().await;
    let mut r = full(1);
    r.error_message = Some("bad\0byte".into());
    r.attempts[0].error = Some("nul\0inside".into());
    r.tags.insert("k\0".into(), "v\0".into());
    store.insert_batch(&[r.clone(), minimal(2, 2)]).await.unwrap();
    let stored = store.get_inference(&r.id).await.unwrap().unwrap();
    assert_eq!(stored.error_message.unwrap().replace('\u{FFFD}', "\0"), "bad\0byte");
    assert_eq!(count(&store).await, 2);
}

#[tokio::test]
async fn memory_database_is_shared_by_every_caller() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let clone = store.clone();
    store.insert_batch(&[minimal(1, 1)]).await.unwrap();
    assert_eq!(count(&clone).await, 1);
    assert_eq!(store.backend_name(), "sqlite");
}

#[tokio::test]
async fn unknown_url_scheme_is_an_invalid_url() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidUrl(_)), "{err}");
}

async fn recorder_writes_everything_recorded_before_shutdown(db: TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store.clone(), &db.config(8192, 500, OnFull::Drop), &tracker);
    for i in 0..5000 {
        recorder.record(minimal(i, i as i64));
    }
    // Current-thread runtime: the writer has not run yet, so everything is still queued.
    assert_eq!(recorder.queue_len(), 5000);

    recorder.shutdown().await;
    assert_eq!(count(&store).await, 5000);
    assert_eq!((recorder.written(), recorder.dropped(), recorder.write_errors()), (5000, 0, 0));
    assert_eq!(recorder.queue_len(), 0);
    tracker.close();
    tracker.wait().await;
}

async fn flush_interval_writes_a_partial_batch_without_shutdown(db: TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store.clone(), &db.config(100, 1000, OnFull::Drop), &tracker);
    for i in 0..3 {
        recorder.record(minimal(i, i as i64));
    }
    wait_until("the partial batch is flushed", || recorder.written() == 3).await;
    assert_eq!(count(&store).await, 3);
    recorder.shutdown().await;
}

async fn drop_policy_with_full_queue_counts_every_lost_record(db: TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store.clone(), &db.config(1, 10, OnFull::Drop), &tracker);
    // Current-thread runtime and no await: the writer cannot drain between records.
    for i in 0..100 {
        recorder.record(minimal(i, i as i64));
    }
    assert_eq!(recorder.dropped(), 99);

    recorder.shutdown().await;
    assert_eq!(recorder.written(), 1);
    assert_eq!(recorder.written() + recorder.dropped(), 100, "nothing lost silently");
    assert_eq!(count(&store).await, 1);
}

async fn wait_policy_delivers_when_room_appears_in_time(db: TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let cfg = db.config(1, 10, OnFull::Wait(Duration::from_secs(30)));
    let recorder = Recorder::spawn(store.clone(), &cfg, &tracker);
    for i in 0..300 {
        recorder.record(minimal(i, i as i64));
    }
    recorder.shutdown().await;
    assert_eq!((recorder.written(), recorder.dropped()), (300, 0));
    assert_eq!(count(&store).await, 300);
}

async fn wait_policy_bounds_the_number_of_waiting_records(db: TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let cfg = db.config(1, 100, OnFull::Wait(Duration::from_secs(30)));
    let recorder = Recorder::spawn(store.clone(), &cfg, &tracker);
    let recorded = 1 + MAX_WAITING as u64 + 50;
    // One queued, MAX_WAITING waiting for room, the rest dropped at once.
    for i in 0..recorded {
        recorder.record(minimal(i, i as i64));
    }
    assert_eq!(recorder.dropped(), 50);

    recorder.shutdown().await;
    assert_eq!(recorder.written(), 1 + MAX_WAITING as u64);
    assert_eq!(recorder.written() + recorder.dropped(), recorded);
}

async fn shutdown_is_idempotent_and_later_records_are_dropped(db: TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let cfg = db.config(64, 10, OnFull::Wait(Duration::from_secs(1)));
    let recorder = Recorder::spawn(store.clone(), &cfg, &tracker);
    for i in 0..20 {
        recorder.record(minimal(i, i as i64));
    }
    let other = recorder.clone();
    tokio::join!(recorder.shutdown(), other.shutdown());
    recorder.shutdown().await;
    assert_eq!((recorder.written(), recorder.dropped()), (20, 0));

    recorder.record(minimal(100, 100));
    other.record(minimal(101, 101));
    assert_eq!((recorder.written(), recorder.dropped()), (20, 2));
    assert_eq!(count(&store).await, 20);
    tracker.close();
    tracker.wait().await;
}

async fn failed_batch_without_spill_file_is_retried_once_then_dropped(db: TestDb) {
    let store = db.store().await;
    db.break_table().await;
    let tracker = TaskTracker::new();
    let cfg = gardefou_core::config::StoreConfig { spill_max_bytes: 0, ..db.config(64, 100, OnFull::Drop) };
    let recorder = Recorder::spawn(store, &cfg, &tracker);
    for i in 0..5 {
        recorder.record(minimal(i, i as i64));
    }
    recorder.shutdown().await;
    assert_eq!((recorder.written(), recorder.dropped(), recorder.write_errors()), (0, 5, 1));
    assert_eq!((recorder.spilled(), db.spill_lines()), (0, 0));
}

async fn store_outage_spills_records_then_replays_every_one(db: TestDb) {
    let store = db.store().await;
    db.break_table().await;
    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store.clone(), &db.config(64, 10, OnFull::Drop), &tracker);
    for i in 0..25 {
        recorder.record(minimal(i, i as i64));
    }
    wait_until("every record is spilled", || recorder.spilled() == 25).await;
    assert_eq!((recorder.written(), recorder.dropped(), db.spill_lines()), (0, 0, 25));
    assert!(recorder.write_errors() >= 1);

    db.repair_table().await;
    // Records arriving once the store is back are written too.
    for i in 25..30 {
        recorder.record(minimal(i, i as i64));
    }
    wait_until("the spill file is replayed", || recorder.spilled() == 0 && recorder.written() == 30).await;
    assert_eq!(count(&store).await, 30);
    assert_eq!(std::fs::metadata(&db.spill_path).unwrap().len(), 0, "spill file truncated");

    recorder.shutdown().await;
    assert_eq!(recorder.written() + recorder.dropped() + recorder.spilled(), 30, "nothing lost silently");
}

async fn spill_file_past_its_bound_drops_and_counts_the_rest(db: TestDb) {
    let store = db.store().await;
    db.break_table().await;
    let line = serde_json::to_vec(&minimal(0, 0)).unwrap().len() as u64 + 1;
    let tracker = TaskTracker::new();
    let cfg = gardefou_core::config::StoreConfig {
        spill_max_bytes: 3 * line + line / 2,
        ..db.config(64, 100, OnFull::Drop)
    };
    let recorder = Recorder::spawn(store, &cfg, &tracker);
    for i in 0..10 {
        recorder.record(minimal(i, 0));
    }
    recorder.shutdown().await;
    assert_eq!((recorder.written(), recorder.spilled(), recorder.dropped()), (0, 3, 7));
    assert_eq!(db.spill_lines(), 3);
}

async fn spill_file_left_by_an_earlier_run_is_replayed_at_start(db: TestDb) {
    let store = db.store().await;
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&serde_json::to_string(&minimal(i, i as i64)).unwrap());
        text.push('\n');
    }
    // The earlier run died halfway through a line.
    text.push_str("{\"id\":\"0190a000-0000-7000");
    std::fs::write(&db.spill_path, text).unwrap();

    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store.clone(), &db.config(64, 2, OnFull::Drop), &tracker);
    wait_until("the old spill file is replayed", || recorder.written() == 5 && recorder.spilled() == 0).await;
    assert_eq!(recorder.dropped(), 1, "the torn line is counted, not silently lost");
    assert_eq!(count(&store).await, 5);
    assert_eq!(db.spill_lines(), 0);
    recorder.shutdown().await;
}

async fn retention_deletes_only_records_older_than_the_retention(db: TestDb) {
    let store = db.store().await;
    let now = now_ms();
    let hour = 3_600_000;
    let old: Vec<_> = (0..7).map(|i| minimal(i, now - 2 * hour - i as i64)).collect();
    let recent: Vec<_> = (10..13).map(|i| minimal(i, now - i as i64)).collect();
    store.insert_batch(&old).await.unwrap();
    store.insert_batch(&recent).await.unwrap();

    // Directly, in batches of 3 rows.
    let policy = RetentionPolicy { detailed: Some(Duration::from_secs(3600)), usage: None, batch: 3 };
    let deleted = store.purge_expired(&policy, &CancellationToken::new()).await.unwrap();
    assert_eq!(deleted, 7);
    let mut kept: Vec<_> = store.list_inferences(&LogFilter::default()).await.unwrap();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(kept, recent);

    // And by the task `Recorder::spawn` starts when `retention` is set (first run at once).
    store.insert_batch(&old).await.unwrap();
    let tracker = TaskTracker::new();
    let cfg = gardefou_core::config::StoreConfig {
        retention: Some(Duration::from_secs(3600)),
        retention_batch: 2,
        ..db.config(64, 10, OnFull::Drop)
    };
    let recorder = Recorder::spawn(store.clone(), &cfg, &tracker);
    let start = Instant::now();
    while count(&store).await != 3 {
        assert!(start.elapsed() < Duration::from_secs(30), "retention task never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    recorder.shutdown().await;
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .expect("retention task stops on shutdown");
}

async fn bodies_are_kept_only_for_records_that_carry_them_and_expire_with_them(db: TestDb) {
    let store = db.store().await;
    let now = now_ms();
    let bodies = Bodies {
        request: r#"{"model":"smart","messages":[{"role":"user","content":"héllo 🦀"}]}"#.into(),
        response: Some(r#"{"content":"hi"}"#.into()),
    };
    let with = InferenceRecord { bodies: Some(bodies.clone()), ..minimal(1, now) };
    let errored = InferenceRecord {
        bodies: Some(Bodies { response: None, ..bodies.clone() }),
        ..minimal(2, now - 3 * 3_600_000)
    };
    let without = minimal(3, now);
    store.insert_batch(&[with.clone(), errored.clone(), without.clone()]).await.unwrap();
    // A replayed batch (same ids) neither fails nor duplicates the bodies.
    store.insert_batch(std::slice::from_ref(&with)).await.unwrap();

    assert_eq!(store.get_inference(&with.id).await.unwrap().unwrap().bodies, Some(bodies));
    assert_eq!(store.get_inference(&errored.id).await.unwrap().unwrap().bodies.unwrap().response, None);
    assert_eq!(store.get_inference(&without.id).await.unwrap().unwrap().bodies, None);
    // The log listing never reads bodies.
    assert!(store.list_inferences(&LogFilter::default()).await.unwrap().iter().all(|r| r.bodies.is_none()));

    let policy = RetentionPolicy { detailed: Some(Duration::from_secs(3600)), usage: None, batch: 10 };
    assert_eq!(store.purge_expired(&policy, &CancellationToken::new()).await.unwrap(), 1);
    assert_eq!(store.get_inference(&errored.id).await.unwrap(), None);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM inference_bodies").await, 1);
}

async fn usage_retention_expires_rollups_and_feedback_minute_rollups_follow_retention(db: TestDb) {
    let store = db.store().await;
    let day = 86_400_000;
    let now = now_ms();
    let old = InferenceRecord { tags: [("env".into(), "prod".into())].into(), ..minimal(1, now - 40 * day) };
    let recent = minimal(2, now - 60_000);
    store.insert_batch(&[old, recent]).await.unwrap();
    let rows = |table: &'static str| {
        let db = &db;
        async move { db.scalar(&format!("SELECT COUNT(*) FROM {table}")).await }
    };
    assert_eq!(rows("usage_day").await, 2);
    assert_eq!(rows("usage_minute_tags").await, 1);

    // `retention` alone: the inference and its minute rollups go, hours and days stay.
    let detailed =
        RetentionPolicy { detailed: Some(Duration::from_secs(30 * 86_400)), usage: None, batch: 1 };
    assert_eq!(store.purge_expired(&detailed, &CancellationToken::new()).await.unwrap(), 1);
    assert_eq!((rows("usage_minute").await, rows("usage_minute_tags").await), (1, 0));
    assert_eq!((rows("usage_hour").await, rows("usage_day").await, rows("usage_day_tags").await), (2, 2, 1));
    // The usage API still answers for the old month from the daily rollups.
    let q = UsageQuery { from_ms: now - 41 * day, to_ms: now, bucket: None, ..UsageQuery::default() };
    assert_eq!(store.usage(&q).await.unwrap().rows[0].requests, 2);

    // Feedback outlives the inferences it scored and goes with the rollups.
    store.insert_feedback(&feedback::boolean(1, "old", "r", now - 40 * day, true)).await.unwrap();
    store.insert_feedback(&feedback::boolean(2, "new", "r", now - 60_000, true)).await.unwrap();
    store.purge_expired(&detailed, &CancellationToken::new()).await.unwrap();
    assert_eq!(rows("feedback").await, 2);

    // `usage_retention`: the old hours and days go too, in batches of one row.
    let usage = RetentionPolicy { detailed: None, usage: Some(Duration::from_secs(35 * 86_400)), batch: 1 };
    store.purge_expired(&usage, &CancellationToken::new()).await.unwrap();
    assert_eq!((rows("usage_hour").await, rows("usage_day").await, rows("usage_day_tags").await), (1, 1, 0));
    assert_eq!(rows("feedback").await, 1);
}

/// An unreachable Postgres at start: `connect` still returns, and the writer spills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_still_connects_and_the_writer_spills() {
    let db = TestDb::new(support::Kind::Sqlite, "unreachable").await.unwrap();
    let store = Store::connect("postgres://postgres@127.0.0.1:1/postgres").await.unwrap();
    assert_eq!(store.backend_name(), "postgres");
    assert!(store.ping().await.is_err());
    let tracker = TaskTracker::new();
    let recorder = Recorder::spawn(store, &db.config(64, 10, OnFull::Drop), &tracker);
    for i in 0..5 {
        recorder.record(minimal(i, i as i64));
    }
    recorder.shutdown().await;
    assert_eq!((recorder.written(), recorder.dropped(), recorder.spilled()), (0, 0, 5));
    assert_eq!(db.spill_lines(), 5);
}

/// Times `insert_batch` on 10k full records. SQLite, measured against a prepared single-row
/// statement run in a loop in one transaction (12 rounds, opt-level 3, busy 2-core machine):
/// multi-row 133–251 ms, prepared loop 238–421 ms; the multi-row insert was kept. Run with
/// `cargo test -p gardefou-store -- --ignored --nocapture batch_insert_speed`.
async fn batch_insert_speed(db: TestDb) {
    let records: Vec<_> =
        (0..10_000).map(|i| InferenceRecord { created_at_ms: i as i64, ..full(i) }).collect();
    let store = db.store().await;
    for round in 0..3 {
        store.delete_older_than(i64::MAX, 100_000).await.unwrap();
        let start = Instant::now();
        store.insert_batch(&records).await.unwrap();
        let took = start.elapsed();
        println!(
            "{:?} round {round}: 10k records in {took:?} ({:.0} rows/s)",
            db.kind,
            10_000.0 / took.as_secs_f64()
        );
        assert_eq!(count(&store).await, 10_000);
    }
}
