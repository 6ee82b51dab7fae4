//! A Gemini answer in canonical form, and the pieces a streamed answer needs too: tool calls
//! from `functionCall` parts, finish reasons, usage and logprobs.
//!
//! Finish reasons: STOP → stop (tool_calls when the candidate called functions), MAX_TOKENS →
//! length; SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, LANGUAGE and the IMAGE_*
//! blocks → content_filter, with `refusal` = `blocked by Gemini safety: <REASON>` followed by the
//! safety ratings that were blocked or rated MEDIUM/HIGH; a blocked prompt
//! (`promptFeedback.blockReason`, no candidates) → one choice like that. MALFORMED_FUNCTION_CALL,
//! UNEXPECTED_TOOL_CALL and TOO_MANY_TOOL_CALLS → `Err(BadResponse)`, which a retry may cure.
//!
//! Usage: promptTokenCount → input, cachedContentTokenCount → cached_input,
//! candidatesTokenCount + thoughtsTokenCount → output, thoughtsTokenCount → reasoning.

use gardefou_core::chat::{
    AssistantMessage, ChatResponse, Choice, FinishReason, FunctionCall as CallText, Role, ToolCall, Usage,
};
use gardefou_core::{Error, Result};
use serde_json::{json, Value};

use super::convert::call_id;
use super::wire::{
    Candidate, FunctionCall, GenerateContentResponse, LogprobsResult, SafetyRating, UsageMetadata,
};

/// A whole answer in canonical form.
pub(crate) fn from_wire(
    resp: GenerateContentResponse,
    upstream: &str,
    provider: &str,
) -> Result<ChatResponse> {
    let usage = resp.usage_metadata.as_ref().map(usage);
    let id = resp.response_id.clone().unwrap_or_else(new_id);
    let model = resp.model_version.clone().unwrap_or_else(|| upstream.to_owned());
    let mut choices = Vec::with_capacity(resp.candidates.len().max(1));
    if resp.candidates.is_empty() {
        let Some(block) = prompt_blocked(&resp) else {
            return Err(Error::BadResponse {
                provider: provider.to_owned(),
                message: "the answer has no candidates".to_owned(),
            });
        };
        choices.push(Choice {
            index: 0,
            message: AssistantMessage {
                role: Role::Assistant,
                refusal: Some(block),
                ..AssistantMessage::default()
            },
            finish_reason: Some(FinishReason::ContentFilter),
            logprobs: None,
        });
    }
    for (pos, cand) in resp.candidates.into_iter().enumerate() {
        choices.push(choice(cand, pos, provider)?);
    }
    Ok(ChatResponse {
        id,
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model,
        choices,
        usage,
        system_fingerprint: None,
        service_tier: None,
    })
}

fn choice(cand: Candidate, pos: usize, provider: &str) -> Result<Choice> {
    let index = cand.index.unwrap_or(pos as u32);
    let (mut text, mut thoughts, mut calls, mut has_text) = (String::new(), String::new(), Vec::new(), false);
    for part in cand.content.map(|c| c.parts).unwrap_or_default() {
        if let Some(call) = part.function_call {
            calls.push(tool_call(calls.len(), call, part.thought_signature.as_deref()));
        } else if let Some(t) = part.text {
            if part.thought == Some(true) {
                thoughts.push_str(&t);
            } else {
                text.push_str(&t);
                has_text = true;
            }
        }
    }
    let end = match cand.finish_reason.as_deref() {
        Some(reason) => Some(finish(
            reason,
            !calls.is_empty(),
            &cand.safety_ratings,
            cand.finish_message.as_deref(),
            provider,
        )?),
        None => None,
    };
    let refusal = end.as_ref().and_then(|e| e.refusal.clone());
    let content = (has_text || (calls.is_empty() && refusal.is_none())).then_some(text);
    Ok(Choice {
        index,
        message: AssistantMessage {
            role: Role::Assistant,
            content,
            tool_calls: (!calls.is_empty()).then_some(calls),
            refusal,
            reasoning_content: (!thoughts.is_empty()).then_some(thoughts),
            ..AssistantMessage::default()
        },
        finish_reason: end.map(|e| e.reason),
        logprobs: cand.logprobs_result.as_ref().map(logprobs),
    })
}

/// A function call of the answer as the `n`-th tool call (0-based, per candidate).
pub(crate) fn tool_call(n: usize, call: FunctionCall, signature: Option<&str>) -> ToolCall {
    let arguments = match call.args {
        Value::Null => "{}".to_owned(),
        args => args.to_string(),
    };
    ToolCall {
        id: call_id(n, signature),
        kind: "function".to_owned(),
        function: CallText { name: call.name, arguments },
    }
}

/// How a candidate ended.
pub(crate) struct Finish {
    pub reason: FinishReason,
    /// Why the answer was blocked, for the client (`refusal`).
    pub refusal: Option<String>,
}

