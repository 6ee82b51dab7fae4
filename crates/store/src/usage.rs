//! Usage analytics, the public side: what a caller asks (`UsageQuery`: range, group-by
//! dimensions, bucket, filters), its validation, what comes back (`UsageReport` rows with counts,
//! tokens, cost, error rate, availability and latency / TTFT percentiles), the fixed log-spaced
//! histogram the percentiles are estimated from, and time parsing shared by the CLI and the API.
//!
//! Percentile error bound: latencies are counted in 32 buckets — `[0, 1)` ms, then
//! `[1.52^(k-1), 1.52^k)` ms for k = 1..30, then `[1.52^30 ms ≈ 4.7 min, ∞)`. An estimate always
//! lies in the bucket that holds the true (nearest-rank) percentile, interpolated geometrically
//! inside it, so for values between 1 ms and 4.7 min it is within a factor 1.52 of the truth
//! (usually much closer); below 1 ms it is within 1 ms; past 4.7 min it reports 4.7 min.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::rollup::Counters;
use crate::StoreError;

/// Histogram buckets per latency measure (one integer column each in the rollup tables).
pub const HIST_BUCKETS: usize = 32;
/// Ratio between the upper and lower bound of each finite histogram bucket.
pub const HIST_GROWTH: f64 = 1.52;
/// At most this many group-by dimensions.
pub const MAX_GROUP_BY: usize = 3;
/// At most this many result rows (time buckets × groups).
pub const MAX_RESULT_ROWS: usize = 10_000;

/// What a usage row can be grouped by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Team,
    Product,
    /// The API key id (`key_id`).
    Key,
    Route,
    Model,
    Provider,
    /// `chat` or `embeddings`.
    Endpoint,
    /// The value of one request tag, `tag:<name>`.
    Tag(String),
}

impl Dimension {
    /// The name used in `group_by` and in the `group` object of a row.
    pub fn name(&self) -> String {
        match self {
            Dimension::Tag(t) => format!("tag:{t}"),
            other => other.column().map(|c| if c == "key_id" { "key" } else { c }).unwrap_or("").to_owned(),
        }
    }

    /// The rollup column, for every dimension but a tag.
    pub(crate) fn column(&self) -> Option<&'static str> {
        Some(match self {
            Dimension::Team => "team",
            Dimension::Product => "product",
            Dimension::Key => "key_id",
            Dimension::Route => "route",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Endpoint => "endpoint",
            Dimension::Tag(_) => return None,
        })
    }
}

impl FromStr for Dimension {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s.trim() {
            "team" => Dimension::Team,
            "product" => Dimension::Product,
            "key" | "key_id" => Dimension::Key,
            "route" => Dimension::Route,
            "model" => Dimension::Model,
            "provider" => Dimension::Provider,
            "endpoint" => Dimension::Endpoint,
            other => match other.strip_prefix("tag:") {
                Some(tag) if !tag.is_empty() => Dimension::Tag(tag.to_owned()),
                _ => {
                    return Err(invalid(
                        "group_by",
                        format!(
                            "unknown dimension `{other}`: expected team, product, key, route, model, \
                             provider, endpoint or tag:<name>"
                        ),
                    ))
                }
            },
        })
    }
}

/// The width of a time bucket. Buckets start at whole UTC minutes, hours or days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    pub fn ms(self) -> i64 {
        match self {
            Bucket::Minute => 60_000,
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }
}

impl FromStr for Bucket {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim() {
            "minute" => Ok(Bucket::Minute),
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            other => Err(invalid(
                "bucket",
                format!("unknown bucket `{other}`: expected minute, hour, day or none"),
            )),
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        })
    }
}

/// Equality filters; every set field narrows the result. Not combinable with a tag group-by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub team: Option<String>,
    pub product: Option<String>,
    pub route: Option<String>,
    pub model: Option<String>,
    pub key: Option<String>,
    pub provider: Option<String>,
}

impl UsageFilter {
    /// (rollup column, value) of every set filter.
    pub(crate) fn columns(&self) -> Vec<(&'static str, &str)> {
        [
            ("team", &self.team),
            ("product", &self.product),
            ("route", &self.route),
            ("model", &self.model),
            ("key_id", &self.key),
            ("provider", &self.provider),
        ]
        .into_iter()
        .filter_map(|(c, v)| v.as_deref().map(|v| (c, v)))
        .collect()
    }
}

/// A usage question. Rollups have minute resolution: a minute counts when its start lies in
/// `[from_ms, to_ms)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageQuery {
    /// Unix milliseconds, inclusive.
    pub from_ms: i64,
    /// Unix milliseconds, exclusive.
    pub to_ms: i64,
    /// At most [`MAX_GROUP_BY`]; a tag must be the only dimension.
    pub group_by: Vec<Dimension>,
    /// `None`: one row per group over the whole range.
    pub bucket: Option<Bucket>,
    pub filter: UsageFilter,
}

