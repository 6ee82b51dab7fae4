//! Redaction with typed numbered placeholders (`[EMAIL_1]`) and restoration of the originals.
//!
//! The same value always gets the same placeholder within one [`Redactions`], so a model
//! still sees that two mentions are the same person; the map lets the gateway put the
//! originals back into the model's answer with [`Redactions::restore`].

use crate::finding::Finding;
use aho_corasick::{AhoCorasick, MatchKind};
use std::collections::HashMap;

/// The placeholder ↔ original map of one conversation. Holds secrets: it implements neither
/// `Serialize` nor a `Debug` that shows values.
#[derive(Clone, Default)]
pub struct Redactions {
    by_value: HashMap<(String, String), String>,
    originals: Vec<(String, String)>,
    counters: HashMap<String, usize>,
}

impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.originals.iter().map(|(p, _)| p)).finish()
    }
}

/// Pick the findings to redact when some overlap: higher guard priority (secrets, then PII,
/// then custom patterns, topics, injection), then the longer span, then the earlier start,
/// then the type name. Returned in text order.
pub fn resolve_overlaps(findings: &[Finding]) -> Vec<&Finding> {
    let mut order: Vec<&Finding> = findings.iter().collect();
    order.sort_by(|a, b| {
        b.guard
            .priority()
            .cmp(&a.guard.priority())
            .then_with(|| b.bytes.len().cmp(&a.bytes.len()))
            .then_with(|| a.bytes.start.cmp(&b.bytes.start))
            .then_with(|| a.kind.cmp(&b.kind))
    });
    let mut kept: Vec<&Finding> = Vec::new();
    for f in order {
        if f.bytes.is_empty()
            || kept.iter().any(|k| k.bytes.start < f.bytes.end && f.bytes.start < k.bytes.end)
        {
            continue;
        }
        kept.push(f);
    }
    kept.sort_by_key(|f| f.bytes.start);
    kept
}

impl Redactions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct redacted values.
    pub fn len(&self) -> usize {
        self.originals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }

    /// Placeholders handed out so far, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.originals.iter().map(|(p, _)| p.as_str())
    }

    /// The placeholder for `value` of type `kind`, creating it if new.
    pub fn placeholder(&mut self, kind: &str, value: &str) -> String {
        let key = (kind.to_string(), value.to_string());
        if let Some(p) = self.by_value.get(&key) {
            return p.clone();
        }
        let n = self.counters.entry(kind.to_string()).or_insert(0);
        *n += 1;
        let p = format!("[{kind}_{n}]");
        self.by_value.insert(key, p.clone());
        self.originals.push((p.clone(), value.to_string()));
        p
    }

    /// Replace the spans of `findings` in `text` with placeholders (overlaps resolved with
    /// [`resolve_overlaps`]). Findings must carry byte spans into `text`; spans that are out
    /// of range or not on character boundaries are skipped.
    pub fn redact(&mut self, text: &str, findings: &[Finding]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in resolve_overlaps(findings) {
            let Some(value) = text.get(f.bytes.clone()) else { continue };
            if f.bytes.start < at {
                continue;
            }
            out.push_str(text.get(at..f.bytes.start).unwrap_or(""));
            let p = self.placeholder(&f.kind, value);
            out.push_str(&p);
            at = f.bytes.end;
        }
        out.push_str(text.get(at..).unwrap_or(""));
        out
    }

    /// Put the original values back wherever their placeholders appear in `text`.
    pub fn restore(&self, text: &str) -> String {
        if self.originals.is_empty() {
            return text.to_string();
        }
        let Ok(ac) = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(self.originals.iter().map(|(p, _)| p))
        else {
            return text.to_string();
        };
        let replacements: Vec<&str> = self.originals.iter().map(|(_, v)| v.as_str()).collect();
        ac.replace_all(text, &replacements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::GuardKind;

    fn f(guard: GuardKind, kind: &str, text: &str, s: usize, e: usize) -> Finding {
        Finding::new(guard, kind, text, s..e, 1.0)
    }

    #[test]
    fn same_value_same_placeholder_and_restore() {
        let t = "a@x.io wrote to b@y.io and a@x.io";
        let fs = crate::pii::scan(t);
        let mut r = Redactions::new();
        let red = r.redact(t, &fs);
        assert_eq!(red, "[EMAIL_1] wrote to [EMAIL_2] and [EMAIL_1]");
        assert_eq!(r.restore("Reply to [EMAIL_2], cc [EMAIL_1]."), "Reply to b@y.io, cc a@x.io.");
        assert_eq!(format!("{r:?}"), r#"["[EMAIL_1]", "[EMAIL_2]"]"#, "Debug never shows values");
    }

    #[test]
    fn numbering_continues_across_messages() {
        let mut r = Redactions::new();
        let t1 = "mail a@x.io";
        let t2 = "mail c@z.io and a@x.io";
        assert_eq!(r.redact(t1, &crate::pii::scan(t1)), "mail [EMAIL_1]");
        assert_eq!(r.redact(t2, &crate::pii::scan(t2)), "mail [EMAIL_2] and [EMAIL_1]");
    }

    #[test]
    fn overlaps_resolve_by_priority_then_length() {
        let t = "0123456789abcdef";
        let fs = vec![
            f(GuardKind::Pii, "PHONE", t, 0, 10),
            f(GuardKind::Secrets, "GENERIC_SECRET", t, 4, 16),
            f(GuardKind::Regex, "X", t, 12, 14),
        ];
        let mut r = Redactions::new();
        assert_eq!(r.redact(t, &fs), "0123[GENERIC_SECRET_1]");
        let fs = vec![f(GuardKind::Pii, "A", t, 0, 4), f(GuardKind::Pii, "B", t, 2, 10)];
        assert_eq!(Redactions::new().redact(t, &fs), "01[B_1]abcdef");
        // Deterministic whatever the input order.
        let rev: Vec<Finding> = fs.iter().rev().cloned().collect();
        assert_eq!(Redactions::new().redact(t, &rev), "01[B_1]abcdef");
    }
}
