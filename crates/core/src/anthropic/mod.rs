//! The Anthropic Messages API as an ingress (`POST /v1/messages`): its request, response, stream
//! event and error shapes, and their conversion to and from the canonical (OpenAI-shaped) chat
//! types, so that an Anthropic client can be answered by any provider. What cannot be mapped is
//! rejected with a 400 naming the field; what is mapped lossily says so where it happens.
//!
//! | Anthropic | canonical |
//! |---|---|
//! | `system` (string / text blocks) | a leading `system` message (blocks → parts, `cache_control` in the part's extra) |
//! | user `text` / `image` (base64, url) | `text` / `image_url` parts (base64 → `data:` URL) |
//! | user `tool_result` | a `tool` message before the turn's other blocks; `is_error` → `TOOL_ERROR_PREFIX` |
//! | assistant `tool_use` | `tool_calls` (input as a JSON string) |
//! | assistant `thinking` / `redacted_thinking` | parts of that kind, `{thinking, signature}` / `{data}` in extra |
//! | `document`, server-tool blocks, `file` images, non-custom tools | rejected (400) |
//! | `max_tokens` (required) | `max_completion_tokens` |
//! | `stop_sequences`, `temperature`, `top_p` | `stop`, `temperature`, `top_p` |
//! | `top_k`, `thinking`, unknown fields | `extra` (passed to OpenAI-compatible upstreams as they are) |
//! | `tools[].input_schema` / `cache_control` | `function.parameters` / the tool's extra |
//! | `tool_choice` auto / any / tool / none | `auto` / `required` / named / `none` |
//! | `disable_parallel_tool_use: true` | `parallel_tool_calls: false` |
//! | `metadata.user_id` | `user` |
//!
//! Answers go back as `thinking`, `text` and `tool_use` blocks with `stop_reason` mapped from the
//! finish reason (`stop_reason`), usage with cache reads and writes taken out of `input_tokens`.
//!
//! Layout: `wire` holds the serde shapes (request, response, stream events), `convert` the
//! request and response conversion, `stream` the stream encoder, `error` the error shape.

mod convert;
mod error;
mod stream;
mod wire;

pub use convert::{
    from_canonical_response, message_id, stop_reason, to_canonical, tool_input, TOOL_ERROR_PREFIX,
};
pub use error::{error_json, error_type};
pub use stream::StreamEncoder;
pub use wire::{
    BlockDelta, ContentBlock, DeltaUsage, ImageBlock, ImageSource, InputMessage, InputRole, MessageContent,
    MessageDeltaBody, MessagesRequest, MessagesResponse, MessagesUsage, Metadata, RedactedThinkingBlock,
    ResponseBlock, StreamEvent, System, TextBlock, ThinkingBlock, ToolChoiceParam, ToolDef, ToolResultBlock,
    ToolResultContent, ToolUseBlock,
};
