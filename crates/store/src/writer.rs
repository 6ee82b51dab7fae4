//! `Recorder`: hands inference records to a bounded queue without blocking the request, and the
//! tracked writer task that drains it into the `Store` in batches.
//!
//! Every record is accounted for: it is either `written`, or `dropped` (queue full, shut down,
//! or its batch failed twice). Shutdown stops intake, lets waiting hand-offs finish, drains the
//! queue and writes the last batch.

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
use crate::sqlite::Store;

/// At most this many records wait for room at once under `OnFull::Wait`; past that they are
/// dropped, so memory stays bounded however long the database stalls.
pub const MAX_WAITING: usize = 1024;

/// Pause before the one retry of a failed batch.
const RETRY_DELAY: Duration = Duration::from_millis(200);

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
    /// Must be called inside a tokio runtime.
    pub fn spawn(store: Store, cfg: &StoreConfig, tracker: &TaskTracker) -> Recorder {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let stop = CancellationToken::new();
        let done = CancellationToken::new();
        let writer = Writer {
            store,
            rx,
            batch_size: cfg.batch_size.max(1),
            flush_interval: cfg.flush_interval,
            counters: Arc::clone(&counters),
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

    /// Records dropped: queue full, too many waiting, shut down, or in a batch that failed twice.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records written to the store.
    pub fn written(&self) -> u64 {
        self.inner.counters.written.load(Ordering::Relaxed)
    }

    /// Batches that failed to write even after their one retry (their records count as dropped).
    pub fn write_errors(&self) -> u64 {
        self.inner.counters.write_errors.load(Ordering::Relaxed)
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
}

impl Writer {
    /// Runs until the queue is closed (by `stop`, or when every sender is gone) and drained.
    async fn run(mut self, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut deadline: Option<Instant> = None;
        let mut stopping = false;
        loop {
            let room = self.batch_size - batch.len();
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
                () = stop.cancelled(), if !stopping => {
                    // Refuse new records; what is already queued is still received.
                    stopping = true;
                    self.rx.close();
                }
            }
        }
        self.flush(&mut batch).await;
        tracing::debug!("inference writer drained and stopped");
    }

    /// Writes `batch` (retrying once on failure) and empties it.
    async fn flush(&self, batch: &mut Vec<InferenceRecord>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let mut result = self.store.insert_batch(batch).await;
        if let Err(err) = &result {
            tracing::warn!(records = n, kind = err.kind(), error = %err, "inference batch write failed, retrying once");
            tokio::time::sleep(RETRY_DELAY).await;
            result = self.store.insert_batch(batch).await;
        }
        match result {
            Ok(()) => {
                self.counters.written.fetch_add(n, Ordering::Relaxed);
            }
            Err(err) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(records = n, kind = err.kind(), error = %err, "inference batch write failed twice, records dropped");
                self.counters.drop_records(n, "write_failed");
            }
        }
        batch.clear();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
