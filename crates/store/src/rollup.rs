//! Usage rollups, the storage side: the counters of one rollup row, a batch of newly inserted
//! records aggregated in memory per (grain, period, dimensions) and per (grain, period, tag),
//! the `INSERT … ON CONFLICT DO UPDATE` statements that add them to the `usage_*` tables, and
//! the read plan of a `UsageQuery` (which grain serves which part of the range) with its SQL.
//!
//! Both backends call `Rollup::of` with only the records their raw insert actually stored
//! (`RETURNING id` after `ON CONFLICT (id) DO NOTHING`), in the same transaction, so replaying a
//! batch never counts a record twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use crate::record::InferenceRecord;
use crate::usage::{bucket_of, Dimension, UsageQuery, HIST_BUCKETS};
use crate::StoreError;

/// A rollup grain: its period and its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Grain {
    Minute,
    Hour,
    Day,
}

impl Grain {
    pub(crate) const ALL: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

    pub(crate) fn ms(self) -> i64 {
        match self {
            Grain::Minute => 60_000,
            Grain::Hour => 3_600_000,
            Grain::Day => 86_400_000,
        }
    }

    fn table(self, tags: bool) -> &'static str {
        match (self, tags) {
            (Grain::Minute, false) => "usage_minute",
            (Grain::Hour, false) => "usage_hour",
            (Grain::Day, false) => "usage_day",
            (Grain::Minute, true) => "usage_minute_tags",
            (Grain::Hour, true) => "usage_hour_tags",
            (Grain::Day, true) => "usage_day_tags",
        }
    }
}

/// The key columns of a dimension rollup row after `ts`.
const DIM_COLUMNS: [&str; 7] = ["team", "product", "key_id", "route", "model", "provider", "endpoint"];
const TAG_COLUMNS: [&str; 2] = ["tag_key", "tag_value"];
/// The scalar counter columns, in `Counters` order (histograms follow).
const SCALARS: [&str; 12] = [
    "requests",
    "successes",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unknown_cost",
    "latency_sum_ms",
    "ttft_sum_ms",
    "ttft_count",
];

/// Every counter column: the scalars, `lat_00..lat_31`, `ttft_00..ttft_31`.
fn counter_columns() -> Vec<String> {
    let mut cols: Vec<String> = SCALARS.iter().map(|c| (*c).to_owned()).collect();
    cols.extend((0..HIST_BUCKETS).map(|i| format!("lat_{i:02}")));
    cols.extend((0..HIST_BUCKETS).map(|i| format!("ttft_{i:02}")));
    cols
}

/// The additive counters of one rollup row (or of a query result group).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Counters {
    pub requests: i64,
    pub successes: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_usd: f64,
    pub unknown_cost: i64,
    pub latency_sum_ms: f64,
    pub ttft_sum_ms: f64,
    pub ttft_count: i64,
    pub latency_hist: [i64; HIST_BUCKETS],
    pub ttft_hist: [i64; HIST_BUCKETS],
}

impl Counters {
    fn add_record(&mut self, r: &InferenceRecord) {
        let failed = r.status >= 400 || r.error_kind.is_some();
        self.requests += 1;
        self.successes += i64::from((200..300).contains(&r.status) && r.error_kind.is_none());
        self.errors += i64::from(failed);
        self.input_tokens += r.input_tokens.unwrap_or(0);
        self.cached_input_tokens += r.cached_input_tokens.unwrap_or(0);
        self.output_tokens += r.output_tokens.unwrap_or(0);
        self.reasoning_tokens += r.reasoning_tokens.unwrap_or(0);
        match r.cost_usd {
            Some(c) => self.cost_usd += c,
            None => self.unknown_cost += 1,
        }
        self.latency_sum_ms += r.latency_ms;
        self.latency_hist[bucket_of(r.latency_ms)] += 1;
        if let Some(t) = r.ttft_ms {
            self.ttft_sum_ms += t;
            self.ttft_count += 1;
            self.ttft_hist[bucket_of(t)] += 1;
        }
    }

