//! `Recorder`: hands inference records to a bounded queue without blocking the request, and the
//! tracked writer task that drains it into the `Store` in batches.
//!
//! Every record is accounted for: it is `written`, `spilled` (its batch failed twice and it
//! waits in the spill file for replay), or `dropped` (queue full, shut down, spill file full or
//! failing). Shutdown stops intake, lets waiting hand-offs finish, drains the queue and writes
//! (or spills) the last batch; spilled records stay in the file for the next start.
//!
//! Outage handling: a batch that fails twice opens an outage. Until its backoff expires, new
//! batches go straight to the spill file (no waiting on a dead store); then the next batch or
//! replay step probes the store. The first success ends the outage and replay re-inserts the
//! spill file chunk by chunk, between batches, then truncates it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gardefou_core::config::{OnFull, StoreConfig};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::record::InferenceRecord;
use crate::retention::RetentionPolicy;
use crate::spill::{Chunk, Spill};
use crate::store::Store;

/// At most this many records wait for room at once under `OnFull::Wait`; past that they are
/// dropped, so memory stays bounded however long the database stalls.
pub const MAX_WAITING: usize = 1024;

/// Pause before the one retry of a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// First wait after a failed batch before the store is tried again; doubles up to the max.
const OUTAGE_BACKOFF_MIN: Duration = Duration::from_secs(1);
const OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// At most one log line per this long about a failing spill file.
const SPILL_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The sending side of the inference log. Cheap to clone; all clones share one queue and writer.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<InferenceRecord>,
    on_full: OnFull,
    tracker: TaskTracker,
    /// Permits for records waiting for room (`OnFull::Wait`); closed once shutdown has them all.
    waiting: Arc<Semaphore>,
    accepting: AtomicBool,
    /// Tells the writer to close the queue and drain it.
    stop: CancellationToken,
    /// Cancelled by the writer once its last batch is written (or if it dies).
    done: CancellationToken,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    /// Records in the spill file not replayed yet (shared with `Spill`).
    spilled: Arc<AtomicU64>,
}

impl Counters {
    /// Counts `n` dropped records and logs now and then (never per record: a full queue would
    /// flood the log).
    fn drop_records(&self, n: u64, reason: &'static str) {
        let before = self.dropped.fetch_add(n, Ordering::Relaxed);
        if before / 1000 != (before + n) / 1000 || before == 0 {
            tracing::warn!(dropped_total = before + n, reason, "inference records dropped");
        }
    }
}

impl Recorder {
    /// Spawns the writer on `tracker`. It writes a batch when `cfg.batch_size` records are
    /// queued or `cfg.flush_interval` after the first record of a batch, whichever comes first.
    /// Batches the store refuses go to `cfg.spill_path` (none if `cfg.spill_max_bytes` is 0).
    /// When `cfg.retention` or `cfg.usage_retention` is set, also spawns the retention task
    /// ([`Store::spawn_retention`]), stopped by [`Recorder::shutdown`].
    /// Must be called inside a tokio runtime.
    pub fn spawn(store: Store, cfg: &StoreConfig, tracker: &TaskTracker) -> Recorder {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let done = CancellationToken::new();
        let retention = RetentionPolicy {
            detailed: cfg.retention,
            usage: cfg.usage_retention,
            batch: cfg.retention_batch,
        };
        if !retention.is_empty() {
            store.spawn_retention(retention, tracker, stop.clone());
        }
        let writer = Writer {
            store,
            rx,
            batch_size: cfg.batch_size.max(1),
            flush_interval: cfg.flush_interval,
            counters: Arc::clone(&counters),
            spill_to: (cfg.spill_max_bytes > 0).then(|| (cfg.spill_path.clone(), cfg.spill_max_bytes)),
            spill: None,
            outage: Outage::default(),
            spill_error_logged: None,
        };
        let (writer_stop, done_guard) = (stop.clone(), done.clone().drop_guard());
        tracker.spawn(async move {
            let _done = done_guard;
            writer.run(writer_stop).await;
        });
        Recorder {
            inner: Arc::new(Inner {
                tx,
                on_full: cfg.on_full,
                tracker: tracker.clone(),
                waiting: Arc::new(Semaphore::new(MAX_WAITING)),
                accepting: AtomicBool::new(true),
                stop,
                done,
                counters,
            }),
        }
    }

