//! The Messages API's serde shapes: the request and its content blocks (parsed so that an error
//! names the block), the response, and the stream events.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

// ------------------------------------------------------------------------------------ request

/// A Messages request as a client sends it. Fields gardefou does not model are kept in `extra`
/// and passed on in `ChatRequest::extra`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    /// Required by `to_canonical` (400 when absent); optional in the type so that
    /// `count_tokens`, which has no `max_tokens`, shares it.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub tools: Option<Vec<ToolDef>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoiceParam>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub thinking: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputRole {
    User,
    Assistant,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InputMessage {
    pub role: InputRole,
    pub content: MessageContent,
}

/// A message's content: a string, or a list of content blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// `system`: a string, or a list of text blocks (which may carry `cache_control`).
#[derive(Debug, Clone, PartialEq)]
pub enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

/// One content block of a request message.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentBlock {
    Text(TextBlock),
    Image(ImageBlock),
    ToolUse(ToolUseBlock),
    ToolResult(ToolResultBlock),
    Thinking(ThinkingBlock),
    RedactedThinking(RedactedThinkingBlock),
    /// Any other type (`document`, `search_result`, server-tool blocks, …): kept by name and
    /// rejected by `to_canonical`, so that the error can say which block is not supported.
    Unsupported(String),
}

/// A text block. Its `citations` are not modelled and dropped.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TextBlock {
    pub text: String,
    #[serde(default)]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ImageBlock {
    pub source: ImageSource,
    #[serde(default)]
    pub cache_control: Option<Value>,
}

/// Where an image comes from. Anthropic's `file` source (Files API ids) cannot reach another
/// provider and is rejected by serde as an unknown variant.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ToolUseBlock {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ToolResultBlock {
    pub tool_use_id: String,
    #[serde(default)]
    pub content: Option<ToolResultContent>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(default)]
    pub cache_control: Option<Value>,
}

/// A tool result's content: a string, or text and image blocks.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ThinkingBlock {
    pub thinking: String,
    #[serde(default)]
    pub signature: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RedactedThinkingBlock {
    pub data: String,
}

/// A tool the model may call. Only custom tools (no `type`, or `"custom"`) are accepted: Anthropic's
/// server and built-in client tools run only on Anthropic.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ToolDef {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
    #[serde(default)]
    pub cache_control: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoiceParam {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// `metadata`: only `user_id` is meaningful; other keys are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

// The block-bearing types parse through a `Value` so that an error names the block type and an
// unknown block type survives until `to_canonical` can reject it by name.

fn block_from_value(v: Value) -> Result<ContentBlock, String> {
    let kind = v.get("type").and_then(Value::as_str).ok_or("a content block has no `type`")?.to_owned();
    let parsed = match kind.as_str() {
        "text" => serde_json::from_value(v).map(ContentBlock::Text),
        "image" => serde_json::from_value(v).map(ContentBlock::Image),
        "tool_use" => serde_json::from_value(v).map(ContentBlock::ToolUse),
        "tool_result" => serde_json::from_value(v).map(ContentBlock::ToolResult),
        "thinking" => serde_json::from_value(v).map(ContentBlock::Thinking),
        "redacted_thinking" => serde_json::from_value(v).map(ContentBlock::RedactedThinking),
        _ => return Ok(ContentBlock::Unsupported(kind)),
    };
    parsed.map_err(|e| format!("invalid `{kind}` content block: {e}"))
}

fn blocks_from_value(v: Value, what: &str) -> Result<Vec<ContentBlock>, String> {
    match v {
        Value::Array(items) => items.into_iter().map(block_from_value).collect(),
        _ => Err(format!("{what} must be a string or a list of content blocks")),
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        block_from_value(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(MessageContent::Text(s)),
            v => {
                blocks_from_value(v, "message content").map(MessageContent::Blocks).map_err(D::Error::custom)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ToolResultContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(ToolResultContent::Text(s)),
            v => blocks_from_value(v, "tool_result content")
                .map(ToolResultContent::Blocks)
                .map_err(D::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for System {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(System::Text(s)),
            v @ Value::Array(_) => serde_json::from_value(v)
                .map(System::Blocks)
                .map_err(|e| D::Error::custom(format!("`system` must be a string or text blocks: {e}"))),
            _ => Err(D::Error::custom("`system` must be a string or a list of text blocks")),
        }
    }
}

// ------------------------------------------------------------------------------------ response

/// A whole Messages answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub role: String,
    pub content: Vec<ResponseBlock>,
    pub model: String,
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: MessagesUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBlock {
    Text { text: String },
    Thinking { thinking: String, signature: String },
    ToolUse { id: String, name: String, input: Value },
}

/// Anthropic's usage: `input_tokens` excludes the tokens read from or written to the cache.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessagesUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

// -------------------------------------------------------------------------------------- stream

/// One server-sent event of a streamed answer; `name()` is its `event:` line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart { message: MessagesResponse },
    ContentBlockStart { index: u32, content_block: ResponseBlock },
    ContentBlockDelta { index: u32, delta: BlockDelta },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: MessageDeltaBody, usage: DeltaUsage },
    MessageStop,
    Ping,
    Error { error: Value },
}

impl StreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta { text: String },
    InputJsonDelta { partial_json: String },
    ThinkingDelta { thinking: String },
    SignatureDelta { signature: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageDeltaBody {
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
}

/// The usage of `message_delta`: cumulative totals; input figures only when known.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeltaUsage {
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn malformed_blocks_fail_to_parse_with_the_block_named() {
        let err = serde_json::from_value::<MessagesRequest>(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}))
        .unwrap_err();
        assert!(err.to_string().contains("invalid `image` content block"), "{err}");
        let err = serde_json::from_value::<MessagesRequest>(json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": 3}]}))
        .unwrap_err();
        assert!(err.to_string().contains("string or a list of content blocks"), "{err}");
    }
}
