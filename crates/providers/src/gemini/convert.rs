//! Canonical chat request → Gemini `generateContent` body, and the tool call ids that carry
//! thought signatures (the answer side is `answer`).
//!
//! Thought signatures: newer models sign their function calls (`thoughtSignature` beside the
//! `functionCall` part) and refuse the next turn of a tool loop if the signature does not come
//! back. The canonical types have no place for it, so it travels in the tool call id:
//! `call_<n>__ts__<signature>` (the base64 signature made URL-safe and unpadded, so that the id
//! stays `[A-Za-z0-9_-]`). When an assistant message with such an id comes back, the signature is
//! decoded and sent on its `functionCall` part again. Ids are unique within one answer.
//! Signatures on text parts are not carried (Gemini requires only those of function calls).
//!
//! Messages: system and developer messages, wherever they stand, become the parts of
//! `systemInstruction`; user → `user`, assistant → `model` (text, then one `functionCall` part per
//! tool call). Tool results go back as `functionResponse` parts in a `user` turn (the role the
//! Gemini API's function-calling guide uses; `function` is the legacy spelling), consecutive
//! results merged into one turn, each named after the earlier call with its id.
//!
//! Extra fields Gemini knows are placed where it expects them (snake or camel case):
//! `safetySettings`, `cachedContent`, `labels` at the top; `thinkingConfig`, `topK`,
//! `responseModalities`, `mediaResolution`, `speechConfig` in `generationConfig`. Other unknown
//! fields are dropped (Gemini refuses unknown names).

use std::collections::HashMap;

use gardefou_core::chat::{
    ChatRequest, Content as Body, ContentPart, Message, ResponseFormat, Role, ToolChoice,
};
use gardefou_core::{Error, Result};
use serde_json::{json, Map, Value};

use super::schema;
use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, GenerationConfig, Part, Tool, ToolConfig,
};

/// Separates the call number from the thought signature in a tool call id.
const SIGNATURE_MARK: &str = "__ts__";

/// Gemini's largest `logprobs` (top candidates per step).
pub(crate) const MAX_TOP_LOGPROBS: u32 = 20;

/// Request fields (OpenAI's, in `extra`) Gemini has no equivalent for: dropped and reported.
const UNSUPPORTED_EXTRA: &[&str] = &[
    "logit_bias",
    "prediction",
    "audio",
    "modalities",
    "service_tier",
    "store",
    "web_search_options",
    "verbosity",
    "functions",
    "function_call",
    "prompt_cache_key",
    "safety_identifier",
];

/// `extra` fields Gemini knows, as (client spelling, Gemini name), placed at the top level.
const TOP_LEVEL_EXTRA: &[(&str, &str)] = &[
    ("safetySettings", "safetySettings"),
    ("safety_settings", "safetySettings"),
    ("cachedContent", "cachedContent"),
    ("cached_content", "cachedContent"),
    ("labels", "labels"),
];

/// `extra` fields Gemini knows, placed in `generationConfig` (`thinkingConfig` is handled apart).
const GENERATION_EXTRA: &[(&str, &str)] = &[
    ("topK", "topK"),
    ("top_k", "topK"),
    ("responseModalities", "responseModalities"),
    ("response_modalities", "responseModalities"),
    ("mediaResolution", "mediaResolution"),
    ("media_resolution", "mediaResolution"),
    ("speechConfig", "speechConfig"),
    ("speech_config", "speechConfig"),
];

