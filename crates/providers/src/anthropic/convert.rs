//! Canonical (OpenAI-shaped) request → Messages API body, and Messages API answer → canonical
//! response; plus the small rules both directions share (finish reasons, usage, error types,
//! which sampling parameters an `anthropic-version` accepts).

use gardefou_core::chat::{
    AssistantMessage, ChatRequest, ChatResponse, Choice, Content, ContentPart, FinishReason, FunctionCall,
    ImageUrl, Message, ResponseFormat, Role, ToolCall, ToolChoice as CanonicalChoice, Usage,
};
use gardefou_core::{Error, Result};
use serde_json::{json, Map, Value};

use super::wire::{
    Block, ImageSource, MessagesRequest, MessagesResponse, ResponseBlock, System, ToolChoice, ToolDef, Turn,
    WireUsage,
};

/// `max_tokens` is required by the Messages API; sent when the client set no output limit.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The tool that emulates `response_format` json_schema/json_object.
pub const JSON_TOOL: &str = "json_answer";

/// The first `anthropic-version` that rejects `temperature`, `top_p` and `top_k` (with a 400,
/// even at their default values).
pub const NO_SAMPLING_SINCE: &str = "2026-10-21";

/// Sampling parameters an `anthropic-version` rejects. Versions are ISO dates: `2023-06-01` and
/// older accept all; `2026-10-21` and later reject `temperature`, `top_p` and `top_k`. A version
/// that is not a date is taken to be a newer one (sending a rejected field fails the call, leaving
/// one out only loses a hint).
pub fn forbidden_sampling(version: &str) -> &'static [&'static str] {
    let is_date = version.len() == 10
        && version
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if is_date && version < NO_SAMPLING_SINCE {
        &[]
    } else {
        &["temperature", "top_p", "top_k"]
    }
}

/// `extra` fields forwarded as they are (besides `metadata`, merged with `user`).
const PASSED: &[&str] = &["thinking", "top_k", "service_tier"];
/// The values Anthropic knows for `service_tier` (OpenAI's `default`, `flex`, … are not).
const SERVICE_TIERS: &[&str] = &["auto", "standard_only"];

/// Request parameters that are not sent upstream under `version`.
pub fn unsupported_params(req: &ChatRequest, version: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if req.n.is_some_and(|n| n > 1) {
        out.push("n");
    }
    if req.logprobs == Some(true) {
        out.push("logprobs");
    }
    let present = [
        ("top_logprobs", req.top_logprobs.is_some()),
        ("seed", req.seed.is_some()),
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("logit_bias", req.extra.contains_key("logit_bias")),
    ];
    out.extend(present.iter().filter(|(_, p)| *p).map(|(name, _)| *name));
    for &name in forbidden_sampling(version) {
        let set = match name {
            "temperature" => req.temperature.is_some(),
            "top_p" => req.top_p.is_some(),
            _ => req.extra.contains_key(name),
        };
        if set {
            out.push(name);
        }
    }
    if req.extra.get("service_tier").is_some_and(|t| !is_service_tier(t)) {
        out.push("service_tier");
    }
    out
}

fn is_service_tier(v: &Value) -> bool {
    v.as_str().is_some_and(|t| SERVICE_TIERS.contains(&t))
}

