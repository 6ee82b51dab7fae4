//! The outgoing JSON bodies of the OpenAI adapter: the canonical request serialized as it is,
//! with the upstream model name and the provider's quirks applied on the fly (no `Value` tree).

use std::borrow::Cow;

use gardefou_core::chat::{ChatRequest, Content, EmbeddingsRequest, Message, Role, Tool, ToolChoice};
use gardefou_core::config::Quirks;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::Value;

/// Field names the adapter writes itself; entries of `extra` with these names are skipped.
const KNOWN: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "user",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "metadata",
];

/// Request fields of other providers' formats that a strict server (OpenAI, Azure) refuses.
const FOREIGN: &[&str] = &["top_k", "thinking"];

/// Content part kinds OpenAI's Chat Completions accepts.
const OPENAI_PARTS: &[&str] = &["text", "image_url", "input_audio", "file", "refusal"];

/// What a strict server would refuse in `req`, named for the client.
pub(crate) fn foreign_params(req: &ChatRequest) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = FOREIGN.iter().copied().filter(|k| req.extra.contains_key(*k)).collect();
    let parts = req.messages.iter().filter_map(|m| match &m.content {
        Some(Content::Parts(p)) => Some(p),
        _ => None,
    });
    let mut cache_control = req.tools.iter().flatten().any(|t| t.extra.contains_key("cache_control"));
    let mut thinking = false;
    for p in parts.flatten() {
        cache_control |= p.extra.contains_key("cache_control");
        thinking |= !OPENAI_PARTS.contains(&p.kind.as_str());
    }
    if cache_control {
        out.push("cache_control");
    }
    if thinking && !out.contains(&"thinking") {
        out.push("thinking");
    }
    out
}

/// The message without parts and fields a strict server refuses, if it has any.
fn strict_message(m: &Message) -> Option<Message> {
    let Some(Content::Parts(parts)) = &m.content else { return None };
    let foreign = |p: &gardefou_core::chat::ContentPart| {
        !OPENAI_PARTS.contains(&p.kind.as_str()) || p.extra.contains_key("cache_control")
    };
    if !parts.iter().any(foreign) {
        return None;
    }
    let kept = parts
        .iter()
        .filter(|p| OPENAI_PARTS.contains(&p.kind.as_str()))
        .map(|p| {
            let mut p = p.clone();
            p.extra.remove("cache_control");
            p
        })
        .collect();
    Some(Message { content: Some(Content::Parts(kept)), ..m.clone() })
}

/// The chat body for one upstream call.
pub(crate) struct ChatBody<'a> {
    pub req: &'a ChatRequest,
    pub model: &'a str,
    pub stream: bool,
    pub quirks: &'a Quirks,
}

impl ChatBody<'_> {
    pub fn to_vec(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }
}

/// Writes fields through the provider's `drop_params` and `rename_params`, never twice the same
/// name (a renamed field wins over a pass-through field of the same name).
struct Fields<'a, M> {
    map: M,
    quirks: &'a Quirks,
    written: Vec<&'a str>,
}

impl<'a, M: SerializeMap> Fields<'a, M> {
    fn out_name(&self, name: &'a str) -> Option<&'a str> {
        if self.quirks.drop_params.iter().any(|d| d == name) {
            return None;
        }
        match self.quirks.rename_params.iter().find(|(from, _)| from == name) {
            Some((_, to)) => Some(to.as_str()),
            None => Some(name),
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &'a str, value: &T) -> Result<(), M::Error> {
        let Some(out) = self.out_name(name) else { return Ok(()) };
        if !self.quirks.rename_params.is_empty() {
            if self.written.contains(&out) {
                return Ok(());
            }
            self.written.push(out);
        }
        self.map.serialize_entry(out, value)
    }

    fn opt<T: Serialize>(&mut self, name: &'a str, value: &Option<T>) -> Result<(), M::Error> {
        match value {
            Some(v) => self.field(name, v),
            None => Ok(()),
        }
    }
}

impl<'a> Serialize for ChatBody<'a> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (req, q): (&'a ChatRequest, &'a Quirks) = (self.req, self.quirks);
        let mut f = Fields { map: serializer.serialize_map(None)?, quirks: q, written: Vec::new() };
        f.field("model", self.model)?;
        f.field(
            "messages",
            &Messages {
                messages: &req.messages,
                developer_as_system: q.developer_as_system,
                strict: q.strict_schema,
            },
        )?;
        if self.stream {
            f.field("stream", &true)?;
            if q.stream_usage {
                f.field("stream_options", &IncludeUsage { include_usage: true })?;
            }
        }
        f.opt("temperature", &req.temperature)?;
        f.opt("top_p", &req.top_p)?;
        if q.legacy_max_tokens {
            f.opt("max_tokens", &req.max_output_tokens())?;
        } else {
            f.opt("max_tokens", &req.max_tokens)?;
            f.opt("max_completion_tokens", &req.max_completion_tokens)?;
        }
        f.opt("n", &req.n)?;
        f.opt("stop", &req.stop)?;
        f.opt("seed", &req.seed)?;
        f.opt("user", &req.user)?;
        f.opt("logprobs", &req.logprobs)?;
        f.opt("top_logprobs", &req.top_logprobs)?;
        f.opt("presence_penalty", &req.presence_penalty)?;
        f.opt("frequency_penalty", &req.frequency_penalty)?;
        match &req.tools {
            Some(tools) if q.strict_schema && tools.iter().any(|t| !t.extra.is_empty()) => {
                let plain: Vec<Tool> =
                    tools.iter().map(|t| Tool { extra: Default::default(), ..t.clone() }).collect();
                f.field("tools", &plain)?;
            }
            tools => f.opt("tools", tools)?,
        }
        match (&req.tool_choice, &q.tool_choice_required) {
            (Some(ToolChoice::Mode(m)), Some(spelling)) if m == "required" => {
                f.field("tool_choice", spelling.as_str())?
            }
            (choice, _) => f.opt("tool_choice", choice)?,
        }
        f.opt("parallel_tool_calls", &req.parallel_tool_calls)?;
        f.opt("response_format", &req.response_format)?;
        for (name, value) in &req.extra {
            let foreign = q.strict_schema && FOREIGN.contains(&name.as_str());
            if !foreign && !KNOWN.contains(&name.as_str()) {
                f.field(name, value)?;
            }
        }
        f.map.end()
    }
}