/// The request parameters Gemini cannot honour; `to_wire` drops them.
pub(crate) fn unsupported_params(req: &ChatRequest) -> Vec<&'static str> {
    let mut out = Vec::new();
    if req.parallel_tool_calls == Some(false) {
        out.push("parallel_tool_calls");
    }
    if req.top_logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
        out.push("top_logprobs");
    }
    out.extend(UNSUPPORTED_EXTRA.iter().filter(|k| req.extra.contains_key(**k)));
    out
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// The `generateContent` body for `req`. `Err(InvalidRequest)` for what cannot be expressed
/// (unknown content parts, tool call arguments that are not a JSON object, unknown tool results).
pub(crate) fn to_wire(req: &ChatRequest) -> Result<GenerateContentRequest> {
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Tool call id → function name, the latest assistant message winning.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role {
            Role::System | Role::Developer => system.push(Part::text(msg.text_content())),
            Role::User => contents.push(turn("user", user_parts(msg, i)?)),
            Role::Assistant => {
                let parts = model_parts(msg, i, &mut names)?;
                if !parts.is_empty() {
                    contents.push(turn("model", parts));
                }
            }
            Role::Tool | Role::Function => {
                let part = tool_result(msg, i, &names)?;
                match contents.last_mut() {
                    Some(c) if is_tool_results(c) => c.parts.push(part),
                    _ => contents.push(turn("user", vec![part])),
                }
            }
        }
    }
    let (tools, tool_config) = tools(req)?;
    Ok(GenerateContentRequest {
        contents,
        system_instruction: (!system.is_empty()).then_some(Content { role: None, parts: system }),
        tools,
        tool_config,
        generation_config: generation_config(req)?,
        extra: pick(&req.extra, TOP_LEVEL_EXTRA),
    })
}

fn turn(role: &str, parts: Vec<Part>) -> Content {
    Content { role: Some(role.to_owned()), parts }
}

fn is_tool_results(c: &Content) -> bool {
    c.role.as_deref() == Some("user") && c.parts.iter().all(|p| p.function_response.is_some())
}

fn user_parts(msg: &Message, i: usize) -> Result<Vec<Part>> {
    match &msg.content {
        None => Ok(Vec::new()),
        Some(Body::Text(t)) => Ok(vec![Part::text(t.clone())]),
        Some(Body::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| content_part(p, &format!("messages[{i}].content[{j}]")))
            .collect(),
    }
}

fn content_part(p: &ContentPart, param: &str) -> Result<Part> {
    let invalid = |what: &str| Error::invalid_param(format!("{param}: {what}"), param);
    match p.kind.as_str() {
        "text" => Ok(Part::text(p.text.clone().unwrap_or_default())),
        "image_url" => match &p.image_url {
            Some(img) => media(&img.url).map_err(|m| invalid(&m)),
            None => Err(invalid("an `image_url` part needs `image_url.url`")),
        },
        "input_audio" => {
            let audio = p.extra.get("input_audio");
            let field = |k: &str| audio.and_then(|a| a.get(k)).and_then(Value::as_str);
            match (field("data"), field("format")) {
                (Some(data), Some(format)) => Ok(Part {
                    inline_data: Some(Blob { mime_type: format!("audio/{format}"), data: data.to_owned() }),
                    ..Part::default()
                }),
                _ => Err(invalid("an `input_audio` part needs `data` and `format`")),
            }
        }
        "file" => match p.extra.get("file").and_then(|f| f.get("file_data")).and_then(Value::as_str) {
            Some(url) if url.starts_with("data:") => media(url).map_err(|m| invalid(&m)),
            _ => Err(invalid("Gemini takes a `file` part only as a `file_data` data: URL")),
        },
        other => Err(invalid(&format!("content part type `{other}` cannot be sent to Gemini"))),
    }
}

/// A `data:` URL as `inlineData`; an `http(s)://` or `gs://` URL as `fileData`, its MIME type
/// guessed from the path's extension (see [`mime_from_extension`]).
fn media(url: &str) -> std::result::Result<Part, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or("the data: URL has no `,`")?;
        let meta = meta.strip_suffix(";base64").ok_or("only base64 data: URLs can be sent")?;
        let mime = meta.split(';').next().unwrap_or_default();
        if mime.is_empty() {
            return Err("the data: URL has no MIME type".to_owned());
        }
        let blob = Blob { mime_type: mime.to_owned(), data: data.to_owned() };
        return Ok(Part { inline_data: Some(blob), ..Part::default() });
    }
    if ["https://", "http://", "gs://"].iter().any(|s| url.starts_with(s)) {
        let file = FileData { mime_type: mime_from_extension(url).to_owned(), file_uri: url.to_owned() };
        return Ok(Part { file_data: Some(file), ..Part::default() });
    }
    Err("the URL must be a data:, http(s):// or gs:// URL".to_owned())
}