    pub(crate) fn merge(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.successes += o.successes;
        self.errors += o.errors;
        self.input_tokens += o.input_tokens;
        self.cached_input_tokens += o.cached_input_tokens;
        self.output_tokens += o.output_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cost_usd += o.cost_usd;
        self.unknown_cost += o.unknown_cost;
        self.latency_sum_ms += o.latency_sum_ms;
        self.ttft_sum_ms += o.ttft_sum_ms;
        self.ttft_count += o.ttft_count;
        for k in 0..HIST_BUCKETS {
            self.latency_hist[k] += o.latency_hist[k];
            self.ttft_hist[k] += o.ttft_hist[k];
        }
    }
}

/// A batch aggregated per grain: dimension rows and tag rows, keyed by (ts, key columns).
#[derive(Default)]
pub(crate) struct Rollup {
    dims: BTreeMap<(Grain, i64, [String; 7]), Counters>,
    tags: BTreeMap<(Grain, i64, [String; 2]), Counters>,
}

impl Rollup {
    /// Aggregates the records whose id is in `inserted`, each id once (the first record with
    /// that id: the one the raw insert kept).
    pub(crate) fn of(records: &[InferenceRecord], inserted: &HashSet<String>) -> Rollup {
        let mut rollup = Rollup::default();
        let mut seen = HashSet::with_capacity(inserted.len());
        for r in records {
            if !inserted.contains(&r.id) || !seen.insert(r.id.as_str()) {
                continue;
            }
            let dims = [&r.team, &r.product, &r.key_id, &r.route, &r.model, &r.provider]
                .map(|v| v.as_deref().map(clean).unwrap_or_default());
            let [team, product, key_id, route, model, provider] = dims;
            let key = [team, product, key_id, route, model, provider, clean(&r.endpoint)];
            for grain in Grain::ALL {
                let ts = r.created_at_ms - r.created_at_ms.rem_euclid(grain.ms());
                rollup.dims.entry((grain, ts, key.clone())).or_default().add_record(r);
                for (k, v) in &r.tags {
                    rollup.tags.entry((grain, ts, [clean(k), clean(v)])).or_default().add_record(r);
                }
            }
        }
        rollup
    }

    /// One upsert per table and at most `rows_per_statement` rows, adding the counters to any
    /// row already stored under the same key.
    pub(crate) fn statements<'a, DB>(&self, rows_per_statement: usize) -> Vec<QueryBuilder<'a, DB>>
    where
        DB: Database,
        String: Encode<'a, DB> + Type<DB>,
        i64: Encode<'a, DB> + Type<DB>,
        f64: Encode<'a, DB> + Type<DB>,
    {
        let mut out = Vec::new();
        for grain in Grain::ALL {
            let dims: Vec<_> = self.dims.iter().filter(|((g, ..), _)| *g == grain).collect();
            for chunk in dims.chunks(rows_per_statement.max(1)) {
                let rows = chunk.iter().map(|((_, ts, key), c)| (*ts, key.as_slice(), *c));
                out.push(upsert(grain.table(false), &DIM_COLUMNS, rows));
            }
            let tags: Vec<_> = self.tags.iter().filter(|((g, ..), _)| *g == grain).collect();
            for chunk in tags.chunks(rows_per_statement.max(1)) {
                let rows = chunk.iter().map(|((_, ts, key), c)| (*ts, key.as_slice(), *c));
                out.push(upsert(grain.table(true), &TAG_COLUMNS, rows));
            }
        }
        out
    }
}