#[derive(Serialize)]
struct IncludeUsage {
    include_usage: bool,
}

struct Messages<'a> {
    messages: &'a [Message],
    developer_as_system: bool,
    strict: bool,
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.messages.len()))?;
        for m in self.messages {
            let mut m = match self.strict.then(|| strict_message(m)).flatten() {
                Some(clean) => Cow::Owned(clean),
                None => Cow::Borrowed(m),
            };
            if self.developer_as_system && m.role == Role::Developer {
                m = Cow::Owned(Message { role: Role::System, ..m.into_owned() });
            }
            seq.serialize_element(&*m)?;
        }
        seq.end()
    }
}

/// The embeddings body: the client's request with the upstream model name.
pub(crate) struct EmbeddingsBody<'a> {
    pub req: &'a EmbeddingsRequest,
    pub model: &'a str,
}

impl Serialize for EmbeddingsBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let req = self.req;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("input", &req.input)?;
        if let Some(v) = &req.encoding_format {
            map.serialize_entry("encoding_format", v)?;
        }
        if let Some(v) = &req.dimensions {
            map.serialize_entry("dimensions", v)?;
        }
        if let Some(v) = &req.user {
            map.serialize_entry("user", v)?;
        }
        for (name, value) in &req.extra {
            if !matches!(name.as_str(), "model" | "input" | "encoding_format" | "dimensions" | "user") {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// An error object sent where an answer was expected: `{"error":{"message","type","code"}}`.
pub(crate) fn error_payload(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    if obj.contains_key("choices") {
        return None;
    }
    obj.get("error").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(req: Value, stream: bool, quirks: &Quirks) -> Value {
        let req: ChatRequest = serde_json::from_value(req).unwrap();
        let bytes = ChatBody { req: &req, model: "up", stream, quirks }.to_vec().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn openai_body_is_the_request_with_the_upstream_model() {
        let req = json!({"model": "alias", "messages": [{"role": "developer", "content": "be brief"}],
            "stream": true, "stream_options": {"include_usage": false}, "max_tokens": 5,
            "max_completion_tokens": 9, "metadata": {"a": "b"}, "reasoning_effort": "low"});
        let out = body(req.clone(), false, &Quirks::openai());
        assert_eq!(
            out,
            json!({"model": "up", "messages": [{"role": "developer", "content": "be brief"}],
                "max_tokens": 5, "max_completion_tokens": 9, "reasoning_effort": "low"})
        );
        let out = body(req, true, &Quirks::openai());
        assert_eq!(out["stream"], true);
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn a_strict_server_gets_no_fields_of_other_formats() {
        let req = json!({"model": "m", "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "hi"}]}],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}]});
        let parsed: ChatRequest = serde_json::from_value(req.clone()).unwrap();
        assert_eq!(foreign_params(&parsed), ["top_k", "thinking", "cache_control"]);
        let out = body(req.clone(), false, &Quirks::openai());
        assert_eq!(
            out,
            json!({"model": "up", "messages": [
                {"role": "system", "content": [{"type": "text", "text": "rules"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}],
                "tools": [{"type": "function", "function": {"name": "f"}}]})
        );
        // a self-hosted server keeps them (vLLM knows top_k)
        let vllm = body(req, false, &Quirks::preset("vllm").unwrap());
        assert_eq!(vllm["top_k"], 5);
    }

    #[test]
    fn quirks_rewrite_fields_and_messages() {
        let mistral = Quirks::preset("mistral").unwrap();
        let req = json!({"model": "m", "messages": [{"role": "developer", "content": "x"}],
            "stream_options": {"include_usage": true}, "max_completion_tokens": 9, "seed": 4,
            "logit_bias": {"1": 2}, "tool_choice": "required", "random_seed": 1});
        let out = body(req, false, &mistral);
        assert_eq!(
            out,
            json!({"model": "up", "messages": [{"role": "system", "content": "x"}], "max_tokens": 9,
                "random_seed": 4, "tool_choice": "any"})
        );
        let tgi = Quirks::preset("tgi").unwrap();
        let out = body(json!({"model": "m", "messages": []}), true, &tgi);
        assert_eq!(out, json!({"model": "up", "messages": [], "stream": true}));
    }
}
