//! A policy: which guards run, with which action and threshold, and the verdict they reach.
//!
//! [`PolicyConfig`] is the raw, deserialisable form (embedded in a route's TOML); [`Policy`]
//! is the validated, compiled form built with `Policy::try_from(config)`.
//!
//! ```toml
//! pii       = "redact"                                   # or { action = "redact", types = ["EMAIL", "PHONE"], threshold = 0.5 }
//! secrets   = "block"
//! injection = { action = "block", threshold = 0.7 }          # classifier = true adds the embedding classifier
//! topics    = { deny = ["crypto trading", "weapons"], action = "block" }
//! regex     = [{ name = "ticket", pattern = 'TICKET-\d+', action = "flag" }]
//! json_schema = { schema = { type = "object", required = ["answer"] }, action = "block" }
//! max_scan_bytes = 1048576                               # larger inputs get `oversize`
//! oversize  = "block"
//! ```
//! A guard left out of the table does not run. The strongest action among all findings wins:
//! block > escalate > redact > flag.
//!
//! `json_schema` checks answers only, as whole documents (`INVALID_JSON`, `SCHEMA_VIOLATION`;
//! `block`, `flag` or `escalate`): either against a fixed `schema`, or with
//! `json_schema = { from_request = true, action = "block" }` against what each request asked
//! for in its `response_format` — its own JSON schema (compiled once, then cached), only valid
//! JSON for `json_object`, nothing for plain text. Exactly one of `schema` and `from_request`.
//! The gateway resolves the check for a request with [`Policy::output_schema`] (a caller schema
//! that does not compile is the caller's error) and applies it with [`OutputSchema::check`];
//! [`Policy::check`] applies a fixed schema, [`Policy::check_with`] (conversation messages) and
//! the stream scanner never do.

use crate::error::GuardError;
use crate::finding::{Finding, GuardKind};
use crate::injection::{Classifier, InjectionDetector, DEFAULT_THRESHOLD};
use crate::redact::Redactions;
use crate::schema::{DocumentCheck, SchemaCache, SchemaGuard};
use crate::topics::{CustomPattern, DenyList, MAX_PATTERNS};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to do when a guard finds something. Ordered by strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let the text through and record the finding.
    Flag,
    /// Replace the finding with a placeholder.
    Redact,
    /// Hand the request to the human review queue.
    Escalate,
    /// Refuse the request.
    Block,
}

/// The decision on one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Allow,
    Redact,
    Escalate,
    Block,
}

/// Serialises as `{"verdict":"redact","score":0.99,"findings":[{"guard":"pii","type":"EMAIL","start":9,"end":25}],"redacted":"…"}`.
/// `redacted` is the text with redact-action findings replaced (null when nothing was
/// redacted, and always null on block).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub verdict: VerdictKind,
    /// Overall risk in `[0, 1]`: the highest finding score, or the injection score even when
    /// it stayed under its threshold.
    pub score: f32,
    pub findings: Vec<Finding>,
    pub redacted: Option<String>,
}

/// A guard's setting: just an action (`pii = "redact"`) or a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GuardSetting {
    Action(Action),
    Options(GuardOptions),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardOptions {
    pub action: Action,
    /// Minimum score for a finding to count (default 0.5).
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Restrict to these entity types (PII and secrets only); all when absent.
    #[serde(default)]
    pub types: Option<Vec<String>>,
    /// Injection only: also score with the embedding classifier, which the gateway loads from
    /// its models folder and plugs in with [`Policy::with_classifier`].
    #[serde(default)]
    pub classifier: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub deny: Vec<String>,
    pub action: Action,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    pub name: String,
    pub pattern: String,
    pub action: Action,
}

/// `json_schema = { schema = {...} | from_request = true, action = "block" }`: exactly one of
/// `schema` and `from_request`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The schema every answer must follow.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// Check each answer against its request's `response_format` instead.
    #[serde(default)]
    pub from_request: bool,
    pub action: Action,
}

/// What a request asked its answer to be (its `response_format`), for `from_request` schemas.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum RequestedFormat<'a> {
    /// Plain text, or no `response_format`.
    #[default]
    Text,
    /// `{"type": "json_object"}` (or `json_schema` without a schema): any JSON document.
    JsonObject,
    /// `{"type": "json_schema", "json_schema": {"schema": ...}}`.
    JsonSchema(&'a serde_json::Value),
}

/// The `json_schema` check for the answers of one request, from [`Policy::output_schema`].
#[derive(Debug, Clone)]
pub struct OutputSchema {
    check: DocumentCheck,
    action: Action,
}

