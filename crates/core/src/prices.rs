//! The price table shipped with gardefou (`crates/core/prices/prices.toml`): public list prices of
//! OpenAI, Anthropic, Google Gemini and Mistral models, each with the date it took effect. A model
//! without a `price` in the config gets its price from here at config load.
//!
//! The table is embedded at build time and parsed and checked once. A broken table never panics:
//! every lookup then finds nothing (the cost is recorded as unknown), and the unit tests below
//! refuse to pass on it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::config::{Price, ProviderConfig, ProviderKind, Quirks};

/// The table as shipped.
pub const TABLE_TOML: &str = include_str!("../prices/prices.toml");

static TABLE: LazyLock<Result<Table, String>> = LazyLock::new(|| Table::parse(TABLE_TOML));

/// The shipped table, or why it is unusable.
pub fn table() -> Result<&'static Table, &'static str> {
    match &*TABLE {
        Ok(t) => Ok(t),
        Err(e) => Err(e.as_str()),
    }
}

/// Which price list a provider bills by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    OpenAi,
    Anthropic,
    Gemini,
    Mistral,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::OpenAi => "openai",
            Family::Anthropic => "anthropic",
            Family::Gemini => "gemini",
            Family::Mistral => "mistral",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "openai" => Family::OpenAi,
            "anthropic" => Family::Anthropic,
            "gemini" => Family::Gemini,
            "mistral" => Family::Mistral,
            _ => return None,
        })
    }

    /// The list a provider kind bills by: OpenAI and Azure OpenAI share OpenAI's list, the Gemini
    /// API and Vertex AI share Gemini's. An OpenAI-compatible server has no list of its own (see
    /// [`Family::of_provider`] for Mistral); neither have the mock and local models.
    pub fn of_kind(kind: ProviderKind) -> Option<Self> {
        match kind {
            ProviderKind::OpenAi | ProviderKind::Azure => Some(Family::OpenAi),
            ProviderKind::Anthropic => Some(Family::Anthropic),
            ProviderKind::Gemini | ProviderKind::Vertex => Some(Family::Gemini),
            ProviderKind::OpenAiCompatible | ProviderKind::Mock | ProviderKind::Local => None,
        }
    }

    /// Like [`Family::of_kind`], and an OpenAI-compatible provider is Mistral's platform when it
    /// points at `*.mistral.ai` or uses the `mistral` vendor preset unchanged. A self-hosted
    /// Mistral model (vLLM, Ollama, …) is not billed by Mistral and gets no table price.
    pub fn of_provider(p: &ProviderConfig) -> Option<Self> {
        if p.kind != ProviderKind::OpenAiCompatible {
            return Family::of_kind(p.kind);
        }
        let host = p
            .base_url
            .as_deref()
            .and_then(|u| u.split_once("://"))
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default().to_ascii_lowercase());
        let mistral_host = host.is_some_and(|h| h == "mistral.ai" || h.ends_with(".mistral.ai"));
        let mistral_preset = Quirks::preset("mistral").is_some_and(|q| q == p.quirks);
        (mistral_host || mistral_preset).then_some(Family::Mistral)
    }
}

/// A calendar date (proleptic Gregorian), as the table writes it: `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let date = Date { year: u16::try_from(year).ok()?, month: month as u8, day: day as u8 };
        (year >= 1970 && (1..=12).contains(&month) && day >= 1 && day <= date.days_in_month()).then_some(date)
    }

    fn days_in_month(self) -> u32 {
        match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ => {
                let y = u32::from(self.year);
                if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                    29
                } else {
                    28
                }
            }
        }
    }

    /// The date of `days` days after 1970-01-01.
    pub fn from_unix_days(days: i64) -> Date {
        let (year, month, day) = crate::calendar::civil_from_days(days);
        Date { year: u16::try_from(year).unwrap_or(u16::MAX), month: month as u8, day: day as u8 }
    }

    /// Today in UTC.
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Date::from_unix_days(secs.div_euclid(86_400))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One price of the table, as found by a lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePrice {
    pub price: Price,
    /// The table's version.
    pub version: &'static str,
    /// The canonical model id of the entry.
    pub model: &'static str,
    pub effective: Date,
    pub source: &'static str,
}