/// Key text without NUL (Postgres rejects it in TEXT), as the raw insert stores it.
fn clean(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// Bind parameters per dimension rollup row (the widest), to size statements.
pub(crate) const PARAMS_PER_ROW: usize = 1 + DIM_COLUMNS.len() + SCALARS.len() + 2 * HIST_BUCKETS;

fn upsert<'a, 'r, DB>(
    table: &str,
    keys: &[&str],
    rows: impl Iterator<Item = (i64, &'r [String], &'r Counters)>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    f64: Encode<'a, DB> + Type<DB>,
{
    let counters = counter_columns();
    let mut qb =
        QueryBuilder::new(format!("INSERT INTO {table} (ts, {}, {}) ", keys.join(", "), counters.join(", ")));
    qb.push_values(rows, |mut b, (ts, key, c)| {
        b.push_bind(ts);
        for k in key {
            b.push_bind(k.clone());
        }
        b.push_bind(c.requests)
            .push_bind(c.successes)
            .push_bind(c.errors)
            .push_bind(c.input_tokens)
            .push_bind(c.cached_input_tokens)
            .push_bind(c.output_tokens)
            .push_bind(c.reasoning_tokens)
            .push_bind(c.cost_usd)
            .push_bind(c.unknown_cost)
            .push_bind(c.latency_sum_ms)
            .push_bind(c.ttft_sum_ms)
            .push_bind(c.ttft_count);
        for n in c.latency_hist.iter().chain(&c.ttft_hist) {
            b.push_bind(*n);
        }
    });
    let set: Vec<String> = counters.iter().map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect();
    qb.push(format!(" ON CONFLICT (ts, {}) DO UPDATE SET {}", keys.join(", "), set.join(", ")));
    qb
}

/// One part of a query's range, read from one grain: `[from, to)`, both multiples of its period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub grain: Grain,
    pub from: i64,
    pub to: i64,
}

fn floor_to(t: i64, p: i64) -> i64 {
    t - t.rem_euclid(p)
}

fn ceil_to(t: i64, p: i64) -> i64 {
    floor_to(t + p - 1, p)
}

/// Splits `[from, to)` (rounded to the minutes whose start lies inside) into the fewest rows to
/// read: whole days from the day grain, whole hours around them, minutes at the edges. A bucket
/// caps the grain (hourly buckets never read the day grain).
pub(crate) fn plan(from_ms: i64, to_ms: i64, finest_allowed: Grain) -> Vec<Segment> {
    let mut out = Vec::new();
    split(ceil_to(from_ms, 60_000), ceil_to(to_ms, 60_000), finest_allowed, &mut out);
    out
}

fn split(from: i64, to: i64, grain: Grain, out: &mut Vec<Segment>) {
    if from >= to {
        return;
    }
    let finer = match grain {
        Grain::Minute => {
            out.push(Segment { grain, from, to });
            return;
        }
        Grain::Hour => Grain::Minute,
        Grain::Day => Grain::Hour,
    };
    let (lo, hi) = (ceil_to(from, grain.ms()), floor_to(to, grain.ms()));
    if lo >= hi {
        split(from, to, finer, out);
        return;
    }
    split(from, lo, finer, out);
    out.push(Segment { grain, from: lo, to: hi });
    split(hi, to, finer, out);
}

/// `SELECT bucket, g0.., sums FROM <table> WHERE range, filters GROUP BY bucket, g0..` for one
/// segment; `bucket_ms` 0 means no time bucket (the bucket column is 0). `sum` is the
/// aggregate: `SUM`, or SQLite's `TOTAL` (a float sum, exact below 2^53, and ~20% cheaper per
/// row there: with 76 counters per row the aggregate steps are most of a query's time).
pub(crate) fn select<'a, DB>(
    q: &'a UsageQuery,
    seg: Segment,
    bucket_ms: i64,
    sum: &str,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let tag = q.group_by.iter().find_map(|d| match d {
        Dimension::Tag(t) => Some(t.as_str()),
        _ => None,
    });
    let groups: Vec<&str> = match tag {
        Some(_) => vec!["tag_value"],
        None => q.group_by.iter().filter_map(Dimension::column).collect(),
    };
    let bucket = if bucket_ms > 0 {
        format!("(ts / {bucket_ms}) * {bucket_ms}")
    } else {
        "CAST(0 AS BIGINT)".to_owned()
    };
    let mut select = vec![format!("{bucket} AS b")];
    select.extend(groups.iter().enumerate().map(|(i, c)| format!("{c} AS g{i}")));
    for (i, c) in counter_columns().iter().enumerate() {
        let ty = if matches!(i, 7 | 9 | 10) { "DOUBLE PRECISION" } else { "BIGINT" };
        select.push(format!("CAST({sum}({c}) AS {ty}) AS {c}"));
    }
    let mut qb = QueryBuilder::new(format!(
        "SELECT {} FROM {} WHERE ",
        select.join(", "),
        seg.grain.table(tag.is_some())
    ));
    if let Some(tag) = tag {
        qb.push("tag_key = ").push_bind(tag).push(" AND ");
    }
    qb.push("ts >= ").push_bind(seg.from).push(" AND ts < ").push_bind(seg.to);
    for (column, value) in q.filter.columns() {
        qb.push(format!(" AND {column} = ")).push_bind(value);
    }
    let group_list: Vec<String> =
        std::iter::once("b".to_owned()).chain((0..groups.len()).map(|i| format!("g{i}"))).collect();
    qb.push(format!(" GROUP BY {}", group_list.join(", ")));
    qb
}