/// Builds the Messages API body for `model` (the upstream name) under `version`.
pub fn to_wire<'a>(
    req: &'a ChatRequest,
    model: &'a str,
    version: &str,
    stream: bool,
) -> Result<MessagesRequest<'a>> {
    let forbidden = forbidden_sampling(version);
    let allowed = |name: &str| !forbidden.contains(&name);
    let (system, messages) = turns(&req.messages)?;

    let mut tools = Vec::new();
    for t in req.tools.iter().flatten() {
        if t.kind != "function" {
            return Err(Error::invalid_param(
                format!("tools of type `{}` are not supported", t.kind),
                "tools",
            ));
        }
        tools.push(ToolDef {
            name: t.function.name.clone(),
            description: t.function.description.clone(),
            input_schema: t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
            extra: t.extra.clone(),
        });
    }
    let client_tools = !tools.is_empty();
    let mut tool_choice = match &req.tool_choice {
        _ if !client_tools => None,
        None => None,
        Some(CanonicalChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => choice("auto", None),
            "required" => choice("any", None),
            "none" => choice("none", None),
            other => {
                return Err(Error::invalid_param(format!("unknown tool_choice `{other}`"), "tool_choice"))
            }
        }),
        Some(CanonicalChoice::Named(named)) => Some(choice("tool", Some(named.function.name.clone()))),
    };
    if let Some(tool) = json_tool(req) {
        tools.push(tool);
        // Forced only when the client has no tools of its own (and no extended thinking, which
        // does not allow a forced tool); otherwise the tool is offered beside the others.
        if !client_tools && !thinks(req) {
            tool_choice = Some(choice("tool", Some(JSON_TOOL.to_owned())));
        }
    }
    if req.parallel_tool_calls == Some(false) && client_tools {
        let c = tool_choice.get_or_insert_with(|| choice("auto", None));
        c.disable_parallel_tool_use = c.kind != "none";
    }

    let mut metadata = match req.extra.get("metadata") {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    };
    if let Some(user) = &req.user {
        metadata.get_or_insert_with(Map::new).entry("user_id").or_insert_with(|| Value::String(user.clone()));
    }
    let extra = req
        .extra
        .iter()
        .filter(|(k, v)| {
            PASSED.contains(&k.as_str()) && allowed(k) && (*k != "service_tier" || is_service_tier(v))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    Ok(MessagesRequest {
        model,
        max_tokens: req.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages,
        temperature: req.temperature.filter(|_| allowed("temperature")),
        top_p: req.top_p.filter(|_| allowed("top_p")),
        stop_sequences: req.stop_sequences(),
        stream,
        tools,
        tool_choice,
        metadata,
        extra,
    })
}

fn choice(kind: &'static str, name: Option<String>) -> ToolChoice {
    ToolChoice { kind, name, disable_parallel_tool_use: false }
}

/// Whether the request enables extended thinking.
fn thinks(req: &ChatRequest) -> bool {
    req.extra
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled")
}

/// The forced tool standing for `response_format` json_schema / json_object.
fn json_tool(req: &ChatRequest) -> Option<ToolDef> {
    let (schema, description) = match &req.response_format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            (json_schema.schema.clone(), json_schema.description.clone())
        }
        Some(ResponseFormat::JsonObject) => (None, None),
        Some(ResponseFormat::Text) | None => return None,
    };
    Some(ToolDef {
        name: JSON_TOOL.to_owned(),
        description: Some(description.unwrap_or_else(|| "Give the answer as this tool's input.".to_owned())),
        input_schema: schema.unwrap_or_else(|| json!({"type": "object"})),
        extra: Map::new(),
    })
}

/// Splits the canonical messages into the system prompt and alternating user/assistant turns.
fn turns(messages: &[Message]) -> Result<(Option<System>, Vec<Turn>)> {
    let mut system: Vec<Block> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let param = || format!("messages[{i}]");
        let (role, blocks) = match m.role {
            Role::System | Role::Developer => {
                system.extend(system_blocks(m.content.as_ref()).map_err(|e| at(e, param()))?);
                continue;
            }
            Role::User => ("user", blocks(m.content.as_ref(), false).map_err(|e| at(e, param()))?),
            Role::Assistant => ("assistant", assistant_blocks(m).map_err(|e| at(e, param()))?),
            Role::Tool => {
                let Some(id) = &m.tool_call_id else {
                    return Err(Error::invalid_param("a tool message needs a tool_call_id", param()));
                };
                let content = blocks(m.content.as_ref(), true).map_err(|e| at(e, param()))?;
                ("user", vec![Block::ToolResult { tool_use_id: id.clone(), content }])
            }
            Role::Function => {
                return Err(Error::invalid_param(
                    "`function` messages are not supported; use `tool` messages",
                    param(),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn { role, content: blocks }),
        }
    }
    let system = if system.is_empty() {
        None
    } else if system.iter().all(|b| matches!(b, Block::Text { extra, .. } if extra.is_empty())) {
        let texts: Vec<&str> = system
            .iter()
            .filter_map(|b| if let Block::Text { text, .. } = b { Some(text.as_str()) } else { None })
            .collect();
        Some(System::Text(texts.join("\n")))
    } else {
        Some(System::Blocks(system))
    };
    Ok((system, turns))
}

/// Names the message in an invalid-request error.
fn at(e: Error, param: String) -> Error {
    match e {
        Error::InvalidRequest { message, param: None } => {
            Error::InvalidRequest { message, param: Some(param) }
        }
        other => other,
    }
}

fn system_blocks(content: Option<&Content>) -> Result<Vec<Block>> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(vec![Block::text(t.clone())]),
        Some(Content::Parts(parts)) => parts,
    };
    parts
        .iter()
        .map(|p| match p.kind.as_str() {
            "text" => Ok(Block::Text { text: p.text.clone().unwrap_or_default(), extra: p.extra.clone() }),
            other => Err(Error::invalid(format!("a system message may only hold text, not `{other}`"))),
        })
        .collect()
}