impl OutputSchema {
    /// The verdict on one whole answer: allow (nothing found, or `flag`), block or escalate.
    pub fn check(&self, text: &str) -> Verdict {
        let found = self.check.check(text).into_iter().map(|f| (f, self.action)).collect();
        decide(text, found, 0.0, &mut Redactions::new())
    }

    pub fn action(&self) -> Action {
        self.action
    }
}

/// Where a policy's `json_schema` guard takes its schema from.
#[derive(Debug, Clone)]
enum SchemaSource {
    Fixed(OutputSchema),
    FromRequest { cache: Arc<SchemaCache>, action: Action },
}

/// The raw policy, as written in configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default)]
    pub pii: Option<GuardSetting>,
    #[serde(default)]
    pub secrets: Option<GuardSetting>,
    #[serde(default)]
    pub injection: Option<GuardSetting>,
    #[serde(default)]
    pub topics: Option<TopicsConfig>,
    #[serde(default)]
    pub regex: Vec<RegexConfig>,
    #[serde(default)]
    pub json_schema: Option<SchemaConfig>,
    /// Inputs longer than this many bytes are not scanned and get the `oversize` action.
    #[serde(default = "default_max_scan_bytes")]
    pub max_scan_bytes: usize,
    /// Action for inputs over `max_scan_bytes` (`redact` is treated as `block`).
    #[serde(default = "default_oversize")]
    pub oversize: Action,
}

fn default_max_scan_bytes() -> usize {
    1024 * 1024
}

fn default_oversize() -> Action {
    Action::Block
}

impl Default for PolicyConfig {
    /// Every built-in scanner: PII and secrets redacted, injection blocked at the default
    /// threshold; no topics, patterns or schema.
    fn default() -> Self {
        Self {
            pii: Some(GuardSetting::Action(Action::Redact)),
            secrets: Some(GuardSetting::Action(Action::Redact)),
            injection: Some(GuardSetting::Action(Action::Block)),
            topics: None,
            regex: Vec::new(),
            json_schema: None,
            max_scan_bytes: default_max_scan_bytes(),
            oversize: default_oversize(),
        }
    }
}

#[derive(Debug, Clone)]
struct Resolved {
    action: Action,
    threshold: f32,
    types: Option<Vec<String>>,
}

impl Resolved {
    fn from_setting(
        s: &GuardSetting,
        guard: &'static str,
        known: &[&str],
        default_threshold: f32,
    ) -> Result<Self, GuardError> {
        let (action, threshold, types) = match s {
            GuardSetting::Action(a) => (*a, None, None),
            GuardSetting::Options(o) if o.classifier && guard != "injection" => {
                return Err(GuardError::ClassifierOutsideInjection { guard });
            }
            GuardSetting::Options(o) => (o.action, o.threshold, o.types.clone()),
        };
        let threshold = threshold.unwrap_or(default_threshold);
        if !(0.0..=1.0).contains(&threshold) {
            return Err(GuardError::InvalidThreshold { guard, value: threshold });
        }
        if let Some(t) = types.iter().flatten().find(|t| !known.contains(&t.as_str())) {
            return Err(GuardError::UnknownType { guard, name: t.clone() });
        }
        Ok(Self { action, threshold, types })
    }

    fn keeps(&self, f: &Finding) -> bool {
        f.score >= self.threshold && self.types.as_ref().is_none_or(|t| t.contains(&f.kind))
    }
}

/// A validated, compiled policy. Cheap to share behind an `Arc`; `check` takes `&self`.
#[derive(Debug, Clone)]
pub struct Policy {
    pii: Option<Resolved>,
    secrets: Option<Resolved>,
    injection: Option<Resolved>,
    detector: InjectionDetector,
    /// The injection guard asked for the embedding classifier.
    wants_classifier: bool,
    topics: Option<(DenyList, Action)>,
    regex: Vec<(CustomPattern, Action)>,
    schema: Option<SchemaSource>,
    max_scan_bytes: usize,
    oversize: Action,
}

impl Default for Policy {
    fn default() -> Self {
        // The default configuration has nothing that can fail to validate.
        Self::try_from(PolicyConfig::default()).unwrap_or_else(|_| Self::empty())
    }
}

impl TryFrom<PolicyConfig> for Policy {
    type Error = GuardError;

