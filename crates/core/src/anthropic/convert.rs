//! Conversion between the Messages API and the canonical chat types: a request to a
//! `ChatRequest` (400 for what cannot be mapped), a `ChatResponse` back to a Messages response.

use serde_json::{json, Map, Value};

use super::wire::{
    ContentBlock, ImageBlock, ImageSource, InputRole, MessageContent, MessagesRequest, MessagesResponse,
    MessagesUsage, ResponseBlock, System, ToolChoiceParam, ToolDef, ToolResultBlock, ToolResultContent,
};
use crate::chat::{
    ChatRequest, ChatResponse, Content, ContentPart, FinishReason, FunctionCall, FunctionDef, FunctionName,
    ImageUrl, Message, NamedToolChoice, Role, Stop, Tool, ToolCall, ToolChoice, Usage,
};
use crate::Error;

/// Prefix of a tool result's text when the client marked it `is_error` (canonical tool messages
/// have no error flag).
pub const TOOL_ERROR_PREFIX: &str = "[tool error] ";

// ------------------------------------------------------------------------- request → canonical

/// Converts a Messages request to the canonical chat request (see the module's mapping notes on
/// each step). 400 when `max_tokens` is missing, `messages` is empty, or a block or tool cannot
/// reach a non-Anthropic provider.
pub fn to_canonical(req: MessagesRequest) -> Result<ChatRequest, Error> {
    let max_tokens =
        req.max_tokens.ok_or_else(|| Error::invalid_param("`max_tokens` is required", "max_tokens"))?;
    if req.messages.is_empty() {
        return Err(Error::invalid_param("`messages` must contain at least one message", "messages"));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(content) = req.system.and_then(system_content) {
        messages.push(message(Role::System, Some(content)));
    }
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            InputRole::User => user_turn(m.content, i, &mut messages)?,
            InputRole::Assistant => messages.push(assistant_turn(m.content, i)?),
        }
    }
    let tools = req.tools.map(|t| t.into_iter().map(tool).collect::<Result<Vec<_>, _>>()).transpose()?;
    let (tool_choice, parallel_tool_calls) = match req.tool_choice {
        None => (None, None),
        Some(choice) => {
            let (choice, no_parallel) = tool_choice(choice);
            (Some(choice), no_parallel.filter(|d| *d).map(|_| false))
        }
    };
    let mut extra = req.extra;
    if let Some(k) = req.top_k {
        extra.insert("top_k".to_owned(), k.into());
    }
    if let Some(t) = req.thinking {
        extra.insert("thinking".to_owned(), t);
    }
    Ok(ChatRequest {
        model: req.model,
        messages,
        stream: req.stream.filter(|s| *s),
        temperature: req.temperature,
        top_p: req.top_p,
        max_completion_tokens: Some(max_tokens),
        stop: req.stop_sequences.filter(|s| !s.is_empty()).map(Stop::Many),
        user: req.metadata.and_then(|m| m.user_id),
        tools,
        tool_choice,
        parallel_tool_calls,
        extra,
        ..ChatRequest::default()
    })
}

fn message(role: Role, content: Option<Content>) -> Message {
    Message { role, content, name: None, tool_calls: None, tool_call_id: None, refusal: None }
}

fn cache_extra(cache_control: Option<Value>) -> Map<String, Value> {
    let mut extra = Map::new();
    if let Some(c) = cache_control {
        extra.insert("cache_control".to_owned(), c);
    }
    extra
}

fn text_part(text: String, cache_control: Option<Value>) -> ContentPart {
    ContentPart {
        kind: "text".to_owned(),
        text: Some(text),
        image_url: None,
        extra: cache_extra(cache_control),
    }
}

/// Parts as canonical content: none → `None`; one plain text part → a string; else the parts.
fn parts_content(mut parts: Vec<ContentPart>) -> Option<Content> {
    match parts.len() {
        0 => None,
        1 if parts[0].kind == "text" && parts[0].extra.is_empty() => parts.pop()?.text.map(Content::Text),
        _ => Some(Content::Parts(parts)),
    }
}

fn system_content(system: System) -> Option<Content> {
    match system {
        System::Text(t) if t.is_empty() => None,
        System::Text(t) => Some(Content::Text(t)),
        System::Blocks(blocks) => {
            parts_content(blocks.into_iter().map(|b| text_part(b.text, b.cache_control)).collect())
        }
    }
}

