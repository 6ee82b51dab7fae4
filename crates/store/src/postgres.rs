//! The Postgres backend: a lazily connected pool whose migrations run on the first successful
//! contact, the batched insert (one `INSERT … SELECT FROM UNNEST(arrays)` per batch), the log
//! queries and the retention delete.
//!
//! An unreachable server at start does not fail `Store::connect`: the pool connects on demand,
//! every call first makes sure the migrations ran, and until then calls fail (so the writer
//! spills). A server that answers but rejects the migrations does fail `connect`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};
use tokio::sync::OnceCell;

use std::collections::HashSet;

use crate::bodies;
use crate::codec::{self, COLUMNS};
use crate::record::{Bodies, InferenceRecord, LogFilter};
use crate::rollup::{self, Groups, Rollup, Segment};
use crate::usage::UsageQuery;
use crate::StoreError;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The writer holds one connection; the rest serve `gardefou logs`, health checks and retention.
const MAX_CONNECTIONS: u32 = 8;
/// How long a call waits for a connection (including connecting) before it fails, so a down
/// server turns into a spilled batch within seconds rather than stalling the writer.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Postgres allows 65,535 bind parameters per statement.
const ROLLUP_ROWS_PER_STATEMENT: usize = 65_535 / rollup::PARAMS_PER_ROW;
const BODY_ROWS_PER_STATEMENT: usize = 65_535 / bodies::PARAMS_PER_ROW;

/// `COLUMNS` as `codec::decode` reads them: `status` widened, JSONB as text.
const SELECT_COLUMNS: &str =
    "id, created_at_ms, request_id, endpoint, route, model, provider, key_id, team, \
     product, end_user, status::int8 AS status, error_kind, error_message, stream, input_tokens, \
     cached_input_tokens, output_tokens, reasoning_tokens, tokens_estimated, cost_usd, latency_ms, \
     ttft_ms, finish_reason, attempts::text AS attempts, tags::text AS tags";

/// One array per column, zipped back into rows by `UNNEST`.
const UNNEST_TYPES: &str = "$1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int4[], $13::text[], $14::text[], \
     $15::bool[], $16::int8[], $17::int8[], $18::int8[], $19::int8[], $20::bool[], $21::float8[], \
     $22::float8[], $23::float8[], $24::text[], $25::text[], $26::text[]";

/// The pool and whether the migrations have run on it yet.
#[derive(Debug)]
pub(crate) struct Pg {
    pool: PgPool,
    migrated: OnceCell<()>,
}

