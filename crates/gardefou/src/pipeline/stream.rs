//! Relaying a started stream to the client as Server-Sent Events in OpenAI's format. The usage
//! chunk reaches only clients that asked for it (`stream_options.include_usage`); when the
//! upstream sent none, it is counted. An upstream error after the first byte ends the stream with
//! an `error` event and no `[DONE]`: never a silent truncation. If the client goes away, dropping
//! this stream cancels the upstream call and records the inference as client-closed. A
//! `json_schema` output guard holds each answer back whole before the other guards see it
//! (`hold`); the output guards of every choice are applied by `outguard`.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use gardefou_core::chat::{ChatChunk, ChatRequest, FinishReason, Usage};
use gardefou_core::Error;

use super::outguard::OutputGuards;
use super::record::{Inflight, Outcome};
use super::StartedStream;
use crate::tokens;

struct State {
    first: Option<ChatChunk>,
    rest: gardefou_providers::ChunkStream,
    inflight: Option<Inflight>,
    include_usage: bool,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// Output text, kept only to count tokens when the upstream reports no usage, or when the
    /// answer is captured (span content, stored bodies).
    text: String,
    keep_text: bool,
    model: String,
    id: String,
    created: u64,
    prompt_tokens: Option<u64>,
    done: bool,
    /// The route's per-request cost cap: (USD left for the output, USD per output token).
    cost_cap: Option<(f64, f64)>,
    /// The output guards: the `json_schema` hold, the canary, the route's output policy.
    guards: OutputGuards,
    /// A guard stopped the answer: nothing held is released after it.
    blocked: bool,
    /// Output tokens so far, counted delta by delta (a little above the count of the whole
    /// text, so the cut comes early rather than late), to hold the cost cap.
    out_tokens: u64,
}

/// The SSE body for a started stream. `req` is needed only to count prompt tokens when the
/// upstream does not report usage.
pub fn sse_body(
    started: StartedStream,
    req: &ChatRequest,
    inflight: Inflight,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let reports_usage = started.target.provider.as_ref().is_some_and(|p| p.reports_stream_usage());
    let cost_cap = started.cost_cap;
    let guards = OutputGuards::new(started.guard, started.canary);
    // Counted here when the upstream reports no usage, or when a capped stream may be cut off
    // before the upstream's usage arrives.
    let prompt_tokens = (!reports_usage || cost_cap.is_some())
        .then(|| tokens::count_prompt(&started.target.model.upstream, req));
    let keep_text = prompt_tokens.is_some() || inflight.captures_output();
    let state = State {
        first: Some(started.first),
        rest: started.rest,
        inflight: Some(inflight),
        include_usage: req.include_usage(),
        usage: None,
        finish: None,
        text: String::new(),
        model: started.target.model.upstream.clone(),
        id: String::new(),
        created: 0,
        prompt_tokens,
        keep_text,
        cost_cap,
        guards,
        blocked: false,
        out_tokens: 0,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let next = match st.first.take() {
            Some(c) => Some(Ok(c)),
            None => st.rest.next().await,
        };
        let bytes = match next {
            Some(Ok(chunk)) => st.on_chunk(chunk),
            Some(Err(e)) => st.on_error(&e),
            None => st.on_end(),
        };
        Some((Ok(bytes), st))
    })
}

fn event(buf: &mut BytesMut, json: &impl serde::Serialize) {
    buf.put_slice(b"data: ");
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, json).is_err() {
        w.get_mut().put_slice(b"{}");
    }
    w.into_inner().put_slice(b"\n\n");
}