/// The MIME type of a file URL by the extension of its path (query and fragment ignored):
/// png, jpg/jpeg, webp, gif, heic, heif, pdf, mp3, wav, mp4, txt; anything else is taken for a
/// JPEG image (the part came as an `image_url`, and Gemini needs a concrete type, not `image/*`).
pub(crate) fn mime_from_extension(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => "image/jpeg",
    }
}

fn model_parts<'a>(msg: &'a Message, i: usize, names: &mut HashMap<&'a str, &'a str>) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let text = msg.text_content();
    if !text.is_empty() {
        parts.push(Part::text(text));
    }
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        let f = &call.function;
        let args = if f.arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str::<Value>(&f.arguments).map_err(|e| {
                Error::invalid_param(
                    format!("tool call `{}` (`{}`): its arguments are not valid JSON: {e}", call.id, f.name),
                    format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )
            })?
        };
        if !args.is_object() {
            return Err(Error::invalid_param(
                format!(
                    "tool call `{}` (`{}`): Gemini needs the arguments as a JSON object",
                    call.id, f.name
                ),
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
            ));
        }
        names.insert(&call.id, &f.name);
        parts.push(Part {
            function_call: Some(FunctionCall { name: f.name.clone(), args }),
            thought_signature: signature_of(&call.id),
            ..Part::default()
        });
    }
    Ok(parts)
}

/// A `functionResponse` part: the name from the earlier call with the same id (or the message's
/// `name`); the content as the response if it is a JSON object, else `{"content": text}`.
fn tool_result(msg: &Message, i: usize, names: &HashMap<&str, &str>) -> Result<Part> {
    let by_id = msg.tool_call_id.as_deref().and_then(|id| names.get(id).copied());
    let Some(name) = by_id.or(msg.name.as_deref()) else {
        let id = msg.tool_call_id.as_deref().unwrap_or("");
        return Err(Error::invalid_param(
            format!("messages[{i}]: the tool result for `{id}` answers no earlier tool call"),
            format!("messages[{i}].tool_call_id"),
        ));
    };
    let text = msg.text_content();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(Part {
        function_response: Some(FunctionResponse { name: name.to_owned(), response }),
        ..Part::default()
    })
}

fn tools(req: &ChatRequest) -> Result<(Option<Vec<Tool>>, Option<ToolConfig>)> {
    let Some(list) = req.tools.as_ref().filter(|t| !t.is_empty()) else { return Ok((None, None)) };
    let mut declarations = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        if t.kind != "function" {
            return Err(Error::invalid_param(
                format!("tool type `{}` cannot be sent to Gemini", t.kind),
                format!("tools[{i}].type"),
            ));
        }
        declarations.push(FunctionDeclaration {
            name: t.function.name.clone(),
            description: t.function.description.clone(),
            parameters: t.function.parameters.as_ref().and_then(schema::parameters),
        });
    }
    let config = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Mode(mode)) => {
            let mode = match mode.as_str() {
                "auto" => "AUTO",
                "none" => "NONE",
                "required" => "ANY",
                other => {
                    return Err(Error::invalid_param(format!("unknown tool_choice `{other}`"), "tool_choice"))
                }
            };
            Some(FunctionCallingConfig { mode, allowed_function_names: None })
        }
        Some(ToolChoice::Named(named)) => Some(FunctionCallingConfig {
            mode: "ANY",
            allowed_function_names: Some(vec![named.function.name.clone()]),
        }),
    };
    let config = config.map(|c| ToolConfig { function_calling_config: c });
    Ok((Some(vec![Tool { function_declarations: declarations }]), config))
}

