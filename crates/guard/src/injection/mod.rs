//! Prompt-injection and jailbreak detection: normalise, decode hidden payloads, apply weighted
//! heuristic rules, combine into one score in `[0, 1]`, optionally with a learned classifier.
//!
//! Layers:
//! 1. [`crate::normalize`] folds look-alikes, invisible characters, width, accents, leetspeak.
//! 2. Base64, base64url and hex runs, and the ROT13 reading of the whole text, are decoded and
//!    rescanned (at most [`MAX_DECODE_DEPTH`] levels, [`MAX_PAYLOADS`] payloads per call).
//! 3. Each rule in `rules::RULES` that matches contributes its weight once; weights combine
//!    as a noisy-OR, `1 - Π(1 - wᵢ)`. Rule weights were set on a tuning split so that one
//!    strong signal (e.g. "ignore all previous instructions") crosses the default threshold
//!    [`DEFAULT_THRESHOLD`] and weak ones (e.g. "developer mode") need another.
//! 4. A [`Classifier`], when plugged in, scores the normalised text; the final score is the
//!    larger of the heuristic and classifier scores.
//!
//! [`InjectionDetector::scan_indirect`] runs the same layers on tool results and retrieved
//! documents, with extra rules for text addressed to an AI reader.

mod rules;

use crate::finding::{Finding, GuardKind};
use crate::normalize::{normalize, Normalized};
use crate::text::ascii_boundaries;
use base64::Engine;
use regex::{Regex, RegexSet, RegexSetBuilder};
use rules::{Scope, RULES};
use std::sync::{Arc, LazyLock};

/// Score at or above which text is reported as an injection.
pub const DEFAULT_THRESHOLD: f32 = 0.5;
/// How many times a decoded payload is itself decoded and rescanned.
pub const MAX_DECODE_DEPTH: u8 = 2;
/// At most this many encoded payloads are decoded per call.
pub const MAX_PAYLOADS: usize = 16;
/// Encoded runs longer than this (in bytes) are not decoded.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Weight kept by a rule that matched inside a decoded payload (hiding is itself suspicious,
/// but decoding can create accidental matches).
const DECODED_FACTOR: f32 = 0.95;
/// Lazy-DFA cache for the rule set, per thread that scans. The rules hold many bounded
/// repetitions; a small cache thrashes and falls back to a slower engine.
const DFA_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A learned scorer (e.g. embedding similarity to known attacks) combined with the heuristics.
/// Receives the normalised text; returns `None` when it cannot judge (empty input, model not
/// loaded), in which case the heuristic score stands alone.
pub trait Classifier: Send + Sync {
    fn score(&self, normalized: &str) -> Option<f32>;
}

/// The outcome of one injection scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InjectionReport {
    /// Final score in `[0, 1]`.
    pub score: f32,
    /// Score from the rules alone.
    pub heuristic: f32,
    /// Score from the classifier, when one is plugged in and answered.
    pub classifier: Option<f32>,
    /// One finding per matched rule family, spanning the matched text in the original (the
    /// whole encoded run for a rule matched inside a decoded payload).
    pub findings: Vec<Finding>,
}

struct Compiled {
    set: RegexSet,
    each: Vec<Regex>,
    base64: Regex,
    hex: Regex,
}

fn build() -> Option<Compiled> {
    Some(Compiled {
        set: RegexSetBuilder::new(RULES.iter().map(|r| ascii_boundaries(r.pattern)))
            .dfa_size_limit(DFA_CACHE_BYTES)
            .build()
            .ok()?,
        each: RULES.iter().map(|r| crate::text::regex(r.pattern)).collect::<Option<_>>()?,
        base64: Regex::new(r"[A-Za-z0-9+/_\-]{16,}={0,2}").ok()?,
        hex: Regex::new(r"(?:\\x[0-9a-fA-F]{2}){8,}|\b(?:[0-9a-fA-F]{2}[ :]?){12,}").ok()?,
    })
}

static COMPILED: LazyLock<Option<Compiled>> = LazyLock::new(build);

/// The detector: stateless apart from an optional classifier; cheap to clone and share.
#[derive(Clone, Default)]
pub struct InjectionDetector {
    classifier: Option<Arc<dyn Classifier>>,
}

impl std::fmt::Debug for InjectionDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InjectionDetector").field("classifier", &self.classifier.is_some()).finish()
    }
}

/// A rule hit before it becomes a finding: which family, its weight, the original span.
struct Hit {
    rule: usize,
    weight: f32,
    span: std::ops::Range<usize>,
}

