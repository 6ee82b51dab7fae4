//! `StoreError`: the one error enum of this crate, with whose fault it is and a metrics label.

use gardefou_core::Fault;

/// Everything that can go wrong in storage. None of these reach an API client directly: the
/// writer logs and counts them; `gardefou logs` and the health check report them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// 500 at startup: the `database_url` is not a SQLite or Postgres URL sqlx can parse.
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
    /// Never returned to a caller: the local spill file could not be read or written (the
    /// writer logs it and counts the records it could not keep as dropped).
    #[error("spill file {path}: {source}")]
    Spill { path: String, source: std::io::Error },
    /// 400: a usage query that cannot be answered as asked (empty range, unknown dimension or
    /// bucket, too many dimensions or result rows); `param` names the offending parameter.
    #[error("{message}")]
    InvalidUsageQuery { param: &'static str, message: String },
    /// 500: a stored value is out of range for its field (e.g. a status that is not a u16).
    #[error("stored row {id} has an invalid {column}: {reason}")]
    Corrupt { id: String, column: &'static str, reason: String },
}

impl StoreError {
    /// Storage failures are ours; a bad usage query is the client's.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::InvalidUsageQuery { .. } => Fault::Client,
            _ => Fault::Internal,
        }
    }

    /// True when trying the same operation again may succeed (a busy or locked database, a
    /// pool timeout, an I/O hiccup, a lost Postgres connection or a serialization conflict).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => {
                    let code = db.code().unwrap_or_default();
                    if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
                        // SQLSTATE: connection exception, serialization failure, deadlock, lock
                        // not available, admin shutdown, cannot connect now.
                        code.starts_with("08")
                            || matches!(&*code, "40001" | "40P01" | "55P03" | "57P01" | "57P03")
                    } else {
                        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without extended bits.
                        code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                    }
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
            StoreError::Spill { .. } => "spill",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::InvalidUsageQuery { .. } => "invalid_usage_query",
        }
    }
}
