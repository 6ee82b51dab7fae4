//! The path of one request, in order. Each step lives in its own file; this one only says the
//! order:
//!
//! 1. resolve the route on the runtime snapshot the request started with (404 if unknown), and
//!    check the caller's key may call it (403),
//! 2. check the request (400 on what no model can answer), and run the route's input guards
//!    (block, redact, flag, escalate; `guard`),
//! 3. reserve on the rate limits and budgets that apply (429, or a downgrade to a cheaper
//!    route; `admit`),
//! 4. call the route's targets with retries, fallbacks and circuit breakers (`call`), then the
//!    output guards (on streams too, with a bounded hold-back; a whole-answer hold for
//!    `json_schema`, `hold`),
//! 5. for streams, commit once the first chunk arrived and relay the rest (`stream`),
//! 6. record the inference (and settle the reservation) and its metrics off the hot path (`record`).

pub mod admit;
pub mod call;
pub mod escalate;
pub mod guard;
pub mod health;
pub mod hold;
pub mod outguard;
pub mod record;
pub mod select;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gardefou_core::chat::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, Usage};
use gardefou_core::Error;
use gardefou_providers::{CallOptions, ChunkStream};
use tokio::time::Instant;

use self::call::{call_route, Needs};
use self::escalate::{answer_needs_human, escalate};
use self::guard::InputOutcome;
use self::record::{Inflight, Outcome};
use crate::runtime::{Route, Runtime, TargetRt};
use crate::telemetry::{TraceStart, Traces};
use crate::tokens;

/// A streamed answer whose first chunk has arrived: from here on the client gets a 200.
pub struct StartedStream {
    pub first: gardefou_core::chat::ChatChunk,
    pub rest: ChunkStream,
    pub target: TargetRt,
    /// Request parameters the answering provider lacks and that were dropped.
    pub dropped_params: Vec<&'static str>,
    /// The route's per-request cost cap, as (USD left for the output, USD per output token).
    pub cost_cap: Option<(f64, f64)>,
    /// The route's output guard for the stream, and the input placeholders to restore.
    pub guard: Option<guard::StreamGuard>,
    /// The canary planted in the system prompt, to stop the stream if the answer repeats it.
    pub canary: Option<String>,
}

/// Refuses a target that lacks some of the request's parameters when the route says `reject`.
fn check_supported(
    route: &Route,
    t: &TargetRt,
    p: &gardefou_providers::Provider,
    req: &ChatRequest,
) -> Result<(), Error> {
    if !route.config.reject_unsupported {
        return Ok(());
    }
    let missing = p.unsupported_params(req);
    match missing.first() {
        None => Ok(()),
        Some(first) => Err(Error::invalid_param(
            format!(
                "model `{}` (provider `{}`) does not support {}; route `{}` rejects unsupported parameters",
                t.model.name,
                t.model.provider,
                missing.join(", "),
                route.config.name
            ),
            *first,
        )),
    }
}

fn dropped(t: &TargetRt, req: &ChatRequest) -> Vec<&'static str> {
    t.provider.as_ref().map(|p| p.unsupported_params(req)).unwrap_or_default()
}

fn route<'a>(rt: &'a Runtime, name: &str) -> Result<&'a Arc<Route>, Error> {
    rt.routes.get(name).ok_or_else(|| Error::NotFound {
        message: format!("The model `{name}` does not exist or you do not have access to it."),
        param: Some("model".to_owned()),
    })
}

