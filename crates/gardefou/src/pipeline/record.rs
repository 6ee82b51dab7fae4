//! The record of one inference while it is in flight. It is finished exactly once — on success,
//! on error, or, if the client went away first, on drop (status 499) — and then handed to the
//! recorder's queue and the metrics. Nothing here waits.

use std::collections::BTreeMap;
use std::time::Instant;

use gardefou_core::chat::{ChatRequest, ChatResponse, FinishReason, Message, Role, Usage};
use gardefou_core::config::{ModelConfig, StoreBodies};
use gardefou_core::cost::cost_usd;
use gardefou_core::Error;
use gardefou_store::{Attempt, Bodies, InferenceRecord};

use crate::limits::Reservation;

use crate::state::AppState;
use crate::telemetry::metrics::{status_class, ErrorLabels, ModelLabels, RequestLabels, TokenLabels};
use crate::telemetry::otel::{self, SpanInput};
use crate::telemetry::{TraceStart, Traces};

/// Status recorded when the client disconnected before the answer was complete.
pub const CLIENT_CLOSED: u16 = 499;

/// Who is calling, as far as gardefou knows it.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The virtual key the call came with, if any.
    pub key: Option<std::sync::Arc<gardefou_store::KeyRecord>>,
    pub key_id: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
    pub end_user: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The caller asked for a human (`x-gardefou-escalate: true`).
    pub escalate: bool,
    /// W3C trace context sent by the client (`traceparent`, `tracestate`).
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// A call gardefou made to itself (a scheduled eval, a quality judge).
    pub internal: bool,
}

/// Mutable access to the caller's tags of an in-flight record.
pub struct CallerMut<'a>(Option<&'a mut InferenceRecord>);

impl CallerMut<'_> {
    pub fn tags(&mut self) -> Option<&mut BTreeMap<String, String>> {
        self.0.as_mut().map(|r| &mut r.tags)
    }
}

pub struct Inflight {
    app: AppState,
    started: Instant,
    rec: Option<InferenceRecord>,
    pub attempts: Vec<Attempt>,
    model: Option<std::sync::Arc<ModelConfig>>,
    ttft: Option<f64>,
    /// Span ids, when traces are exported.
    trace: Option<TraceStart>,
    /// `max_tokens` and `temperature` as requested, for the span.
    params: (Option<u32>, Option<f32>),
    /// Prompt and answer as GenAI-convention JSON, only when `capture_content` is on.
    content: (Option<String>, Option<String>),
    /// Request and answer bodies, only when the route keeps this request's (`store_bodies`).
    bodies: Option<Bodies>,
    /// The caller's virtual key, for route scopes and limits.
    key: Option<std::sync::Arc<gardefou_store::KeyRecord>>,
    /// What the limits reserved for this call, settled when it finishes.
    reservation: Option<Reservation>,
    /// Headers for the client (`x-ratelimit-*`, a budget downgrade).
    headers: Vec<(&'static str, String)>,
    /// The caller asked for a human.
    escalate_requested: bool,
    /// A call gardefou made to itself: never sampled for online quality.
    internal: bool,
    /// The request's `context` documents (the field is gardefou's, taken off the request).
    context: Vec<String>,
    /// What the quality judge will need, when this request was sampled.
    quality: Option<Box<crate::quality::Pending>>,
}

/// How an answer ended, for the record.
#[derive(Debug, Default)]
pub struct Outcome {
    pub usage: Option<Usage>,
    pub tokens_estimated: bool,
    pub finish_reason: Option<FinishReason>,
    /// Request parameters the answering provider lacks and that were dropped.
    pub dropped_params: Vec<&'static str>,
}

impl Inflight {
    pub fn new(
        app: &AppState,
        id: String,
        request_id: String,
        endpoint: &str,
        stream: bool,
        caller: Caller,
    ) -> Self {
        let trace = app.traces().start(caller.traceparent.as_deref(), caller.tracestate.as_deref());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Inflight {
            app: app.clone(),
            started: Instant::now(),
            rec: Some(InferenceRecord {
                id,
                created_at_ms: now_ms,
                request_id,
                endpoint: endpoint.to_owned(),
                route: None,
                model: None,
                provider: None,
                key_id: caller.key_id,
                team: caller.team,
                product: caller.product,
                end_user: caller.end_user,
                status: 0,
                error_kind: None,
                error_message: None,
                stream,
                input_tokens: None,
                cached_input_tokens: None,
                output_tokens: None,
                reasoning_tokens: None,
                tokens_estimated: false,
                cost_usd: None,
                latency_ms: 0.0,
                ttft_ms: None,
                finish_reason: None,
                attempts: Vec::new(),
                tags: caller.tags,
                bodies: None,
            }),
            attempts: Vec::new(),
            model: None,
            ttft: None,
            trace,
            params: (None, None),
            content: (None, None),
            bodies: None,
            key: caller.key,
            reservation: None,
            headers: Vec::new(),
            escalate_requested: caller.escalate,
            internal: caller.internal,
            context: Vec::new(),
            quality: None,
        }
    }

