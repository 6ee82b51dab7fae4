//! Online quality scores, the storage side: `QualityScore` (a judge's verdict on one sampled
//! production inference for one check), its insert, the scores of one inference, and the rates
//! over a time range grouped by route, model, provider, team, product and check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::keys::{numbered, on_backend};
use crate::store::{Backend, Store};
use crate::StoreError;

/// At most this many summary rows (groups).
pub const MAX_QUALITY_ROWS: usize = 10_000;

/// One judged check of one inference.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct QualityScore {
    /// A UUID v7 (text).
    pub id: String,
    pub created_at_ms: i64,
    pub inference_id: String,
    /// `relevance`, `groundedness` or `compliance`.
    pub name: String,
    /// In `[0, 1]`; `None` when the judge failed.
    pub score: Option<f64>,
    /// The score against the route's threshold; `None` when the judge failed.
    pub passed: Option<bool>,
    pub reasoning: Option<String>,
    /// Why the judge gave no score.
    pub error: Option<String>,
    pub judge_route: String,
    /// Copied from the inference.
    pub route: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
}

/// What quality rates can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QualityDimension {
    Route,
    Model,
    Provider,
    Team,
    Product,
    /// The check (`relevance`, `groundedness`, `compliance`).
    Name,
}

impl QualityDimension {
    pub fn column(self) -> &'static str {
        match self {
            QualityDimension::Route => "route",
            QualityDimension::Model => "model",
            QualityDimension::Provider => "provider",
            QualityDimension::Team => "team",
            QualityDimension::Product => "product",
            QualityDimension::Name => "name",
        }
    }
}

impl std::str::FromStr for QualityDimension {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s.trim() {
            "route" => QualityDimension::Route,
            "model" => QualityDimension::Model,
            "provider" => QualityDimension::Provider,
            "team" => QualityDimension::Team,
            "product" => QualityDimension::Product,
            "name" | "check" => QualityDimension::Name,
            other => {
                return Err(StoreError::InvalidUsageQuery {
                    param: "group_by",
                    message: format!(
                        "unknown dimension `{other}`: expected route, model, provider, team, product or check"
                    ),
                })
            }
        })
    }
}

/// Rates over `[from_ms, to_ms)`, grouped by `group_by` (none: one row per check is usually what
/// is wanted, so `name` is always a group).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QualityQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: Vec<QualityDimension>,
    pub route: Option<String>,
}

/// One group of a summary.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct QualityRow {
    pub group: BTreeMap<String, Option<String>>,
    /// Inferences judged (errors included).
    pub count: i64,
    /// Judged with a score.
    pub scored: i64,
    /// The judge failed.
    pub errors: i64,
    pub mean_score: Option<f64>,
    /// Scored and passed, over scored: the compliance rate, relevance rate, or for
    /// groundedness one minus the hallucination rate.
    pub pass_rate: Option<f64>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct QualitySummary {
    pub from_ms: i64,
    pub to_ms: i64,
    pub group_by: Vec<String>,
    pub rows: Vec<QualityRow>,
}

const COLUMNS: &str = "id, created_at_ms, inference_id, name, score, passed, reasoning, error, judge_route, \
    route, model, provider, team, product";

impl Store {
    /// Stores one judged check.
    pub async fn insert_quality_score(&self, s: &QualityScore) -> Result<(), StoreError> {
        on_backend!(self, |pool, sql| {
            sqlx::query(&sql(&format!(
                "INSERT INTO quality_scores ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )))
            .bind(&s.id)
            .bind(s.created_at_ms)
            .bind(&s.inference_id)
            .bind(&s.name)
            .bind(s.score)
            .bind(s.passed)
            .bind(&s.reasoning)
            .bind(&s.error)
            .bind(&s.judge_route)
            .bind(&s.route)
            .bind(&s.model)
            .bind(&s.provider)
            .bind(&s.team)
            .bind(&s.product)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The judged checks of one inference, oldest first.
    pub async fn list_quality_scores(&self, inference_id: &str) -> Result<Vec<QualityScore>, StoreError> {
        on_backend!(self, |pool, sql| {
            let rows = sqlx::query(&sql(&format!(
                "SELECT {COLUMNS} FROM quality_scores WHERE inference_id = ? ORDER BY created_at_ms, id LIMIT 100"
            )))
            .bind(inference_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(QualityScore {
                    id: r.try_get("id")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                    inference_id: r.try_get("inference_id")?,
                    name: r.try_get("name")?,
                    score: r.try_get("score")?,
                    passed: r.try_get("passed")?,
                    reasoning: r.try_get("reasoning")?,
                    error: r.try_get("error")?,
                    judge_route: r.try_get("judge_route")?,
                    route: r.try_get("route")?,
                    model: r.try_get("model")?,
                    provider: r.try_get("provider")?,
                    team: r.try_get("team")?,
                    product: r.try_get("product")?,
                });
            }
            Ok(out)
        })
    }

    /// Counts, mean scores and pass rates per group (always also per check).
    pub async fn quality_summary(&self, q: &QualityQuery) -> Result<QualitySummary, StoreError> {
        if q.from_ms >= q.to_ms {
            return Err(StoreError::InvalidUsageQuery {
                param: "from",
                message: "the range is empty: `from` must be before `to`".to_owned(),
            });
        }
        let mut dims: Vec<&'static str> = Vec::with_capacity(q.group_by.len() + 1);
        for d in &q.group_by {
            if !dims.contains(&d.column()) {
                dims.push(d.column());
            }
        }
        if !dims.contains(&"name") {
            dims.push("name");
        }
        let select = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
        let route = if q.route.is_some() { " AND route = ?" } else { "" };
        let text = format!(
            "SELECT {select}COUNT(*) AS n, COUNT(score) AS scored, AVG(score) AS mean, \
             SUM(CASE WHEN passed THEN 1 ELSE 0 END) AS ok \
             FROM quality_scores WHERE created_at_ms >= ? AND created_at_ms < ?{route} \
             GROUP BY {} ORDER BY {}",
            dims.join(", "),
            dims.join(", ")
        );
        let mut rows = Vec::new();
        on_backend!(self, |pool, sql| {
            let text = sql(&text);
            let mut query = sqlx::query(&text).bind(q.from_ms).bind(q.to_ms);
            if let Some(r) = &q.route {
                query = query.bind(r);
            }
            for r in query.fetch_all(pool).await? {
                if rows.len() >= MAX_QUALITY_ROWS {
                    return Err(StoreError::InvalidUsageQuery {
                        param: "group_by",
                        message: format!("more than {MAX_QUALITY_ROWS} groups: group by fewer dimensions"),
                    });
                }
                let mut group = BTreeMap::new();
                for d in &dims {
                    group.insert((*d).to_owned(), r.try_get::<Option<String>, _>(*d)?);
                }
                let (n, scored): (i64, i64) = (r.try_get("n")?, r.try_get("scored")?);
                let ok: Option<i64> = r.try_get("ok")?;
                rows.push(QualityRow {
                    group,
                    count: n,
                    scored,
                    errors: n - scored,
                    mean_score: r.try_get("mean")?,
                    #[allow(clippy::cast_precision_loss)]
                    pass_rate: (scored > 0).then(|| ok.unwrap_or(0) as f64 / scored as f64),
                });
            }
        });
        Ok(QualitySummary {
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            group_by: dims.iter().map(|d| (*d).to_owned()).collect(),
            rows,
        })
    }
}
