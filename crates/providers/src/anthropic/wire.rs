//! The Messages API's JSON as plain serde structs: the request body gardefou sends
//! (`MessagesRequest`), the whole answer (`MessagesResponse`) and the stream events it reads.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// `POST /v1/messages` body.
#[derive(Debug, Serialize)]
pub(crate) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    pub messages: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Anthropic-only fields taken from the request's `extra` (`thinking`, `top_k`, `service_tier`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The top-level system prompt: a string, or text blocks when some carry `cache_control`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum System {
    Text(String),
    Blocks(Vec<Block>),
}

/// One turn of the conversation; `role` is `user` or `assistant`.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Turn {
    pub role: &'static str,
    #[serde(serialize_with = "text_or_blocks")]
    pub content: Vec<Block>,
}

/// A content block gardefou writes. Parts it does not model (`thinking`, `redacted_thinking`,
/// `document`, …) are written as the client sent them (`Raw`, its `type` included).
#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block {
    Text {
        text: String,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    Image {
        source: ImageSource,
        #[serde(flatten)]
        extra: Map<String, Value>,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(serialize_with = "text_or_blocks", skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block>,
    },
    #[serde(untagged)]
    Raw(Map<String, Value>),
}

impl Block {
    pub fn text(text: impl Into<String>) -> Block {
        Block::Text { text: text.into(), extra: Map::new() }
    }
}

/// A lone text block without extra fields is sent as a plain string, the shorter spelling.
fn text_or_blocks<S: Serializer>(blocks: &[Block], serializer: S) -> Result<S::Ok, S::Error> {
    match blocks {
        [Block::Text { text, extra }] if extra.is_empty() => serializer.serialize_str(text),
        _ => blocks.serialize(serializer),
    }
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct ToolDef {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    /// `cache_control` and other Anthropic fields of the canonical tool.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct ToolChoice {
    /// `auto`, `any`, `none` or `tool`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disable_parallel_tool_use: bool,
}

/// A whole answer.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagesResponse {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub content: Vec<ResponseBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: WireUsage,
}

/// An answer's content block; server tool blocks, `redacted_thinking` and block types added
/// later are `Other` (skipped).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ResponseBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// Token counts. In a stream `message_start` carries all of them and `message_delta` the
/// cumulative `output_tokens` (and, on newer models, cumulative input figures): a present value
/// replaces the one before, it is never added.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes the figures `later` reports, keeping the others.
    pub fn update(&mut self, later: &WireUsage) {
        let keep = |now: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *now = new;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(&mut self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        keep(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
    }
}

/// `{"type":"error","error":{"type","message"}}`, as an error body or a stream event.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// One stream event, by the `type` of its data. Types added later are `Unknown` (ignored).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ResponseBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        #[allow(dead_code)]
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StartMessage {
    pub id: String,
    pub model: String,
    #[serde(default)]
    pub usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    /// `citations_delta` and delta types added later.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lone_plain_text_is_a_string_and_raw_blocks_keep_their_type() {
        let turn = Turn { role: "user", content: vec![Block::text("Hi")] };
        assert_eq!(serde_json::to_value(&turn).unwrap(), json!({"role": "user", "content": "Hi"}));
        let raw: Map<String, Value> =
            serde_json::from_value(json!({"type": "thinking", "thinking": "t", "signature": "s"})).unwrap();
        let turn = Turn { role: "assistant", content: vec![Block::Raw(raw), Block::text("ok")] };
        assert_eq!(
            serde_json::to_value(&turn).unwrap(),
            json!({"role": "assistant", "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "ok"}]})
        );
    }

    #[test]
    fn unknown_events_blocks_and_deltas_parse_as_other() {
        let e: StreamEvent = serde_json::from_value(json!({"type": "brand_new", "x": 1})).unwrap();
        assert!(matches!(e, StreamEvent::Unknown));
        let b: ResponseBlock =
            serde_json::from_value(json!({"type": "redacted_thinking", "data": "zz"})).unwrap();
        assert!(matches!(b, ResponseBlock::Other));
        let d: BlockDelta =
            serde_json::from_value(json!({"type": "citations_delta", "citation": {}})).unwrap();
        assert!(matches!(d, BlockDelta::Other));
    }
}
