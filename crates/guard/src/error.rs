//! The crate's one error type: everything that can be wrong with a policy before it runs.
//!
//! Scanning itself never fails; only building a [`crate::Policy`] from its configuration can.

use std::fmt;

/// Why a policy configuration was rejected. All of these are the caller's fault (a bad route
/// config): the gateway reports them at config-check time with a 400 on the admin API.
#[derive(Debug, Clone, PartialEq)]
pub enum GuardError {
    /// 400: a custom pattern does not compile or exceeds the size limits.
    InvalidPattern { name: String, reason: String },
    /// 400: more custom patterns or deny-list terms than the documented limits allow.
    TooMany { what: &'static str, max: usize },
    /// 400: a threshold outside `[0, 1]`.
    InvalidThreshold { guard: &'static str, value: f32 },
    /// 400: a JSON schema that is not itself a valid schema.
    InvalidSchema { reason: String },
    /// 400: a `json_schema` guard that says neither or both of `schema` and `from_request`, or
    /// whose action cannot apply to a whole document (`redact`).
    InvalidSchemaGuard { reason: &'static str },
    /// 400: the configuration asks for a guard this build does not include.
    FeatureDisabled { feature: &'static str },
    /// 400: an unknown entity type name in a `types` list.
    UnknownType { guard: &'static str, name: String },
    /// 400: `classifier = true` on a guard other than `injection`.
    ClassifierOutsideInjection { guard: &'static str },
}

impl GuardError {
    /// Short stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidPattern { .. } => "invalid_pattern",
            Self::TooMany { .. } => "too_many",
            Self::InvalidThreshold { .. } => "invalid_threshold",
            Self::InvalidSchema { .. } => "invalid_schema",
            Self::InvalidSchemaGuard { .. } => "invalid_schema_guard",
            Self::FeatureDisabled { .. } => "feature_disabled",
            Self::UnknownType { .. } => "unknown_type",
            Self::ClassifierOutsideInjection { .. } => "classifier_outside_injection",
        }
    }
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPattern { name, reason } => write!(f, "pattern `{name}` is invalid: {reason}"),
            Self::TooMany { what, max } => write!(f, "too many {what} (at most {max})"),
            Self::InvalidThreshold { guard, value } => {
                write!(f, "{guard} threshold {value} is outside [0, 1]")
            }
            Self::InvalidSchema { reason } => write!(f, "invalid JSON schema: {reason}"),
            Self::InvalidSchemaGuard { reason } => write!(f, "json_schema: {reason}"),
            Self::FeatureDisabled { feature } => {
                write!(f, "this build has no `{feature}` support (cargo feature disabled)")
            }
            Self::UnknownType { guard, name } => write!(f, "unknown {guard} type `{name}`"),
            Self::ClassifierOutsideInjection { guard } => {
                write!(f, "{guard}: `classifier` applies to the injection guard only")
            }
        }
    }
}

impl std::error::Error for GuardError {}
