//! A streamed Messages API answer: its SSE events turned into canonical `ChatChunk`s.
//!
//! - `message_start` gives the id, model and input usage, and yields the first chunk (role
//!   `assistant`, empty content).
//! - `content_block_start` / `content_block_delta` yield text, thinking (`reasoning_content`,
//!   `reasoning_signature`) and tool-call fragments. The canonical tool-call `index` counts
//!   `tool_use` blocks only, not content blocks. In JSON mode the `json_answer` tool's input is
//!   the answer's content.
//! - `message_delta` yields the finish reason; its `usage` figures are cumulative and replace the
//!   ones before, never add to them.
//! - `message_stop` yields a final chunk with `choices: []` and the whole usage, and ends.
//! - `ping` is ignored, and so are event, block and delta types this adapter does not know:
//!   Anthropic's versioning policy allows new ones at any time within a version.
//! - An `error` event, an event that is not valid JSON, or a body that ends before
//!   `message_stop` ends the stream with an `Err`, never with a silently shortened answer.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gardefou_core::chat::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, Role, ToolCallDelta,
};
use gardefou_core::{Error, Result};

use super::convert::{api_error, finish_reason, usage, JSON_TOOL};
use super::wire::{BlockDelta, ResponseBlock, StreamEvent, WireUsage};
use crate::sse::{SseDecoder, SseEvent};
use crate::ChunkStream;

const ENDED_EARLY: &str = "stream ended before message_stop";

/// What a content block (by its stream `index`) turns into.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    /// A tool call, with its canonical tool-call index.
    Tool(u32),
    /// The JSON-mode tool: its input is the answer's text.
    JsonAnswer,
    Thinking,
    Other,
}

struct State<B> {
    provider: String,
    body: B,
    decoder: SseDecoder,
    json_mode: bool,
    created: u64,
    id: String,
    model: String,
    started: bool,
    blocks: HashMap<u32, Kind>,
    tool_calls: u32,
    usage: WireUsage,
    done: bool,
}

/// Decodes an upstream SSE body into chunks. `json_mode`: the request asked for JSON output.
pub(crate) fn chunks<B>(provider: &str, body: B, json_mode: bool, created: u64) -> ChunkStream
where
    B: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    let state = State {
        provider: provider.to_owned(),
        body,
        decoder: SseDecoder::new(),
        json_mode,
        created,
        id: String::new(),
        model: String::new(),
        started: false,
        blocks: HashMap::new(),
        tool_calls: 0,
        usage: WireUsage::default(),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    }))
}