    /// Queues `rec` for writing. Never blocks: when the queue is full, `OnFull::Drop` drops and
    /// counts it; `OnFull::Wait(d)` hands it to a tracked task that waits at most `d` for room
    /// (at most [`MAX_WAITING`] such tasks; past that, drop and count).
    pub fn record(&self, rec: InferenceRecord) {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::Acquire) {
            inner.counters.drop_records(1, "shut_down");
            return;
        }
        let rec = match inner.tx.try_send(rec) {
            Ok(()) => return,
            Err(TrySendError::Closed(_)) => {
                inner.counters.drop_records(1, "shut_down");
                return;
            }
            Err(TrySendError::Full(rec)) => rec,
        };
        let wait = match inner.on_full {
            OnFull::Drop => {
                inner.counters.drop_records(1, "queue_full");
                return;
            }
            OnFull::Wait(wait) => wait,
        };
        let Ok(permit) = Arc::clone(&inner.waiting).try_acquire_owned() else {
            inner.counters.drop_records(1, "too_many_waiting");
            return;
        };
        let tx = inner.tx.clone();
        let counters = Arc::clone(&inner.counters);
        inner.tracker.spawn(async move {
            if tx.send_timeout(rec, wait).await.is_err() {
                counters.drop_records(1, "queue_full_after_wait");
            }
            drop(permit);
        });
    }

    /// Records dropped: queue full, too many waiting, shut down, or in a batch that failed twice
    /// and did not fit in (or could not be written to) the spill file.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records written to the store.
    pub fn written(&self) -> u64 {
        self.inner.counters.written.load(Ordering::Relaxed)
    }

    /// Batches that failed to write even after their one retry (their records were spilled or
    /// dropped).
    pub fn write_errors(&self) -> u64 {
        self.inner.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Records in the spill file waiting to be re-inserted.
    pub fn spilled(&self) -> u64 {
        self.inner.counters.spilled.load(Ordering::Relaxed)
    }

    /// Records queued and not yet taken by the writer.
    pub fn queue_len(&self) -> usize {
        self.inner.tx.max_capacity() - self.inner.tx.capacity()
    }

    /// Stops accepting records, lets waiting hand-offs finish (each waits at most its
    /// `OnFull::Wait` time), writes everything queued, and returns once the writer is done.
    /// Idempotent; concurrent calls all return once the writer is done.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.accepting.store(false, Ordering::Release);
        // Holding every permit means no hand-off is still waiting; closing the semaphore turns
        // later hand-offs (and later shutdown calls) away at once.
        if let Ok(permits) = inner.waiting.acquire_many(MAX_WAITING as u32).await {
            inner.waiting.close();
            drop(permits);
        }
        inner.stop.cancel();
        inner.done.cancelled().await;
    }
}

/// The receiving side: owns the queue and writes it to the store in batches.
struct Writer {
    store: Store,
    rx: mpsc::Receiver<InferenceRecord>,
    batch_size: usize,
    flush_interval: Duration,
    counters: Arc<Counters>,
    /// Where and how much to spill; `None` = failed batches are dropped.
    spill_to: Option<(PathBuf, u64)>,
    /// Opened by `run`, from `spill_to`.
    spill: Option<Spill>,
    outage: Outage,
    spill_error_logged: Option<Instant>,
}

/// While the store keeps failing: when to try it again, and how long the next wait is.
#[derive(Default)]
struct Outage {
    retry_at: Option<Instant>,
    delay: Duration,
}

impl Outage {
    /// True while batches should skip the store (a spill file must exist to send them to).
    fn waiting(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }

    /// A write failed: wait longer before the next try.
    fn failed(&mut self) {
        self.delay = match self.retry_at {
            None => OUTAGE_BACKOFF_MIN,
            Some(_) => (self.delay * 2).min(OUTAGE_BACKOFF_MAX),
        };
        self.retry_at = Some(Instant::now() + self.delay);
    }

    /// A write succeeded; true if that ends an outage.
    fn recovered(&mut self) -> bool {
        self.retry_at.take().is_some()
    }
}