/// The price in force on `on` for `upstream` at a provider of `kind` (see [`Family::of_kind`]).
pub fn lookup(kind: ProviderKind, upstream: &str, on: Date) -> Option<Price> {
    lookup_family(Family::of_kind(kind)?, upstream, on).map(|p| p.price)
}

/// The entry in force on `on` for `upstream` in `family`'s list, dated snapshots and
/// Vertex/Bedrock-style ids normalised. `None` if the table is unusable or has no such model.
pub fn lookup_family(family: Family, upstream: &str, on: Date) -> Option<TablePrice> {
    table().ok()?.lookup(family, upstream, on)
}

/// A parsed and checked price table.
#[derive(Debug)]
pub struct Table {
    pub version: String,
    pub updated: Date,
    /// (family, canonical model) → entries, oldest first.
    entries: BTreeMap<(Family, String), Vec<Entry>>,
    /// (family, id or alias) → canonical model.
    names: HashMap<(Family, String), String>,
}

#[derive(Debug, Clone)]
struct Entry {
    effective: Date,
    source: String,
    price: Price,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    version: String,
    updated: String,
    #[serde(default)]
    price: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    provider: String,
    model: String,
    #[serde(default)]
    aliases: Vec<String>,
    effective: String,
    source: String,
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    batch_input: Option<f64>,
    batch_output: Option<f64>,
}

impl Table {
    /// Parses and checks a table: every entry complete and sane, no (model, effective) twice, no
    /// id naming two models.
    pub fn parse(text: &str) -> Result<Table, String> {
        let raw: RawTable = toml::from_str(text).map_err(|e| format!("price table: {e}"))?;
        if raw.version.trim().is_empty() {
            return Err("price table: empty `version`".to_owned());
        }
        let updated = Date::parse(&raw.updated)
            .ok_or_else(|| format!("price table: `updated = {:?}` is not a YYYY-MM-DD date", raw.updated))?;
        let mut entries: BTreeMap<(Family, String), Vec<Entry>> = BTreeMap::new();
        let mut names: HashMap<(Family, String), String> = HashMap::new();
        for (i, e) in raw.price.iter().enumerate() {
            let at = format!("price table: entry {} (`{}`)", i + 1, e.model);
            let family = Family::from_name(&e.provider)
                .ok_or_else(|| format!("{at}: unknown provider `{}`", e.provider))?;
            let well_formed = |id: &str| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
            };
            if !well_formed(&e.model) {
                return Err(format!("{at}: a model id is lowercase letters, digits, `-`, `.` and `_`"));
            }
            let effective = Date::parse(&e.effective)
                .ok_or_else(|| format!("{at}: `effective = {:?}` is not a YYYY-MM-DD date", e.effective))?;
            if !(e.source.starts_with("https://") && e.source.len() > "https://".len()) {
                return Err(format!("{at}: `source` must be the https URL of the pricing page"));
            }
            let checked = |v: f64, field: &str| -> Result<f64, String> {
                if v.is_finite() && v >= 0.0 {
                    Ok(v)
                } else {
                    Err(format!("{at}: `{field}` must be a number ≥ 0"))
                }
            };
            let input = checked(e.input, "input")?;
            let output = checked(e.output, "output")?;
            let cached_input = checked(e.cached_input.unwrap_or(input), "cached_input")?;
            let cache_write = checked(e.cache_write.unwrap_or(input), "cache_write")?;
            if cached_input > input {
                return Err(format!("{at}: `cached_input` is above `input`"));
            }
            if cache_write < input {
                return Err(format!("{at}: `cache_write` is below `input`"));
            }
            let batch_input = e.batch_input.map(|v| checked(v, "batch_input")).transpose()?;
            let batch_output = e.batch_output.map(|v| checked(v, "batch_output")).transpose()?;
            if batch_input.is_some() != batch_output.is_some() {
                return Err(format!("{at}: `batch_input` and `batch_output` go together"));
            }
            if batch_input.is_some_and(|b| b > input) || batch_output.is_some_and(|b| b > output) {
                return Err(format!("{at}: a batch price is above the standard price"));
            }
            for id in std::iter::once(&e.model).chain(&e.aliases) {
                if !well_formed(id) {
                    return Err(format!("{at}: alias `{id}` is not a well-formed model id"));
                }
                match names.get(&(family, id.clone())) {
                    Some(m) if *m != e.model => {
                        return Err(format!("{at}: `{id}` already names `{m}`"));
                    }
                    _ => {
                        names.insert((family, id.clone()), e.model.clone());
                    }
                }
            }
            let list = entries.entry((family, e.model.clone())).or_default();
            if list.iter().any(|x| x.effective == effective) {
                return Err(format!("{at}: a second price effective {effective}"));
            }
            list.push(Entry {
                effective,
                source: e.source.clone(),
                price: Price { input, cached_input, cache_write, output, batch_input, batch_output },
            });
        }
        for list in entries.values_mut() {
            list.sort_by_key(|x| x.effective);
        }
        Ok(Table { version: raw.version, updated, entries, names })
    }

    /// Number of entries (all dates).
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The canonical model ids of a family.
    pub fn models(&self, family: Family) -> impl Iterator<Item = &str> {
        self.entries.keys().filter(move |(f, _)| *f == family).map(|(_, m)| m.as_str())
    }

    /// The entry in force on `on` for `upstream` (see [`lookup_family`]).
    pub fn lookup(&'static self, family: Family, upstream: &str, on: Date) -> Option<TablePrice> {
        let model = candidates(upstream).into_iter().find_map(|id| self.names.get(&(family, id)))?;
        let (key, list) = self.entries.get_key_value(&(family, model.clone()))?;
        let e = list.iter().rev().find(|x| x.effective <= on)?;
        Some(TablePrice {
            price: e.price,
            version: &self.version,
            model: &key.1,
            effective: e.effective,
            source: &e.source,
        })
    }
}