/// Result groups keyed by (bucket start, group values), merged across segments.
pub(crate) type Groups = HashMap<(i64, Vec<String>), Counters>;

/// Adds one row of a `select` result (with `n_groups` group columns) to `groups`.
pub(crate) fn merge_row<'r, R>(row: &'r R, n_groups: usize, groups: &mut Groups) -> Result<(), StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
{
    let b: i64 = row.try_get(0)?;
    let key = (1..=n_groups).map(|i| row.try_get::<String, _>(i)).collect::<Result<Vec<_>, _>>()?;
    let base = 1 + n_groups;
    let int = |i: usize| row.try_get::<i64, _>(base + i);
    let float = |i: usize| row.try_get::<f64, _>(base + i);
    let mut c = Counters {
        requests: int(0)?,
        successes: int(1)?,
        errors: int(2)?,
        input_tokens: int(3)?,
        cached_input_tokens: int(4)?,
        output_tokens: int(5)?,
        reasoning_tokens: int(6)?,
        cost_usd: float(7)?,
        unknown_cost: int(8)?,
        latency_sum_ms: float(9)?,
        ttft_sum_ms: float(10)?,
        ttft_count: int(11)?,
        ..Counters::default()
    };
    for k in 0..HIST_BUCKETS {
        c.latency_hist[k] = int(SCALARS.len() + k)?;
        c.ttft_hist[k] = int(SCALARS.len() + HIST_BUCKETS + k)?;
    }
    groups.entry((b, key)).or_default().merge(&c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const H: i64 = 3_600_000;
    const D: i64 = 86_400_000;

    #[test]
    fn plan_reads_whole_days_then_hours_then_minutes() {
        let (from, to) = (D - H - 5 * M - 1, 3 * D + 2 * H + 3 * M);
        let segs = plan(from, to, Grain::Day);
        let seg = |grain, from, to| Segment { grain, from, to };
        assert_eq!(
            segs,
            [
                seg(Grain::Minute, D - H - 5 * M, D - H),
                seg(Grain::Hour, D - H, D),
                seg(Grain::Day, D, 3 * D),
                seg(Grain::Hour, 3 * D, 3 * D + 2 * H),
                seg(Grain::Minute, 3 * D + 2 * H, 3 * D + 2 * H + 3 * M),
            ]
        );
        assert!(plan(from, to, Grain::Hour).iter().all(|s| s.grain != Grain::Day));
        assert_eq!(plan(5 * M, 7 * M, Grain::Day), [seg(Grain::Minute, 5 * M, 7 * M)]);
    }
}
