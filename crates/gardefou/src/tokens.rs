//! Token counting for providers that report no usage: OpenAI's BPE encodings (o200k for the
//! GPT-4o / o-series / GPT-4.1 / GPT-5 families, cl100k for older GPT-4, GPT-3.5 and embedding
//! models). Other families are counted with o200k as the closest public tokenizer; such counts are
//! recorded as estimated. An encoding is loaded on first use (tens of MB), so a gateway whose
//! providers all report usage never pays for it.

use gardefou_core::chat::{ChatRequest, Content};
use tiktoken_rs::CoreBPE;

/// Tokens OpenAI adds per message for the chat format (role and separators).
const PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING: u64 = 3;

fn encoding_for(model: &str) -> &'static CoreBPE {
    let m = model.to_ascii_lowercase();
    if m.starts_with("gpt-4-") || m == "gpt-4" || m.starts_with("gpt-3.5") || m.starts_with("text-embedding")
    {
        tiktoken_rs::cl100k_base_singleton()
    } else {
        tiktoken_rs::o200k_base_singleton()
    }
}

/// Tokens of a plain text for `model`'s family.
pub fn count_text(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    encoding_for(model).encode_ordinary(text).len() as u64
}

/// Input tokens of a chat request: every message's text, tool call and name, plus the format's
/// per-message overhead. Images are not counted.
pub fn count_prompt(model: &str, req: &ChatRequest) -> u64 {
    let bpe = encoding_for(model);
    let mut n = REPLY_PRIMING;
    let mut count = |s: &str| n += bpe.encode_ordinary(s).len() as u64;
    for m in &req.messages {
        match &m.content {
            Some(Content::Text(t)) => count(t),
            Some(Content::Parts(parts)) => {
                parts.iter().filter_map(|p| p.text.as_deref()).for_each(&mut count)
            }
            None => {}
        }
        if let Some(name) = &m.name {
            count(name);
        }
        for call in m.tool_calls.iter().flatten() {
            count(&call.function.name);
            count(&call.function.arguments);
        }
    }
    for tool in req.tools.iter().flatten() {
        count(&tool.function.name);
        if let Some(d) = &tool.function.description {
            count(d);
        }
        if let Some(p) = &tool.function.parameters {
            count(&p.to_string());
        }
    }
    n + PER_MESSAGE * req.messages.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardefou_core::chat::{Message, Role};

    #[test]
    fn counts_match_the_reference_encodings() {
        // "hello world" is 2 tokens in both cl100k and o200k.
        assert_eq!(count_text("gpt-4o-mini", "hello world"), 2);
        assert_eq!(count_text("gpt-3.5-turbo", "hello world"), 2);
        assert_eq!(count_text("gpt-4o", ""), 0);
    }

    #[test]
    fn prompt_count_adds_the_chat_format_overhead() {
        let req = ChatRequest {
            model: "x".into(),
            messages: vec![
                Message::text(Role::System, "hello world"),
                Message::text(Role::User, "hello world"),
            ],
            ..ChatRequest::default()
        };
        assert_eq!(count_prompt("gpt-4o", &req), 2 + 2 + 2 * PER_MESSAGE + REPLY_PRIMING);
    }
}