    fn try_from(c: PolicyConfig) -> Result<Self, GuardError> {
        let pii =
            c.pii.as_ref().map(|s| Resolved::from_setting(s, "pii", crate::pii::TYPES, 0.5)).transpose()?;
        let secrets = c
            .secrets
            .as_ref()
            .map(|s| Resolved::from_setting(s, "secrets", crate::secrets::TYPES, 0.5))
            .transpose()?;
        let injection = c
            .injection
            .as_ref()
            .map(|s| Resolved::from_setting(s, "injection", &[], DEFAULT_THRESHOLD))
            .transpose()?;
        let topics = c.topics.as_ref().map(|t| DenyList::new(&t.deny).map(|d| (d, t.action))).transpose()?;
        if c.regex.len() > MAX_PATTERNS {
            return Err(GuardError::TooMany { what: "custom patterns", max: MAX_PATTERNS });
        }
        let regex = c
            .regex
            .iter()
            .map(|r| CustomPattern::new(&r.name, &r.pattern).map(|p| (p, r.action)))
            .collect::<Result<_, _>>()?;
        let schema = c.json_schema.as_ref().map(schema_source).transpose()?;
        Ok(Self {
            pii,
            secrets,
            wants_classifier: matches!(&c.injection, Some(GuardSetting::Options(o)) if o.classifier),
            injection,
            detector: InjectionDetector::new(),
            topics,
            regex,
            schema,
            max_scan_bytes: c.max_scan_bytes,
            oversize: if c.oversize == Action::Redact { Action::Block } else { c.oversize },
        })
    }
}

fn schema_source(c: &SchemaConfig) -> Result<SchemaSource, GuardError> {
    if c.action == Action::Redact {
        return Err(GuardError::InvalidSchemaGuard {
            reason: "`redact` does not apply to a whole document (use block, flag or escalate)",
        });
    }
    match (&c.schema, c.from_request) {
        (Some(_), true) => Err(GuardError::InvalidSchemaGuard {
            reason: "set either `schema` or `from_request = true`, not both",
        }),
        (None, false) => {
            Err(GuardError::InvalidSchemaGuard { reason: "set `schema = {...}` or `from_request = true`" })
        }
        (Some(schema), false) => {
            let check = DocumentCheck::Schema(SchemaGuard::new(schema)?);
            Ok(SchemaSource::Fixed(OutputSchema { check, action: c.action }))
        }
        (None, true) => {
            // Checking a request's schema needs the validator: refuse now rather than skip later.
            if !cfg!(feature = "json-schema") {
                return Err(GuardError::FeatureDisabled { feature: "json-schema" });
            }
            Ok(SchemaSource::FromRequest { cache: Arc::new(SchemaCache::new()), action: c.action })
        }
    }
}

impl Policy {
    fn empty() -> Self {
        Self {
            pii: None,
            secrets: None,
            injection: None,
            detector: InjectionDetector::new(),
            wants_classifier: false,
            topics: None,
            regex: Vec::new(),
            schema: None,
            max_scan_bytes: default_max_scan_bytes(),
            oversize: Action::Block,
        }
    }

    /// Plug a learned classifier into the injection guard.
    pub fn with_classifier(mut self, classifier: Arc<dyn Classifier>) -> Self {
        self.detector = InjectionDetector::with_classifier(classifier);
        self
    }

    /// Whether the policy's injection guard asked for the classifier (`classifier = true`).
    pub fn wants_classifier(&self) -> bool {
        self.wants_classifier
    }

    /// Whether a classifier is plugged in: checks then cost milliseconds of CPU, so callers on
    /// an async runtime should run them where blocking is allowed.
    pub fn has_classifier(&self) -> bool {
        self.detector.has_classifier()
    }

    /// Check one whole text (a user message, a model answer); a fixed `json_schema` applies,
    /// a `from_request` one cannot (there is no request).
    pub fn check(&self, text: &str) -> Verdict {
        let schema = match &self.schema {
            Some(SchemaSource::Fixed(s)) => Some(s),
            _ => None,
        };
        self.run(text, false, schema, &mut Redactions::new())
    }

    /// Check indirect content (tool results, retrieved documents): injection rules aimed at an
    /// AI reader apply too.
    pub fn check_indirect(&self, text: &str) -> Verdict {
        self.run(text, true, None, &mut Redactions::new())
    }

    /// Check a message of a conversation (or an answer), numbering placeholders in `redactions`
    /// so several messages share them and the answer can be restored. `json_schema` does not
    /// run here: answers get it from [`Policy::output_schema`].
    pub fn check_with(&self, text: &str, redactions: &mut Redactions) -> Verdict {
        self.run(text, false, None, redactions)
    }

    /// Whether the policy has a `json_schema` guard (it needs whole answers: the gateway holds
    /// a streamed answer back until it ends when one applies).
    pub fn has_json_schema(&self) -> bool {
        self.schema.is_some()
    }