impl Writer {
    /// Runs until the queue is closed (by `stop`, or when every sender is gone) and drained.
    async fn run(mut self, stop: CancellationToken) {
        if let Some((path, max_bytes)) = self.spill_to.take() {
            self.spill = Some(Spill::open(path, max_bytes, Arc::clone(&self.counters.spilled)).await);
        }
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut deadline: Option<Instant> = None;
        let mut stopping = false;
        loop {
            let room = self.batch_size - batch.len();
            let replay_at = self.replay_at();
            tokio::select! {
                received = self.rx.recv_many(&mut batch, room) => {
                    if received == 0 {
                        break;
                    }
                    if batch.len() >= self.batch_size {
                        self.flush(&mut batch).await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + self.flush_interval);
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.flush(&mut batch).await;
                    deadline = None;
                }
                () = sleep_until(replay_at), if replay_at.is_some() && !stopping => {
                    self.replay_step().await;
                }
                () = stop.cancelled(), if !stopping => {
                    // Refuse new records; what is already queued is still received.
                    stopping = true;
                    self.rx.close();
                }
            }
        }
        self.flush(&mut batch).await;
        tracing::debug!(
            spilled = self.counters.spilled.load(Ordering::Relaxed),
            "inference writer drained and stopped"
        );
    }

    /// When to re-insert the next chunk of the spill file: now, or when the outage backoff ends.
    fn replay_at(&self) -> Option<Instant> {
        let spill = self.spill.as_ref()?;
        spill.has_pending().then(|| self.outage.retry_at.unwrap_or_else(Instant::now))
    }

    /// Writes `batch` (retrying once on failure), spills it if that fails, and empties it.
    async fn flush(&mut self, batch: &mut Vec<InferenceRecord>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        if self.spill.is_some() && self.outage.waiting() {
            self.spill_batch(batch).await;
            batch.clear();
            return;
        }
        let mut result = self.store.insert_batch(batch).await;
        if let Err(err) = &result {
            tracing::warn!(records = n, kind = err.kind(), error = %err, "inference batch write failed, retrying once");
            tokio::time::sleep(RETRY_DELAY).await;
            result = self.store.insert_batch(batch).await;
        }
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(n, Ordering::Relaxed);
                if self.outage.recovered() {
                    tracing::info!("inference store answering again");
                }
            }
            Err(err) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                self.outage.failed();
                if self.spill.is_some() {
                    tracing::error!(records = n, kind = err.kind(), error = %err, retry_in = ?self.outage.delay, "inference batch write failed twice, spilling to file");
                    self.spill_batch(batch).await;
                } else {
                    tracing::error!(records = n, kind = err.kind(), error = %err, "inference batch write failed twice, records dropped");
                    self.counters.drop_records(n, "write_failed");
                }
            }
        }
        batch.clear();
    }

    /// Appends `batch` to the spill file; what does not fit or cannot be written is dropped.
    async fn spill_batch(&mut self, batch: &[InferenceRecord]) {
        let n = batch.len() as u64;
        let Some(spill) = self.spill.as_mut() else {
            self.counters.drop_records(n, "write_failed");
            return;
        };
        match spill.append(batch).await {
            Ok(kept) if kept == n => {}
            Ok(kept) => self.counters.drop_records(n - kept, "spill_full"),
            Err(err) => {
                if self.spill_error_logged.is_none_or(|at| at.elapsed() >= SPILL_ERROR_LOG_EVERY) {
                    self.spill_error_logged = Some(Instant::now());
                    tracing::error!(records = n, error = %err, "cannot write the spill file, records dropped");
                }
                self.counters.drop_records(n, "spill_failed");
            }
        }
    }

    /// Re-inserts the next chunk of the spill file. Success ends an outage; failure extends it.
    async fn replay_step(&mut self) {
        let Some(spill) = self.spill.as_mut() else { return };
        let chunk: Chunk = match spill.read_chunk(self.batch_size).await {
            Ok(chunk) => chunk,
            Err(err) => {
                let lost = spill.abandon().await;
                tracing::error!(records = lost, error = %err, "cannot read the spill file, its records are dropped");
                self.counters.drop_records(lost, "spill_unreadable");
                return;
            }
        };
        match self.store.insert_batch(&chunk.records).await {
            Ok(()) => {
                self.counters.written.fetch_add(chunk.records.len() as u64, Ordering::Relaxed);
                if chunk.malformed > 0 {
                    self.counters.drop_records(chunk.malformed, "spill_malformed");
                }
                spill.advance(&chunk).await;
                if !spill.has_pending() {
                    tracing::info!("spill file replayed into the store");
                }
                if self.outage.recovered() {
                    tracing::info!("inference store answering again");
                }
            }
            Err(err) => {
                self.outage.failed();
                tracing::warn!(kind = err.kind(), error = %err, retry_in = ?self.outage.delay, "spill replay failed, will retry");
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
