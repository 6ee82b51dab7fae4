//! The stream encoder: canonical chat chunks in, Anthropic stream events out.

use serde_json::json;

use super::convert::{message_id, stop_reason};
use super::wire::{
    BlockDelta, DeltaUsage, MessageDeltaBody, MessagesResponse, MessagesUsage, ResponseBlock, StreamEvent,
};
use crate::chat::{ChatChunk, FinishReason, ToolCallDelta, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool_use block, by the canonical tool-call index.
    Tool(u32),
}

/// Turns canonical chunks into Anthropic stream events: `message_start` and a `ping` on the first
/// chunk; one content block at a time (thinking, text, one tool_use per canonical tool-call
/// index), each closed before the next opens; `message_delta` and `message_stop` at the end.
/// Only choice 0 is read. A tool call whose fragments resume after another block opened (no
/// known upstream does this) gets its deltas on its original, already stopped, block index.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    input_tokens: u64,
    started: bool,
    open: Option<(Open, u32)>,
    next_index: u32,
    /// Block index of every tool call seen, by canonical index.
    tools: Vec<(u32, u32)>,
    finish: Option<FinishReason>,
    refused: bool,
}

impl StreamEncoder {
    /// `input_tokens` is what `message_start` reports (0 when only the end will tell).
    pub fn new(requested_model: &str, input_tokens: u64) -> Self {
        StreamEncoder {
            model: requested_model.to_owned(),
            input_tokens,
            started: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            finish: None,
            refused: false,
        }
    }

    pub fn on_chunk(&mut self, chunk: &ChatChunk) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            let usage = MessagesUsage { input_tokens: self.input_tokens, ..MessagesUsage::default() };
            let message = MessagesResponse {
                id: message_id(&chunk.id),
                kind: "message".to_owned(),
                role: "assistant".to_owned(),
                content: Vec::new(),
                model: self.model.clone(),
                stop_reason: None,
                stop_sequence: None,
                usage,
            };
            out.push(StreamEvent::MessageStart { message });
            out.push(StreamEvent::Ping);
        }
        for c in chunk.choices.iter().filter(|c| c.index == 0) {
            let d = &c.delta;
            if let Some(t) = d.reasoning_content.as_ref().filter(|t| !t.is_empty()) {
                let index = self.ensure(Open::Thinking, &mut out);
                out.push(delta(index, BlockDelta::ThinkingDelta { thinking: t.clone() }));
            }
            if let Some(s) = d.reasoning_signature.as_ref().filter(|s| !s.is_empty()) {
                let index = self.ensure(Open::Thinking, &mut out);
                out.push(delta(index, BlockDelta::SignatureDelta { signature: s.clone() }));
            }
            for text in [&d.content, &d.refusal].into_iter().flatten().filter(|t| !t.is_empty()) {
                let index = self.ensure(Open::Text, &mut out);
                out.push(delta(index, BlockDelta::TextDelta { text: text.clone() }));
            }
            self.refused |= d.refusal.is_some();
            for call in d.tool_calls.iter().flatten() {
                self.tool_delta(call, &mut out);
            }
            if c.finish_reason.is_some() {
                self.finish = c.finish_reason;
            }
        }
        out
    }

    /// The closing events once the upstream ended normally; `usage` is the final usage if known.
    pub fn finish(&mut self, usage: Option<Usage>) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        self.close(&mut out);
        let stop = stop_reason(self.finish, !self.tools.is_empty(), self.refused);
        let usage = match usage {
            Some(u) => {
                let m = MessagesUsage::from(u);
                DeltaUsage {
                    output_tokens: m.output_tokens,
                    input_tokens: Some(m.input_tokens),
                    cache_creation_input_tokens: Some(m.cache_creation_input_tokens),
                    cache_read_input_tokens: Some(m.cache_read_input_tokens),
                }
            }
            None => DeltaUsage::default(),
        };
        out.push(StreamEvent::MessageDelta {
            delta: MessageDeltaBody { stop_reason: Some(stop.to_owned()), stop_sequence: None },
            usage,
        });
        out.push(StreamEvent::MessageStop);
        out
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((_, index)) = self.open.take() {
            out.push(StreamEvent::ContentBlockStop { index });
        }
    }

    /// The index of an open block of kind `want`, opening it (and closing another) if needed.
    fn ensure(&mut self, want: Open, out: &mut Vec<StreamEvent>) -> u32 {
        if let Some((open, index)) = self.open {
            if open == want {
                return index;
            }
        }
        self.close(out);
        let block = match want {
            Open::Text => ResponseBlock::Text { text: String::new() },
            Open::Thinking => ResponseBlock::Thinking { thinking: String::new(), signature: String::new() },
            Open::Tool(_) => {
                ResponseBlock::ToolUse { id: String::new(), name: String::new(), input: json!({}) }
            }
        };
        self.open_block(want, block, out)
    }

    fn open_block(&mut self, kind: Open, block: ResponseBlock, out: &mut Vec<StreamEvent>) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        out.push(StreamEvent::ContentBlockStart { index, content_block: block });
        self.open = Some((kind, index));
        index
    }

    fn tool_delta(&mut self, call: &ToolCallDelta, out: &mut Vec<StreamEvent>) {
        let args = call.function.as_ref().and_then(|f| f.arguments.as_deref()).unwrap_or_default();
        let index = match self.open {
            Some((Open::Tool(i), index)) if i == call.index => index,
            _ => match self.tools.iter().find(|(i, _)| *i == call.index) {
                Some(&(_, index)) => index,
                None => {
                    self.close(out);
                    let id = call.id.clone().unwrap_or_else(|| format!("toolu_{}", call.index));
                    let name = call.function.as_ref().and_then(|f| f.name.clone()).unwrap_or_default();
                    let block = ResponseBlock::ToolUse { id, name, input: json!({}) };
                    let index = self.open_block(Open::Tool(call.index), block, out);
                    self.tools.push((call.index, index));
                    index
                }
            },
        };
        if !args.is_empty() {
            out.push(delta(index, BlockDelta::InputJsonDelta { partial_json: args.to_owned() }));
        }
    }
}

