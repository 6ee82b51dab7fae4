//! `StoreError`: the one error enum of this crate, with whose fault it is and a metrics label.

use gardefou_core::Fault;

/// Everything that can go wrong in storage. None of these reach an API client directly: the
/// writer logs and counts them; `gardefou logs` and the health check report them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 500 at startup: the `database_url` cannot be parsed as a SQLite URL.
    #[error("invalid database url: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    /// 503 from the health check, 500 elsewhere: connecting, querying or committing failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// 500 at startup: the embedded migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// 500: `attempts` or `tags` could not be turned into (or read back from) JSON text.
    #[error("cannot encode or decode the {column} column as JSON: {source}")]
    Json { column: &'static str, source: serde_json::Error },
    /// 500: a stored value is out of range for its field (e.g. a status that is not a u16).
    #[error("stored row {id} has an invalid {column}: {reason}")]
    Corrupt { id: String, column: &'static str, reason: String },
}

impl StoreError {
    /// Storage failures are always ours.
    pub fn fault(&self) -> Fault {
        Fault::Internal
    }

    /// True when trying the same operation again may succeed (a busy or locked database, a
    /// pool timeout, an I/O hiccup).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => {
                    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without extended bits.
                    db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| matches!(c & 0xff, 5 | 6))
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::InvalidUrl(_) => "invalid_url",
            StoreError::Database(_) => "database",
            StoreError::Migrate(_) => "migrate",
            StoreError::Json { .. } => "json",
            StoreError::Corrupt { .. } => "corrupt",
        }
    }
}
