//! gardefou storage: inference records in SQLite or Postgres, written off the hot path by a
//! bounded batching writer (`Recorder`) that spills to a local file while the store is down,
//! trimmed by a retention task, and read back by `gardefou logs` (`Store::list_inferences`).
//!
//! - `record`: the stored nouns (`InferenceRecord`, `Attempt`, `LogFilter`).
//! - `store`: `Store`, the backend enum.
//! - `retention`: which rows expire when, and the task that deletes them in small batches.
//! - `keys`: virtual and admin keys (hashed) and the append-only audit log.
//! - `escalations`: the human review queue (open, claimed, answered, closed), audited.
//! - `feedback`: scores attached to inferences (end users, reviewers) and their summaries.
//! - `evals`: stored eval runs (headline figures and the JSON report) and a suite's history.
//! - `quality`: online quality scores (a judge's verdict on sampled inferences) and their rates.
//! - `bodies`: request/response bodies kept apart from the inference rows.
//! - `dataset`: what `gardefou eval export` reads: filtered inferences with bodies, answered escalations.
//! - `sqlite`, `postgres`: one file per backend (pool, migrations, batched insert, queries).
//! - `codec`: row (de)serialization and query pieces shared by both backends.
//! - `writer`: `Recorder`, the bounded queue and its tracked writer task.
//! - `spill`: the bounded spill file the writer falls back to, and its replay.
//! - `usage`: usage analytics queries (`Store::usage`), their validation and percentiles.
//! - `rollup`: the `usage_*` rollup tables: batch aggregation, upserts, the read plan.
//! - `limits`: `Limiter`, the rate-limit and budget counters (in-process, or shared in Redis).
//! - `error`: `StoreError`.

mod bodies;
mod codec;
mod dataset;
mod error;
mod escalations;
mod evals;
mod feedback;
mod keys;
pub mod limits;
mod postgres;
mod quality;
mod record;
mod retention;
mod rollup;
mod spill;
mod sqlite;
mod store;
pub mod usage;
mod writer;

pub use dataset::{AnsweredFilter, DatasetFilter, DatasetInferences, FeedbackBound};
pub use error::StoreError;
pub use escalations::{Escalation, EscalationBacklog, EscalationFilter, EscalationStatus};
pub use evals::{EvalRun, EvalRunFilter, EvalTrigger, MAX_RUNS};
pub use feedback::{
    Feedback, FeedbackDimension, FeedbackKind, FeedbackQuery, FeedbackSource, FeedbackSummary,
    FeedbackSummaryRow,
};
pub use keys::{AuditEntry, KeyKind, KeyLimits, KeyRecord};
pub use quality::{QualityDimension, QualityQuery, QualityRow, QualityScore, QualitySummary};
pub use record::{Attempt, Bodies, InferenceRecord, LogFilter};
pub use retention::{RetentionPolicy, RETENTION_PERIOD};
pub use store::Store;
pub use usage::{Bucket, Dimension, UsageFilter, UsageQuery, UsageReport, UsageRow};
pub use writer::{Recorder, MAX_WAITING};