/// The ids to try for an upstream model id, most specific first: the id itself without routing
/// prefixes (`models/`, `publishers/google/models/`, Bedrock's `us.anthropic.` and `-v1:0`,
/// Vertex's `@20250929`), then with one snapshot suffix after another removed (`-2024-08-06`,
/// `-20250929`, `-2411`, `-001`, `-latest`).
fn candidates(upstream: &str) -> Vec<String> {
    let mut id = upstream.trim().to_ascii_lowercase();
    if let Some((_, last)) = id.rsplit_once('/') {
        id = last.to_owned();
    }
    // Vertex publisher models: `claude-sonnet-4-5@20250929`.
    if let Some((base, _)) = id.split_once('@') {
        id = base.to_owned();
    }
    // Bedrock: `[us.|eu.|apac.|global.]anthropic.claude-…-v1:0`, `mistral.mistral-large-2407-v1:0`.
    for vendor in ["anthropic.", "mistral.", "google."] {
        if let Some(pos) = id.find(vendor) {
            let region = &id[..pos];
            if region.is_empty() || (region.ends_with('.') && !region[..region.len() - 1].contains('.')) {
                id = id[pos + vendor.len()..].to_owned();
                break;
            }
        }
    }
    if let Some((base, tail)) = id.rsplit_once("-v") {
        let version_tail = tail.split_once(':').map_or(tail, |(v, _)| v);
        if !version_tail.is_empty() && version_tail.bytes().all(|b| b.is_ascii_digit()) && tail.contains(':')
        {
            id = base.to_owned();
        }
    }
    let mut out = vec![id.clone()];
    while let Some(shorter) = strip_snapshot(&id) {
        out.push(shorter.clone());
        id = shorter;
    }
    out
}