impl UsageQuery {
    /// Checks the query before it reaches the database; the error names the bad parameter.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.from_ms >= self.to_ms {
            return Err(invalid("from", "the range is empty: `from` must be before `to`".into()));
        }
        if self.group_by.len() > MAX_GROUP_BY {
            return Err(invalid("group_by", format!("at most {MAX_GROUP_BY} group_by dimensions")));
        }
        for (i, d) in self.group_by.iter().enumerate() {
            if self.group_by[..i].contains(d) {
                return Err(invalid("group_by", format!("dimension `{}` is listed twice", d.name())));
            }
        }
        let tags = self.group_by.iter().filter(|d| matches!(d, Dimension::Tag(_))).count();
        if tags > 0 && (self.group_by.len() > 1 || !self.filter.columns().is_empty()) {
            return Err(invalid(
                "group_by",
                "a tag:<name> dimension must be the only dimension, without filters \
                 (tag rollups keep only the tag)"
                    .into(),
            ));
        }
        if let Some(bucket) = self.bucket {
            let buckets = (self.to_ms - self.from_ms).div_euclid(bucket.ms()) + 1;
            if buckets > MAX_RESULT_ROWS as i64 {
                return Err(too_many_rows());
            }
        }
        Ok(())
    }

    /// The dimension names, in order.
    pub fn group_names(&self) -> Vec<String> {
        self.group_by.iter().map(Dimension::name).collect()
    }
}

fn invalid(param: &'static str, message: String) -> StoreError {
    StoreError::InvalidUsageQuery { param, message }
}

pub(crate) fn too_many_rows() -> StoreError {
    invalid(
        "bucket",
        format!(
            "more than {MAX_RESULT_ROWS} result rows (time buckets × groups): use a coarser bucket, \
             a shorter range, fewer group_by dimensions or a filter"
        ),
    )
}

/// The answer to a `UsageQuery`: rows sorted by bucket, then group values.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UsageReport {
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket: Option<Bucket>,
    pub group_by: Vec<String>,
    pub rows: Vec<UsageRow>,
}

/// Turns merged result groups into the sorted report (`''` dimension values become `None`).
pub(crate) fn report(q: &UsageQuery, groups: crate::rollup::Groups) -> UsageReport {
    let names = q.group_names();
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let rows = rows
        .into_iter()
        .map(|((b, values), c)| {
            let group =
                names.iter().cloned().zip(values.into_iter().map(|v| (!v.is_empty()).then_some(v))).collect();
            UsageRow::new(q.bucket.map(|_| b), group, &c)
        })
        .collect();
    UsageReport { from_ms: q.from_ms, to_ms: q.to_ms, bucket: q.bucket, group_by: names, rows }
}

/// One (time bucket, group) of usage.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UsageRow {
    /// Unix milliseconds of the bucket start; `None` without a bucket.
    pub bucket_start: Option<i64>,
    /// Dimension name → value (`None` when the inferences had no value).
    pub group: BTreeMap<String, Option<String>>,
    pub requests: i64,
    /// 2xx answers that did not fail later (no `error_kind`).
    pub successes: i64,
    /// Status ≥ 400, or an `error_kind` (a stream that failed after its 200).
    pub errors: i64,
    /// errors / requests.
    pub error_rate: f64,
    /// successes / requests.
    pub availability: f64,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    /// The share of input tokens served from the providers' prompt caches
    /// (cached_input_tokens / input_tokens; 0 without input).
    pub cache_hit_rate: f64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    /// Sum of the known costs.
    pub cost_usd: f64,
    /// Inferences whose price was unknown (not included in `cost_usd`).
    pub unknown_cost: i64,
    pub latency_ms: Percentiles,
    /// Over the inferences that have a time to first token (streams).
    pub ttft_ms: Percentiles,
}

/// Estimated percentiles (see the module doc for the bound); `None` without samples.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl UsageRow {
    pub(crate) fn new(
        bucket_start: Option<i64>,
        group: BTreeMap<String, Option<String>>,
        c: &Counters,
    ) -> UsageRow {
        let ratio = |n: i64| if c.requests > 0 { n as f64 / c.requests as f64 } else { 0.0 };
        UsageRow {
            bucket_start,
            group,
            requests: c.requests,
            successes: c.successes,
            errors: c.errors,
            error_rate: ratio(c.errors),
            availability: ratio(c.successes),
            input_tokens: c.input_tokens,
            cached_input_tokens: c.cached_input_tokens,
            cache_hit_rate: if c.input_tokens > 0 {
                c.cached_input_tokens as f64 / c.input_tokens as f64
            } else {
                0.0
            },
            output_tokens: c.output_tokens,
            reasoning_tokens: c.reasoning_tokens,
            cost_usd: c.cost_usd,
            unknown_cost: c.unknown_cost,
            latency_ms: Percentiles::of(&c.latency_hist),
            ttft_ms: Percentiles::of(&c.ttft_hist),
        }
    }
}