/// Maps `finishReason`: STOP → stop (tool_calls when the candidate called functions), MAX_TOKENS
/// → length, the blocking reasons → content_filter with a refusal naming the reason, a malformed
/// or unexpected function call → `Err(BadResponse)` (a retry may do better), anything else → stop.
pub(crate) fn finish(
    reason: &str,
    has_calls: bool,
    ratings: &[SafetyRating],
    message: Option<&str>,
    provider: &str,
) -> Result<Finish> {
    let done = |reason| Ok(Finish { reason, refusal: None });
    match reason {
        "MAX_TOKENS" => done(FinishReason::Length),
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "LANGUAGE"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => {
            Ok(Finish { reason: FinishReason::ContentFilter, refusal: Some(blocked(reason, ratings)) })
        }
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" => {
            Err(Error::BadResponse {
                provider: provider.to_owned(),
                message: match message {
                    Some(m) => format!("the model ended with {reason}: {m}"),
                    None => format!("the model ended with {reason}"),
                },
            })
        }
        _ if has_calls => done(FinishReason::ToolCalls),
        _ => done(FinishReason::Stop),
    }
}

/// The refusal of a blocked prompt (`promptFeedback.blockReason`), if it was blocked.
pub(crate) fn prompt_blocked(resp: &GenerateContentResponse) -> Option<String> {
    let feedback = resp.prompt_feedback.as_ref()?;
    let reason = feedback.block_reason.as_deref()?;
    Some(blocked(reason, &feedback.safety_ratings))
}

/// `blocked by Gemini safety: SAFETY (HARM_CATEGORY_HARASSMENT: HIGH)`: the reason, then the
/// ratings that were blocked or rated MEDIUM or HIGH.
fn blocked(reason: &str, ratings: &[SafetyRating]) -> String {
    let flagged: Vec<String> = ratings
        .iter()
        .filter(|r| r.blocked == Some(true) || matches!(r.probability.as_deref(), Some("MEDIUM" | "HIGH")))
        .map(|r| format!("{}: {}", r.category, r.probability.as_deref().unwrap_or("BLOCKED")))
        .collect();
    if flagged.is_empty() {
        format!("blocked by Gemini safety: {reason}")
    } else {
        format!("blocked by Gemini safety: {reason} ({})", flagged.join(", "))
    }
}

pub(crate) fn usage(u: &UsageMetadata) -> Usage {
    Usage {
        input: u.prompt_token_count,
        cached_input: u.cached_content_token_count,
        cache_write: 0,
        output: u.candidates_token_count + u.thoughts_token_count,
        reasoning: u.thoughts_token_count,
    }
}

/// `logprobsResult` in OpenAI's `logprobs` shape (`{"content":[{token, logprob, bytes,
/// top_logprobs}]}`).
pub(crate) fn logprobs(r: &LogprobsResult) -> Value {
    let entry =
        |token: &str, logprob: f64| json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()});
    let content: Vec<Value> = r
        .chosen_candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut e = entry(&c.token, c.log_probability);
            let top: Vec<Value> = r
                .top_candidates
                .get(i)
                .map(|t| t.candidates.iter().map(|t| entry(&t.token, t.log_probability)).collect())
                .unwrap_or_default();
            e["top_logprobs"] = Value::Array(top);
            e
        })
        .collect();
    json!({ "content": content, "refusal": null })
}

/// An answer id when Gemini sent no `responseId`.
pub(crate) fn new_id() -> String {
    format!("chatcmpl-gemini-{:016x}", rand::random::<u64>())
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_names_the_reason_and_the_flagged_ratings() {
        let rating = |category: &str, probability: &str, blocked| SafetyRating {
            category: category.into(),
            probability: Some(probability.into()),
            blocked,
        };
        assert_eq!(blocked("RECITATION", &[]), "blocked by Gemini safety: RECITATION");
        let ratings = [
            rating("HARM_CATEGORY_HATE_SPEECH", "LOW", None),
            rating("HARM_CATEGORY_HARASSMENT", "MEDIUM", None),
            rating("HARM_CATEGORY_SEXUALLY_EXPLICIT", "LOW", Some(true)),
        ];
        assert_eq!(
            blocked("SAFETY", &ratings),
            "blocked by Gemini safety: SAFETY (HARM_CATEGORY_HARASSMENT: MEDIUM, HARM_CATEGORY_SEXUALLY_EXPLICIT: LOW)"
        );
    }

    #[test]
    fn malformed_function_calls_are_bad_responses() {
        let e = finish("MALFORMED_FUNCTION_CALL", false, &[], Some("bad args"), "g").err();
        assert_eq!(
            e,
            Some(Error::BadResponse {
                provider: "g".into(),
                message: "the model ended with MALFORMED_FUNCTION_CALL: bad args".into()
            })
        );
        assert!(matches!(
            finish("OTHER", true, &[], None, "g"),
            Ok(Finish { reason: FinishReason::ToolCalls, .. })
        ));
    }
}