    /// The `json_schema` check for the answers of a request that asked for `format`: the fixed
    /// schema; or with `from_request`, the request's own schema (compiled once, then cached),
    /// valid JSON only for `json_object`, none for plain text. `None` when nothing applies.
    /// An error is a request schema that does not compile: the caller's fault.
    pub fn output_schema(&self, format: RequestedFormat<'_>) -> Result<Option<OutputSchema>, GuardError> {
        match &self.schema {
            None => Ok(None),
            Some(SchemaSource::Fixed(s)) => Ok(Some(s.clone())),
            Some(SchemaSource::FromRequest { cache, action }) => {
                let check = match format {
                    RequestedFormat::Text => return Ok(None),
                    RequestedFormat::JsonObject => DocumentCheck::Json,
                    RequestedFormat::JsonSchema(schema) => {
                        DocumentCheck::Schema(cache.get_or_compile(schema)?)
                    }
                };
                Ok(Some(OutputSchema { check, action: *action }))
            }
        }
    }

    /// Findings with the action each one carries. `schema` is the document check for a whole
    /// answer; none for partial text (a stream window) or conversation messages.
    pub(crate) fn findings(
        &self,
        text: &str,
        indirect: bool,
        schema: Option<&OutputSchema>,
    ) -> (Vec<(Finding, Action)>, f32) {
        let mut out = Vec::new();
        if let Some(r) = &self.pii {
            out.extend(crate::pii::scan(text).into_iter().filter(|f| r.keeps(f)).map(|f| (f, r.action)));
        }
        if let Some(r) = &self.secrets {
            out.extend(crate::secrets::scan(text).into_iter().filter(|f| r.keeps(f)).map(|f| (f, r.action)));
        }
        let mut injection_score = 0.0;
        if let Some(r) = &self.injection {
            let report = if indirect { self.detector.scan_indirect(text) } else { self.detector.scan(text) };
            injection_score = report.score;
            if report.score >= r.threshold {
                if report.findings.is_empty() {
                    // Only the classifier fired: the finding is the whole text.
                    let f =
                        Finding::new(GuardKind::Injection, "CLASSIFIER", text, 0..text.len(), report.score);
                    out.push((f, r.action));
                } else {
                    out.extend(report.findings.into_iter().map(|f| (f, r.action)));
                }
            }
        }
        if let Some((d, a)) = &self.topics {
            out.extend(d.scan(text).into_iter().map(|f| (f, *a)));
        }
        for (p, a) in &self.regex {
            out.extend(p.scan(text).into_iter().map(|f| (f, *a)));
        }
        if let Some(s) = schema {
            out.extend(s.check.check(text).into_iter().map(|f| (f, s.action)));
        }
        (out, injection_score)
    }

    fn run(
        &self,
        text: &str,
        indirect: bool,
        schema: Option<&OutputSchema>,
        redactions: &mut Redactions,
    ) -> Verdict {
        if text.len() > self.max_scan_bytes {
            return Verdict {
                verdict: verdict_kind(Some(self.oversize)),
                score: 1.0,
                findings: Vec::new(),
                redacted: None,
            };
        }
        let (found, injection_score) = self.findings(text, indirect, schema);
        decide(text, found, injection_score, redactions)
    }

    /// The largest input `check` scans, in bytes.
    pub fn max_scan_bytes(&self) -> usize {
        self.max_scan_bytes
    }
}

fn verdict_kind(strongest: Option<Action>) -> VerdictKind {
    match strongest {
        Some(Action::Block) => VerdictKind::Block,
        Some(Action::Escalate) => VerdictKind::Escalate,
        Some(Action::Redact) => VerdictKind::Redact,
        Some(Action::Flag) | None => VerdictKind::Allow,
    }
}

/// Turn findings into a verdict: strongest action wins; redact-action findings are replaced
/// unless the verdict is block.
pub(crate) fn decide(
    text: &str,
    found: Vec<(Finding, Action)>,
    injection_score: f32,
    redactions: &mut Redactions,
) -> Verdict {
    let strongest = found.iter().map(|(_, a)| *a).max();
    let verdict = verdict_kind(strongest);
    let score = found.iter().map(|(f, _)| f.score).fold(injection_score, f32::max);
    let to_redact: Vec<Finding> =
        found.iter().filter(|(_, a)| *a == Action::Redact).map(|(f, _)| f.clone()).collect();
    let redacted =
        (verdict != VerdictKind::Block && !to_redact.is_empty()).then(|| redactions.redact(text, &to_redact));
    let mut findings: Vec<Finding> = found.into_iter().map(|(f, _)| f).collect();
    findings.sort_by(|a, b| a.bytes.start.cmp(&b.bytes.start).then_with(|| a.guard.cmp(&b.guard)));
    Verdict { verdict, score, findings, redacted }
}

#[cfg(test)]
mod tests;
