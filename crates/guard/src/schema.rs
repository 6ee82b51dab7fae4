//! JSON-schema validation of a structured output (cargo feature `json-schema`).
//!
//! A text that is not JSON gives one `INVALID_JSON` finding; a JSON value that breaks the
//! schema gives one `SCHEMA_VIOLATION` finding per error (capped at 16). Both span the whole
//! text. Without the feature, configuring a schema fails with
//! [`GuardError::FeatureDisabled`], so a policy never silently skips a guard it was given.
//!
//! A schema is either fixed in the policy or the caller's own (`from_request`): those are
//! compiled once and kept in a small [`SchemaCache`] per policy, keyed by a hash of the
//! schema's JSON text (the text itself is compared on a hit, so a collision costs a compile,
//! never a wrong schema). `$ref`s to other documents are not fetched (jsonschema is built
//! without its HTTP and file resolvers): such a schema does not compile.

use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::error::GuardError;
use crate::finding::{Finding, GuardKind};

/// Most schema errors reported per text.
pub const MAX_ERRORS: usize = 16;
/// Request schemas kept compiled per policy; the least recently used one makes room.
pub const CACHE_CAPACITY: usize = 64;
/// Request schemas longer than this (as JSON text) are compiled for each request, not kept.
pub const MAX_CACHED_SCHEMA_BYTES: usize = 64 * 1024;

/// A compiled schema.
#[derive(Clone)]
pub struct SchemaGuard {
    #[cfg(feature = "json-schema")]
    validator: std::sync::Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for SchemaGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaGuard")
    }
}

fn whole(text: &str, kind: &str) -> Finding {
    Finding::new(GuardKind::JsonSchema, kind, text, 0..text.len(), 1.0)
}

/// The text as one JSON document, or the `INVALID_JSON` finding.
fn parse(text: &str) -> Result<serde_json::Value, Finding> {
    serde_json::from_str(text).map_err(|_| whole(text, "INVALID_JSON"))
}

#[cfg(feature = "json-schema")]
impl SchemaGuard {
    pub fn new(schema: &serde_json::Value) -> Result<Self, GuardError> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| GuardError::InvalidSchema { reason: e.to_string() })?;
        Ok(Self { validator: std::sync::Arc::new(validator) })
    }

    /// Validate `text` as a JSON document.
    pub fn check(&self, text: &str) -> Vec<Finding> {
        match parse(text) {
            Err(f) => vec![f],
            Ok(value) => self
                .validator
                .iter_errors(&value)
                .take(MAX_ERRORS)
                .map(|_| whole(text, "SCHEMA_VIOLATION"))
                .collect(),
        }
    }
}

#[cfg(not(feature = "json-schema"))]
impl SchemaGuard {
    pub fn new(_schema: &serde_json::Value) -> Result<Self, GuardError> {
        Err(GuardError::FeatureDisabled { feature: "json-schema" })
    }

    pub fn check(&self, _text: &str) -> Vec<Finding> {
        Vec::new()
    }
}

/// What a `json_schema` guard checks on one answer.
#[derive(Debug, Clone)]
pub enum DocumentCheck {
    /// The answer must be JSON (a request with `response_format: {"type": "json_object"}`).
    Json,
    /// The answer must be JSON that follows this schema.
    Schema(SchemaGuard),
}

impl DocumentCheck {
    pub fn check(&self, text: &str) -> Vec<Finding> {
        match self {
            Self::Json => parse(text).err().into_iter().collect(),
            Self::Schema(s) => s.check(text),
        }
    }
}

struct Entry {
    hash: u64,
    json: Box<str>,
    guard: SchemaGuard,
    used: u64,
}

#[derive(Default)]
struct Entries {
    list: Vec<Entry>,
    clock: u64,
    compiles: u64,
}

/// Compiled request schemas, at most [`CACHE_CAPACITY`]; shared by the clones of a policy.
#[derive(Default)]
pub struct SchemaCache {
    hasher: std::collections::hash_map::RandomState,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache").field("len", &self.len()).finish()
    }
}

