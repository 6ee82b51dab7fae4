//! The Anthropic Messages ingress: `POST /v1/messages` (whole and streamed) and
//! `POST /v1/messages/count_tokens`, answered by any provider through the same pipeline and
//! inference record as the OpenAI ingress (endpoint label `messages`). Errors leave in
//! Anthropic's shape with the status and Retry-After the OpenAI ingress would send. Keys are not
//! enforced yet: `x-api-key`, `Authorization` and `anthropic-version` are accepted as they come.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use gardefou_core::anthropic::{self as wire, MessagesRequest, StreamEncoder, StreamEvent};
use gardefou_core::chat::{ChatChunk, ChatRequest, FinishReason, Usage};
use gardefou_core::Error;
use serde_json::json;

use super::error::ApiError;
use super::extract::{AppJson, RequestId};
use super::handlers::{start_inflight, with_dropped, with_header, with_headers};
use super::INFERENCE_ID;
use crate::pipeline::outguard::OutputGuards;
use crate::pipeline::record::{Caller, Inflight, Outcome};
use crate::pipeline::{self, StartedStream};
use crate::state::AppState;
use crate::tokens;

/// An error in Anthropic's shape, with the status, Retry-After and logging of `ApiError`.
fn error_response(e: Error) -> Response {
    let body = wire::error_json(&e).to_string();
    let (mut parts, _) = ApiError(e).into_response().into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body))
}

fn fail(inflight: Inflight, e: Error) -> Response {
    let id = inflight.id().to_owned();
    inflight.finish_err(&e, Outcome::default());
    with_header(error_response(e), INFERENCE_ID, &id)
}