/// `reasoning_effort` → `thinkingConfig.thinkingBudget`, the budgets of Google's own
/// OpenAI-compatibility layer: none 0, minimal and low 1024, medium 8192, high 24576.
fn thinking_budget(effort: &str) -> Option<u32> {
    Some(match effort {
        "none" => 0,
        "minimal" | "low" => 1024,
        "medium" => 8192,
        "high" | "xhigh" => 24576,
        _ => return None,
    })
}

fn generation_config(req: &ChatRequest) -> Result<GenerationConfig> {
    let (mime, schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            (Some("application/json"), json_schema.schema.as_ref().map(schema::to_gemini))
        }
    };
    let explicit = req.extra.get("thinkingConfig").or_else(|| req.extra.get("thinking_config")).cloned();
    let thinking = match (explicit, req.extra.get("reasoning_effort")) {
        (Some(t), _) => Some(t),
        (None, Some(effort)) => {
            let budget = effort.as_str().and_then(thinking_budget).ok_or_else(|| {
                Error::invalid_param(
                    format!("reasoning_effort {effort} is not none, minimal, low, medium or high"),
                    "reasoning_effort",
                )
            })?;
            Some(json!({ "thinkingBudget": budget }))
        }
        (None, None) => None,
    };
    let logprobs = req.logprobs == Some(true);
    Ok(GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        max_output_tokens: req.max_output_tokens(),
        stop_sequences: req.stop_sequences().to_vec(),
        candidate_count: req.n,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_logprobs: req.logprobs,
        logprobs: req.top_logprobs.filter(|n| logprobs && (1..=MAX_TOP_LOGPROBS).contains(n)),
        response_mime_type: mime,
        response_schema: schema,
        thinking_config: thinking,
        extra: pick(&req.extra, GENERATION_EXTRA),
    })
}

/// The `extra` fields named in `table`, under their Gemini names (the first spelling wins).
fn pick(extra: &Map<String, Value>, table: &[(&str, &str)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (from, to) in table {
        if let Some(v) = extra.get(*from) {
            out.entry(*to).or_insert_with(|| v.clone());
        }
    }
    out
}

/// `call_<n>`, with `__ts__<signature>` appended when the call is signed.
pub(crate) fn call_id(n: usize, signature: Option<&str>) -> String {
    match signature.filter(|s| !s.is_empty()) {
        Some(sig) => {
            let safe: String = sig
                .chars()
                .filter(|c| *c != '=')
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            format!("call_{n}{SIGNATURE_MARK}{safe}")
        }
        None => format!("call_{n}"),
    }
}

/// The thought signature (standard padded base64) carried by a tool call id, if any.
pub(crate) fn signature_of(id: &str) -> Option<String> {
    let (_, safe) = id.split_once(SIGNATURE_MARK)?;
    if safe.is_empty() {
        return None;
    }
    let mut sig: String = safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !sig.len().is_multiple_of(4) {
        sig.push('=');
    }
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_through_tool_call_ids() {
        let sig = "CpQB+/9a";
        let id = call_id(2, Some(sig));
        assert_eq!(id, "call_2__ts__CpQB-_9a");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert_eq!(signature_of(&id).as_deref(), Some("CpQB+/9a"));
        let padded = call_id(0, Some("QUJDRA=="));
        assert_eq!(signature_of(&padded).as_deref(), Some("QUJDRA=="));
        assert_eq!(call_id(1, None), "call_1");
        assert_eq!(signature_of("call_1"), None);
        assert_eq!(signature_of("toolu_abc"), None);
    }

    #[test]
    fn mime_types_follow_the_extension() {
        assert_eq!(mime_from_extension("https://x.test/a/cat.PNG?size=2#top"), "image/png");
        assert_eq!(mime_from_extension("gs://bucket/doc.pdf"), "application/pdf");
        assert_eq!(mime_from_extension("https://x.test/image"), "image/jpeg");
        assert_eq!(mime_from_extension("https://x.test.org/"), "image/jpeg");
    }
}
