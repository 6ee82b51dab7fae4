//! The streamed form of a planned answer, chunked the way OpenAI streams: a role chunk, the text a
//! word or two at a time, tool calls with their arguments in fragments, the finish reason, and a
//! final usage chunk; paced by `chunk_delay`, and broken off on demand.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream;
use gardefou_core::chat::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, Role, ToolCall, ToolCallDelta, Usage,
};
use gardefou_core::{Error, Result};

use super::answer::Answer;
use crate::ChunkStream;

/// Words per streamed text chunk.
const WORDS_PER_CHUNK: usize = 2;
/// Longest fragment of streamed tool-call arguments, in bytes.
const ARGUMENT_FRAGMENT: usize = 12;

/// What every chunk of one answer shares.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Meta {
    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            system_fingerprint: None,
            service_tier: None,
        }
    }

    fn delta(&self, index: u32, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        self.chunk(vec![ChunkChoice { index, delta, finish_reason, logprobs: None }], None)
    }
}

/// Every chunk of `answer`, choice after choice, the usage chunk last.
pub(super) fn chunks(answer: &Answer, meta: &Meta) -> Vec<ChatChunk> {
    let mut out = Vec::new();
    for (reply, index) in answer.replies.iter().zip(0..) {
        let role = Delta { role: Some(Role::Assistant), content: Some(String::new()), ..Delta::default() };
        out.push(meta.delta(index, role, None));
        for piece in text_pieces(reply.content.as_deref().unwrap_or_default()) {
            let delta = Delta { content: Some(piece.to_owned()), ..Delta::default() };
            out.push(meta.delta(index, delta, None));
        }
        for (call, call_index) in reply.tool_calls.iter().zip(0..) {
            tool_call_chunks(call, call_index, |d| out.push(meta.delta(index, d, None)));
        }
        out.push(meta.delta(index, Delta::default(), Some(reply.finish)));
    }
    out.push(meta.chunk(Vec::new(), Some(answer.usage)));
    out
}

/// A tool call as OpenAI streams it: a first delta with its id, type, name and empty arguments,
/// then the arguments in at least two fragments.
fn tool_call_chunks(call: &ToolCall, index: u32, mut emit: impl FnMut(Delta)) {
    let delta = |call_delta: ToolCallDelta| Delta { tool_calls: Some(vec![call_delta]), ..Delta::default() };
    emit(delta(ToolCallDelta {
        index,
        id: Some(call.id.clone()),
        kind: Some("function".to_owned()),
        function: Some(FunctionCallDelta {
            name: Some(call.function.name.clone()),
            arguments: Some(String::new()),
        }),
    }));
    let args = call.function.arguments.as_str();
    let size = ARGUMENT_FRAGMENT.min(args.len().div_ceil(2)).max(1);
    for fragment in fragments(args, size) {
        emit(delta(ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: Some(FunctionCallDelta { name: None, arguments: Some(fragment.to_owned()) }),
        }));
    }
}

/// `text` in pieces of `WORDS_PER_CHUNK` words; each piece keeps the whitespace after its words,
/// so the pieces concatenate to exactly `text`.
pub(super) fn text_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut words = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            in_word = true;
            if words == WORDS_PER_CHUNK {
                pieces.push(&text[start..i]);
                start = i;
                words = 0;
            }
            words += 1;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// `text` in fragments of at most `size` bytes (longer only to keep a character whole).
