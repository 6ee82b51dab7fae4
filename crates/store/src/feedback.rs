//! Feedback, the storage side: `Feedback` (a score attached to an inference by an end user or a
//! reviewer, with the inference's route, model, provider, team and product copied in), its
//! insert, the listing of one inference's scores, and the summary over a time range grouped by
//! any of route, model, provider, team, product and name.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::keys::{numbered, on_backend};
use crate::store::{Backend, Store};
use crate::StoreError;

/// At most this many scores come back for one inference.
pub const MAX_PER_INFERENCE: i64 = 1000;
/// At most this many summary rows (groups).
pub const MAX_SUMMARY_ROWS: usize = 10_000;

/// How a score is given.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// `true` / `false`, stored as 1 / 0 in `value_float` (its mean is the share of `true`).
    Boolean,
    /// A finite number in `value_float`.
    Float,
    /// A label in `value_text`.
    Category,
    /// No value: only the comment.
    Comment,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Boolean => "boolean",
            FeedbackKind::Float => "float",
            FeedbackKind::Category => "category",
            FeedbackKind::Comment => "comment",
        }
    }

    pub fn parse(s: &str) -> Option<FeedbackKind> {
        match s {
            "boolean" => Some(FeedbackKind::Boolean),
            "float" => Some(FeedbackKind::Float),
            "category" => Some(FeedbackKind::Category),
            "comment" => Some(FeedbackKind::Comment),
            _ => None,
        }
    }
}

/// Who gave a score.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackSource {
    /// The application's end user, through the client key that made the inference.
    User,
    /// A reviewer holding an admin credential.
    Reviewer,
}

impl FeedbackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackSource::User => "user",
            FeedbackSource::Reviewer => "reviewer",
        }
    }

    pub fn parse(s: &str) -> Option<FeedbackSource> {
        match s {
            "user" => Some(FeedbackSource::User),
            "reviewer" => Some(FeedbackSource::Reviewer),
            _ => None,
        }
    }
}

/// One score as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Feedback {
    /// A UUID v7 (text), given by the caller of `insert_feedback`.
    pub id: String,
    pub created_at_ms: i64,
    pub inference_id: String,
    /// What is scored: 1–64 characters of `[A-Za-z0-9_.-]` (checked by the API).
    pub name: String,
    pub kind: FeedbackKind,
    /// Boolean (0 or 1) and float kinds.
    pub value_float: Option<f64>,
    /// Category kind.
    pub value_text: Option<String>,
    pub comment: Option<String>,
    pub source: FeedbackSource,
    /// The key that posted it (a client key, or an admin key); none for the admin token.
    pub key_id: Option<String>,
    /// Copied from the inference.
    pub route: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
}

impl Feedback {
    /// The value as the API shows it: `true`/`false`, a number, a category, or null.
    pub fn value(&self) -> serde_json::Value {
        match self.kind {
            FeedbackKind::Boolean => serde_json::Value::Bool(self.value_float.is_some_and(|v| v != 0.0)),
            FeedbackKind::Float => self.value_float.map_or(serde_json::Value::Null, serde_json::Value::from),
            FeedbackKind::Category => {
                self.value_text.clone().map_or(serde_json::Value::Null, serde_json::Value::String)
            }
            FeedbackKind::Comment => serde_json::Value::Null,
        }
    }
}

/// What a feedback summary can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeedbackDimension {
    Route,
    Model,
    Provider,
    Team,
    Product,
    /// The score's name.
    Name,
}

impl FeedbackDimension {
    /// The column, which is also the name used in `group_by` and in a row's `group`.
    pub fn column(self) -> &'static str {
        match self {
            FeedbackDimension::Route => "route",
            FeedbackDimension::Model => "model",
            FeedbackDimension::Provider => "provider",
            FeedbackDimension::Team => "team",
            FeedbackDimension::Product => "product",
            FeedbackDimension::Name => "name",
        }
    }
}