fn image_part(block: ImageBlock) -> ContentPart {
    let url = match block.source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url,
    };
    ContentPart {
        kind: "image_url".to_owned(),
        text: None,
        image_url: Some(ImageUrl { url, detail: None }),
        extra: cache_extra(block.cache_control),
    }
}

fn unsupported(kind: &str, param: String) -> Error {
    let message = if kind == "document" {
        "`document` content blocks (PDF and plain-text documents) are not supported by gardefou's \
         /v1/messages yet; send the document's text in a `text` block"
            .to_owned()
    } else {
        format!("`{kind}` content blocks are not supported by gardefou's /v1/messages")
    };
    Error::invalid_param(message, param)
}

fn misplaced(kind: &str, role: &str, param: String) -> Error {
    Error::invalid_param(format!("`{kind}` content blocks are not allowed in {role} messages"), param)
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, so that they follow the
/// assistant's tool calls as OpenAI requires), the other blocks one user message after them.
fn user_turn(content: MessageContent, i: usize, out: &mut Vec<Message>) -> Result<(), Error> {
    let blocks = match content {
        MessageContent::Text(t) => {
            out.push(message(Role::User, Some(Content::Text(t))));
            return Ok(());
        }
        MessageContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let param = || format!("messages.{i}.content.{j}");
        match block {
            ContentBlock::Text(b) => parts.push(text_part(b.text, b.cache_control)),
            ContentBlock::Image(b) => parts.push(image_part(b)),
            ContentBlock::ToolResult(b) => out.push(tool_result(b, &param())?),
            ContentBlock::ToolUse(_) => return Err(misplaced("tool_use", "user", param())),
            ContentBlock::Thinking(_) => return Err(misplaced("thinking", "user", param())),
            ContentBlock::RedactedThinking(_) => return Err(misplaced("redacted_thinking", "user", param())),
            ContentBlock::Unsupported(kind) => return Err(unsupported(&kind, param())),
        }
    }
    if let Some(content) = parts_content(parts) {
        out.push(message(Role::User, Some(content)));
    }
    Ok(())
}

/// A `tool_result` block as a `tool` message. `is_error` becomes a text prefix
/// (`TOOL_ERROR_PREFIX`); a `cache_control` moves to the last part; images stay image parts
/// (which OpenAI itself refuses in tool messages).
fn tool_result(b: ToolResultBlock, param: &str) -> Result<Message, Error> {
    let mut parts = match b.content {
        None => Vec::new(),
        Some(ToolResultContent::Text(t)) => vec![text_part(t, None)],
        Some(ToolResultContent::Blocks(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (k, block) in blocks.into_iter().enumerate() {
                match block {
                    ContentBlock::Text(t) => parts.push(text_part(t.text, t.cache_control)),
                    ContentBlock::Image(img) => parts.push(image_part(img)),
                    ContentBlock::Unsupported(kind) => {
                        return Err(unsupported(&kind, format!("{param}.content.{k}")))
                    }
                    other => {
                        return Err(Error::invalid_param(
                            format!(
                                "a tool_result may hold only text and image blocks, not {}",
                                kind_of(&other)
                            ),
                            format!("{param}.content.{k}"),
                        ))
                    }
                }
            }
            parts
        }
    };
    if b.is_error == Some(true) {
        match parts.iter_mut().find(|p| p.kind == "text") {
            Some(ContentPart { text: Some(t), .. }) => t.insert_str(0, TOOL_ERROR_PREFIX),
            _ => parts.insert(0, text_part(TOOL_ERROR_PREFIX.trim_end().to_owned(), None)),
        }
    }
    if let Some(c) = b.cache_control {
        if parts.is_empty() {
            parts.push(text_part(String::new(), None));
        }
        if let Some(last) = parts.last_mut() {
            last.extra.insert("cache_control".to_owned(), c);
        }
    }
    let only_plain_text = parts.iter().all(|p| p.kind == "text" && p.extra.is_empty());
    let content = if only_plain_text {
        Content::Text(parts.into_iter().filter_map(|p| p.text).collect::<Vec<_>>().join("\n"))
    } else {
        Content::Parts(parts)
    };
    Ok(Message { tool_call_id: Some(b.tool_use_id), ..message(Role::Tool, Some(content)) })
}

fn kind_of(block: &ContentBlock) -> &str {
    match block {
        ContentBlock::Text(_) => "text",
        ContentBlock::Image(_) => "image",
        ContentBlock::ToolUse(_) => "tool_use",
        ContentBlock::ToolResult(_) => "tool_result",
        ContentBlock::Thinking(_) => "thinking",
        ContentBlock::RedactedThinking(_) => "redacted_thinking",
        ContentBlock::Unsupported(kind) => kind,
    }
}

/// An assistant turn: text and thinking blocks become content parts (thinking as a part of kind
/// `thinking` with `{thinking, signature}` in its extra, redacted thinking as `redacted_thinking`
/// with `{data}`), `tool_use` blocks become tool calls (the input as a JSON string; a
/// `cache_control` on a tool_use block is dropped).
fn assistant_turn(content: MessageContent, i: usize) -> Result<Message, Error> {
    let blocks = match content {
        MessageContent::Text(t) => return Ok(message(Role::Assistant, Some(Content::Text(t)))),
        MessageContent::Blocks(b) => b,
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        let param = || format!("messages.{i}.content.{j}");
        match block {
            ContentBlock::Text(b) => parts.push(text_part(b.text, b.cache_control)),
            ContentBlock::Thinking(b) => {
                let mut extra = Map::new();
                extra.insert("thinking".to_owned(), b.thinking.into());
                extra.insert("signature".to_owned(), b.signature.into());
                parts.push(ContentPart { kind: "thinking".to_owned(), text: None, image_url: None, extra });
            }
            ContentBlock::RedactedThinking(b) => {
                let mut extra = Map::new();
                extra.insert("data".to_owned(), b.data.into());
                parts.push(ContentPart {
                    kind: "redacted_thinking".to_owned(),
                    text: None,
                    image_url: None,
                    extra,
                });
            }
            ContentBlock::ToolUse(b) => {
                let input = if b.input.is_null() { json!({}) } else { b.input };
                calls.push(ToolCall {
                    id: b.id,
                    kind: "function".to_owned(),
                    function: FunctionCall { name: b.name, arguments: input.to_string() },
                });
            }
            ContentBlock::Image(_) => return Err(misplaced("image", "assistant", param())),
            ContentBlock::ToolResult(_) => return Err(misplaced("tool_result", "assistant", param())),
            ContentBlock::Unsupported(kind) => return Err(unsupported(&kind, param())),
        }
    }
    Ok(Message {
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..message(Role::Assistant, parts_content(parts))
    })
}

fn tool(t: ToolDef) -> Result<Tool, Error> {
    if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
        return Err(Error::invalid_param(
            format!(
                "tool `{}` has type `{kind}`: Anthropic's server and built-in tools run only on \
                 Anthropic; gardefou's /v1/messages accepts custom tools (name, description, input_schema)",
                t.name
            ),
            "tools",
        ));
    }
    let Some(schema) = t.input_schema else {
        return Err(Error::invalid_param(format!("tool `{}` has no `input_schema`", t.name), "tools"));
    };
    let mut extra = t.extra;
    let strict = extra.remove("strict").and_then(|s| s.as_bool());
    if let Some(c) = t.cache_control {
        extra.insert("cache_control".to_owned(), c);
    }
    Ok(Tool {
        kind: "function".to_owned(),
        function: FunctionDef { name: t.name, description: t.description, parameters: Some(schema), strict },
        extra,
    })
}

/// The canonical tool choice, and whether parallel tool use was disabled.
fn tool_choice(choice: ToolChoiceParam) -> (ToolChoice, Option<bool>) {
    match choice {
        ToolChoiceParam::Auto { disable_parallel_tool_use } => {
            (ToolChoice::Mode("auto".to_owned()), disable_parallel_tool_use)
        }
        ToolChoiceParam::Any { disable_parallel_tool_use } => {
            (ToolChoice::Mode("required".to_owned()), disable_parallel_tool_use)
        }
        ToolChoiceParam::Tool { name, disable_parallel_tool_use } => (
            ToolChoice::Named(NamedToolChoice {
                kind: "function".to_owned(),
                function: FunctionName { name },
            }),
            disable_parallel_tool_use,
        ),
        ToolChoiceParam::None => (ToolChoice::Mode("none".to_owned()), None),
    }
}

// ------------------------------------------------------------------------------------ response
impl From<Usage> for MessagesUsage {
    fn from(u: Usage) -> Self {
        MessagesUsage {
            input_tokens: u.input.saturating_sub(u.cached_input).saturating_sub(u.cache_write),
            output_tokens: u.output,
            cache_creation_input_tokens: u.cache_write,
            cache_read_input_tokens: u.cached_input,
        }
    }
}

/// Anthropic's id shape (`msg_…`) around the upstream's id.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Tool-call arguments as a `tool_use` input. Anthropic requires an object: empty arguments are
/// `{}`; arguments that are not a JSON object (a model's broken JSON) are kept as
/// `{"_raw": "<arguments>"}` rather than failing the whole answer.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "_raw": arguments }),
    }
}

