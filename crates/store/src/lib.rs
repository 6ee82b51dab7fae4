//! gardefou storage: inference records in SQLite or Postgres, written off the hot path by a
//! bounded batching writer (`Recorder`) that spills to a local file while the store is down,
//! trimmed by a retention task, and read back by `gardefou logs` (`Store::list_inferences`).
//!
//! - `record`: the stored nouns (`InferenceRecord`, `Attempt`, `LogFilter`).
//! - `store`: `Store`, the backend enum, retention.
//! - `sqlite`, `postgres`: one file per backend (pool, migrations, batched insert, queries).
//! - `codec`: row (de)serialization and query pieces shared by both backends.
//! - `writer`: `Recorder`, the bounded queue and its tracked writer task.
//! - `spill`: the bounded spill file the writer falls back to, and its replay.
//! - `usage`: usage analytics queries (`Store::usage`), their validation and percentiles.
//! - `rollup`: the `usage_*` rollup tables: batch aggregation, upserts, the read plan.
//! - `error`: `StoreError`.

mod codec;
mod error;
mod postgres;
mod record;
mod rollup;
mod spill;
mod sqlite;
mod store;
pub mod usage;
mod writer;

pub use error::StoreError;
pub use record::{Attempt, InferenceRecord, LogFilter};
pub use store::{Store, RETENTION_PERIOD};
pub use usage::{Bucket, Dimension, UsageFilter, UsageQuery, UsageReport, UsageRow};
pub use writer::{Recorder, MAX_WAITING};