impl FromStr for FeedbackDimension {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s.trim() {
            "route" => FeedbackDimension::Route,
            "model" => FeedbackDimension::Model,
            "provider" => FeedbackDimension::Provider,
            "team" => FeedbackDimension::Team,
            "product" => FeedbackDimension::Product,
            "name" => FeedbackDimension::Name,
            other => {
                return Err(StoreError::InvalidUsageQuery {
                    param: "group_by",
                    message: format!(
                        "unknown dimension `{other}`: expected route, model, provider, team, product or name"
                    ),
                })
            }
        })
    }
}

/// A summary request: feedback created in `[from_ms, to_ms)`, grouped by `group_by` (none: one
/// row), optionally of one score name and one team.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeedbackQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: Vec<FeedbackDimension>,
    pub name: Option<String>,
    pub team: Option<String>,
}

/// One group of a summary.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FeedbackSummaryRow {
    /// The group's values (`{"route": "chat", "name": "helpful"}`); null for rows without one.
    pub group: BTreeMap<String, Option<String>>,
    /// Every score in the group, comments included.
    pub count: i64,
    /// Boolean and float scores: how many, and their mean (for booleans, the share of `true`).
    /// A group mixing names mixes their scales: group by `name` or filter on one.
    pub scored: i64,
    pub mean: Option<f64>,
    /// Category scores: how many of each category.
    pub categories: BTreeMap<String, i64>,
}

/// A summary: its range and rows, ordered by group.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct FeedbackSummary {
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: Vec<String>,
    pub rows: Vec<FeedbackSummaryRow>,
}

const COLUMNS: &str = "id, created_at_ms, inference_id, name, kind, value_float, value_text, comment, \
    source, key_id, route, model, provider, team, product";

macro_rules! decode_feedback {
    ($row:expr) => {{
        let row = $row;
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let source: String = row.try_get("source")?;
        Feedback {
            kind: FeedbackKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                id: id.clone(),
                column: "kind",
                reason: format!("unknown kind `{kind}`"),
            })?,
            source: FeedbackSource::parse(&source).ok_or_else(|| StoreError::Corrupt {
                id: id.clone(),
                column: "source",
                reason: format!("unknown source `{source}`"),
            })?,
            created_at_ms: row.try_get("created_at_ms")?,
            inference_id: row.try_get("inference_id")?,
            name: row.try_get("name")?,
            value_float: row.try_get("value_float")?,
            value_text: row.try_get("value_text")?,
            comment: row.try_get("comment")?,
            key_id: row.try_get("key_id")?,
            route: row.try_get("route")?,
            model: row.try_get("model")?,
            provider: row.try_get("provider")?,
            team: row.try_get("team")?,
            product: row.try_get("product")?,
            id,
        }
    }};
}

impl FeedbackQuery {
    /// `InvalidUsageQuery` (a 400 naming the parameter) for an empty range or a repeated
    /// dimension.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.from_ms >= self.to_ms {
            return Err(StoreError::InvalidUsageQuery {
                param: "from",
                message: "the range is empty: `from` must be before `to`".to_owned(),
            });
        }
        let mut seen = self.group_by.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.group_by.len() {
            return Err(StoreError::InvalidUsageQuery {
                param: "group_by",
                message: "a dimension is repeated in `group_by`".to_owned(),
            });
        }
        Ok(())
    }

    /// ` WHERE …` for the range and filters, with `?` placeholders bound in this order: from, to,
    /// name, team.
    fn predicate(&self) -> String {
        let mut text = " WHERE created_at_ms >= ? AND created_at_ms < ?".to_owned();
        if self.name.is_some() {
            text.push_str(" AND name = ?");
        }
        if self.team.is_some() {
            text.push_str(" AND team = ?");
        }
        text
    }
}

