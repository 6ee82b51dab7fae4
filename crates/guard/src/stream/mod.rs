//! The policy applied to a stream of text deltas, releasing only text that is safe.
//!
//! The scanner keeps a hold-back window: the last `holdback` characters (64 by default) are
//! never released, because they could still be the beginning of a value (an email, a card
//! number, an API key) whose end has not arrived. On top of that the release point never
//! falls inside a run of non-space characters (so a 100-character API key is held whole) nor
//! inside a finding (so a PEM block or a spaced IBAN is held whole). Held text is bounded by
//! `max_hold` bytes (16 KiB by default); past that it is released at the window, so only a
//! single value longer than `max_hold` could be cut.
//!
//! A block- or escalate-action finding stops the stream: nothing more is released, and the
//! chunk carries the verdict. Redact-action findings are replaced by placeholders; flag-action
//! findings are reported with the chunk that releases them. Findings carry character offsets
//! in the *original* stream. The JSON-schema guard needs the whole document and does not run
//! on streams.

use crate::finding::Finding;
use crate::policy::{decide, Action, Policy, Verdict, VerdictKind};
use crate::redact::Redactions;
use std::sync::Arc;

/// Default hold-back window, in characters.
pub const DEFAULT_HOLDBACK: usize = 64;
/// Default bound on held text, in bytes.
pub const DEFAULT_MAX_HOLD: usize = 16 * 1024;
/// Characters of already-released text kept as context for the next scan (birth words, phone
/// words and the like sit just before the value they qualify).
const CONTEXT_CHARS: usize = 48;

/// What one `push` or `finish` releases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamChunk {
    /// Text safe to send on, with redactions applied.
    pub text: String,
    /// Findings inside the released text.
    pub findings: Vec<Finding>,
    /// Set when the stream was stopped (block or escalate); no more text will be released.
    pub stop: Option<Verdict>,
}

pub struct StreamScanner {
    policy: Arc<Policy>,
    holdback: usize,
    max_hold: usize,
    pending: String,
    context: String,
    released_chars: usize,
    redactions: Redactions,
    stopped: bool,
}

impl std::fmt::Debug for StreamScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScanner")
            .field("holdback", &self.holdback)
            .field("held_bytes", &self.pending.len())
            .field("released_chars", &self.released_chars)
            .field("stopped", &self.stopped)
            .finish()
    }
}

impl StreamScanner {
    pub fn new(policy: Arc<Policy>) -> Self {
        Self {
            policy,
            holdback: DEFAULT_HOLDBACK,
            max_hold: DEFAULT_MAX_HOLD,
            pending: String::new(),
            context: String::new(),
            released_chars: 0,
            redactions: Redactions::new(),
            stopped: false,
        }
    }

    /// Hold back `chars` characters instead of the default 64.
    pub fn with_holdback(mut self, chars: usize) -> Self {
        self.holdback = chars;
        self.max_hold = self.max_hold.max(chars.saturating_mul(4));
        self
    }

    /// Bound held text to `bytes` (at least the hold-back window).
    pub fn with_max_hold(mut self, bytes: usize) -> Self {
        self.max_hold = bytes.max(self.holdback);
        self
    }

    /// Continue numbering placeholders from an earlier check of the same conversation.
    pub fn with_redactions(mut self, redactions: Redactions) -> Self {
        self.redactions = redactions;
        self
    }

    /// The placeholders handed out so far.
    pub fn redactions(&self) -> &Redactions {
        &self.redactions
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Feed one delta; returns the text that became safe to release.
    pub fn push(&mut self, delta: &str) -> StreamChunk {
        if self.stopped {
            return StreamChunk::default();
        }
        self.pending.push_str(delta);
        self.release(false)
    }

    /// End of stream: release everything still held.
    pub fn finish(&mut self) -> StreamChunk {
        if self.stopped {
            return StreamChunk::default();
        }
        self.release(true)
    }

    fn release(&mut self, all: bool) -> StreamChunk {
        let scan = format!("{}{}", self.context, self.pending);
        let ctx_bytes = self.context.len();
        let ctx_chars = self.context.chars().count();
        let (found, injection_score) = self.policy.findings(&scan, false, None);
        // Findings that start in the already-released context were handled before.
        let found: Vec<(Finding, Action)> = found
            .into_iter()
            .filter(|(f, _)| f.bytes.start >= ctx_bytes)
            .map(|(mut f, a)| {
                f.bytes = f.bytes.start - ctx_bytes..f.bytes.end - ctx_bytes;
                f.start -= ctx_chars;
                f.end -= ctx_chars;
                (f, a)
            })
            .collect();

        if found.iter().any(|(_, a)| *a >= Action::Escalate) {
            self.stopped = true;
            let mut verdict = decide(&self.pending, found, injection_score, &mut Redactions::new());
            verdict.redacted = None;
            verdict.findings =
                verdict.findings.into_iter().map(|f| f.shifted(0, self.released_chars)).collect();
            if verdict.verdict == VerdictKind::Allow {
                verdict.verdict = VerdictKind::Block;
            }
            self.pending.clear();
            return StreamChunk { text: String::new(), findings: Vec::new(), stop: Some(verdict) };
        }

        let cut = if all { self.pending.len() } else { self.cut_point(&found) };
        if cut == 0 {
            return StreamChunk::default();
        }
        let released: Vec<(Finding, Action)> =
            found.into_iter().filter(|(f, _)| f.bytes.end <= cut).collect();
        let head = self.pending.get(..cut).unwrap_or("").to_string();
        let to_redact: Vec<Finding> =
            released.iter().filter(|(_, a)| *a == Action::Redact).map(|(f, _)| f.clone()).collect();
        let text =
            if to_redact.is_empty() { head.clone() } else { self.redactions.redact(&head, &to_redact) };
        let findings = released.into_iter().map(|(f, _)| f.shifted(0, self.released_chars)).collect();

        self.released_chars += head.chars().count();
        self.context.push_str(&head);
        let keep_from = self.context.char_indices().rev().nth(CONTEXT_CHARS - 1).map_or(0, |(i, _)| i);
        self.context.drain(..keep_from);
        self.pending.drain(..cut);
        StreamChunk { text, findings, stop: None }
    }

    /// Byte index in `pending` up to which text may be released.
    fn cut_point(&self, found: &[(Finding, Action)]) -> usize {
        let p = &self.pending;
        let total = p.chars().count();
        if total <= self.holdback {
            return 0;
        }
        let window = p.char_indices().nth(total - self.holdback).map_or(p.len(), |(i, _)| i);
        let mut cut = window;
        // Never inside a run of non-space characters.
        let in_run = |at: usize| {
            p.get(..at).and_then(|s| s.chars().next_back()).is_some_and(|c| !c.is_whitespace())
                && p.get(at..).and_then(|s| s.chars().next()).is_some_and(|c| !c.is_whitespace())
        };
        if in_run(cut) {
            cut = p
                .get(..cut)
                .and_then(|s| s.rfind(char::is_whitespace))
                .map_or(0, |i| i + p.get(i..).and_then(|s| s.chars().next()).map_or(1, char::len_utf8));
        }
        // Never inside a finding.
        while let Some((f, _)) = found.iter().find(|(f, _)| f.bytes.start < cut && cut < f.bytes.end) {
            cut = f.bytes.start;
        }
        // Bounded hold: past max_hold, release at the window whatever it cuts.
        if p.len() - cut > self.max_hold {
            cut = cut.max(window);
        }
        cut
    }
}

#[cfg(test)]
mod tests;