    /// Keeps the request's `context` documents for the quality judge.
    pub fn set_context(&mut self, context: Vec<String>) {
        self.context = context;
    }

    /// Draws this request into the route's online-quality sample. Calls gardefou makes itself
    /// and eval traffic (tagged `eval_suite`) are never sampled.
    pub fn sample_quality(&mut self, route: &gardefou_core::config::RouteConfig, req: &ChatRequest) {
        let Some(q) = &route.quality else { return };
        let eval = self.rec.as_ref().is_some_and(|r| r.tags.contains_key("eval_suite"));
        if self.internal || eval || rand::random::<f64>() >= q.sample {
            return;
        }
        self.quality = Some(Box::new(crate::quality::Pending::new(q, req, &self.context)));
    }

    /// Takes the span ids for the provider calls; give them back with `put_trace`.
    pub fn take_trace(&mut self) -> Option<TraceStart> {
        self.trace.take()
    }

    pub fn put_trace(&mut self, trace: Option<TraceStart>) {
        self.trace = trace;
    }

    pub fn traces(&self) -> &Traces {
        self.app.traces()
    }

    pub fn set_params(&mut self, max_tokens: Option<u32>, temperature: Option<f32>) {
        self.params = (max_tokens, temperature);
    }

    /// Keeps the prompt for the span; does nothing unless `capture_content` is on.
    pub fn capture_input(&mut self, messages: &[Message]) {
        if self.trace.is_some() && self.app.traces().capture_content() {
            let v: Vec<_> = messages.iter().map(|m| genai_message(m.role, &m.text_content(), None)).collect();
            self.content.0 = serde_json::to_string(&v).ok();
        }
    }

    /// Keeps the request body when the route's `store_bodies` selects this request.
    pub fn keep_request(&mut self, policy: StoreBodies, req: &ChatRequest) {
        if policy.keep(rand::random::<f64>()) {
            if let Ok(request) = serde_json::to_string(req) {
                self.bodies = Some(Bodies { request, response: None });
            }
        }
    }

    /// Keeps a whole non-streamed answer as the response body, if the request body was kept.
    pub fn keep_response(&mut self, resp: &ChatResponse) {
        if let Some(b) = &mut self.bodies {
            b.response = serde_json::to_string(resp).ok();
        }
    }

    /// Whether the answer text is wanted (span content or a stored body).
    pub fn captures_output(&self) -> bool {
        self.bodies.is_some()
            || self.quality.is_some()
            || (self.trace.is_some() && self.app.traces().capture_content())
    }

    /// Keeps a streamed answer for the span (when `capture_content` is on) and as the response
    /// body (when the request body was kept).
    pub fn capture_output(&mut self, text: &str, finish: Option<FinishReason>) {
        if let Some(q) = &mut self.quality {
            q.answer = Some(text.to_owned());
        }
        if self.trace.is_some() && self.app.traces().capture_content() {
            let v = [genai_message(Role::Assistant, text, finish)];
            self.content.1 = serde_json::to_string(&v).ok();
        }
        if let Some(b) = &mut self.bodies {
            if b.response.is_none() {
                let v =
                    serde_json::json!({ "content": text, "finish_reason": finish.map(FinishReason::as_str) });
                b.response = serde_json::to_string(&v).ok();
            }
        }
    }

    /// The caller's virtual key, if it came with one.
    pub fn key(&self) -> Option<&gardefou_store::KeyRecord> {
        self.key.as_deref()
    }

