//! A streamed answer held back whole for the `json_schema` guard, which can only judge a
//! complete document. The content of every choice is withheld as it arrives; when a choice
//! ends (its finish reason), its whole text is checked and then either released in that same
//! chunk (pass, or `flag`: counted and tagged like any output finding) or withheld for good, the
//! answer ending with `finish_reason: "content_filter"` as other streamed blocks do (`block`,
//! and `escalate`, which a started stream cannot hand off). The role chunk still goes out at once,
//! but the client's first token arrives with the whole answer: the time to first token is then
//! the answer's full time, and is recorded so. Tool-call answers are released unchecked. The
//! released text then goes through the canary and the other output guards like any delta. An
//! answer cut short (the route's cost cap, an upstream error) is never whole: none of it is
//! released.

use gardefou_core::chat::{ChatChunk, FinishReason};
use gardefou_guard::policy::OutputSchema;
use gardefou_guard::VerdictKind;

use super::guard::{blocked, count, guarded, kinds};
use super::record::Inflight;

/// What one choice has streamed so far.
struct Held {
    index: u32,
    text: String,
    tool_call: bool,
}

pub struct SchemaHold {
    schema: OutputSchema,
    fail_closed: bool,
    held: Vec<Held>,
}

impl SchemaHold {
    pub fn new(schema: OutputSchema, fail_closed: bool) -> Self {
        Self { schema, fail_closed, held: Vec::new() }
    }

    fn slot(&mut self, index: u32) -> &mut Held {
        let at = match self.held.iter().position(|h| h.index == index) {
            Some(at) => at,
            None => {
                self.held.push(Held { index, text: String::new(), tool_call: false });
                self.held.len() - 1
            }
        };
        &mut self.held[at]
    }

    /// Takes the chunk's content into the hold and puts back the whole text of each choice that
    /// ends in this chunk and passes. Returns true when the answer must stop (its ending choice
    /// then carries `content_filter` and no text).
    pub fn on_chunk(&mut self, chunk: &mut ChatChunk, mut inflight: Option<&mut Inflight>) -> bool {
        let mut stop = false;
        for c in &mut chunk.choices {
            let slot = self.slot(c.index);
            if let Some(t) = c.delta.content.take() {
                slot.text.push_str(&t);
            }
            slot.tool_call |= c.delta.tool_calls.as_ref().is_some_and(|t| !t.is_empty());
            if c.finish_reason.is_none() || stop {
                continue;
            }
            let Some(at) = self.held.iter().position(|h| h.index == c.index) else { continue };
            let held = self.held.swap_remove(at);
            if !held.tool_call {
                let verdict = guarded(self.fail_closed, || self.schema.check(&held.text));
                if let (Some(v), Some(inflight)) = (&verdict, inflight.as_deref_mut()) {
                    count(inflight, "output", v);
                }
                if verdict
                    .as_ref()
                    .is_some_and(|v| matches!(v.verdict, VerdictKind::Block | VerdictKind::Escalate))
                {
                    if let (Some(v), Some(inflight)) = (&verdict, inflight.as_deref_mut()) {
                        blocked(inflight, kinds(&v.findings).0, "output");
                    }
                    c.finish_reason = Some(FinishReason::ContentFilter);
                    stop = true;
                    continue;
                }
            }
            if !held.text.is_empty() {
                if let Some(inflight) = inflight.as_deref_mut() {
                    inflight.mark_first_token();
                }
                c.delta.content = Some(held.text);
            }
        }
        if stop {
            // Nothing more reaches the client, not even another choice ending in the same chunk.
            for c in &mut chunk.choices {
                c.delta.content = None;
            }
        }
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardefou_core::chat::{ChunkChoice, Delta};
    use gardefou_guard::policy::RequestedFormat;
    use gardefou_guard::{Policy, PolicyConfig};

    fn chunk(index: u32, content: &str, finish: bool) -> ChatChunk {
        ChatChunk {
            id: "c".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "m".into(),
            choices: vec![ChunkChoice {
                index,
                delta: Delta { content: Some(content.into()), ..Delta::default() },
                finish_reason: finish.then_some(FinishReason::Stop),
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
            service_tier: None,
        }
    }

    fn json_only() -> SchemaHold {
        let c: PolicyConfig = serde_json::from_value(
            serde_json::json!({"json_schema": {"from_request": true, "action": "block"}}),
        )
        .unwrap();
        let policy = Policy::try_from(c).unwrap();
        SchemaHold::new(policy.output_schema(RequestedFormat::JsonObject).unwrap().unwrap(), true)
    }

    #[test]
    fn a_valid_document_is_released_whole_with_its_finish_reason() {
        let mut hold = json_only();
        for piece in ["{\"a\"", ": [1,", " 2]}"] {
            let mut c = chunk(0, piece, false);
            assert!(!hold.on_chunk(&mut c, None));
            assert_eq!(c.choices[0].delta.content, None, "nothing before the end");
        }
        let mut end = chunk(0, "", true);
        assert!(!hold.on_chunk(&mut end, None));
        assert_eq!(end.choices[0].delta.content.as_deref(), Some("{\"a\": [1, 2]}"));
        assert_eq!(end.choices[0].finish_reason, Some(FinishReason::Stop));
    }

    #[test]
    fn a_broken_document_stops_the_answer_without_any_of_its_text() {
        let mut hold = json_only();
        let mut c = chunk(0, "Sure! Here is", false);
        assert!(!hold.on_chunk(&mut c, None));
        let mut other = chunk(1, "{}", true);
        assert!(!hold.on_chunk(&mut other, None), "another choice passes on its own");
        assert_eq!(other.choices[0].delta.content.as_deref(), Some("{}"));
        let mut end = chunk(0, " your JSON", true);
        assert!(hold.on_chunk(&mut end, None));
        assert_eq!(end.choices[0].delta.content, None);
        assert_eq!(end.choices[0].finish_reason, Some(FinishReason::ContentFilter));
    }
}
