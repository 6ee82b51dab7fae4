//! A streamed Gemini answer (`streamGenerateContent?alt=sse`): each SSE `data:` event is a whole
//! `GenerateContentResponse`, turned into at most one `ChatChunk`.
//!
//! - text parts → `delta.content` (thought parts → `delta.reasoning_content`);
//! - each `functionCall` part → one complete tool call delta (Gemini never splits arguments):
//!   index and id `call_<n>` numbered per candidate, the thought signature in the id;
//! - `finishReason` → `finish_reason` on the chunk (see `answer::finish`);
//! - `usageMetadata` is cumulative on every event: the last one is kept, never summed, and sent
//!   as one final chunk with `choices: []`;
//! - Gemini sends no `[DONE]`: the end of the body after every candidate finished is the normal
//!   end; before, it is `Err(BadResponse)`. An `error` object in an event ends the stream with
//!   the mapped error.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gardefou_core::chat::{
    ChatChunk, ChunkChoice, Delta, FinishReason, FunctionCallDelta, Role, ToolCallDelta,
};
use gardefou_core::{Error, Result};
use serde_json::Value;

use super::answer;
use super::error;
use super::wire::{Candidate, GenerateContentResponse, UsageMetadata};
use crate::sse::SseDecoder;
use crate::ChunkStream;

const ENDED_EARLY: &str = "stream ended before completion";

/// What has been seen of one candidate.
struct Seen {
    index: u32,
    /// The first chunk (with `role`) was sent.
    started: bool,
    /// Function calls sent so far.
    calls: usize,
    finished: bool,
}

struct State<B> {
    provider: String,
    upstream: String,
    body: B,
    decoder: SseDecoder,
    /// `responseId`, `modelVersion` and the time of the first event.
    meta: Option<(String, String, u64)>,
    candidates: Vec<Seen>,
    usage: Option<UsageMetadata>,
    ready: VecDeque<Result<ChatChunk>>,
    done: bool,
}

