//! Dataset building, the storage side: the chat inferences `gardefou eval export` turns into eval
//! cases (filtered by route, model, team, product, tags, time, errors and a feedback score, read
//! with their request and response bodies, and the count of those without a stored body), and the
//! escalations that carry a human answer.

use sqlx::Row;

use crate::codec;
use crate::escalations::Escalation;
use crate::keys::{numbered, on_backend};
use crate::record::{Bodies, InferenceRecord};
use crate::store::{Backend, Store};
use crate::StoreError;

/// Which inferences become cases. Every set field narrows the result; only chat inferences are
/// read (an embeddings request is no eval case). Rows come newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetFilter {
    pub route: Option<String>,
    pub model: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
    /// Tags the inference carries, every one of them (`key`, `value`).
    pub tags: Vec<(String, String)>,
    /// Only inferences created at or after this unix millisecond.
    pub since_ms: Option<i64>,
    /// Only failed inferences (status 400 or more, or an `error_kind`).
    pub errors_only: bool,
    /// Only inferences scored with this feedback name, within its bounds.
    pub feedback: Option<FeedbackBound>,
    /// 0 means [`DatasetFilter::DEFAULT_LIMIT`]; capped at [`DatasetFilter::MAX_LIMIT`].
    pub limit: u32,
}

/// An inference has at least one score named `name` whose value (booleans are 0 or 1) lies in
/// `[min, max]`; without bounds, any score of that name (comments and categories included).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedbackBound {
    pub name: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The inferences of a dataset, each with its bodies, and how many more matched without a stored
/// request body (they cannot become cases: their messages are gone).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetInferences {
    /// Newest first; `bodies` is always set.
    pub records: Vec<InferenceRecord>,
    pub without_body: i64,
}

/// Which answered escalations become cases: `answered` or `closed` ones holding an answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnsweredFilter {
    pub route: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
    /// Only escalations opened at or after this unix millisecond.
    pub since_ms: Option<i64>,
    /// 0 means [`DatasetFilter::DEFAULT_LIMIT`]; capped at [`DatasetFilter::MAX_LIMIT`].
    pub limit: u32,
}

impl DatasetFilter {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 10_000;
}

fn effective_limit(limit: u32) -> i64 {
    i64::from(match limit {
        0 => DatasetFilter::DEFAULT_LIMIT,
        n => n.min(DatasetFilter::MAX_LIMIT),
    })
}

/// A value bound to a `?` placeholder.
enum Bind<'a> {
    Text(&'a str),
    Int(i64),
    Float(f64),
}

/// `codec::COLUMNS` as `codec::decode` reads them on Postgres (as `postgres::SELECT_COLUMNS`):
/// `status` widened, JSONB as text.
const PG_COLUMNS: &str = "id, created_at_ms, request_id, endpoint, route, model, provider, key_id, team, \
     product, end_user, status::int8 AS status, error_kind, error_message, stream, input_tokens, \
     cached_input_tokens, output_tokens, reasoning_tokens, tokens_estimated, cost_usd, latency_ms, \
     ttft_ms, finish_reason, attempts::text AS attempts, tags::text AS tags";

const HAS_BODY: &str = "EXISTS (SELECT 1 FROM inference_bodies b WHERE b.id = inferences.id)";

impl DatasetFilter {
    /// ` WHERE …` (without the body condition) and its values in placeholder order. Tags are
    /// matched in the JSON column: `json_each` on SQLite, `->>` on Postgres.
    fn predicate(&self, postgres: bool) -> (String, Vec<Bind<'_>>) {
        let mut text = " WHERE endpoint = 'chat'".to_owned();
        let mut binds = Vec::new();
        let equals = [
            ("route", &self.route),
            ("model", &self.model),
            ("team", &self.team),
            ("product", &self.product),
        ];
        for (column, value) in equals {
            if let Some(v) = value {
                text.push_str(&format!(" AND {column} = ?"));
                binds.push(Bind::Text(v));
            }
        }
        for (k, v) in &self.tags {
            text.push_str(if postgres {
                " AND inferences.tags ->> CAST(? AS TEXT) = ?"
            } else {
                " AND EXISTS (SELECT 1 FROM json_each(inferences.tags) t WHERE t.key = ? AND t.value = ?)"
            });
            binds.push(Bind::Text(k));
            binds.push(Bind::Text(v));
        }
        if let Some(since) = self.since_ms {
            text.push_str(" AND created_at_ms >= ?");
            binds.push(Bind::Int(since));
        }
        if self.errors_only {
            text.push_str(" AND (status >= 400 OR error_kind IS NOT NULL)");
        }
        if let Some(f) = &self.feedback {
            text.push_str(
                " AND EXISTS (SELECT 1 FROM feedback f WHERE f.inference_id = inferences.id AND f.name = ?",
            );
            binds.push(Bind::Text(&f.name));
            if let Some(min) = f.min {
                text.push_str(" AND f.value_float >= ?");
                binds.push(Bind::Float(min));
            }
            if let Some(max) = f.max {
                text.push_str(" AND f.value_float <= ?");
                binds.push(Bind::Float(max));
            }
            text.push(')');
        }
        (text, binds)
    }
}