impl<B> State<B>
where
    B: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    async fn next_item(&mut self) -> Option<Result<ChatChunk>> {
        while !self.done {
            if let Some(event) = self.decoder.next_event() {
                if let Some(item) = self.on_event(event) {
                    return Some(item);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.push(&bytes),
                Some(Err(e)) => return self.ended_early(Some(crate::http::describe(&e))),
                None => {
                    // A last event without its blank line still counts (e.g. a bare `message_stop`).
                    while let Some(event) = self.decoder.finish() {
                        if let Some(item) = self.on_event(event) {
                            return Some(item);
                        }
                    }
                    return self.ended_early(None);
                }
            }
        }
        None
    }

    fn ended_early(&mut self, cause: Option<String>) -> Option<Result<ChatChunk>> {
        if self.done {
            return None;
        }
        self.done = true;
        let message = match cause {
            Some(cause) => format!("{ENDED_EARLY}: {cause}"),
            None => ENDED_EARLY.to_owned(),
        };
        Some(Err(self.bad(message)))
    }

    fn bad(&self, message: String) -> Error {
        Error::BadResponse { provider: self.provider.clone(), message }
    }

    /// What an event yields, or `None` when it yields nothing.
    fn on_event(&mut self, event: SseEvent) -> Option<Result<ChatChunk>> {
        if self.done {
            return None;
        }
        let data = event.data.trim();
        if data.is_empty() {
            return None;
        }
        let parsed = match serde_json::from_str::<StreamEvent>(data) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.done = true;
                return Some(Err(self.bad(format!("invalid stream event: {e}"))));
            }
        };
        let needs_start =
            !matches!(parsed, StreamEvent::Ping | StreamEvent::Error { .. } | StreamEvent::Unknown);
        if needs_start && !self.started && !matches!(parsed, StreamEvent::MessageStart { .. }) {
            self.done = true;
            return Some(Err(self.bad("stream event before message_start".to_owned())));
        }
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                self.id = message.id;
                self.model = message.model;
                self.usage.update(&message.usage);
                let delta =
                    Delta { role: Some(Role::Assistant), content: Some(String::new()), ..Delta::default() };
                Some(Ok(self.chunk(delta, None)))
            }
            StreamEvent::ContentBlockStart { index, content_block } => self.block_start(index, content_block),
            StreamEvent::ContentBlockDelta { index, delta } => {
                let kind = self.blocks.get(&index).copied().unwrap_or(Kind::Other);
                let delta = match (kind, delta) {
                    (Kind::Text, BlockDelta::TextDelta { text }) => text_delta(text),
                    (Kind::JsonAnswer, BlockDelta::InputJsonDelta { partial_json }) => {
                        text_delta(partial_json)
                    }
                    (Kind::Tool(i), BlockDelta::InputJsonDelta { partial_json })
                        if !partial_json.is_empty() =>
                    {
                        tool_delta(i, None, None, partial_json)
                    }
                    (Kind::Thinking, BlockDelta::ThinkingDelta { thinking }) => {
                        Delta { reasoning_content: Some(thinking), ..Delta::default() }
                    }
                    (Kind::Thinking, BlockDelta::SignatureDelta { signature }) => {
                        Delta { reasoning_signature: Some(signature), ..Delta::default() }
                    }
                    _ => return None,
                };
                if delta.content.as_deref() == Some("") {
                    return None;
                }
                Some(Ok(self.chunk(delta, None)))
            }
            StreamEvent::MessageDelta { delta, usage } => {
                self.usage.update(&usage);
                let reason = delta.stop_reason?;
                let finish = finish_reason(&reason, self.tool_calls > 0);
                Some(Ok(self.chunk(Delta::default(), Some(finish))))
            }
            StreamEvent::MessageStop => {
                self.done = true;
                let mut last = self.chunk(Delta::default(), None);
                last.choices.clear();
                last.usage = Some(usage(&self.usage));
                Some(Ok(last))
            }
            StreamEvent::Error { error } => {
                self.done = true;
                Some(Err(api_error(&self.provider, &error.kind, &error.message)))
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Unknown => None,
        }
    }

    fn block_start(&mut self, index: u32, block: ResponseBlock) -> Option<Result<ChatChunk>> {
        let (kind, delta) = match block {
            ResponseBlock::Text { text } => (Kind::Text, (!text.is_empty()).then(|| text_delta(text))),
            ResponseBlock::ToolUse { name, .. } if self.json_mode && name == JSON_TOOL => {
                (Kind::JsonAnswer, None)
            }
            ResponseBlock::ToolUse { id, name, .. } => {
                let i = self.tool_calls;
                self.tool_calls += 1;
                (Kind::Tool(i), Some(tool_delta(i, Some(id), Some(name), String::new())))
            }
            ResponseBlock::Thinking { thinking, signature } => {
                let delta = Delta {
                    reasoning_content: (!thinking.is_empty()).then_some(thinking),
                    reasoning_signature: signature.filter(|s| !s.is_empty()),
                    ..Delta::default()
                };
                let any = delta.reasoning_content.is_some() || delta.reasoning_signature.is_some();
                (Kind::Thinking, any.then_some(delta))
            }
            ResponseBlock::Other => (Kind::Other, None),
        };
        self.blocks.insert(index, kind);
        Some(Ok(self.chunk(delta?, None)))
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason, logprobs: None }],
            usage: None,
            system_fingerprint: None,
            service_tier: None,
        }
    }
}

fn text_delta(text: String) -> Delta {
    Delta { content: Some(text), ..Delta::default() }
}

/// A tool-call fragment: the first one of a call carries its id and name.
fn tool_delta(index: u32, id: Option<String>, name: Option<String>, arguments: String) -> Delta {
    let kind = id.as_ref().map(|_| "function".to_owned());
    Delta {
        tool_calls: Some(vec![ToolCallDelta {
            index,
            id,
            kind,
            function: Some(FunctionCallDelta { name, arguments: Some(arguments) }),
        }]),
        ..Delta::default()
    }
}