/// Decodes an upstream SSE body into chunks.
pub(crate) fn chunks<B>(provider: &str, upstream: &str, body: B) -> ChunkStream
where
    B: Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
{
    let state = State {
        provider: provider.to_owned(),
        upstream: upstream.to_owned(),
        body,
        decoder: SseDecoder::new(),
        meta: None,
        candidates: Vec::new(),
        usage: None,
        ready: VecDeque::new(),
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
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            if let Some(event) = self.decoder.next_event() {
                self.on_data(event.data.trim());
                continue;
            }
            match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.push(&bytes),
                Some(Err(e)) => self.end(Some(crate::http::describe(&e))),
                None => {
                    if let Some(event) = self.decoder.finish() {
                        self.on_data(event.data.trim());
                    }
                    if !self.done {
                        self.end(None);
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: Error) {
        self.ready.push_back(Err(e));
        self.done = true;
    }

    fn finished(&self) -> bool {
        !self.candidates.is_empty() && self.candidates.iter().all(|c| c.finished)
    }

    /// The body ended (or broke, `cause`): the usage chunk after a finished answer, else an error.
    fn end(&mut self, cause: Option<String>) {
        if !self.finished() {
            let message = match cause {
                Some(cause) => format!("{ENDED_EARLY}: {cause}"),
                None => ENDED_EARLY.to_owned(),
            };
            return self.fail(Error::BadResponse { provider: self.provider.clone(), message });
        }
        if let Some(u) = self.usage {
            let mut chunk = self.chunk(Vec::new());
            chunk.usage = Some(answer::usage(&u));
            self.ready.push_back(Ok(chunk));
        }
        self.done = true;
    }

    fn on_data(&mut self, data: &str) {
        if data.is_empty() || self.done {
            return;
        }
        let value = match serde_json::from_str::<Value>(data) {
            Ok(v) => v,
            Err(e) => {
                let message = format!("invalid stream event: {e}");
                return self.fail(Error::BadResponse { provider: self.provider.clone(), message });
            }
        };
        if let Some(err) = value.get("error") {
            let e = error::from_object(&self.provider, err);
            return self.fail(e);
        }
        let resp = match serde_json::from_value::<GenerateContentResponse>(value) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("invalid stream event: {e}");
                return self.fail(Error::BadResponse { provider: self.provider.clone(), message });
            }
        };
        if self.meta.is_none() {
            let id = resp.response_id.clone().unwrap_or_else(answer::new_id);
            let model = resp.model_version.clone().unwrap_or_else(|| self.upstream.clone());
            self.meta = Some((id, model, answer::unix_now()));
        }
        if let Some(u) = resp.usage_metadata {
            self.usage = Some(u);
        }
        let mut choices = Vec::new();
        if resp.candidates.is_empty() {
            if let Some(refusal) = answer::prompt_blocked(&resp) {
                let seen = self.seen(0);
                seen.finished = true;
                seen.started = true;
                let delta = Delta { role: Some(Role::Assistant), refusal: Some(refusal), ..Delta::default() };
                choices.push(ChunkChoice {
                    index: 0,
                    delta,
                    finish_reason: Some(FinishReason::ContentFilter),
                    logprobs: None,
                });
            }
        }
        for (pos, cand) in resp.candidates.into_iter().enumerate() {
            match self.choice(cand, pos) {
                Ok(Some(c)) => choices.push(c),
                Ok(None) => {}
                Err(e) => return self.fail(e),
            }
        }
        if !choices.is_empty() {
            let chunk = self.chunk(choices);
            self.ready.push_back(Ok(chunk));
        }
    }

    fn seen(&mut self, index: u32) -> &mut Seen {
        let at = match self.candidates.iter().position(|c| c.index == index) {
            Some(at) => at,
            None => {
                self.candidates.push(Seen { index, started: false, calls: 0, finished: false });
                self.candidates.len() - 1
            }
        };
        &mut self.candidates[at]
    }

    /// The chunk choice of one candidate of an event, `None` if it carries nothing.
    fn choice(&mut self, cand: Candidate, pos: usize) -> Result<Option<ChunkChoice>> {
        let provider = self.provider.clone();
        let index = cand.index.unwrap_or(pos as u32);
        let seen = self.seen(index);
        let mut delta = Delta::default();
        let (mut text, mut thoughts, mut calls) = (String::new(), String::new(), Vec::new());
        for part in cand.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(call) = part.function_call {
                let n = seen.calls;
                seen.calls += 1;
                let call = answer::tool_call(n, call, part.thought_signature.as_deref());
                calls.push(ToolCallDelta {
                    index: n as u32,
                    id: Some(call.id),
                    kind: Some(call.kind),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name),
                        arguments: Some(call.function.arguments),
                    }),
                });
            } else if let Some(t) = part.text {
                if part.thought == Some(true) {
                    thoughts.push_str(&t);
                } else {
                    text.push_str(&t);
                }
            }
        }
        delta.content = (!text.is_empty()).then_some(text);
        delta.reasoning_content = (!thoughts.is_empty()).then_some(thoughts);
        delta.tool_calls = (!calls.is_empty()).then_some(calls);
        let finish = match cand.finish_reason.as_deref() {
            Some(reason) => Some(answer::finish(
                reason,
                seen.calls > 0,
                &cand.safety_ratings,
                cand.finish_message.as_deref(),
                &provider,
            )?),
            None => None,
        };
        let logprobs = cand.logprobs_result.as_ref().map(answer::logprobs);
        let finish_reason = finish.map(|f| {
            delta.refusal = f.refusal;
            f.reason
        });
        if delta == Delta::default() && finish_reason.is_none() && logprobs.is_none() {
            return Ok(None);
        }
        if !seen.started {
            seen.started = true;
            delta.role = Some(Role::Assistant);
        }
        if finish_reason.is_some() {
            seen.finished = true;
        }
        Ok(Some(ChunkChoice { index, delta, finish_reason, logprobs }))
    }

    fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        let (id, model, created) = match &self.meta {
            Some((id, model, created)) => (id.clone(), model.clone(), *created),
            None => (answer::new_id(), self.upstream.clone(), answer::unix_now()),
        };
        ChatChunk {
            id,
            object: "chat.completion.chunk".to_owned(),
            created,
            model,
            choices,
            usage: None,
            system_fingerprint: None,
            service_tier: None,
        }
    }
}