    /// The caller as the limits see it: key, team, product, end user.
    pub fn ask<'a>(&'a self, input: crate::limits::Input<'a>) -> crate::limits::Ask<'a> {
        let rec = self.rec.as_ref();
        crate::limits::Ask {
            key: self.key.as_deref(),
            team: rec.and_then(|r| r.team.as_deref()),
            product: rec.and_then(|r| r.product.as_deref()),
            end_user: rec.and_then(|r| r.end_user.as_deref()),
            input,
        }
    }

    pub fn app(&self) -> &AppState {
        &self.app
    }

    /// Whether the caller asked for a human.
    pub fn escalate_requested(&self) -> bool {
        self.escalate_requested
    }

    /// (key id, team, product, end user) of the caller.
    pub fn attribution(&self) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
        match &self.rec {
            Some(r) => (r.key_id.clone(), r.team.clone(), r.product.clone(), r.end_user.clone()),
            None => (None, None, None, None),
        }
    }

    pub fn limits(&self) -> &crate::limits::Limits {
        self.app.limits()
    }

    /// Keeps what the limits reserved (settled at finish) and the headers they give the client.
    pub fn admitted(&mut self, reservation: Option<Reservation>, headers: Vec<(&'static str, String)>) {
        self.reservation = reservation;
        self.headers.extend(headers);
    }

    /// Adds a tag to the record (e.g. why a stream was cut).
    pub fn add_tag(&mut self, key: &str, value: &str) {
        if let Some(r) = &mut self.rec {
            r.tags.insert(key.to_owned(), value.to_owned());
        }
    }

    pub fn add_header(&mut self, name: &'static str, value: String) {
        self.headers.push((name, value));
    }

    /// Headers for the client's response.
    pub fn response_headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    pub fn metrics(&self) -> &crate::telemetry::Metrics {
        self.app.metrics()
    }

    pub fn id(&self) -> &str {
        self.rec.as_ref().map_or("", |r| r.id.as_str())
    }

    /// The caller, to add tags from the request body.
    pub fn caller_mut(&mut self) -> CallerMut<'_> {
        CallerMut(self.rec.as_mut())
    }

    /// The model that answered, once known.
    pub fn model_name(&self) -> String {
        self.model.as_ref().map(|m| m.name.clone()).unwrap_or_default()
    }

    pub fn set_route(&mut self, route: &str) {
        if let Some(r) = &mut self.rec {
            r.route = Some(route.to_owned());
        }
    }

    pub fn set_end_user(&mut self, user: Option<&str>) {
        if let (Some(r), Some(u)) = (&mut self.rec, user) {
            if r.end_user.is_none() {
                r.end_user = Some(u.to_owned());
            }
        }
    }

    pub fn set_model(&mut self, model: &std::sync::Arc<ModelConfig>) {
        self.model = Some(model.clone());
    }

    pub fn mark_first_token(&mut self) {
        if self.ttft.is_none() {
            self.ttft = Some(self.started.elapsed().as_secs_f64());
        }
    }

    pub fn finish_ok(mut self, outcome: Outcome) {
        self.finish(200, None, outcome);
    }

    pub fn finish_err(mut self, err: &Error, outcome: Outcome) {
        self.finish(err.status(), Some(err), outcome);
    }