/// The Anthropic `stop_reason` of a canonical finish reason. A stop sequence cannot be told from
/// a natural end: the canonical types (like OpenAI) report both as `stop` and the matched text is
/// not part of the answer, so `stop` is always `end_turn` and `stop_sequence` always null.
pub fn stop_reason(finish: Option<FinishReason>, called_tools: bool, refused: bool) -> &'static str {
    match finish {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        _ if refused => "refusal",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// The canonical answer as a Messages response: blocks in Anthropic's order (thinking, text,
/// tool_use); `model` is the name the client asked for. Only the first choice is used (the
/// ingress never asks for more).
pub fn from_canonical_response(resp: &ChatResponse, requested_model: &str) -> MessagesResponse {
    let mut content = Vec::new();
    let choice = resp.choices.first();
    let msg = choice.map(|c| &c.message);
    if let Some(m) = msg {
        if let Some(thinking) = m.reasoning_content.as_ref().filter(|t| !t.is_empty()) {
            let signature = m.reasoning_signature.clone().unwrap_or_default();
            content.push(ResponseBlock::Thinking { thinking: thinking.clone(), signature });
        }
        for text in [&m.content, &m.refusal].into_iter().flatten().filter(|t| !t.is_empty()) {
            content.push(ResponseBlock::Text { text: text.clone() });
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(ResponseBlock::ToolUse {
                id: call.id.clone(),
                name: call.function.name.clone(),
                input: tool_input(&call.function.arguments),
            });
        }
    }
    let called_tools = msg.is_some_and(|m| m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()));
    let refused = msg.is_some_and(|m| m.refusal.is_some());
    let finish = choice.and_then(|c| c.finish_reason);
    MessagesResponse {
        id: message_id(&resp.id),
        kind: "message".to_owned(),
        role: "assistant".to_owned(),
        content,
        model: requested_model.to_owned(),
        stop_reason: Some(stop_reason(finish, called_tools, refused).to_owned()),
        stop_sequence: None,
        usage: resp.usage.map(MessagesUsage::from).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::AssistantMessage;

    fn request(body: Value) -> MessagesRequest {
        serde_json::from_value(body).unwrap()
    }

    fn canonical(body: Value) -> Value {
        serde_json::to_value(to_canonical(request(body)).unwrap()).unwrap()
    }

    #[test]
    fn a_whole_conversation_maps_to_the_canonical_request() {
        let out = canonical(json!({
            "model": "claude-route",
            "max_tokens": 512,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "what is in these?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "look first", "signature": "sig1"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cats"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "not found", "is_error": true},
                    {"type": "text", "text": "try again"}]}
            ],
            "stop_sequences": ["END"],
            "temperature": 0.5, "top_p": 0.25, "top_k": 40,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "metadata": {"user_id": "u-7"},
            "tools": [{"name": "lookup", "description": "Look up", "cache_control": {"type": "ephemeral"},
                       "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "service_tier": "auto"
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-route",
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "what is in these?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]},
                    {"role": "assistant",
                     "content": [
                        {"type": "thinking", "thinking": "look first", "signature": "sig1"},
                        {"type": "text", "text": "Let me check."}],
                     "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "lookup", "arguments": "{\"q\":\"cats\"}"}}]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "[tool error] not found"},
                    {"role": "user", "content": "try again"}
                ],
                "temperature": 0.5, "top_p": 0.25, "max_completion_tokens": 512,
                "stop": ["END"], "user": "u-7",
                "tools": [{"type": "function", "cache_control": {"type": "ephemeral"}, "function": {
                    "name": "lookup", "description": "Look up",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
                "tool_choice": "required", "parallel_tool_calls": false,
                "top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 1024}, "service_tier": "auto"
            })
        );
    }

    #[test]
    fn plain_strings_stay_strings_and_tool_result_blocks_are_joined() {
        let out = canonical(json!({"model": "m", "max_tokens": 5, "system": "sys", "stream": true,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
            ],
            "tool_choice": {"type": "tool", "name": "f"}}));
        assert_eq!(out["messages"][0], json!({"role": "system", "content": "sys"}));
        assert_eq!(out["messages"][1], json!({"role": "user", "content": "hi"}));
        assert!(out["messages"][2].get("content").is_none(), "a tool_use-only turn has no content");
        assert_eq!(out["messages"][3], json!({"role": "tool", "tool_call_id": "t1", "content": "a\nb"}));
        assert_eq!(out["messages"].as_array().unwrap().len(), 4, "no empty user message after the tool");
        assert_eq!(out["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        assert_eq!(out["stream"], true);
        assert!(out.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn tool_choice_modes_map_to_openai_spellings() {
        for (choice, expected) in [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "any"}), json!("required")),
            (json!({"type": "none"}), json!("none")),
        ] {
            let out = canonical(json!({"model": "m", "max_tokens": 5, "tool_choice": choice,
                "messages": [{"role": "user", "content": "x"}]}));
            assert_eq!(out["tool_choice"], expected);
        }
    }

    #[test]
    fn cache_control_on_a_tool_result_moves_to_its_last_part() {
        let out = canonical(json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok",
                "cache_control": {"type": "ephemeral"}}]}]}));
        assert_eq!(
            out["messages"][0]["content"],
            json!([{"type": "text", "text": "ok", "cache_control": {"type": "ephemeral"}}])
        );
    }

    fn rejected(body: Value) -> Error {
        to_canonical(request(body)).unwrap_err()
    }

    #[test]
    fn missing_max_tokens_empty_messages_and_unsupported_blocks_are_400s() {
        let e = rejected(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!((e.status(), e.param()), (400, Some("max_tokens")));
        let e = rejected(json!({"model": "m", "max_tokens": 1, "system": "s", "messages": []}));
        assert_eq!((e.status(), e.param()), (400, Some("messages")));
        let e = rejected(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "read this"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]}]}));
        assert_eq!(e.param(), Some("messages.0.content.1"));
        assert!(e.to_string().contains("`document` content blocks"), "{e}");
        let e =
            rejected(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert!(e.to_string().contains("web_search_20250305"), "{e}");
        let e = rejected(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant",
            "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]}));
        assert_eq!(e.param(), Some("messages.0.content.0"));
    }

    fn response(message: AssistantMessage, finish: FinishReason, usage: Option<Usage>) -> ChatResponse {
        ChatResponse {
            id: "chatcmpl-1".into(),
            object: "chat.completion".into(),
            created: 0,
            model: "gpt-x".into(),
            choices: vec![crate::chat::Choice {
                index: 0,
                message,
                finish_reason: Some(finish),
                logprobs: None,
            }],
            usage,
            system_fingerprint: None,
            service_tier: None,
        }
    }

    #[test]
    fn a_canonical_answer_maps_to_blocks_stop_reason_and_usage() {
        let message = AssistantMessage {
            content: Some("Here.".into()),
            reasoning_content: Some("hmm".into()),
            reasoning_signature: Some("sig".into()),
            tool_calls: Some(vec![
                ToolCall {
                    id: "call_1".into(),
                    kind: "function".into(),
                    function: FunctionCall { name: "f".into(), arguments: "{\"a\":1}".into() },
                },
                ToolCall {
                    id: "call_2".into(),
                    kind: "function".into(),
                    function: FunctionCall { name: "g".into(), arguments: "{\"a\":".into() },
                },
            ]),
            ..AssistantMessage::default()
        };
        let usage = Usage { input: 100, cached_input: 60, cache_write: 10, output: 7, reasoning: 2 };
        let out = serde_json::to_value(from_canonical_response(
            &response(message, FinishReason::ToolCalls, Some(usage)),
            "route",
        ))
        .unwrap();
        assert_eq!(
            out,
            json!({"id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "route",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Here."},
                    {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
                    {"type": "tool_use", "id": "call_2", "name": "g", "input": {"_raw": "{\"a\":"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 30, "output_tokens": 7,
                    "cache_creation_input_tokens": 10, "cache_read_input_tokens": 60}})
        );
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        let text = AssistantMessage { content: Some("x".into()), ..AssistantMessage::default() };
        for (finish, expected) in [
            (FinishReason::Stop, "end_turn"),
            (FinishReason::Length, "max_tokens"),
            (FinishReason::ContentFilter, "refusal"),
        ] {
            let out = from_canonical_response(&response(text.clone(), finish, None), "r");
            assert_eq!(out.stop_reason.as_deref(), Some(expected));
        }
        assert_eq!(tool_input(""), json!({}));
        assert_eq!(tool_input("[1]"), json!({"_raw": "[1]"}));
    }
}