impl Pg {
    /// Builds the pool without waiting for a connection, then tries once to reach the server
    /// and migrate. Unreachable: logged, and retried on every later call.
    pub(crate) async fn connect(url: &str) -> Result<Pg, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::InvalidUrl)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let pg = Pg { pool, migrated: OnceCell::new() };
        match sqlx::query("SELECT 1").execute(&pg.pool).await {
            Ok(_) => {
                pg.ready().await?;
            }
            Err(err) => tracing::warn!(
                error = %err,
                "postgres unreachable at start; migrations run on first contact, records spill until then"
            ),
        }
        Ok(pg)
    }

    /// Runs the migrations once per process (retried after a failure); later calls are free.
    pub(crate) async fn ready(&self) -> Result<&PgPool, StoreError> {
        self.migrated
            .get_or_try_init(|| async { MIGRATOR.run(&self.pool).await.map_err(StoreError::from) })
            .await?;
        Ok(&self.pool)
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.ready().await?).await?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// One statement for the whole batch: 26 arrays bound once each, whatever the row count
    /// (a multi-row `VALUES` would hit the 65,535 bind-parameter limit at 2,520 rows).
    /// `RETURNING id` names the rows actually inserted; only those are added to the usage
    /// rollups, in the same transaction.
    pub(crate) async fn insert_batch(&self, records: &[InferenceRecord]) -> Result<(), StoreError> {
        let pool = self.ready().await?;
        let mut tx = pool.begin().await?;
        let n = records.len();
        let mut c = Columns::with_capacity(n);
        for r in records {
            c.push(r)?;
        }
        let sql = format!(
            "INSERT INTO inferences ({COLUMNS}) \
             SELECT id, created_at_ms, request_id, endpoint, route, model, provider, key_id, team, \
             product, end_user, status, error_kind, error_message, stream, input_tokens, \
             cached_input_tokens, output_tokens, reasoning_tokens, tokens_estimated, cost_usd, \
             latency_ms, ttft_ms, finish_reason, attempts::jsonb, tags::jsonb \
             FROM UNNEST({UNNEST_TYPES}) AS t({COLUMNS}) ON CONFLICT (id) DO NOTHING RETURNING id"
        );
        let inserted: HashSet<String> = sqlx::query_scalar(&sql)
            .bind(c.id)
            .bind(c.created_at_ms)
            .bind(c.request_id)
            .bind(c.endpoint)
            .bind(c.route)
            .bind(c.model)
            .bind(c.provider)
            .bind(c.key_id)
            .bind(c.team)
            .bind(c.product)
            .bind(c.end_user)
            .bind(c.status)
            .bind(c.error_kind)
            .bind(c.error_message)
            .bind(c.stream)
            .bind(c.input_tokens)
            .bind(c.cached_input_tokens)
            .bind(c.output_tokens)
            .bind(c.reasoning_tokens)
            .bind(c.tokens_estimated)
            .bind(c.cost_usd)
            .bind(c.latency_ms)
            .bind(c.ttft_ms)
            .bind(c.finish_reason)
            .bind(c.attempts)
            .bind(c.tags)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        // Ids as stored (NUL replaced), so match them against the records the same way.
        let scrubbed: Vec<InferenceRecord>;
        let records = if records.iter().any(|r| r.id.contains('\0')) {
            scrubbed = records.iter().map(|r| InferenceRecord { id: text(&r.id), ..r.clone() }).collect();
            &scrubbed
        } else {
            records
        };
        for mut stmt in Rollup::of(records, &inserted).statements::<Postgres>(ROLLUP_ROWS_PER_STATEMENT) {
            stmt.build().execute(&mut *tx).await?;
        }
        for mut stmt in bodies::statements::<Postgres>(records, &inserted, BODY_ROWS_PER_STATEMENT) {
            stmt.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn list_inferences(
        &self,
        filter: &LogFilter,
    ) -> Result<Vec<InferenceRecord>, StoreError> {
        let pool = self.ready().await?;
        let mut qb =
            QueryBuilder::<Postgres>::new(format!("SELECT {SELECT_COLUMNS} FROM inferences WHERE 1 = 1"));
        codec::push_filter(&mut qb, filter);
        let rows = qb.build().fetch_all(pool).await?;
        rows.iter().map(codec::decode).collect()
    }

    pub(crate) async fn get_inference(&self, id: &str) -> Result<Option<InferenceRecord>, StoreError> {
        let pool = self.ready().await?;
        let row = sqlx::query(&format!("SELECT {SELECT_COLUMNS} FROM inferences WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
        let Some(mut rec) = row.as_ref().map(codec::decode).transpose()? else { return Ok(None) };
        let bodies: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT request, response FROM inference_bodies WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
        rec.bodies = bodies.map(|(request, response)| Bodies { request, response });
        Ok(Some(rec))
    }

    /// Reads one segment of a usage query into `groups`.
    pub(crate) async fn usage_segment(
        &self,
        q: &UsageQuery,
        seg: Segment,
        bucket_ms: i64,
        groups: &mut Groups,
    ) -> Result<(), StoreError> {
        let pool = self.ready().await?;
        let rows = rollup::select::<Postgres>(q, seg, bucket_ms, "SUM").build().fetch_all(pool).await?;
        for row in &rows {
            rollup::merge_row(row, q.group_by.len(), groups)?;
        }
        Ok(())
    }

    /// Runs one retention delete (`retention::Expiring::delete_sql`); returns how many rows went.
    pub(crate) async fn delete_expired(
        &self,
        sql: &str,
        cutoff_ms: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let pool = self.ready().await?;
        let done = sqlx::query(sql).bind(cutoff_ms).bind(limit).execute(pool).await?;
        Ok(done.rows_affected())
    }
}

/// A batch turned column-wise for `UNNEST`. Text loses NUL characters (Postgres rejects them in
/// TEXT and JSONB, and one such record would otherwise fail its whole batch forever).
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    created_at_ms: Vec<i64>,
    request_id: Vec<String>,
    endpoint: Vec<String>,
    route: Vec<Option<String>>,
    model: Vec<Option<String>>,
    provider: Vec<Option<String>>,
    key_id: Vec<Option<String>>,
    team: Vec<Option<String>>,
    product: Vec<Option<String>>,
    end_user: Vec<Option<String>>,
    status: Vec<i32>,
    error_kind: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    stream: Vec<bool>,
    input_tokens: Vec<Option<i64>>,
    cached_input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    reasoning_tokens: Vec<Option<i64>>,
    tokens_estimated: Vec<bool>,
    cost_usd: Vec<Option<f64>>,
    latency_ms: Vec<f64>,
    ttft_ms: Vec<Option<f64>>,
    finish_reason: Vec<Option<String>>,
    attempts: Vec<String>,
    tags: Vec<String>,
}

impl Columns {
    fn with_capacity(n: usize) -> Columns {
        let mut c = Columns::default();
        c.id.reserve(n);
        c.attempts.reserve(n);
        c.tags.reserve(n);
        c
    }

    fn push(&mut self, r: &InferenceRecord) -> Result<(), StoreError> {
        let (attempts, tags) = codec::encode_json(r)?;
        self.id.push(text(&r.id));
        self.created_at_ms.push(r.created_at_ms);
        self.request_id.push(text(&r.request_id));
        self.endpoint.push(text(&r.endpoint));
        self.route.push(opt_text(&r.route));
        self.model.push(opt_text(&r.model));
        self.provider.push(opt_text(&r.provider));
        self.key_id.push(opt_text(&r.key_id));
        self.team.push(opt_text(&r.team));
        self.product.push(opt_text(&r.product));
        self.end_user.push(opt_text(&r.end_user));
        self.status.push(i32::from(r.status));
        self.error_kind.push(opt_text(&r.error_kind));
        self.error_message.push(opt_text(&r.error_message));
        self.stream.push(r.stream);
        self.input_tokens.push(r.input_tokens);
        self.cached_input_tokens.push(r.cached_input_tokens);
        self.output_tokens.push(r.output_tokens);
        self.reasoning_tokens.push(r.reasoning_tokens);
        self.tokens_estimated.push(r.tokens_estimated);
        self.cost_usd.push(r.cost_usd);
        self.latency_ms.push(r.latency_ms);
        self.ttft_ms.push(r.ttft_ms);
        self.finish_reason.push(opt_text(&r.finish_reason));
        self.attempts.push(json_text(attempts, "attempts")?);
        self.tags.push(json_text(tags, "tags")?);
        Ok(())
    }
}

const NUL_REPLACEMENT: &str = "\u{FFFD}";

fn text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', NUL_REPLACEMENT)
    } else {
        s.to_owned()
    }
}

fn opt_text(s: &Option<String>) -> Option<String> {
    s.as_deref().map(text)
}

/// JSON text that JSONB accepts: strings (and keys) holding `\u0000` are rewritten.
fn json_text(json: String, column: &'static str) -> Result<String, StoreError> {
    if !json.contains("\\u0000") {
        return Ok(json);
    }
    let mut value: serde_json::Value =
        serde_json::from_str(&json).map_err(|source| StoreError::Json { column, source })?;
    scrub(&mut value);
    Ok(value.to_string())
}

fn scrub(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => *s = text(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                scrub(&mut item);
                map.insert(text(&key), item);
            }
        }
        _ => {}
    }
}