impl SchemaCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves the list consistent (plain pushes and removals).
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Schemas held compiled.
    pub fn len(&self) -> usize {
        self.lock().list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Schemas compiled so far (cache misses, successful or not).
    pub fn compiles(&self) -> u64 {
        self.lock().compiles
    }

    /// The compiled form of `schema`, from the cache or compiled now (outside the lock).
    pub fn get_or_compile(&self, schema: &serde_json::Value) -> Result<SchemaGuard, GuardError> {
        let json = schema.to_string();
        let hash = self.hasher.hash_one(json.as_bytes());
        {
            let mut e = self.lock();
            e.clock += 1;
            let now = e.clock;
            if let Some(hit) = e.list.iter_mut().find(|x| x.hash == hash && *x.json == *json) {
                hit.used = now;
                return Ok(hit.guard.clone());
            }
            e.compiles += 1;
        }
        let guard = SchemaGuard::new(schema)?;
        if json.len() <= MAX_CACHED_SCHEMA_BYTES {
            let mut e = self.lock();
            let now = e.clock;
            if !e.list.iter().any(|x| x.hash == hash && *x.json == *json) {
                if e.list.len() >= CACHE_CAPACITY {
                    if let Some(oldest) =
                        e.list.iter().enumerate().min_by_key(|(_, x)| x.used).map(|(i, _)| i)
                    {
                        e.list.swap_remove(oldest);
                    }
                }
                e.list.push(Entry { hash, json: json.into_boxed_str(), guard: guard.clone(), used: now });
            }
        }
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_only_check_wants_one_json_document() {
        assert!(DocumentCheck::Json.check(r#"{"a": [1, 2]}"#).is_empty());
        assert!(DocumentCheck::Json.check(" 42 ").is_empty());
        let f = DocumentCheck::Json.check("Sure! {\"a\": 1}");
        assert_eq!((f.len(), f[0].kind.as_str(), f[0].start, f[0].end), (1, "INVALID_JSON", 0, 14));
        assert_eq!(DocumentCheck::Json.check("{\"a\": 1} {\"b\": 2}")[0].kind, "INVALID_JSON");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(DocumentCheck::Json.check(&deep)[0].kind, "INVALID_JSON", "no stack overflow");
    }

    #[cfg(feature = "json-schema")]
    #[test]
    fn validates_structured_output() {
        let g = SchemaGuard::new(
            &json!({"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}),
        )
        .unwrap();
        assert!(g.check(r#"{"answer": "42"}"#).is_empty());
        assert_eq!(g.check(r#"{"answer": 42}"#)[0].kind, "SCHEMA_VIOLATION");
        assert_eq!(g.check("not json")[0].kind, "INVALID_JSON");
        assert!(SchemaGuard::new(&json!({"type": 12})).is_err());
        let many = SchemaGuard::new(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        assert_eq!(many.check(&format!("[{}1]", "1,".repeat(40))).len(), MAX_ERRORS);
    }

    #[cfg(feature = "json-schema")]
    #[test]
    fn remote_refs_are_not_fetched() {
        let e = SchemaGuard::new(&json!({"$ref": "http://127.0.0.1:9/schema.json"})).unwrap_err();
        assert_eq!(e.kind(), "invalid_schema");
    }

    #[cfg(feature = "json-schema")]
    #[test]
    fn the_cache_compiles_a_schema_once_and_stays_bounded() {
        let cache = SchemaCache::new();
        let s = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let same_other_order: serde_json::Value =
            serde_json::from_str(r#"{"properties": {"n": {"type": "integer"}}, "type": "object"}"#).unwrap();
        assert!(cache.get_or_compile(&s).unwrap().check(r#"{"n": 1}"#).is_empty());
        assert!(!cache.get_or_compile(&same_other_order).unwrap().check(r#"{"n": "x"}"#).is_empty());
        assert_eq!((cache.compiles(), cache.len()), (1, 1));
        assert!(cache.get_or_compile(&json!({"type": 12})).is_err());
        assert_eq!((cache.compiles(), cache.len()), (2, 1), "a bad schema is not kept");
        for i in 0..CACHE_CAPACITY + 10 {
            cache.get_or_compile(&json!({"type": "object", "maxProperties": i})).unwrap();
        }
        assert_eq!(cache.len(), CACHE_CAPACITY);
        let before = cache.compiles();
        cache.get_or_compile(&json!({"type": "object", "maxProperties": CACHE_CAPACITY + 9})).unwrap();
        assert_eq!(cache.compiles(), before, "the most recent schema is still there");
        cache.get_or_compile(&s).unwrap();
        assert_eq!(cache.compiles(), before + 1, "the least recently used one was evicted");
    }

    #[cfg(not(feature = "json-schema"))]
    #[test]
    fn schema_without_feature_is_a_config_error() {
        assert_eq!(
            SchemaGuard::new(&json!({"type": "object"})).unwrap_err(),
            GuardError::FeatureDisabled { feature: "json-schema" }
        );
        assert!(SchemaCache::new().get_or_compile(&json!({"type": "object"})).is_err());
    }
}