    fn finish(&mut self, status: u16, err: Option<&Error>, outcome: Outcome) {
        let Some(mut rec) = self.rec.take() else { return };
        let latency = self.started.elapsed().as_secs_f64();
        rec.status = status;
        rec.latency_ms = latency * 1000.0;
        rec.ttft_ms = self.ttft.map(|t| t * 1000.0);
        rec.attempts = std::mem::take(&mut self.attempts);
        rec.finish_reason = outcome.finish_reason.map(|f| f.as_str().to_owned());
        rec.tokens_estimated = outcome.tokens_estimated;
        rec.bodies = self.bodies.take();
        if let Some(e) = err {
            rec.error_kind = Some(e.kind().to_owned());
            rec.error_message = Some(e.to_string());
        }
        // The model that answered, else the last one tried.
        let model = self.model.take();
        if let Some(m) = &model {
            rec.model = Some(m.name.clone());
            rec.provider = Some(m.provider.clone());
        } else if let Some(last) = rec.attempts.iter().rev().find(|a| a.status.is_some()) {
            rec.model = Some(last.model.clone());
            rec.provider = Some(last.provider.clone());
        }
        let m = self.app.metrics();
        let route = rec.route.clone().unwrap_or_default();
        let labels = ModelLabels {
            route: route.clone(),
            model: rec.model.clone().unwrap_or_default(),
            provider: rec.provider.clone().unwrap_or_default(),
        };
        if let Some(u) = outcome.usage {
            rec.input_tokens = Some(u.input as i64);
            rec.cached_input_tokens = Some(u.cached_input as i64);
            rec.output_tokens = Some(u.output as i64);
            rec.reasoning_tokens = Some(u.reasoning as i64);
            rec.cost_usd = cost_usd(model.as_ref().and_then(|m| m.price.as_ref()), &u);
            for (kind, n) in [
                ("input", u.input),
                ("cached_input", u.cached_input),
                ("output", u.output),
                ("reasoning", u.reasoning),
            ] {
                if n > 0 {
                    m.tokens()
                        .get_or_create(&TokenLabels {
                            route: labels.route.clone(),
                            model: labels.model.clone(),
                            provider: labels.provider.clone(),
                            kind,
                        })
                        .inc_by(n);
                }
            }
            match rec.cost_usd {
                Some(c) => {
                    m.cost().get_or_create(&labels).inc_by(c);
                }
                None => {
                    m.unknown_price().get_or_create(&labels).inc();
                }
            }
        }
        if let Some(res) = self.reservation.take() {
            // A failed call without usage cost nothing; an answer at an unknown price keeps its
            // worst case.
            let cost = match (&rec.cost_usd, rec.input_tokens) {
                (Some(c), _) => Some(*c),
                (None, None) => Some(0.0),
                (None, Some(_)) => None,
            };
            let tokens = rec.input_tokens.unwrap_or(0) + rec.output_tokens.unwrap_or(0);
            self.app.limits().settle(res, cost, u64::try_from(tokens).unwrap_or(0));
        }
        m.requests()
            .get_or_create(&RequestLabels {
                route: route.clone(),
                model: labels.model.clone(),
                provider: labels.provider.clone(),
                status_class: status_class(status),
                stream: if rec.stream { "true" } else { "false" },
            })
            .inc();
        if let Some(e) = err {
            m.errors().get_or_create(&ErrorLabels { route, kind: e.kind() }).inc();
        } else if status == CLIENT_CLOSED {
            m.errors().get_or_create(&ErrorLabels { route, kind: "client_closed" }).inc();
        }
        m.latency().get_or_create(&labels).observe(latency);
        if let Some(pending) = self.quality.take().filter(|q| status == 200 && q.answer.is_some()) {
            let job = crate::quality::Job {
                pending: *pending,
                inference_id: rec.id.clone(),
                route: rec.route.clone(),
                model: rec.model.clone(),
                provider: rec.provider.clone(),
                team: rec.team.clone(),
                product: rec.product.clone(),
            };
            self.app.quality().offer(job, m);
        }
        if let Some(t) = self.ttft {
            m.ttft().get_or_create(&labels).observe(t);
        }
        if let Some(trace) = self.trace.take() {
            let kind = rec.provider.as_ref().and_then(|p| {
                self.app.runtime().config.providers.get(p).map(|c| otel::provider_system(c.kind))
            });
            self.app.traces().export(
                trace,
                SpanInput {
                    rec: &rec,
                    provider_system: kind,
                    response_model: model.as_ref().map(|m| m.upstream.as_str()),
                    max_tokens: self.params.0,
                    temperature: self.params.1,
                    input_messages: self.content.0.as_deref(),
                    output_messages: self.content.1.as_deref(),
                },
            );
        }
        self.app.recorder().record(rec);
    }
}

/// One message in the GenAI conventions' shape: `{"role", "parts": [{"type": "text", …}]}`.
fn genai_message(role: Role, text: &str, finish: Option<FinishReason>) -> serde_json::Value {
    let mut m = serde_json::json!({
        "role": role,
        "parts": [{ "type": "text", "content": text }],
    });
    if let (Some(f), Some(obj)) = (finish, m.as_object_mut()) {
        obj.insert("finish_reason".to_owned(), f.as_str().into());
    }
    m
}

impl Drop for Inflight {
    fn drop(&mut self) {
        if self.rec.is_some() {
            if let Some(r) = &mut self.rec {
                r.error_kind = Some("client_closed".to_owned());
                r.error_message = Some("the client disconnected before the answer was complete".to_owned());
            }
            self.finish(CLIENT_CLOSED, None, Outcome::default());
        }
    }
}