/// `id` without its last snapshot suffix, if it has one.
fn strip_snapshot(id: &str) -> Option<String> {
    if let Some(base) = id.strip_suffix("-latest") {
        return (!base.is_empty()).then(|| base.to_owned());
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYY-MM-DD
    if id.len() > 11 {
        let (base, tail) = id.split_at(id.len() - 11);
        let t = tail.as_bytes();
        if t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..])
        {
            return Some(base.to_owned());
        }
    }
    // -YYYYMMDD, -MMYY / -YYMM (Mistral), -NNN (Gemini)
    let (base, last) = id.rsplit_once('-')?;
    (!base.is_empty() && digits(last) && matches!(last.len(), 3 | 4 | 8)).then(|| base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, PriceSource};

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn the_shipped_table_is_valid() {
        let t = table().unwrap();
        assert!(!t.version.is_empty());
        assert!(t.len() >= 40, "{} entries", t.len());
        for family in [Family::OpenAi, Family::Anthropic, Family::Gemini, Family::Mistral] {
            assert!(t.models(family).count() >= 4, "{family:?}");
        }
        for ((family, model), list) in &t.entries {
            for e in list {
                let p = e.price;
                assert!(p.cached_input <= p.input, "{model}");
                assert!(p.cache_write >= p.input, "{model}");
                assert!(e.effective <= t.updated, "{model}: effective after the table's date");
                if let (Some(bi), Some(bo)) = (p.batch_input, p.batch_output) {
                    assert!((bi - p.input / 2.0).abs() < 1e-9, "{model}: batch is not 50 %");
                    assert!((bo - p.output / 2.0).abs() < 1e-9, "{model}: batch is not 50 %");
                }
                if *family == Family::Anthropic {
                    // The 5-minute write: 1.25 × input (Haiku 3 is listed at a rounded 1.2 ×).
                    assert!(p.cache_write > p.input && p.cache_write <= 1.25 * p.input + 1e-9, "{model}");
                }
            }
            // Every canonical id resolves to itself, on the day of its first entry.
            let first = list[0].effective;
            let hit = t.lookup(*family, model, first).unwrap();
            assert_eq!(hit.model, model);
        }
    }

    #[test]
    fn a_broken_table_is_an_error_not_a_panic() {
        let base = "version = \"1\"\nupdated = \"2025-01-01\"\n";
        let entry = |extra: &str| {
            format!(
                "{base}[[price]]\nprovider = \"openai\"\nmodel = \"m\"\neffective = \"2025-01-01\"\n\
                 source = \"https://x\"\ninput = 1.0\noutput = 2.0\n{extra}"
            )
        };
        assert!(Table::parse(&entry("")).is_ok());
        assert!(Table::parse("not toml [").is_err());
        assert!(Table::parse(&entry("cached_input = 2.0\n")).unwrap_err().contains("cached_input"));
        assert!(Table::parse(&entry("batch_input = 0.5\n")).unwrap_err().contains("together"));
        assert!(Table::parse(&entry("bogus = 1\n")).is_err());
        let twice = format!("{}{}", entry(""), entry("").trim_start_matches(base));
        assert!(Table::parse(&twice).unwrap_err().contains("second price"));
        let bad_date = entry("").replace("effective = \"2025-01-01\"", "effective = \"2025-02-30\"");
        assert!(Table::parse(&bad_date).unwrap_err().contains("effective"));
        let bad_provider = entry("").replace("\"openai\"", "\"acme\"");
        assert!(Table::parse(&bad_provider).unwrap_err().contains("acme"));
    }

    #[test]
    fn dates() {
        assert_eq!(Date::parse("2024-02-29"), Some(Date { year: 2024, month: 2, day: 29 }));
        assert_eq!(Date::parse("2025-02-29"), None);
        assert_eq!(Date::parse("2025-1-01"), None);
        assert_eq!(Date::parse("2025-13-01"), None);
        assert_eq!(Date::from_unix_days(0), d("1970-01-01"));
        assert_eq!(Date::from_unix_days(20_000), d("2024-10-04"));
        assert_eq!(Date::from_unix_days(11_016), d("2000-02-29"));
        assert_eq!(d("2025-06-10").to_string(), "2025-06-10");
        assert!(d("2025-06-09") < d("2025-06-10"));
        assert!(Date::today() >= d("2025-01-01"));
    }

    #[test]
    fn snapshots_and_platform_ids_are_normalised() {
        let c = |s: &str| candidates(s);
        assert_eq!(c("gpt-4o-2024-08-06"), ["gpt-4o-2024-08-06", "gpt-4o"]);
        assert_eq!(c("claude-sonnet-4-5-20250929"), ["claude-sonnet-4-5-20250929", "claude-sonnet-4-5"]);
        assert_eq!(c("claude-sonnet-4-5@20250929"), ["claude-sonnet-4-5"]);
        assert_eq!(c("us.anthropic.claude-sonnet-4-5-20250929-v1:0")[1], "claude-sonnet-4-5");
        assert_eq!(c("anthropic.claude-3-5-haiku-20241022-v1:0")[1], "claude-3-5-haiku");
        assert_eq!(c("publishers/google/models/gemini-2.5-pro"), ["gemini-2.5-pro"]);
        assert_eq!(c("models/gemini-2.0-flash-001"), ["gemini-2.0-flash-001", "gemini-2.0-flash"]);
        assert_eq!(c("mistral-large-latest"), ["mistral-large-latest", "mistral-large"]);
        assert_eq!(c("Mistral-Small-2506"), ["mistral-small-2506", "mistral-small"]);
        assert_eq!(c("o3"), ["o3"]);
        assert_eq!(c("gpt-4.1-nano"), ["gpt-4.1-nano"]);
        assert_eq!(c("claude-haiku-4-5"), ["claude-haiku-4-5"]);
    }

    #[test]
    fn lookups() {
        let today = d("2026-11-29");
        let at = |family, id: &str, on| lookup_family(family, id, on).map(|h| h.price);
        let p = |input, cached_input, output| (input, cached_input, output);
        let short = |x: Option<Price>| x.map(|x| p(x.input, x.cached_input, x.output));

        assert_eq!(short(lookup(ProviderKind::OpenAi, "gpt-4o-2024-08-06", today)), Some(p(2.5, 1.25, 10.0)));
        assert_eq!(short(lookup(ProviderKind::Azure, "gpt-4o-mini", today)), Some(p(0.15, 0.075, 0.6)));
        // A snapshot with a price of its own is not normalised away.
        assert_eq!(short(lookup(ProviderKind::OpenAi, "gpt-4o-2024-05-13", today)), Some(p(5.0, 5.0, 15.0)));
        // The entry in force on the date wins.
        assert_eq!(
            short(lookup(ProviderKind::OpenAi, "o3-2025-04-16", d("2025-05-01"))),
            Some(p(10.0, 2.5, 40.0))
        );
        assert_eq!(
            short(lookup(ProviderKind::OpenAi, "o3-2025-04-16", d("2025-06-10"))),
            Some(p(2.0, 0.5, 8.0))
        );
        assert_eq!(lookup(ProviderKind::OpenAi, "o3", d("2025-01-01")), None);

        let sonnet = at(Family::Anthropic, "claude-sonnet-4-5-20250929", today).unwrap();
        assert_eq!(
            (sonnet.input, sonnet.cached_input, sonnet.cache_write, sonnet.output),
            (3.0, 0.3, 3.75, 15.0)
        );
        assert_eq!((sonnet.batch_input, sonnet.batch_output), (Some(1.5), Some(7.5)));
        assert!(at(Family::Anthropic, "claude-sonnet-4-0", today).is_some());
        assert!(at(Family::Anthropic, "claude-3-7-sonnet-latest", today).is_some());

        assert_eq!(short(lookup(ProviderKind::Vertex, "gemini-2.5-flash", today)), Some(p(0.3, 0.03, 2.5)));
        assert_eq!(
            short(lookup(ProviderKind::Gemini, "models/gemini-2.5-pro", today)),
            Some(p(1.25, 0.125, 10.0))
        );

        assert_eq!(short(at(Family::Mistral, "mistral-medium-2508", today)), Some(p(0.4, 0.4, 2.0)));
        assert_eq!(short(at(Family::Mistral, "mistral-large-2411", today)), Some(p(2.0, 2.0, 6.0)));
        assert_eq!(
            short(at(Family::Mistral, "mistral-large-latest", d("2025-06-01"))),
            Some(p(2.0, 2.0, 6.0))
        );
        assert_eq!(short(at(Family::Mistral, "mistral-large-latest", today)), Some(p(0.5, 0.5, 1.5)));

        // Families do not leak into one another; unknown ids and kinds find nothing.
        assert_eq!(lookup(ProviderKind::Anthropic, "gpt-4o", today), None);
        assert_eq!(lookup(ProviderKind::OpenAiCompatible, "gpt-4o", today), None);
        assert_eq!(lookup(ProviderKind::Mock, "gpt-4o", today), None);
        assert_eq!(lookup(ProviderKind::OpenAi, "my-fine-tune", today), None);
        assert_eq!(lookup(ProviderKind::OpenAi, "gpt-4", today), None);

        let hit = lookup_family(Family::OpenAi, "gpt-5-mini-2025-08-07", today).unwrap();
        assert_eq!(
            (hit.model, hit.effective, hit.version),
            ("gpt-5-mini", d("2025-08-07"), table().unwrap().version.as_str())
        );
    }

    const PROVIDERS: &str = r#"
