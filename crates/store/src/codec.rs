//! Shared by both backends: the column list, the JSON encoding of `attempts` and `tags`, the
//! `LogFilter` → SQL predicate, and the decoding of one row into an `InferenceRecord`.

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use crate::record::{InferenceRecord, LogFilter};
use crate::StoreError;

/// The columns of `inferences`, in the order they are bound and read.
pub(crate) const COLUMNS: &str =
    "id, created_at_ms, request_id, endpoint, route, model, provider, key_id, team, \
     product, end_user, status, error_kind, error_message, stream, input_tokens, cached_input_tokens, \
     output_tokens, reasoning_tokens, tokens_estimated, cost_usd, latency_ms, ttft_ms, finish_reason, \
     attempts, tags";
pub(crate) const COLUMN_COUNT: usize = 26;

/// The `attempts` and `tags` columns as JSON text.
pub(crate) fn encode_json(r: &InferenceRecord) -> Result<(String, String), StoreError> {
    let attempts = serde_json::to_string(&r.attempts)
        .map_err(|source| StoreError::Json { column: "attempts", source })?;
    let tags =
        serde_json::to_string(&r.tags).map_err(|source| StoreError::Json { column: "tags", source })?;
    Ok((attempts, tags))
}

/// Appends the `WHERE` predicates and the order and limit of `filter` to a query that ends in
/// `WHERE 1 = 1`. Placeholders are the backend's own (`?` or `$n`).
pub(crate) fn push_filter<'a, DB>(qb: &mut QueryBuilder<'a, DB>, filter: &LogFilter)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let equals = [
        ("route", &filter.route),
        ("model", &filter.model),
        ("team", &filter.team),
        ("product", &filter.product),
    ];
    for (column, value) in equals {
        if let Some(value) = value {
            qb.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
    if let Some(since) = filter.since_ms {
        qb.push(" AND created_at_ms >= ").push_bind(since);
    }
    if filter.errors_only {
        qb.push(" AND (status >= 400 OR error_kind IS NOT NULL)");
    }
    qb.push(" ORDER BY created_at_ms DESC, id DESC LIMIT ").push_bind(i64::from(filter.effective_limit()));
}

/// Reads one row of `COLUMNS`. Each backend selects `status` as a 64-bit integer and
/// `attempts` / `tags` as JSON text, so one decoder serves both.
pub(crate) fn decode<'r, R>(row: &'r R) -> Result<InferenceRecord, StoreError>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
    Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let status: i64 = row.try_get("status")?;
    let status = u16::try_from(status).map_err(|_| StoreError::Corrupt {
        id: id.clone(),
        column: "status",
        reason: format!("{status} is not an HTTP status"),
    })?;
    let attempts: String = row.try_get("attempts")?;
    let attempts =
        serde_json::from_str(&attempts).map_err(|source| StoreError::Json { column: "attempts", source })?;
    let tags: String = row.try_get("tags")?;
    let tags = serde_json::from_str(&tags).map_err(|source| StoreError::Json { column: "tags", source })?;
    Ok(InferenceRecord {
        id,
        created_at_ms: row.try_get("created_at_ms")?,
        request_id: row.try_get("request_id")?,
        endpoint: row.try_get("endpoint")?,
        route: row.try_get("route")?,
        model: row.try_get("model")?,
        provider: row.try_get("provider")?,
        key_id: row.try_get("key_id")?,
        team: row.try_get("team")?,
        product: row.try_get("product")?,
        end_user: row.try_get("end_user")?,
        status,
        error_kind: row.try_get("error_kind")?,
        error_message: row.try_get("error_message")?,
        stream: row.try_get("stream")?,
        input_tokens: row.try_get("input_tokens")?,
        cached_input_tokens: row.try_get("cached_input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        reasoning_tokens: row.try_get("reasoning_tokens")?,
        tokens_estimated: row.try_get("tokens_estimated")?,
        cost_usd: row.try_get("cost_usd")?,
        latency_ms: row.try_get("latency_ms")?,
        ttft_ms: row.try_get("ttft_ms")?,
        finish_reason: row.try_get("finish_reason")?,
        attempts,
        tags,
        bodies: None,
    })
}