impl State {
    fn on_chunk(&mut self, mut chunk: ChatChunk) -> Bytes {
        let mut buf = BytesMut::with_capacity(256);
        if let Some(u) = chunk.usage.take() {
            self.usage = Some(u);
            if self.include_usage {
                chunk.usage = Some(u);
            }
        }
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.created = chunk.created;
        }
        if self.cost_cap.is_some() {
            // Counted as generated, before any guard holds text back.
            for c in &chunk.choices {
                if let Some(t) = &c.delta.content {
                    self.out_tokens += tokens::count_text(&self.model, t);
                }
                for call in c.delta.tool_calls.iter().flatten() {
                    if let Some(a) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        self.out_tokens += tokens::count_text(&self.model, a);
                    }
                }
            }
        }
        let guard_stop = self.guards.on_chunk(&mut chunk, self.inflight.as_mut());
        for c in &chunk.choices {
            if c.finish_reason.is_some() && c.index == 0 {
                self.finish = c.finish_reason;
            }
            if self.keep_text {
                if let Some(t) = &c.delta.content {
                    self.text.push_str(t);
                }
                for call in c.delta.tool_calls.iter().flatten() {
                    if let Some(f) = &call.function {
                        self.text.push_str(f.name.as_deref().unwrap_or(""));
                        self.text.push_str(f.arguments.as_deref().unwrap_or(""));
                    }
                }
            }
        }
        // A usage-only chunk reaches the client only if it asked for usage.
        if !chunk.choices.is_empty() || self.include_usage {
            event(&mut buf, &chunk);
        }
        if guard_stop {
            self.finish = Some(FinishReason::ContentFilter);
            self.blocked = true;
            buf.extend_from_slice(&self.on_end());
            return buf.freeze();
        }
        if let Some((left_usd, per_token)) = self.cost_cap {
            let estimated = self.out_tokens as f64 * per_token;
            if estimated >= left_usd && self.finish.is_none() {
                // The cap is reached: end the answer here, as if max_tokens had been hit; the
                // upstream stream is dropped (and its connection closed) with the state. Text
                // the guards still hold is released (scanned) first.
                if self.release_held(&mut buf) {
                    buf.extend_from_slice(&self.on_end());
                    return buf.freeze();
                }
                self.finish = Some(FinishReason::Length);
                let stop = ChatChunk {
                    id: self.id.clone(),
                    object: "chat.completion.chunk".to_owned(),
                    created: self.created,
                    model: self.model.clone(),
                    choices: vec![gardefou_core::chat::ChunkChoice {
                        index: 0,
                        delta: Default::default(),
                        finish_reason: Some(FinishReason::Length),
                        logprobs: None,
                    }],
                    usage: None,
                    system_fingerprint: None,
                    service_tier: None,
                };
                event(&mut buf, &stop);
                if let Some(inflight) = self.inflight.as_mut() {
                    inflight.add_tag("gardefou_cut", "cost_cap");
                }
                buf.extend_from_slice(&self.on_end());
            }
        }
        buf.freeze()
    }

    /// Sends the text the guards still hold for unfinished choices (scanned, redacted) as one
    /// chunk. Returns true when a block fired in it (the answer then ends with
    /// `content_filter`).
    fn release_held(&mut self, buf: &mut BytesMut) -> bool {
        if self.blocked {
            return false;
        }
        let (choices, stopped) = self.guards.drain(self.inflight.as_mut());
        if !choices.is_empty() {
            for c in &choices {
                if let Some(t) = c.delta.content.as_ref().filter(|_| self.keep_text) {
                    self.text.push_str(t);
                }
            }
            let chunk = ChatChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".to_owned(),
                created: self.created,
                model: self.model.clone(),
                choices,
                usage: None,
                system_fingerprint: None,
                service_tier: None,
            };
            event(buf, &chunk);
        }
        if stopped {
            self.finish = Some(FinishReason::ContentFilter);
            self.blocked = true;
        }
        stopped
    }

    fn on_error(&mut self, e: &Error) -> Bytes {
        self.done = true;
        let mut buf = BytesMut::with_capacity(256);
        event(&mut buf, &e.to_openai_json());
        if let Some(inflight) = self.inflight.take() {
            let (usage, tokens_estimated) = self.final_usage();
            let outcome =
                Outcome { usage, tokens_estimated, finish_reason: self.finish, dropped_params: Vec::new() };
            inflight.finish_err(e, outcome);
        }
        buf.freeze()
    }

    fn on_end(&mut self) -> Bytes {
        self.done = true;
        let mut buf = BytesMut::with_capacity(256);
        // An upstream that ends without a finish reason leaves text in the guards.
        self.release_held(&mut buf);
        let (usage, estimated) = self.final_usage();
        if self.include_usage && self.usage.is_none() {
            if let Some(u) = usage {
                let chunk = ChatChunk {
                    id: self.id.clone(),
                    object: "chat.completion.chunk".to_owned(),
                    created: self.created,
                    model: self.model.clone(),
                    choices: Vec::new(),
                    usage: Some(u),
                    system_fingerprint: None,
                    service_tier: None,
                };
                event(&mut buf, &chunk);
            }
        }
        buf.put_slice(b"data: [DONE]\n\n");
        if let Some(mut inflight) = self.inflight.take() {
            inflight.capture_output(&self.text, self.finish);
            inflight.finish_ok(Outcome {
                usage,
                tokens_estimated: estimated,
                finish_reason: self.finish,
                dropped_params: Vec::new(),
            });
        }
        buf.freeze()
    }

    fn final_usage(&self) -> (Option<Usage>, bool) {
        match (self.usage, self.prompt_tokens) {
            (Some(u), _) => (Some(u), false),
            (None, Some(input)) => (
                Some(Usage {
                    input,
                    output: tokens::count_text(&self.model, &self.text),
                    ..Usage::default()
                }),
                true,
            ),
            (None, None) => (None, false),
        }
    }
}