[providers.oai]
kind = "openai"
api_key = "env:OPENAI_API_KEY"
[providers.mistral]
kind = "openai_compatible"
base_url = "https://api.mistral.ai/v1"
[providers.vllm]
kind = "openai_compatible"
vendor = "vllm"
base_url = "http://localhost:8000/v1"
[providers.la_plateforme]
kind = "openai_compatible"
vendor = "mistral"
base_url = "https://eu.example.com/v1"
[providers.demo]
kind = "mock"
"#;

    #[test]
    fn config_models_get_the_table_price_unless_they_have_their_own() {
        let text = format!(
            "{PROVIDERS}
[models.fast]
provider = \"oai\"
upstream = \"gpt-4o-mini-2024-07-18\"
[models.own]
provider = \"oai\"
upstream = \"gpt-4o\"
price = {{ input = 1.0, output = 2.0, batch_input = 0.5, batch_output = 1.0 }}
[models.unknown]
provider = \"oai\"
upstream = \"ft:gpt-4o:acme\"
[models.large]
provider = \"mistral\"
upstream = \"mistral-large-2411\"
[models.preset]
provider = \"la_plateforme\"
upstream = \"codestral-latest\"
[models.selfhosted]
provider = \"vllm\"
upstream = \"mistral-small\"
[models.mock]
provider = \"demo\"
upstream = \"gpt-4o\"
"
        );
        let cfg = Config::parse(&text, "test.toml").unwrap();
        let m = |n: &str| &cfg.models[n];

        let fast = m("fast");
        assert_eq!(fast.price.map(|p| p.output), Some(0.6));
        let version = table().unwrap().version.clone();
        assert_eq!(fast.price_source, Some(PriceSource::Table { version, effective: d("2024-07-18") }));

        let own = m("own");
        assert_eq!(own.price.map(|p| (p.input, p.output, p.batch_input)), Some((1.0, 2.0, Some(0.5))));
        assert_eq!(own.price_source, Some(PriceSource::Config));

        assert_eq!(m("unknown").price, None);
        assert_eq!(m("unknown").price_source, None);
        assert_eq!(m("large").price.map(|p| p.input), Some(2.0));
        assert_eq!(m("preset").price.map(|p| p.output), Some(0.9));
        assert_eq!(m("selfhosted").price, None);
        assert_eq!(m("mock").price, None);
    }

    #[test]
    fn a_batch_price_needs_its_pair() {
        let text = format!(
            "{PROVIDERS}
[models.x]
provider = \"oai\"
price = {{ input = 1.0, output = 2.0, batch_input = 0.5 }}
"
        );
        let err = Config::parse(&text, "test.toml").unwrap_err();
        assert!(err.message.contains("batch"), "{err}");
    }
}
