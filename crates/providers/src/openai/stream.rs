//! A streamed Chat Completions answer: SSE events of the upstream body turned into `ChatChunk`s.
//! `data: [DONE]` ends the stream; an error event, an invalid payload or a body that stops before
//! the answer finished ends it with an `Err`, never with a silently shortened answer.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gardefou_core::chat::ChatChunk;
use gardefou_core::{Error, Result};
use serde_json::Value;

use crate::sse::{SseDecoder, SseEvent};
use crate::ChunkStream;

const ENDED_EARLY: &str = "stream ended before completion";

struct State<B> {
    provider: String,
    body: B,
    decoder: SseDecoder,
    /// A chunk carried a `finish_reason`: the answer itself is complete.
    finished: bool,
    done: bool,
}

/// Decodes an upstream SSE body into chunks.
pub(crate) fn chunks<B>(provider: &str, body: B) -> ChunkStream
where
    B: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    let state = State {
        provider: provider.to_owned(),
        body,
        decoder: SseDecoder::new(),
        finished: false,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    }))
}

impl<B> State<B>
where
    B: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    async fn next_item(&mut self) -> Option<Result<ChatChunk>> {
        while !self.done {
            if let Some(event) = self.decoder.next_event() {
                if let Some(item) = self.on_event(event) {
                    return Some(item);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.push(&bytes),
                Some(Err(e)) => {
                    self.done = true;
                    return self.ended_early(Some(crate::http::describe(&e)));
                }
                None => {
                    self.done = true;
                    return self.ended_early(None);
                }
            }
        }
        None
    }

    /// What an event yields, or `None` when it yields nothing (keep-alive, `[DONE]`).
    fn on_event(&mut self, event: SseEvent) -> Option<Result<ChatChunk>> {
        let data = event.data.trim();
        if event.event.as_deref() == Some("error") {
            self.done = true;
            let payload: Value = serde_json::from_str(data).unwrap_or(Value::String(data.to_owned()));
            let inner = payload.get("error").unwrap_or(&payload);
            return Some(Err(stream_error(&self.provider, inner)));
        }
        if data == "[DONE]" {
            self.done = true;
            return None;
        }
        if data.is_empty() {
            return None;
        }
        match serde_json::from_str::<ChatChunk>(data) {
            Ok(chunk) => {
                if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
                    self.finished = true;
                }
                Some(Ok(chunk))
            }
            Err(e) => {
                self.done = true;
                let error = serde_json::from_str::<Value>(data)
                    .ok()
                    .and_then(|mut v| v.get_mut("error").map(Value::take));
                Some(Err(match error {
                    Some(err) => stream_error(&self.provider, &err),
                    None => Error::BadResponse {
                        provider: self.provider.clone(),
                        message: format!("invalid stream chunk: {e}"),
                    },
                }))
            }
        }
    }

    /// The body stopped without `[DONE]` (an unterminated last event counts as cut off): fine
    /// once the answer finished, an error before.
    fn ended_early(&self, cause: Option<String>) -> Option<Result<ChatChunk>> {
        if self.finished {
            return None;
        }
        let message = match cause {
            Some(cause) => format!("{ENDED_EARLY}: {cause}"),
            None => ENDED_EARLY.to_owned(),
        };
        Some(Err(Error::BadResponse { provider: self.provider.clone(), message }))
    }
}

/// Maps an error object the upstream sent in place of an answer (`{"message","type","code"}`),
/// by its type and code.
pub(crate) fn stream_error(provider: &str, err: &Value) -> Error {
    let provider = provider.to_owned();
    let text = |key: &str| match err.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let message = match err {
        Value::String(s) => s.clone(),
        _ => text("message"),
    };
    let message = if message.is_empty() { "the upstream reported an error".to_owned() } else { message };
    let (kind, code) = (text("type"), text("code"));
    let status =
        code.parse::<u16>().ok().or_else(|| err.get("status").and_then(Value::as_u64).map(|s| s as u16));
    let has = |needle: &str| kind.contains(needle) || code.contains(needle);
    if has("rate_limit") || has("quota") || status == Some(429) {
        Error::RateLimited { provider, message, retry_after: None }
    } else if has("authentication") || has("invalid_api_key") || has("permission") {
        Error::ProviderAuth { provider, status: status.unwrap_or(401) }
    } else if has("invalid_request") || has("context_length") || matches!(status, Some(400..=499)) {
        Error::ProviderRejected {
            provider,
            status: status.filter(|s| (400..500).contains(s)).unwrap_or(400),
            message,
        }
    } else {
        let status = status.filter(|s| (500..600).contains(s)).unwrap_or(500);
        Error::ProviderServer { provider, status, message, retry_after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_objects_map_by_type_and_code() {
        let e = stream_error("p", &json!({"message": "slow", "type": "rate_limit_exceeded"}));
        assert!(matches!(e, Error::RateLimited { .. }));
        let e = stream_error("p", &json!({"message": "boom", "type": "server_error", "code": 503}));
        assert_eq!(
            e,
            Error::ProviderServer {
                provider: "p".into(),
                status: 503,
                message: "boom".into(),
                retry_after: None
            }
        );
        let e = stream_error("p", &json!({"message": "long", "code": "context_length_exceeded"}));
        assert!(matches!(e, Error::ProviderRejected { status: 400, .. }));
        let e = stream_error("p", &json!("overloaded"));
        assert!(
            matches!(e, Error::ProviderServer { status: 500, ref message, .. } if message == "overloaded")
        );
    }
}
