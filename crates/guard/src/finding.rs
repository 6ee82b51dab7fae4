//! What a scanner reports: the guard, the entity type and where it sits in the text.

use serde::Serialize;
use std::ops::Range;

/// The family of check that produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    Pii,
    Secrets,
    Injection,
    Topics,
    Regex,
    JsonSchema,
}

impl GuardKind {
    /// The name used in configuration and JSON (`"pii"`, `"json_schema"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pii => "pii",
            Self::Secrets => "secrets",
            Self::Injection => "injection",
            Self::Topics => "topics",
            Self::Regex => "regex",
            Self::JsonSchema => "json_schema",
        }
    }

    /// Which guard wins when two findings overlap and only one can be redacted.
    pub(crate) fn priority(self) -> u8 {
        match self {
            Self::Secrets => 6,
            Self::Pii => 5,
            Self::Regex => 4,
            Self::Topics => 3,
            Self::Injection => 2,
            Self::JsonSchema => 1,
        }
    }
}

/// One detected span. Serialises as `{"guard":"pii","type":"EMAIL","start":3,"end":20}`:
/// the matched value itself is never part of a finding, so findings can be logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub guard: GuardKind,
    /// Entity type in upper snake case (`EMAIL`, `CREDIT_CARD`, `OPENAI_KEY`, …), or the rule
    /// name for injection, topic and custom-regex findings.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start, in Unicode characters from the beginning of the scanned text.
    pub start: usize,
    /// End (exclusive), in Unicode characters.
    pub end: usize,
    /// Confidence in `[0, 1]`.
    #[serde(skip)]
    pub score: f32,
    /// The same span in bytes, for slicing the scanned `&str`.
    #[serde(skip)]
    pub bytes: Range<usize>,
}

impl Finding {
    /// A finding over `bytes` of `text`; character offsets are computed here.
    pub(crate) fn new(
        guard: GuardKind,
        kind: impl Into<String>,
        text: &str,
        bytes: Range<usize>,
        score: f32,
    ) -> Self {
        let start = crate::text::char_offset(text, bytes.start);
        let end =
            start + crate::text::char_offset(text.get(bytes.start..).unwrap_or(""), bytes.end - bytes.start);
        Self { guard, kind: kind.into(), start, end, score, bytes }
    }

    /// Shift this finding by an offset of `bytes` and `chars` (when a slice was scanned).
    pub(crate) fn shifted(mut self, bytes: usize, chars: usize) -> Self {
        self.bytes = self.bytes.start + bytes..self.bytes.end + bytes;
        self.start += chars;
        self.end += chars;
        self
    }
}