/// 403 when the caller's key may not call this route.
fn check_scope(inflight: &Inflight, route: &Route) -> Result<(), Error> {
    match inflight.key() {
        Some(k) if !crate::auth::route_allowed(&k.routes, &route.config.name) => {
            Err(Error::Forbidden(format!(
                "key `{}` may not call route `{}` (allowed: {})",
                k.prefix,
                route.config.name,
                k.routes.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

fn check(req: &ChatRequest) -> Result<Needs, Error> {
    if req.messages.is_empty() {
        return Err(Error::invalid_param("`messages` must contain at least one message", "messages"));
    }
    if req.n == Some(0) {
        return Err(Error::invalid_param("`n` must be at least 1", "n"));
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(Error::invalid_param("`temperature` must be between 0 and 2", "temperature"));
        }
    }
    let vision = req.messages.iter().any(|m| {
        matches!(&m.content, Some(gardefou_core::chat::Content::Parts(p)) if p.iter().any(|p| p.kind == "image_url"))
    });
    Ok(Needs {
        embeddings: false,
        tools: req.tools.as_ref().is_some_and(|t| !t.is_empty()),
        vision,
        json: req.wants_json(),
    })
}

/// Options of one provider call; with traces on, it reserves the call's span and sends its
/// `traceparent` upstream.
fn options(
    route: &Route,
    remaining: Duration,
    traces: &Traces,
    trace: &mut Option<TraceStart>,
) -> CallOptions {
    CallOptions {
        first_byte_timeout: Some(route.config.timeouts.first_byte.min(remaining)),
        headers: trace.as_mut().map(|t| t.next_attempt(traces)).unwrap_or_default(),
    }
}

/// A non-streamed chat completion.
pub async fn chat(
    rt: &Runtime,
    req: &ChatRequest,
    inflight: &mut Inflight,
) -> Result<(ChatResponse, Outcome), Error> {
    let route = route(rt, &req.model)?;
    inflight.set_route(&route.config.name);
    check_scope(inflight, route)?;
    let needs = check(req)?;
    let (req, mut redactions) = match guard::input(route, req, inflight)? {
        InputOutcome::Pass(req, redactions) => (req, redactions),
        InputOutcome::Escalate { reason, req } => return escalate(route, &req, &reason, inflight).await,
    };
    if inflight.escalate_requested() && route.config.escalation.on_request {
        return escalate(route, &req, "requested", inflight).await;
    }
    let (req, canary) = guard::plant_canary(route, req);
    let admitted = admit::admit(rt, route, &req, inflight).await?;
    let (route, req) = (&admitted.route, &*admitted.req);
    let schema = guard::output_schema(route, req)?;
    inflight.set_params(req.max_completion_tokens.or(req.max_tokens), req.temperature);
    inflight.capture_input(&req.messages);
    inflight.keep_request(route.config.store_bodies, req);
    inflight.sample_quality(&route.config, req);
    let deadline = Instant::now() + route.config.timeouts.total;
    let metrics = inflight_metrics(inflight);
    let traces = inflight.traces().clone();
    let mut trace = inflight.take_trace();
    let result = call_route(route, needs, deadline, &metrics, &mut inflight.attempts, |t, p, left| {
        let opts = options(route, left, &traces, &mut trace);
        let first_byte = route.config.timeouts.first_byte.min(left);
        async move {
            check_supported(route, t, p, req)?;
            match tokio::time::timeout(first_byte, p.chat(&t.model, req, &opts)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout { provider: t.model.provider.clone(), phase: "first byte" }),
            }
        }
    })
    .await;
    inflight.put_trace(trace);
    let (resp, target) = result?;
    inflight.set_model(&target.model);
    let (usage, estimated) = match resp.usage {
        Some(u) => (u, false),
        None => (estimate_usage(&target.model.upstream, req, &resp), true),
    };
    let mut resp = resp;
    for c in &resp.choices {
        guard::check_canary(canary.as_deref(), c.message.content.as_deref().unwrap_or_default(), inflight)?;
    }
    if let Some(reason) = guard::output(route, &mut resp, &mut redactions, schema.as_ref(), inflight)?
        .or_else(|| answer_needs_human(route, &resp))
    {
        return escalate(route, req, &reason, inflight).await;
    }
    let finish_reason = resp.choices.first().and_then(|c| c.finish_reason);
    inflight.keep_response(&resp);
    if let Some(c) = resp.choices.first() {
        inflight.capture_output(c.message.content.as_deref().unwrap_or_default(), finish_reason);
    }
    guard::restore(route, &mut resp, &redactions);
    let dropped_params = dropped(target, req);
    Ok((resp, Outcome { usage: Some(usage), tokens_estimated: estimated, finish_reason, dropped_params }))
}

/// Starts a streamed chat completion: returns once a target produced its first chunk, so that a
/// stream failing before its first byte falls back like any other failure.
pub async fn chat_stream(
    rt: &Runtime,
    req: &ChatRequest,
    inflight: &mut Inflight,
) -> Result<StartedStream, Error> {
    let route = route(rt, &req.model)?;
    inflight.set_route(&route.config.name);
    check_scope(inflight, route)?;
    let needs = check(req)?;
    let (req, redactions) = match guard::input(route, req, inflight)? {
        InputOutcome::Pass(req, redactions) => (req, redactions),
        InputOutcome::Escalate { reason, req } => {
            let (resp, _) = escalate(route, &req, &reason, inflight).await?;
            return StartedStream::answered(resp, route);
        }
    };
    if inflight.escalate_requested() && route.config.escalation.on_request {
        let (resp, _) = escalate(route, &req, "requested", inflight).await?;
        return StartedStream::answered(resp, route);
    }
    let (req, canary) = guard::plant_canary(route, req);
    let admitted = admit::admit(rt, route, &req, inflight).await?;
    let (route, req) = (&admitted.route, &*admitted.req);
    let schema = guard::output_schema(route, req)?;
    inflight.set_params(req.max_completion_tokens.or(req.max_tokens), req.temperature);
    inflight.capture_input(&req.messages);
    inflight.keep_request(route.config.store_bodies, req);
    inflight.sample_quality(&route.config, req);
    let deadline = Instant::now() + route.config.timeouts.total;
    let metrics = inflight_metrics(inflight);
    let traces = inflight.traces().clone();
    let mut trace = inflight.take_trace();
    let result = call_route(route, needs, deadline, &metrics, &mut inflight.attempts, |t, p, left| {
        let opts = options(route, left, &traces, &mut trace);
        let first_byte = route.config.timeouts.first_byte.min(left);
        async move {
            check_supported(route, t, p, req)?;
            let started = async {
                let mut s = p.chat_stream(&t.model, req, &opts).await?;
                match s.next().await {
                    Some(Ok(first)) => Ok((first, s)),
                    Some(Err(e)) => Err(e),
                    None => Err(Error::BadResponse {
                        provider: t.model.provider.clone(),
                        message: "the stream ended before its first chunk".to_owned(),
                    }),
                }
            };
            match tokio::time::timeout(first_byte, started).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout { provider: t.model.provider.clone(), phase: "first byte" }),
            }
        }
    })
    .await;
    inflight.put_trace(trace);
    let ((first, rest), target) = result?;
    inflight.set_model(&target.model);
    if schema.is_none() {
        // A json_schema hold releases the first token with the whole answer, and marks it then.
        inflight.mark_first_token();
    }
    Ok(StartedStream {
        first,
        rest,
        dropped_params: dropped(target, req),
        target: target.clone(),
        cost_cap: admitted.cost_cap,
        guard: guard::stream_guard(route, schema, redactions),
        canary,
    })
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    rt: &Runtime,
    req: &EmbeddingsRequest,
    inflight: &mut Inflight,
) -> Result<(EmbeddingsResponse, Outcome), Error> {
    let route = route(rt, &req.model)?;
    check_scope(inflight, route)?;
    inflight.set_route(&route.config.name);
    if req.input.is_empty() {
        return Err(Error::invalid_param("`input` must not be empty", "input"));
    }
    let route = &admit::admit_embeddings(rt, route, req, inflight).await?;
    let deadline = Instant::now() + route.config.timeouts.total;
    let metrics = inflight_metrics(inflight);
    let needs = Needs { embeddings: true, ..Needs::default() };
    let traces = inflight.traces().clone();
    let mut trace = inflight.take_trace();
    let result = call_route(route, needs, deadline, &metrics, &mut inflight.attempts, |t, p, left| {
        let opts = options(route, left, &traces, &mut trace);
        async move { p.embed(&t.model, req, &opts).await }
    })
    .await;
    inflight.put_trace(trace);
    let (resp, target) = result?;
    inflight.set_model(&target.model);
    let usage = Usage { input: resp.usage.prompt_tokens, ..Usage::default() };
    Ok((resp, Outcome { usage: Some(usage), ..Outcome::default() }))
}

fn inflight_metrics(inflight: &Inflight) -> crate::telemetry::Metrics {
    // A cheap Arc clone, so that the attempt log can be borrowed mutably beside it.
    inflight.metrics().clone()
}

fn estimate_usage(model: &str, req: &ChatRequest, resp: &ChatResponse) -> Usage {
    let mut output = 0;
    for c in &resp.choices {
        if let Some(text) = &c.message.content {
            output += tokens::count_text(model, text);
        }
        for call in c.message.tool_calls.iter().flatten() {
            output += tokens::count_text(model, &call.function.name)
                + tokens::count_text(model, &call.function.arguments);
        }
    }
    Usage { input: tokens::count_prompt(model, req), output, ..Usage::default() }
}
