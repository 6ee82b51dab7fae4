//! JSON-schema validation of a structured output (cargo feature `json-schema`).
//!
//! A text that is not JSON gives one `INVALID_JSON` finding; a JSON value that breaks the
//! schema gives one `SCHEMA_VIOLATION` finding per error (capped at 16). Both span the whole
//! text. Without the feature, configuring a schema fails with
//! [`GuardError::FeatureDisabled`], so a policy never silently skips a guard it was given.

use crate::error::GuardError;
use crate::finding::Finding;

/// Most schema errors reported per text.
pub const MAX_ERRORS: usize = 16;

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

#[cfg(feature = "json-schema")]
impl SchemaGuard {
    pub fn new(schema: &serde_json::Value) -> Result<Self, GuardError> {
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| GuardError::InvalidSchema { reason: e.to_string() })?;
        Ok(Self { validator: std::sync::Arc::new(validator) })
    }

    /// Validate `text` as a JSON document.
    pub fn check(&self, text: &str) -> Vec<Finding> {
        use crate::finding::GuardKind;
        let whole = |kind: &str| Finding::new(GuardKind::JsonSchema, kind, text, 0..text.len(), 1.0);
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return vec![whole("INVALID_JSON")];
        };
        self.validator.iter_errors(&value).take(MAX_ERRORS).map(|_| whole("SCHEMA_VIOLATION")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    }

    #[cfg(not(feature = "json-schema"))]
    #[test]
    fn schema_without_feature_is_a_config_error() {
        assert_eq!(
            SchemaGuard::new(&json!({"type": "object"})).unwrap_err(),
            GuardError::FeatureDisabled { feature: "json-schema" }
        );
    }
}