/// `POST /v1/messages`
pub async fn messages(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    caller: Result<Caller, ApiError>,
    body: Result<AppJson<MessagesRequest>, ApiError>,
) -> Response {
    let rt = state.runtime();
    let stream = body.as_ref().is_ok_and(|b| b.0.is_stream());
    let (mut inflight, caller_err) = start_inflight(&state, request_id, "messages", stream, caller);
    if let Some(e) = caller_err {
        return fail(inflight, e);
    }
    let req = match body {
        Ok(AppJson(r)) => r,
        Err(e) => return fail(inflight, e.0),
    };
    let requested = req.model.clone();
    let req = match wire::to_canonical(req) {
        Ok(r) => r,
        Err(e) => return fail(inflight, e),
    };
    inflight.set_end_user(req.user.as_deref());
    let inference_id = inflight.id().to_owned();
    if stream {
        match pipeline::chat_stream(&rt, &req, &mut inflight).await {
            Ok(started) => {
                let extra = inflight.response_headers().to_vec();
                let model = started.target.model.name.clone();
                let dropped = started.dropped_params.clone();
                let body = Body::from_stream(sse_body(started, &req, &requested, inflight));
                let resp = Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(body)
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
                let resp =
                    with_header(with_header(resp, INFERENCE_ID, &inference_id), "x-gardefou-model", &model);
                with_headers(with_dropped(resp, &dropped), &extra)
            }
            Err(e) => fail(inflight, e),
        }
    } else {
        match pipeline::chat(&rt, &req, &mut inflight).await {
            Ok((mut resp, mut outcome)) => {
                let extra = inflight.response_headers().to_vec();
                let model = inflight.model_name();
                let dropped = std::mem::take(&mut outcome.dropped_params);
                // Counted by the pipeline when the upstream reported none.
                resp.usage = resp.usage.or(outcome.usage);
                let body = wire::from_canonical_response(&resp, &requested);
                inflight.finish_ok(outcome);
                let resp = Json(body).into_response();
                let resp =
                    with_header(with_header(resp, INFERENCE_ID, &inference_id), "x-gardefou-model", &model);
                with_headers(with_dropped(resp, &dropped), &extra)
            }
            Err(e) => fail(inflight, e),
        }
    }
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as gardefou counts them for the route's
/// first target (OpenAI's tokenizers; an estimate for other families). Not an inference: nothing
/// is recorded.
pub async fn count_tokens(
    State(state): State<AppState>,
    body: Result<AppJson<MessagesRequest>, ApiError>,
) -> Response {
    let mut req = match body {
        Ok(AppJson(r)) => r,
        Err(e) => return error_response(e.0),
    };
    req.max_tokens.get_or_insert(1);
    let req = match wire::to_canonical(req) {
        Ok(r) => r,
        Err(e) => return error_response(e),
    };
    let rt = state.runtime();
    let Some(route) = rt.routes.get(&req.model) else {
        return error_response(Error::NotFound {
            message: format!("The model `{}` does not exist or you do not have access to it.", req.model),
            param: Some("model".to_owned()),
        });
    };
    let upstream = route.targets.first().map_or("", |t| t.model.upstream.as_str());
    Json(json!({"input_tokens": tokens::count_prompt(upstream, &req)})).into_response()
}

struct Relay {
    first: Option<ChatChunk>,
    rest: gardefou_providers::ChunkStream,
    inflight: Option<Inflight>,
    encoder: StreamEncoder,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// Output text, kept only to count tokens when the upstream reports no usage.
    text: String,
    upstream_model: String,
    prompt_tokens: Option<u64>,
    /// The route's output guards, as on the OpenAI ingress.
    guards: OutputGuards,
    /// A guard stopped the answer: nothing held is released after it.
    blocked: bool,
    done: bool,
}

/// The Anthropic SSE body of a started stream. An upstream error after the first byte ends it
/// with an `error` event and no `message_stop`; a client that goes away cancels the upstream call
/// and the inference is recorded as client-closed (as on the OpenAI ingress). The route's output
/// guards apply as there: a block ends the message (`stop_reason` `refusal`).
fn sse_body(
    started: StartedStream,
    req: &ChatRequest,
    requested_model: &str,
    inflight: Inflight,
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
    let reports_usage = started.target.provider.as_ref().is_some_and(|p| p.reports_stream_usage());
    let upstream_model = started.target.model.upstream.clone();
    let prompt_tokens = (!reports_usage).then(|| tokens::count_prompt(&upstream_model, req));
    let relay = Relay {
        first: Some(started.first),
        rest: started.rest,
        inflight: Some(inflight),
        encoder: StreamEncoder::new(requested_model, prompt_tokens.unwrap_or(0)),
        usage: None,
        finish: None,
        text: String::new(),
        upstream_model,
        prompt_tokens,
        guards: OutputGuards::new(started.guard, started.canary),
        blocked: false,
        done: false,
    };
    futures_util::stream::unfold(relay, |mut r| async move {
        if r.done {
            return None;
        }
        let next = match r.first.take() {
            Some(c) => Some(Ok(c)),
            None => r.rest.next().await,
        };
        let bytes = match next {
            Some(Ok(chunk)) => r.on_chunk(chunk),
            Some(Err(e)) => r.on_error(&e),
            None => r.on_end(),
        };
        Some((Ok(bytes), r))
    })
}

fn write_events(events: &[StreamEvent]) -> Bytes {
    let mut buf = BytesMut::with_capacity(128 * events.len().max(1));
    for e in events {
        buf.put_slice(b"event: ");
        buf.put_slice(e.name().as_bytes());
        buf.put_slice(b"\ndata: ");
        let mut w = buf.writer();
        if serde_json::to_writer(&mut w, e).is_err() {
            w.get_mut().put_slice(b"{}");
        }
        buf = w.into_inner();
        buf.put_slice(b"\n\n");
    }
    buf.freeze()
}

impl Relay {
    fn on_chunk(&mut self, mut chunk: ChatChunk) -> Bytes {
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let stop = self.guards.on_chunk(&mut chunk, self.inflight.as_mut());
        for c in chunk.choices.iter().filter(|c| c.index == 0) {
            if c.finish_reason.is_some() {
                self.finish = c.finish_reason;
            }
            if self.prompt_tokens.is_some() {
                for t in [&c.delta.content, &c.delta.reasoning_content].into_iter().flatten() {
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
        let events = self.encoder.on_chunk(&chunk);
        if !stop {
            return write_events(&events);
        }
        self.finish = Some(FinishReason::ContentFilter);
        self.blocked = true;
        let mut buf = BytesMut::from(&write_events(&events)[..]);
        buf.extend_from_slice(&self.on_end());
        buf.freeze()
    }

    fn on_error(&mut self, e: &Error) -> Bytes {
        self.done = true;
        let (usage, tokens_estimated) = self.final_usage();
        if let Some(inflight) = self.inflight.take() {
            inflight.finish_err(
                e,
                Outcome { usage, tokens_estimated, finish_reason: self.finish, ..Outcome::default() },
            );
        }
        write_events(&[StreamEvent::error(e)])
    }

    fn on_end(&mut self) -> Bytes {
        self.done = true;
        let mut buf = BytesMut::new();
        if !self.blocked {
            // An upstream that ends without a finish reason leaves text in the guards.
            let (choices, stopped) = self.guards.drain(self.inflight.as_mut());
            if !choices.is_empty() {
                for c in choices.iter().filter(|c| c.index == 0 && self.prompt_tokens.is_some()) {
                    self.text.push_str(c.delta.content.as_deref().unwrap_or(""));
                }
                let chunk = ChatChunk {
                    id: String::new(),
                    object: "chat.completion.chunk".to_owned(),
                    created: 0,
                    model: self.upstream_model.clone(),
                    choices,
                    usage: None,
                    system_fingerprint: None,
                    service_tier: None,
                };
                buf.extend_from_slice(&write_events(&self.encoder.on_chunk(&chunk)));
            }
            if stopped {
                self.finish = Some(FinishReason::ContentFilter);
            }
        }
        let (usage, tokens_estimated) = self.final_usage();
        buf.extend_from_slice(&write_events(&self.encoder.finish(usage)));
        let bytes = buf.freeze();
        if let Some(inflight) = self.inflight.take() {
            inflight.finish_ok(Outcome {
                usage,
                tokens_estimated,
                finish_reason: self.finish,
                ..Outcome::default()
            });
        }
        bytes
    }

    fn final_usage(&self) -> (Option<Usage>, bool) {
        match (self.usage, self.prompt_tokens) {
            (Some(u), _) => (Some(u), false),
            (None, Some(input)) => (
                Some(Usage {
                    input,
                    output: tokens::count_text(&self.upstream_model, &self.text),
                    ..Usage::default()
                }),
                true,
            ),
            (None, None) => (None, false),
        }
    }
}