impl Store {
    /// Stores one score.
    pub async fn insert_feedback(&self, f: &Feedback) -> Result<(), StoreError> {
        on_backend!(self, |pool, sql| {
            sqlx::query(&sql(&format!(
                "INSERT INTO feedback ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )))
            .bind(&f.id)
            .bind(f.created_at_ms)
            .bind(&f.inference_id)
            .bind(&f.name)
            .bind(f.kind.as_str())
            .bind(f.value_float)
            .bind(&f.value_text)
            .bind(&f.comment)
            .bind(f.source.as_str())
            .bind(&f.key_id)
            .bind(&f.route)
            .bind(&f.model)
            .bind(&f.provider)
            .bind(&f.team)
            .bind(&f.product)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The scores of one inference, oldest first (at most [`MAX_PER_INFERENCE`]).
    pub async fn list_feedback(&self, inference_id: &str) -> Result<Vec<Feedback>, StoreError> {
        on_backend!(self, |pool, sql| {
            let rows = sqlx::query(&sql(&format!(
                "SELECT {COLUMNS} FROM feedback WHERE inference_id = ? ORDER BY created_at_ms, id LIMIT ?"
            )))
            .bind(inference_id)
            .bind(MAX_PER_INFERENCE)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(decode_feedback!(r));
            }
            Ok(out)
        })
    }

    /// Counts, means and category counts of the feedback in the query's range, per group.
    /// `InvalidUsageQuery` (a 400) for an invalid query or more than [`MAX_SUMMARY_ROWS`] groups.
    pub async fn feedback_summary(&self, q: &FeedbackQuery) -> Result<FeedbackSummary, StoreError> {
        q.validate()?;
        let dims: Vec<&'static str> = q.group_by.iter().map(|d| d.column()).collect();
        let select = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
        let group = if dims.is_empty() { String::new() } else { format!(" GROUP BY {}", dims.join(", ")) };
        let totals_sql = format!(
            "SELECT {select}COUNT(*) AS n, COUNT(value_float) AS scored, AVG(value_float) AS mean \
             FROM feedback{}{group}",
            q.predicate()
        );
        let category_group =
            if dims.is_empty() { " GROUP BY value_text".to_owned() } else { format!("{group}, value_text") };
        let categories_sql = format!(
            "SELECT {select}value_text, COUNT(*) AS n FROM feedback{} AND kind = 'category'{category_group}",
            q.predicate()
        );
        let mut groups: BTreeMap<Vec<Option<String>>, FeedbackSummaryRow> = BTreeMap::new();
        let key_of = |row: &dyn Fn(&str) -> Result<Option<String>, sqlx::Error>| {
            dims.iter().map(|d| row(d)).collect::<Result<Vec<_>, _>>()
        };
        // The query's range, name and team, bound in `predicate` order.
        macro_rules! filtered {
            ($text:expr) => {{
                let mut query = sqlx::query($text).bind(q.from_ms).bind(q.to_ms);
                if let Some(n) = &q.name {
                    query = query.bind(n);
                }
                if let Some(t) = &q.team {
                    query = query.bind(t);
                }
                query
            }};
        }
        on_backend!(self, |pool, sql| {
            let text = sql(&totals_sql);
            for r in filtered!(&text).fetch_all(pool).await? {
                let n: i64 = r.try_get("n")?;
                if n == 0 {
                    // No GROUP BY over no rows still answers one row of zeros.
                    continue;
                }
                let key = key_of(&|c| r.try_get::<Option<String>, _>(c))?;
                if groups.len() >= MAX_SUMMARY_ROWS {
                    return Err(too_many_groups());
                }
                groups.insert(
                    key.clone(),
                    FeedbackSummaryRow {
                        group: dims.iter().map(|d| (*d).to_owned()).zip(key).collect(),
                        count: n,
                        scored: r.try_get("scored")?,
                        mean: r.try_get("mean")?,
                        categories: BTreeMap::new(),
                    },
                );
            }
            let text = sql(&categories_sql);
            for r in filtered!(&text).fetch_all(pool).await? {
                let key = key_of(&|c| r.try_get::<Option<String>, _>(c))?;
                let category: Option<String> = r.try_get("value_text")?;
                let n: i64 = r.try_get("n")?;
                if let Some(row) = groups.get_mut(&key) {
                    *row.categories.entry(category.unwrap_or_default()).or_default() += n;
                }
            }
        });
        Ok(FeedbackSummary {
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            group_by: dims.iter().map(|d| (*d).to_owned()).collect(),
            rows: groups.into_values().collect(),
        })
    }
}

fn too_many_groups() -> StoreError {
    StoreError::InvalidUsageQuery {
        param: "group_by",
        message: format!(
            "more than {MAX_SUMMARY_ROWS} groups: group by fewer dimensions or narrow the range"
        ),
    }
}