/// `sqlx::query($text)` with `$binds` bound in order.
macro_rules! bound {
    ($text:expr, $binds:expr) => {{
        let mut q = sqlx::query($text);
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(*s),
                Bind::Int(i) => q.bind(*i),
                Bind::Float(f) => q.bind(*f),
            };
        }
        q
    }};
}

impl Store {
    /// The chat inferences matching `filter` that kept their request body, newest first, with
    /// their bodies; and how many others matched without one.
    pub async fn dataset_inferences(&self, filter: &DatasetFilter) -> Result<DatasetInferences, StoreError> {
        let postgres = matches!(self.backend, Backend::Postgres(_));
        let (predicate, mut binds) = filter.predicate(postgres);
        let columns = if postgres { PG_COLUMNS } else { codec::COLUMNS };
        let select = format!(
            "SELECT {columns}, \
             (SELECT b.request FROM inference_bodies b WHERE b.id = inferences.id) AS body_request, \
             (SELECT b.response FROM inference_bodies b WHERE b.id = inferences.id) AS body_response \
             FROM inferences{predicate} AND {HAS_BODY} ORDER BY created_at_ms DESC, id DESC LIMIT ?"
        );
        let count = format!("SELECT COUNT(*) AS n FROM inferences{predicate} AND NOT {HAS_BODY}");
        on_backend!(self, |pool, sql| {
            let text = sql(&count);
            let without_body: i64 = bound!(&text, &binds).fetch_one(pool).await?.try_get("n")?;
            binds.push(Bind::Int(effective_limit(filter.limit)));
            let text = sql(&select);
            let rows = bound!(&text, &binds).fetch_all(pool).await?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut rec = codec::decode(row)?;
                rec.bodies = Some(Bodies {
                    request: row.try_get("body_request")?,
                    response: row.try_get("body_response")?,
                });
                records.push(rec);
            }
            Ok(DatasetInferences { records, without_body })
        })
    }

    /// The escalations matching `filter` that are answered or closed with an answer, newest
    /// first. Each is read by id through [`Store::get_escalation`], so an escalation is decoded
    /// in one place; an export is a rare, offline read.
    pub async fn answered_escalations(&self, filter: &AnsweredFilter) -> Result<Vec<Escalation>, StoreError> {
        let mut text = "SELECT id FROM escalations \
             WHERE status IN ('answered', 'closed') AND answer IS NOT NULL"
            .to_owned();
        let mut binds = Vec::new();
        for (column, value) in
            [("route", &filter.route), ("team", &filter.team), ("product", &filter.product)]
        {
            if let Some(v) = value {
                text.push_str(&format!(" AND {column} = ?"));
                binds.push(Bind::Text(v));
            }
        }
        if let Some(since) = filter.since_ms {
            text.push_str(" AND created_at_ms >= ?");
            binds.push(Bind::Int(since));
        }
        text.push_str(" ORDER BY created_at_ms DESC, id DESC LIMIT ?");
        binds.push(Bind::Int(effective_limit(filter.limit)));
        let ids: Vec<String> = on_backend!(self, |pool, sql| {
            let text = sql(&text);
            let rows = bound!(&text, &binds).fetch_all(pool).await?;
            rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?
        });
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            // Gone in between (retention): skipped.
            if let Some(e) = self.get_escalation(&id).await? {
                out.push(e);
            }
        }
        Ok(out)
    }
}