fn fragments(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// Whether a chunk carries answer content (text or tool-call parts).
fn has_content(chunk: &ChatChunk) -> bool {
    chunk
        .choices
        .iter()
        .any(|c| c.delta.content.as_deref().is_some_and(|t| !t.is_empty()) || c.delta.tool_calls.is_some())
}

/// The chunks of a stream that breaks off: the opening chunks and `content_chunks` content
/// chunks, never the finish or usage chunks.
pub(super) fn broken(all: Vec<ChatChunk>, content_chunks: u32) -> Vec<ChatChunk> {
    let mut seen = 0;
    let mut kept = Vec::new();
    for chunk in all {
        let finishing = chunk.choices.is_empty() || chunk.choices.iter().any(|c| c.finish_reason.is_some());
        if finishing {
            break;
        }
        if has_content(&chunk) {
            if seen == content_chunks {
                break;
            }
            seen += 1;
        }
        kept.push(chunk);
    }
    kept
}

/// Streams `items`, waiting `delay` between two of them.
pub(super) fn paced(items: Vec<Result<ChatChunk>>, delay: Duration) -> ChunkStream {
    let state = (VecDeque::from(items), true);
    Box::pin(stream::unfold(state, move |(mut items, first)| async move {
        let item = items.pop_front()?;
        if !first && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((item, (items, false)))
    }))
}

/// The error that ends a stream the mock breaks off.
pub(super) fn closed_early(provider: &str) -> Error {
    Error::BadResponse {
        provider: provider.to_owned(),
        message: "connection closed before the end of the stream".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::answer::Reply;
    use futures_util::StreamExt;
    use gardefou_core::chat::FunctionCall;

    fn meta() -> Meta {
        Meta { id: "chatcmpl-mock-1".into(), created: 7, model: "up".into() }
    }

    fn text_answer(text: &str) -> Answer {
        Answer {
            replies: vec![Reply {
                content: Some(text.into()),
                tool_calls: vec![],
                finish: FinishReason::Stop,
            }],
            usage: Usage { input: 4, output: 9, ..Usage::default() },
        }
    }

    #[test]
    fn text_pieces_concatenate_to_the_text() {
        for text in ["", "one", "one two", "one two three", "  lead  and trail  ", "a\nb\tc d é ü «x»."] {
            let pieces = text_pieces(text);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| p.split_whitespace().count() <= WORDS_PER_CHUNK));
        }
        assert_eq!(text_pieces("a b c d e"), ["a b ", "c d ", "e"]);
    }

    #[test]
    fn fragments_keep_characters_whole() {
        let text = "{\"city\":\"Zürich\"}";
        for size in 1..6 {
            assert_eq!(fragments(text, size).concat(), text);
        }
    }

    #[test]
    fn a_text_answer_streams_role_text_finish_then_usage() {
        let text = "Mock answer: you said «hi». This is it.";
        let chunks = chunks(&text_answer(text), &meta());
        assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(chunks[0].choices[0].delta.content.as_deref(), Some(""));
        let joined: String =
            chunks.iter().flat_map(|c| &c.choices).filter_map(|c| c.delta.content.as_deref()).collect();
        assert_eq!(joined, text);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish.choices[0].finish_reason, Some(FinishReason::Stop));
        let usage = chunks.last().unwrap();
        assert!(usage.choices.is_empty());
        assert_eq!(usage.usage.map(|u| (u.input, u.output)), Some((4, 9)));
        assert!(chunks.iter().all(|c| c.id == "chatcmpl-mock-1" && c.created == 7 && c.model == "up"));
        assert!(chunks.len() > 5);
    }

    #[test]
    fn tool_call_arguments_stream_in_fragments() {
        let args = r#"{"city":"example","unit":"c"}"#;
        let answer = Answer {
            replies: vec![Reply {
                content: None,
                tool_calls: vec![ToolCall {
                    id: "call_mock_1".into(),
                    kind: "function".into(),
                    function: FunctionCall { name: "get_weather".into(), arguments: args.into() },
                }],
                finish: FinishReason::ToolCalls,
            }],
            usage: Usage::default(),
        };
        let chunks = chunks(&answer, &meta());
        let deltas: Vec<&ToolCallDelta> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .flat_map(|c| c.delta.tool_calls.iter().flatten())
            .collect();
        let first = deltas[0];
        assert_eq!((first.id.as_deref(), first.kind.as_deref()), (Some("call_mock_1"), Some("function")));
        let f = first.function.as_ref().unwrap();
        assert_eq!((f.name.as_deref(), f.arguments.as_deref()), (Some("get_weather"), Some("")));
        assert!(deltas.len() >= 3, "arguments in at least two fragments");
        let joined: String =
            deltas.iter().filter_map(|d| d.function.as_ref()?.arguments.as_deref()).collect();
        assert_eq!(joined, args);
        serde_json::from_str::<serde_json::Value>(&joined).unwrap();
        let short = ToolCall {
            function: FunctionCall { name: "f".into(), arguments: "{}".into() },
            ..answer.replies[0].tool_calls[0].clone()
        };
        let mut n = 0;
        tool_call_chunks(&short, 0, |_| n += 1);
        assert_eq!(n, 3, "even `{{}}` arrives in two fragments");
    }

    #[test]
    fn a_broken_stream_keeps_the_requested_content_chunks() {
        let all = chunks(&text_answer("one two three four five six seven"), &meta());
        let kept = broken(all.clone(), 2);
        assert_eq!(kept.len(), 3, "role chunk and two content chunks");
        assert_eq!(kept[2].choices[0].delta.content.as_deref(), Some("three four "));
        assert_eq!(broken(all.clone(), 100).len(), all.len() - 2, "never the finish and usage chunks");
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_are_paced_by_the_delay() {
        let start = tokio::time::Instant::now();
        let items = chunks(&text_answer("a b c d"), &meta()).into_iter().map(Ok).collect::<Vec<_>>();
        let count = items.len();
        let got: Vec<_> = paced(items, Duration::from_millis(10)).collect().await;
        assert_eq!(got.len(), count);
        assert_eq!(start.elapsed(), Duration::from_millis(10) * (count as u32 - 1));
    }
}