/// Content blocks of a user or tool message (`skip_empty`: an empty text adds no block).
fn blocks(content: Option<&Content>, skip_empty: bool) -> Result<Vec<Block>> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(t)) if t.is_empty() && skip_empty => Ok(Vec::new()),
        Some(Content::Text(t)) => Ok(vec![Block::text(t.clone())]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter(|p| !(skip_empty && p.kind == "text" && p.text.as_deref().unwrap_or("").is_empty()))
            .map(part_block)
            .collect(),
    }
}

fn part_block(part: &ContentPart) -> Result<Block> {
    match part.kind.as_str() {
        "text" => Ok(Block::Text { text: part.text.clone().unwrap_or_default(), extra: part.extra.clone() }),
        "image_url" => match &part.image_url {
            Some(image) => Ok(Block::Image { source: image_source(image)?, extra: part.extra.clone() }),
            None => Err(Error::invalid("an image_url part needs an image_url")),
        },
        "input_audio" => Err(Error::invalid("Anthropic's Messages API does not accept audio input")),
        // `thinking`, `redacted_thinking` and Anthropic-native blocks (`document`, …) as sent.
        kind => {
            let mut raw = Map::with_capacity(part.extra.len() + 1);
            raw.insert("type".to_owned(), Value::String(kind.to_owned()));
            raw.extend(part.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Block::Raw(raw))
        }
    }
}

/// `data:<media type>;base64,<data>` → base64 source; `http(s)://…` → URL source.
fn image_source(image: &ImageUrl) -> Result<ImageSource> {
    let url = image.url.as_str();
    if let Some(rest) = url.strip_prefix("data:") {
        let parsed = rest.split_once(',').and_then(|(head, data)| {
            head.strip_suffix(";base64").map(|media| (media.to_owned(), data.to_owned()))
        });
        return match parsed {
            Some((media_type, data)) if !media_type.is_empty() => {
                Ok(ImageSource::Base64 { media_type, data })
            }
            _ => Err(Error::invalid("an image data URL must be `data:<media type>;base64,<data>`")),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url { url: url.to_owned() });
    }
    Err(Error::invalid("an image URL must be an http(s) or a base64 data URL"))
}

/// An assistant turn: its parts (empty texts skipped, thinking parts passed back), then one
/// `tool_use` block per tool call.
fn assistant_blocks(m: &Message) -> Result<Vec<Block>> {
    let mut out = blocks(m.content.as_ref(), true)?;
    for call in m.tool_calls.iter().flatten() {
        let args = call.function.arguments.trim();
        let input = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                Error::invalid(format!(
                    "the arguments of tool call `{}` ({}) are not valid JSON: {e}",
                    call.id, call.function.name
                ))
            })?
        };
        out.push(Block::ToolUse { id: call.id.clone(), name: call.function.name.clone(), input });
    }
    Ok(out)
}

/// The canonical response for a whole answer. `json_mode`: the request asked for JSON, so the
/// input of a `json_answer` tool call is the answer's content.
pub fn from_wire(resp: MessagesResponse, json_mode: bool, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut reasoning: Option<String> = None;
    let mut signature = None;
    for block in resp.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { name, input, .. } if json_mode && name == JSON_TOOL => {
                text.push_str(&input.to_string())
            }
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments: input.to_string() },
            }),
            ResponseBlock::Thinking { thinking, signature: s } => {
                reasoning.get_or_insert_with(String::new).push_str(&thinking);
                if s.is_some() {
                    signature = s;
                }
            }
            ResponseBlock::Other => {}
        }
    }
    let finish = resp.stop_reason.as_deref().map(|r| finish_reason(r, !tool_calls.is_empty()));
    let content = if text.is_empty() && !tool_calls.is_empty() { None } else { Some(text) };
    ChatResponse {
        id: resp.id,
        object: "chat.completion".to_owned(),
        created,
        model: resp.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: Role::Assistant,
                content,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                refusal: None,
                reasoning_content: reasoning,
                reasoning_signature: signature,
                annotations: None,
            },
            finish_reason: finish,
            logprobs: None,
        }],
        usage: Some(usage(&resp.usage)),
        system_fingerprint: None,
        service_tier: None,
    }
}