impl InjectionDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a classifier is plugged in.
    pub fn has_classifier(&self) -> bool {
        self.classifier.is_some()
    }

    /// Combine the heuristics with `classifier` (final score = the larger of the two).
    pub fn with_classifier(classifier: Arc<dyn Classifier>) -> Self {
        Self { classifier: Some(classifier) }
    }

    /// Scan direct user input.
    pub fn scan(&self, text: &str) -> InjectionReport {
        self.run(text, false)
    }

    /// Scan indirect content: tool results, retrieved documents, web pages.
    pub fn scan_indirect(&self, text: &str) -> InjectionReport {
        self.run(text, true)
    }

    fn run(&self, text: &str, indirect: bool) -> InjectionReport {
        let Some(c) = COMPILED.as_ref() else { return InjectionReport::default() };
        let norm = normalize(text);
        let mut hits = Vec::new();
        match_rules(c, &norm, indirect, 1.0, None, &mut hits);
        // ROT13 reading of the whole text (letters only, so offsets are unchanged).
        let rot = Normalized { text: rot13(&norm.text), ..norm.clone() };
        match_rules(c, &rot, indirect, DECODED_FACTOR, None, &mut hits);
        let mut budget = MAX_PAYLOADS;
        decode_and_rescan(c, text, 0..text.len(), indirect, 1, &mut budget, &mut hits);

        // Each rule contributes once (its strongest hit); findings are one per family.
        let mut per_rule: Vec<&Hit> = Vec::new();
        for h in &hits {
            match per_rule.iter_mut().find(|b| b.rule == h.rule) {
                Some(b) if b.weight >= h.weight => {}
                Some(b) => *b = h,
                None => per_rule.push(h),
            }
        }
        let heuristic = 1.0 - per_rule.iter().fold(1.0f32, |acc, h| acc * (1.0 - h.weight));
        let mut best: Vec<&Hit> = Vec::new();
        for h in per_rule {
            let name = RULES[h.rule].name;
            match best.iter_mut().find(|b| RULES[b.rule].name == name) {
                Some(b) if b.weight >= h.weight => {}
                Some(b) => *b = h,
                None => best.push(h),
            }
        }
        let classifier =
            self.classifier.as_ref().and_then(|m| m.score(&norm.text)).map(|s| s.clamp(0.0, 1.0));
        let score = classifier.map_or(heuristic, |s| s.max(heuristic));
        let mut findings: Vec<Finding> = best
            .iter()
            .map(|h| Finding::new(GuardKind::Injection, RULES[h.rule].name, text, h.span.clone(), h.weight))
            .collect();
        findings.sort_by_key(|f| f.bytes.start);
        InjectionReport { score, heuristic, classifier, findings }
    }
}

/// Run every rule over `norm`. `encoded` is the original span of the encoded run when `norm`
/// is a decoded payload (findings then point at the run).
fn match_rules(
    c: &Compiled,
    norm: &Normalized,
    indirect: bool,
    factor: f32,
    encoded: Option<std::ops::Range<usize>>,
    hits: &mut Vec<Hit>,
) {
    for i in c.set.matches(&norm.text).iter() {
        let rule = &RULES[i];
        if rule.scope == Scope::Indirect && !indirect {
            continue;
        }
        let Some(m) = c.each.get(i).and_then(|re| re.find(&norm.text)) else { continue };
        let span = encoded.clone().unwrap_or_else(|| norm.original_span(m.range()));
        hits.push(Hit { rule: i, weight: rule.weight * factor, span });
    }
}

/// Find base64/hex runs in `text[range]`, decode the ones that read as text, and rescan.
fn decode_and_rescan(
    c: &Compiled,
    text: &str,
    outer: std::ops::Range<usize>,
    indirect: bool,
    depth: u8,
    budget: &mut usize,
    hits: &mut Vec<Hit>,
) {
    if depth > MAX_DECODE_DEPTH {
        return;
    }
    let mut payloads = Vec::new();
    for m in c.base64.find_iter(text) {
        if m.len() <= MAX_PAYLOAD_BYTES {
            if let Some(d) = decode_base64(m.as_str()) {
                payloads.push(d);
            }
        }
    }
    for m in c.hex.find_iter(text) {
        if m.len() <= MAX_PAYLOAD_BYTES {
            if let Some(d) = decode_hex(m.as_str()) {
                payloads.push(d);
            }
        }
    }
    for decoded in payloads {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let norm = normalize(&decoded);
        let factor = DECODED_FACTOR.powi(i32::from(depth));
        match_rules(c, &norm, indirect, factor, Some(outer.clone()), hits);
        let rot = Normalized { text: rot13(&norm.text), ..norm };
        match_rules(c, &rot, indirect, factor * DECODED_FACTOR, Some(outer.clone()), hits);
        decode_and_rescan(c, &decoded, outer.clone(), indirect, depth + 1, budget, hits);
    }
}

/// Decoded text only when it is valid UTF-8 and mostly printable.
fn readable(bytes: Vec<u8>) -> Option<String> {
    let s = String::from_utf8(bytes).ok()?;
    let total = s.chars().count();
    let printable = s.chars().filter(|c| !c.is_control() || c.is_whitespace()).count();
    let letters = s.chars().filter(|c| c.is_alphabetic() || *c == ' ').count();
    (total >= 8 && printable * 100 >= total * 95 && letters * 2 >= total).then_some(s)
}

fn decode_base64(run: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let trimmed = run.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .or_else(|_| STANDARD.decode(run))
        .or_else(|_| URL_SAFE.decode(run))
        .ok()?;
    readable(bytes)
}

fn decode_hex(run: &str) -> Option<String> {
    let digits: Vec<u8> = run.bytes().filter(u8::is_ascii_hexdigit).collect();
    let compact = if run.contains("\\x") {
        run.split("\\x").filter_map(|p| p.get(..2)).flat_map(|p| p.bytes()).collect()
    } else {
        digits
    };
    let bytes: Vec<u8> = compact
        .chunks_exact(2)
        .filter_map(|p| std::str::from_utf8(p).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    readable(bytes)
}

fn rot13(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='m' | 'A'..='M' => ((c as u8) + 13) as char,
            'n'..='z' | 'N'..='Z' => ((c as u8) - 13) as char,
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests;