fn delta(index: u32, delta: BlockDelta) -> StreamEvent {
    StreamEvent::ContentBlockDelta { index, delta }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChunkChoice, Delta, FunctionCallDelta, Role};
    use crate::Error;
    use serde_json::{json, Value};

    fn chunk(delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        ChatChunk {
            id: "c1".into(),
            object: "chat.completion.chunk".into(),
            created: 0,
            model: "m".into(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish, logprobs: None }],
            usage: None,
            system_fingerprint: None,
            service_tier: None,
        }
    }

    fn call(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> Delta {
        Delta {
            tool_calls: Some(vec![ToolCallDelta {
                index,
                id: id.map(Into::into),
                kind: id.map(|_| "function".into()),
                function: Some(FunctionCallDelta {
                    name: name.map(Into::into),
                    arguments: Some(args.into()),
                }),
            }]),
            ..Delta::default()
        }
    }

    #[test]
    fn stream_encoder_opens_one_block_at_a_time() {
        let mut enc = StreamEncoder::new("route", 12);
        let text = |t: &str| Delta { content: Some(t.into()), ..Delta::default() };
        let mut events = Vec::new();
        for c in [
            chunk(
                Delta { role: Some(Role::Assistant), content: Some(String::new()), ..Delta::default() },
                None,
            ),
            chunk(Delta { reasoning_content: Some("think".into()), ..Delta::default() }, None),
            chunk(Delta { reasoning_signature: Some("sig".into()), ..Delta::default() }, None),
            chunk(text("Hel"), None),
            chunk(text("lo"), None),
            chunk(call(0, Some("call_a"), Some("f"), ""), None),
            chunk(call(0, None, None, "{\"x\":"), None),
            chunk(call(0, None, None, "1}"), None),
            chunk(call(1, Some("call_b"), Some("g"), "{}"), None),
            chunk(Delta::default(), Some(FinishReason::ToolCalls)),
        ] {
            events.extend(enc.on_chunk(&c));
        }
        events.extend(enc.finish(Some(Usage { input: 20, cached_input: 5, output: 9, ..Usage::default() })));
        let names: Vec<&str> = events.iter().map(StreamEvent::name).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let json: Vec<Value> = events.iter().map(|e| serde_json::to_value(e).unwrap()).collect();
        assert_eq!(json[0]["message"]["usage"]["input_tokens"], 12);
        assert_eq!(json[0]["message"]["id"], "msg_c1");
        assert_eq!(json[4]["delta"], json!({"type": "signature_delta", "signature": "sig"}));
        assert_eq!(
            json[10]["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "f", "input": {}})
        );
        assert_eq!(
            json[12],
            json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "1}"}})
        );
        assert_eq!(json[14]["index"], 3);
        assert_eq!(
            json[17],
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 9, "input_tokens": 15, "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 5}})
        );
    }

    #[test]
    fn an_empty_stream_still_starts_and_stops_a_message() {
        let mut enc = StreamEncoder::new("r", 0);
        let mut events = enc.on_chunk(&chunk(Delta::default(), Some(FinishReason::Length)));
        events.extend(enc.finish(None));
        let names: Vec<&str> = events.iter().map(StreamEvent::name).collect();
        assert_eq!(names, ["message_start", "ping", "message_delta", "message_stop"]);
        let e = serde_json::to_value(StreamEvent::error(&Error::invalid("x"))).unwrap();
        assert_eq!(e, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "x"}}));
    }
}