impl Percentiles {
    pub fn of(hist: &[i64; HIST_BUCKETS]) -> Percentiles {
        Percentiles { p50: percentile(hist, 0.50), p95: percentile(hist, 0.95), p99: percentile(hist, 0.99) }
    }
}

/// The lower bound (ms) of histogram bucket `k` (bucket 0 starts at 0).
pub fn bucket_lower_ms(k: usize) -> f64 {
    if k == 0 {
        0.0
    } else {
        HIST_GROWTH.powi(k as i32 - 1)
    }
}

/// The histogram bucket of a duration in milliseconds (NaN and negatives count as bucket 0).
pub fn bucket_of(ms: f64) -> usize {
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    let mut k = ((ms.ln() / HIST_GROWTH.ln()).floor() as usize + 1).min(HIST_BUCKETS - 1);
    // Correct float rounding at the exact bounds.
    while k > 1 && ms < bucket_lower_ms(k) {
        k -= 1;
    }
    while k < HIST_BUCKETS - 1 && ms >= bucket_lower_ms(k + 1) {
        k += 1;
    }
    k
}

/// The nearest-rank `q` percentile estimated from bucket counts: found in its bucket, then
/// interpolated geometrically (linearly in bucket 0) by its rank within the bucket.
pub fn percentile(hist: &[i64; HIST_BUCKETS], q: f64) -> Option<f64> {
    let total: i64 = hist.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut before = 0;
    for (k, &n) in hist.iter().enumerate() {
        if n > 0 && before + n >= rank {
            let frac = ((rank - before) as f64 - 0.5) / n as f64;
            return Some(match k {
                0 => frac,
                k if k == HIST_BUCKETS - 1 => bucket_lower_ms(k),
                k => bucket_lower_ms(k) * HIST_GROWTH.powf(frac),
            });
        }
        before += n;
    }
    None
}

/// Unix milliseconds from `1735689600000` (unix ms) or RFC 3339
/// (`2025-01-01T00:00:00Z`, `2025-01-01T01:00:00.5+01:00`).
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        s.get(r).filter(|t| t.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':'
        || b[16] != b':'
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        ms = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let rb = rest.as_bytes();
            if rest.len() != 6 || rb[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_and_exact_at_their_bounds() {
        assert_eq!(bucket_of(0.5), 0);
        assert_eq!(bucket_of(1.0), 1);
        assert_eq!(bucket_of(1.51), 1);
        assert_eq!(bucket_of(1.52), 2);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_of(1e9), HIST_BUCKETS - 1);
        for k in 1..HIST_BUCKETS {
            assert_eq!(bucket_of(bucket_lower_ms(k)), k, "lower bound of {k}");
        }
        assert!(bucket_lower_ms(HIST_BUCKETS - 1) > 240_000.0);
    }

    #[test]
    fn percentile_lies_within_the_growth_factor_of_the_true_value() {
        let values: Vec<f64> = (1..=1000).map(|i| f64::from(i) * 3.7).collect();
        let mut hist = [0i64; HIST_BUCKETS];
        values.iter().for_each(|v| hist[bucket_of(*v)] += 1);
        for q in [0.5, 0.95, 0.99] {
            let truth = values[(q * 1000.0_f64).ceil() as usize - 1];
            let est = percentile(&hist, q).unwrap();
            assert!(est / truth < HIST_GROWTH && truth / est < HIST_GROWTH, "q={q} est={est} truth={truth}");
        }
        assert_eq!(percentile(&[0; HIST_BUCKETS], 0.5), None);
    }

    #[test]
    fn instants_parse_as_unix_ms_or_rfc3339() {
        assert_eq!(parse_instant("1735689600000"), Some(1_735_689_600_000));
        assert_eq!(parse_instant("2025-01-01T00:00:00Z"), Some(1_735_689_600_000));
        assert_eq!(parse_instant("2025-01-01T01:00:00.25+01:00"), Some(1_735_689_600_250));
        assert_eq!(parse_instant("2000-02-29T01:02:03Z"), Some(951_782_400_000 + 3_723_000));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant("2025-13-01T00:00:00Z"), None);
    }
}
