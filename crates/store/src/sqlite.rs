//! The SQLite backend: the pool (WAL, one writer), its embedded migrations, the batched insert,
//! the log queries and the retention delete.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use std::collections::HashSet;

use sqlx::Row;

use crate::bodies;
use crate::codec::{self, COLUMNS, COLUMN_COUNT};
use crate::record::{Bodies, InferenceRecord, LogFilter};
use crate::rollup::{self, Groups, Rollup, Segment};
use crate::usage::UsageQuery;
use crate::StoreError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite allows one writer; a few connections let `gardefou logs` read while the writer writes.
const MAX_CONNECTIONS: u32 = 4;
/// SQLite's bind-parameter limit (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
const MAX_BIND_PARAMS: usize = 32_766;
/// Rows per multi-row `INSERT`. Small statements keep each slice of SQLite work short, so requests
/// served on the same core never wait behind a whole batch (tail latency, bench/README.md); the
/// per-row cost is the same as with one huge statement.
const ROWS_PER_STATEMENT: usize = 32;
const _: () = assert!(ROWS_PER_STATEMENT * COLUMN_COUNT <= MAX_BIND_PARAMS);
const _: () = assert!(ROWS_PER_STATEMENT * rollup::PARAMS_PER_ROW <= MAX_BIND_PARAMS);
const _: () = assert!(ROWS_PER_STATEMENT * bodies::PARAMS_PER_ROW <= MAX_BIND_PARAMS);

/// Opens (creating it if missing) the database at `url` and applies the embedded migrations.
/// A memory database uses a single, never-recycled connection so every caller sees the same data.
pub(crate) async fn connect(url: &str) -> Result<SqlitePool, StoreError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut options = SqliteConnectOptions::from_str(url)
        .map_err(StoreError::InvalidUrl)?
        .create_if_missing(true)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT);
    if !in_memory {
        options = options.journal_mode(SqliteJournalMode::Wal);
    }
    let pool_options = if in_memory {
        SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
    };
    let pool = pool_options.connect_with(options).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// One multi-row `INSERT … ON CONFLICT (id) DO NOTHING` per 1,260 records (the bind limit over
/// 26 columns), all in one transaction. For 10k records it took 133–251 ms against 238–421 ms
/// for a prepared single-row statement run in a loop (`batch_insert_speed` in tests/store.rs).
/// `RETURNING id` names the rows actually inserted; only those are added to the usage rollups,
/// in the same transaction.
pub(crate) async fn insert_batch(pool: &SqlitePool, records: &[InferenceRecord]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let mut inserted = HashSet::with_capacity(records.len());
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let json = chunk.iter().map(codec::encode_json).collect::<Result<Vec<_>, _>>()?;
        let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT INTO inferences ({COLUMNS}) "));
        qb.push_values(chunk.iter().zip(json), |mut b, (r, (attempts, tags))| {
            b.push_bind(&r.id)
                .push_bind(r.created_at_ms)
                .push_bind(&r.request_id)
                .push_bind(&r.endpoint)
                .push_bind(&r.route)
                .push_bind(&r.model)
                .push_bind(&r.provider)
                .push_bind(&r.key_id)
                .push_bind(&r.team)
                .push_bind(&r.product)
                .push_bind(&r.end_user)
                .push_bind(i64::from(r.status))
                .push_bind(&r.error_kind)
                .push_bind(&r.error_message)
                .push_bind(r.stream)
                .push_bind(r.input_tokens)
                .push_bind(r.cached_input_tokens)
                .push_bind(r.output_tokens)
                .push_bind(r.reasoning_tokens)
                .push_bind(r.tokens_estimated)
                .push_bind(r.cost_usd)
                .push_bind(r.latency_ms)
                .push_bind(r.ttft_ms)
                .push_bind(&r.finish_reason)
                .push_bind(attempts)
                .push_bind(tags);
        });
        qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
        for row in qb.build().fetch_all(&mut *tx).await? {
            inserted.insert(row.try_get::<String, _>(0)?);
        }
    }
    for mut stmt in Rollup::of(records, &inserted).statements::<Sqlite>(ROWS_PER_STATEMENT) {
        stmt.build().execute(&mut *tx).await?;
    }
    for mut stmt in bodies::statements::<Sqlite>(records, &inserted, ROWS_PER_STATEMENT) {
        stmt.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_inferences(
    pool: &SqlitePool,
    filter: &LogFilter,
) -> Result<Vec<InferenceRecord>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM inferences WHERE 1 = 1"));
    codec::push_filter(&mut qb, filter);
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(codec::decode).collect()
}

pub(crate) async fn get_inference(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<InferenceRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM inferences WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    let Some(mut rec) = row.as_ref().map(codec::decode).transpose()? else { return Ok(None) };
    let bodies: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT request, response FROM inference_bodies WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    rec.bodies = bodies.map(|(request, response)| Bodies { request, response });
    Ok(Some(rec))
}

/// Reads one segment of a usage query into `groups`.
pub(crate) async fn usage_segment(
    pool: &SqlitePool,
    q: &UsageQuery,
    seg: Segment,
    bucket_ms: i64,
    groups: &mut Groups,
) -> Result<(), StoreError> {
    let n_groups = q.group_by.len();
    let rows = rollup::select::<Sqlite>(q, seg, bucket_ms, "TOTAL").build().fetch_all(pool).await?;
    for row in &rows {
        rollup::merge_row(row, n_groups, groups)?;
    }
    Ok(())
}

/// Runs one retention delete (`retention::Expiring::delete_sql`); returns how many rows went.
pub(crate) async fn delete_expired(
    pool: &SqlitePool,
    sql: &str,
    cutoff_ms: i64,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(sql).bind(cutoff_ms).bind(limit).execute(pool).await?;
    Ok(done.rows_affected())
}
