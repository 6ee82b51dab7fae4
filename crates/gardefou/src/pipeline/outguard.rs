//! The output guards of a started stream, shared by the OpenAI and the Anthropic relays: the
//! `json_schema` hold, the canary, and the route's output policy scanning every choice's text
//! with its own hold-back window (a value split across chunks is still caught, in each of `n`
//! answers). A block or a leaked canary ends the answer with `finish_reason: "content_filter"`.
//! Text still held when the upstream stream ends without a finish reason (or when the cost cap
//! cuts it) is scanned and released by [`OutputGuards::drain`], never silently dropped.

use std::sync::Arc;

use gardefou_core::chat::{ChatChunk, ChunkChoice, FinishReason};
use gardefou_guard::{Finding, Policy, Redactions, StreamChunk, StreamScanner, Verdict, VerdictKind};

use super::guard::StreamGuard;
use super::hold::SchemaHold;
use super::record::Inflight;

/// One choice's scanner; `done` once its held text was released at the choice's end.
struct Scan {
    index: u32,
    scanner: StreamScanner,
    done: bool,
}

#[derive(Default)]
pub struct OutputGuards {
    policy: Option<Arc<Policy>>,
    scans: Vec<Scan>,
    restore: Option<Redactions>,
    hold: Option<SchemaHold>,
    /// The canary token, and per choice the end of its answer so far.
    canary: Option<(String, Vec<(u32, String)>)>,
}

impl OutputGuards {
    pub fn new(guard: Option<StreamGuard>, canary: Option<String>) -> Self {
        let mut out = OutputGuards { canary: canary.map(|t| (t, Vec::new())), ..Self::default() };
        if let Some(g) = guard {
            out.hold = g.schema.map(|s| SchemaHold::new(s, g.fail_closed));
            out.policy = Some(g.policy);
            out.restore = g.restore;
        }
        out
    }

    /// Applies the guards to one chunk in place. Returns true when the answer must stop (the
    /// stopping choice then carries `content_filter`).
    pub fn on_chunk(&mut self, chunk: &mut ChatChunk, mut inflight: Option<&mut Inflight>) -> bool {
        if let Some(hold) = self.hold.as_mut() {
            if hold.on_chunk(chunk, inflight.as_deref_mut()) {
                return true;
            }
        }
        if self.canary_chunk(chunk, inflight.as_deref_mut()) {
            return true;
        }
        self.scan_chunk(chunk, inflight)
    }

    /// The text the scanners still hold for choices that never finished, scanned and released
    /// (redactions applied, placeholders restored), as choices to send before the stream ends;
    /// and whether a block fired in it.
    pub fn drain(&mut self, inflight: Option<&mut Inflight>) -> (Vec<ChunkChoice>, bool) {
        let mut findings = Vec::new();
        let mut stopped = false;
        let mut out = Vec::new();
        for s in self.scans.iter_mut().filter(|s| !s.done) {
            s.done = true;
            let r = s.scanner.finish();
            let stop = take(r, &mut findings);
            let text = restore(self.restore.as_ref(), stop.0);
            stopped |= stop.1;
            if !text.is_empty() || stop.1 {
                out.push(ChunkChoice {
                    index: s.index,
                    delta: gardefou_core::chat::Delta {
                        content: (!text.is_empty()).then_some(text),
                        ..Default::default()
                    },
                    finish_reason: stop.1.then_some(FinishReason::ContentFilter),
                    logprobs: None,
                });
            }
        }
        count(inflight, findings);
        (out, stopped)
    }

    /// Stops the answer when a choice's text completes the canary token.
    fn canary_chunk(&mut self, chunk: &mut ChatChunk, inflight: Option<&mut Inflight>) -> bool {
        let Some((token, tails)) = self.canary.as_mut() else { return false };
        let mut leaked = false;
        for c in &mut chunk.choices {
            let Some(t) = &c.delta.content else { continue };
            let at = match tails.iter().position(|(i, _)| *i == c.index) {
                Some(at) => at,
                None => {
                    tails.push((c.index, String::new()));
                    tails.len() - 1
                }
            };
            let tail = &mut tails[at].1;
            tail.push_str(t);
            if tail.contains(token.as_str()) {
                leaked = true;
                c.delta.content = None;
                c.finish_reason = Some(FinishReason::ContentFilter);
            }
            if tail.len() > token.len() {
                let mut cut = tail.len() - token.len();
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail.drain(..cut);
            }
        }
        if leaked {
            if let Some(inflight) = inflight {
                let _ = super::guard::check_canary(Some(token), token, inflight);
            }
        }
        leaked
    }

    /// Runs the output policy over each choice's text: the delta becomes what its scanner
    /// releases, held text is flushed before the choice's finish reason, and a block ends the
    /// answer. Returns true on a block.
    fn scan_chunk(&mut self, chunk: &mut ChatChunk, inflight: Option<&mut Inflight>) -> bool {
        let Some(policy) = &self.policy else { return false };
        let mut findings = Vec::new();
        let mut stopped = false;
        for c in &mut chunk.choices {
            let at = match self.scans.iter().position(|s| s.index == c.index) {
                Some(at) => at,
                None => {
                    let scanner = StreamScanner::new(policy.clone());
                    self.scans.push(Scan { index: c.index, scanner, done: false });
                    self.scans.len() - 1
                }
            };
            let scan = &mut self.scans[at];
            let mut text = String::new();
            let mut stop = false;
            if let Some(delta) = c.delta.content.take() {
                let (t, s) = take(scan.scanner.push(&delta), &mut findings);
                text = t;
                stop = s;
            }
            if c.finish_reason.is_some() && !stop && !scan.done {
                scan.done = true;
                let (t, s) = take(scan.scanner.finish(), &mut findings);
                text.push_str(&t);
                stop = s;
            }
            let text = restore(self.restore.as_ref(), text);
            c.delta.content = (!text.is_empty()).then_some(text);
            if stop {
                c.finish_reason = Some(FinishReason::ContentFilter);
                stopped = true;
            }
        }
        count(inflight, findings);
        stopped
    }
}

/// The released text of a scanner step and whether it stopped, its findings moved to `into`.
fn take(r: StreamChunk, into: &mut Vec<Finding>) -> (String, bool) {
    into.extend(r.findings);
    let stopped = r.stop.is_some();
    if let Some(v) = r.stop {
        into.extend(v.findings);
    }
    (r.text, stopped)
}

fn restore(redactions: Option<&Redactions>, text: String) -> String {
    match redactions {
        Some(r) if !text.is_empty() => r.restore(&text),
        _ => text,
    }
}

fn count(inflight: Option<&mut Inflight>, findings: Vec<Finding>) {
    if let (Some(inflight), false) = (inflight, findings.is_empty()) {
        let v = Verdict { verdict: VerdictKind::Allow, score: 0.0, findings, redacted: None };
        super::guard::count(inflight, "output", &v);
    }
}
