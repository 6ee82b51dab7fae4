//! gardefou storage: inference records in SQLite, written off the hot path by a bounded
//! batching writer (`Recorder`), and read back by `gardefou logs` (`Store::list_inferences`).
//!
//! - `record`: the stored nouns (`InferenceRecord`, `Attempt`, `LogFilter`).
//! - `sqlite`: `Store`, the pool, migrations, batched insert and queries.
//! - `writer`: `Recorder`, the bounded queue and its tracked writer task.
//! - `error`: `StoreError`.

mod error;
mod record;
mod sqlite;
mod writer;

pub use error::StoreError;
pub use record::{Attempt, InferenceRecord, LogFilter};
pub use sqlite::Store;
pub use writer::{Recorder, MAX_WAITING};