/// `stop_reason` → finish reason. `tool_use` without a real tool call (only the JSON-mode tool)
/// is a plain stop; unknown reasons count as a stop.
pub fn finish_reason(stop_reason: &str, has_tool_calls: bool) -> FinishReason {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" if has_tool_calls => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Canonical usage: input counts cache reads and writes too.
pub fn usage(w: &WireUsage) -> Usage {
    let read = w.cache_read_input_tokens.unwrap_or(0);
    let write = w.cache_creation_input_tokens.unwrap_or(0);
    Usage {
        input: w.input_tokens.unwrap_or(0) + read + write,
        cached_input: read,
        cache_write: write,
        output: w.output_tokens.unwrap_or(0),
        reasoning: 0,
    }
}

/// Maps an Anthropic error `type` (from a 200 body or a stream `error` event).
pub fn api_error(provider: &str, kind: &str, message: &str) -> Error {
    let provider = provider.to_owned();
    let message =
        if message.is_empty() { format!("the upstream reported {kind}") } else { message.to_owned() };
    let rejected =
        |status| Error::ProviderRejected { provider: provider.clone(), status, message: message.clone() };
    match kind {
        "rate_limit_error" => Error::RateLimited { provider, message, retry_after: None },
        "overloaded_error" => Error::ProviderServer { provider, status: 529, message, retry_after: None },
        "authentication_error" => Error::ProviderAuth { provider, status: 401 },
        "permission_error" => Error::ProviderAuth { provider, status: 403 },
        "invalid_request_error" => rejected(400),
        "not_found_error" => rejected(404),
        "request_too_large" => rejected(413),
        "timeout_error" => Error::Timeout { provider, phase: "response" },
        _ => Error::ProviderServer { provider, status: 500, message, retry_after: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    fn body(v: Value, version: &str) -> Value {
        let r = req(v);
        serde_json::to_value(to_wire(&r, "claude", version, false).unwrap()).unwrap()
    }

    #[test]
    fn sampling_rule_follows_the_version() {
        assert_eq!(forbidden_sampling("2023-06-01"), &[] as &[&str]);
        assert_eq!(forbidden_sampling("2023-01-01"), &[] as &[&str]);
        assert_eq!(forbidden_sampling("2026-10-21"), ["temperature", "top_p", "top_k"]);
        assert_eq!(forbidden_sampling("2027-01-01"), ["temperature", "top_p", "top_k"]);
        assert_eq!(forbidden_sampling("latest"), ["temperature", "top_p", "top_k"]);
    }

    #[test]
    fn developer_and_system_go_to_the_top_and_turns_merge() {
        let out = body(
            json!({"model": "m", "messages": [
                {"role": "system", "content": "A"}, {"role": "user", "content": "1"},
                {"role": "developer", "content": "B"}, {"role": "user", "content": "2"}]}),
            "2023-06-01",
        );
        assert_eq!(
            out,
            json!({"model": "claude", "max_tokens": DEFAULT_MAX_TOKENS, "system": "A\nB",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "1"}, {"type": "text", "text": "2"}]}]})
        );
    }

    #[test]
    fn bad_inputs_are_invalid_requests_naming_the_message() {
        let r = req(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}));
        let e = to_wire(&r, "c", "2023-06-01", false).unwrap_err();
        assert_eq!(e.param(), Some("messages[0]"));
        let r = req(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}));
        assert!(matches!(to_wire(&r, "c", "2023-06-01", false), Err(Error::InvalidRequest { .. })));
    }

    #[test]
    fn error_types_map_onto_errors() {
        assert!(matches!(api_error("p", "overloaded_error", "o"), Error::ProviderServer { status: 529, .. }));
        assert!(matches!(api_error("p", "rate_limit_error", "r"), Error::RateLimited { .. }));
        assert!(matches!(
            api_error("p", "invalid_request_error", "i"),
            Error::ProviderRejected { status: 400, .. }
        ));
        assert!(matches!(api_error("p", "api_error", ""), Error::ProviderServer { status: 500, .. }));
    }
}
