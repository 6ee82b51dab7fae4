//! OpenTelemetry traces (cargo feature `otel`): one CLIENT span per inference with the GenAI
//! semantic conventions and one child span per provider attempt, exported over OTLP (gRPC or
//! HTTP/protobuf) by the SDK's bounded batch processor on the tokio runtime.
//!
//! Ids are chosen when the request starts (`Traces::start`), so that each upstream request can
//! carry a `traceparent` naming its attempt span; the spans themselves are built only when the
//! inference is finished (`Traces::export`), from the record, with explicit start and end times,
//! and handed to the processor's queue without waiting. A full queue drops spans (the SDK counts).
//! Targets skipped without a call (circuit open, provider disabled) are events on the inference
//! span, not spans: no upstream request was made.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gardefou_core::config::{OtlpProtocol, TelemetryConfig};
use gardefou_store::InferenceRecord;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, Context, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample, SpanData,
    SpanEvents, SpanProcessor,
};
use opentelemetry_sdk::Resource;

/// The trace exporter, or nothing when the config has no `[telemetry]` section.
#[derive(Clone, Default)]
pub struct Traces {
    inner: Option<Arc<Exporter>>,
}

struct Exporter {
    processor: BatchSpanProcessor<Tokio>,
    sampler: Sampler,
    capture_content: bool,
    scope: InstrumentationScope,
    ids: RandomIdGenerator,
}

/// The ids of one inference's spans, chosen at request start.
#[derive(Debug, Clone)]
pub struct TraceStart {
    trace_id: TraceId,
    span_id: SpanId,
    /// The client's span, when it sent a `traceparent`.
    parent: Option<SpanId>,
    sampled: bool,
    state: TraceState,
    start: SystemTime,
    /// One per provider call, in call order.
    attempts: Vec<(SpanId, SystemTime)>,
}

/// What the inference span says beyond the stored record.
pub struct SpanInput<'a> {
    pub rec: &'a InferenceRecord,
    /// `gen_ai.provider.name` of the answering (or last tried) provider.
    pub provider_system: Option<&'a str>,
    /// The upstream model id that answered.
    pub response_model: Option<&'a str>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// JSON of the prompt and the answer, present only when `capture_content` is on.
    pub input_messages: Option<&'a str>,
    pub output_messages: Option<&'a str>,
}

impl Traces {
    /// Builds the exporter; must run inside the tokio runtime. `Err` names what is wrong.
    pub fn from_config(cfg: Option<&TelemetryConfig>) -> Result<Traces, String> {
        let Some(cfg) = cfg else { return Ok(Traces::default()) };
        let mut headers = HashMap::new();
        for (name, secret) in &cfg.headers {
            let value = secret.resolve().map_err(|e| format!("telemetry.headers.{name}: {e}"))?;
            headers.insert(name.clone(), value.expose().to_owned());
        }
        let exporter = match cfg.otlp_protocol {
            OtlpProtocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                        .map_err(|_| format!("telemetry.headers: `{k}` is not a gRPC metadata key"))?;
                    let value = v.parse().map_err(|_| {
                        format!("telemetry.headers.{k}: the value is not a valid header value")
                    })?;
                    metadata.insert(key, value);
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(cfg.otlp_endpoint.clone())
                    .with_metadata(metadata)
                    .build()
            }
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(format!("{}/v1/traces", cfg.otlp_endpoint))
                .with_headers(headers)
                .with_http_client(ReqwestClient(reqwest::Client::new()))
                .build(),
        }
        .map_err(|e| format!("cannot build the OTLP exporter for {}: {e}", cfg.otlp_endpoint))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(4096)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(cfg.export_interval)
            .with_max_export_timeout(Duration::from_secs(10))
            .build();
        let mut processor = BatchSpanProcessor::builder(exporter, Tokio).with_batch_config(batch).build();
        processor
            .set_resource(&Resource::builder_empty().with_service_name(cfg.service_name.clone()).build());
        let scope = InstrumentationScope::builder("gardefou").with_version(env!("CARGO_PKG_VERSION")).build();
        Ok(Traces {
            inner: Some(Arc::new(Exporter {
                processor,
                sampler: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(cfg.sample_ratio))),
                capture_content: cfg.capture_content,
                scope,
                ids: RandomIdGenerator::default(),
            })),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether prompts and answers go on spans.
    pub fn capture_content(&self) -> bool {
        self.inner.as_ref().is_some_and(|e| e.capture_content)
    }

    /// Chooses the ids of an inference's spans: a child of the client's `traceparent` if valid,
    /// else a new trace. `None` when tracing is off.
    pub fn start(&self, traceparent: Option<&str>, tracestate: Option<&str>) -> Option<TraceStart> {
        let e = self.inner.as_ref()?;
        let mut carrier = HashMap::new();
        if let Some(tp) = traceparent {
            carrier.insert("traceparent".to_owned(), tp.to_owned());
            if let Some(ts) = tracestate {
                carrier.insert("tracestate".to_owned(), ts.to_owned());
            }
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        let remote = cx.span().span_context().clone();
        let (trace_id, parent, state) = if remote.is_valid() {
            (remote.trace_id(), Some(remote.span_id()), remote.trace_state().clone())
        } else {
            (e.ids.new_trace_id(), None, TraceState::default())
        };
        let decision = e.sampler.should_sample(Some(&cx), trace_id, "", &SpanKind::Client, &[], &[]);
        Some(TraceStart {
            trace_id,
            span_id: e.ids.new_span_id(),
            parent,
            sampled: decision.decision == SamplingDecision::RecordAndSample,
            state,
            start: SystemTime::now(),
            attempts: Vec::new(),
        })
    }

    /// Builds the spans of a finished inference and queues them for export; never waits.
    pub fn export(&self, start: TraceStart, span: SpanInput<'_>) {
        let Some(e) = self.inner.as_ref() else { return };
        if !start.sampled {
            return;
        }
        for data in e.spans(start, span) {
            e.processor.on_end(data);
        }
    }

    /// Exports what is queued and stops; call after the last inference was finished.
    pub async fn shutdown(&self) {
        let Some(e) = self.inner.clone() else { return };
        // The SDK blocks this thread until the export task answered.
        let done = tokio::task::spawn_blocking(move || e.processor.shutdown()).await;
        match done {
            Ok(Ok(())) => tracing::info!("trace spans flushed"),
            Ok(Err(err)) => tracing::warn!(error = %err, "trace exporter shutdown failed"),
            Err(err) => tracing::warn!(error = %err, "trace exporter shutdown failed"),
        }
    }
}

impl TraceStart {
    /// Reserves the span of the next provider call and returns the headers naming it.
    pub fn next_attempt(&mut self, ids: &Traces) -> Vec<(String, String)> {
        let Some(e) = ids.inner.as_ref() else { return Vec::new() };
        let span_id = e.ids.new_span_id();
        self.attempts.push((span_id, SystemTime::now()));
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let sc = SpanContext::new(self.trace_id, span_id, flags, false, self.state.clone());
        let mut carrier = HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut carrier);
        carrier.into_iter().collect()
    }
}

impl Exporter {
    fn spans(&self, start: TraceStart, input: SpanInput<'_>) -> Vec<SpanData> {
        let rec = input.rec;
        let end = start.start + Duration::from_secs_f64(rec.latency_ms.max(0.0) / 1000.0);
        let operation = if rec.endpoint == "embeddings" { "embeddings" } else { "chat" };
        let route = rec.route.clone().unwrap_or_default();
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", route.clone()),
            KeyValue::new("gardefou.route", route.clone()),
            KeyValue::new("gardefou.inference_id", rec.id.clone()),
            KeyValue::new("gardefou.endpoint", rec.endpoint.clone()),
            KeyValue::new("gardefou.stream", rec.stream),
            KeyValue::new("http.response.status_code", i64::from(rec.status)),
        ];
        let mut opt = |k: &'static str, v: Option<Value>| {
            if let Some(v) = v {
                attrs.push(KeyValue::new(k, v));
            }
        };
        let s = |v: &Option<String>| v.clone().map(Value::from);
        opt("gen_ai.provider.name", input.provider_system.map(|p| Value::from(p.to_owned())));
        opt("gen_ai.system", input.provider_system.map(|p| Value::from(p.to_owned())));
        opt("gardefou.provider", s(&rec.provider));
        opt("gardefou.model", s(&rec.model));
        opt("gen_ai.response.model", input.response_model.map(|m| Value::from(m.to_owned())));
        opt("gen_ai.response.id", (rec.status == 200).then(|| Value::from(rec.id.clone())));
        opt("gen_ai.usage.input_tokens", rec.input_tokens.map(Value::from));
        opt("gen_ai.usage.output_tokens", rec.output_tokens.map(Value::from));
        opt(
            "gen_ai.response.finish_reasons",
            rec.finish_reason.clone().map(|f| Value::Array(Array::String(vec![StringValue::from(f)]))),
        );
        opt("gen_ai.request.max_tokens", input.max_tokens.map(|n| Value::from(i64::from(n))));
        opt("gen_ai.request.temperature", input.temperature.map(|t| Value::from(f64::from(t))));
        opt("gardefou.team", s(&rec.team));
        opt("gardefou.product", s(&rec.product));
        opt("gardefou.cost_usd", rec.cost_usd.map(Value::from));
        opt("gardefou.tokens_estimated", rec.tokens_estimated.then_some(Value::from(true)));
        opt("error.type", s(&rec.error_kind));
        if self.capture_content {
            opt("gen_ai.input.messages", input.input_messages.map(|m| Value::from(m.to_owned())));
            opt("gen_ai.output.messages", input.output_messages.map(|m| Value::from(m.to_owned())));
        }
        let status = match &rec.error_kind {
            Some(kind) if rec.status != 200 => Status::error(kind.clone()),
            _ => Status::Unset,
        };
        let name = format!("{operation} {route}");
        let flags = TraceFlags::SAMPLED;
        let mut events = SpanEvents::default();
        let mut out = Vec::with_capacity(rec.attempts.len() + 1);
        let mut calls = start.attempts.iter();
        let mut at = start.start;
        for (n, a) in rec.attempts.iter().enumerate() {
            if a.status.is_none() {
                events.events.push(Event::new(
                    "gardefou.target_skipped",
                    at,
                    vec![
                        KeyValue::new("gardefou.model", a.model.clone()),
                        KeyValue::new("gardefou.provider", a.provider.clone()),
                        KeyValue::new("gardefou.attempt.outcome", a.error_kind.clone().unwrap_or_default()),
                    ],
                    0,
                ));
                continue;
            }
            let Some(&(span_id, t0)) = calls.next() else { continue };
            let t1 = t0 + Duration::from_secs_f64(a.latency_ms.max(0.0) / 1000.0);
            at = t1;
            let outcome = if a.status == Some(200) {
                "ok".to_owned()
            } else {
                a.error_kind.clone().unwrap_or_default()
            };
            let mut attempt_attrs = vec![
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("gardefou.attempt", i64::try_from(n + 1).unwrap_or(i64::MAX)),
                KeyValue::new("gardefou.model", a.model.clone()),
                KeyValue::new("gardefou.provider", a.provider.clone()),
                KeyValue::new("gardefou.attempt.outcome", outcome),
                KeyValue::new("gardefou.attempt.latency_ms", a.latency_ms),
            ];
            if let Some(code) = a.status {
                attempt_attrs.push(KeyValue::new("http.response.status_code", i64::from(code)));
            }
            if let Some(kind) = &a.error_kind {
                attempt_attrs.push(KeyValue::new("error.type", kind.clone()));
            }
            out.push(SpanData {
                span_context: SpanContext::new(start.trace_id, span_id, flags, false, start.state.clone()),
                parent_span_id: start.span_id,
                parent_span_is_remote: false,
                span_kind: SpanKind::Client,
                name: format!("attempt {}", a.model).into(),
                start_time: t0,
                end_time: t1,
                attributes: attempt_attrs,
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: Default::default(),
                status: if a.status == Some(200) {
                    Status::Unset
                } else {
                    Status::error(a.error_kind.clone().unwrap_or_default())
                },
                instrumentation_scope: self.scope.clone(),
            });
        }
        out.push(SpanData {
            span_context: SpanContext::new(start.trace_id, start.span_id, flags, false, start.state.clone()),
            parent_span_id: start.parent.unwrap_or(SpanId::INVALID),
            parent_span_is_remote: start.parent.is_some(),
            span_kind: SpanKind::Client,
            name: name.into(),
            start_time: start.start,
            end_time: end.max(start.start),
            attributes: attrs,
            dropped_attributes_count: 0,
            events,
            links: Default::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
        out
    }
}

/// OTLP/HTTP through the reqwest client gardefou already links (rustls), instead of a second
/// HTTP stack.
#[derive(Debug)]
struct ReqwestClient(reqwest::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ReqwestClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let resp = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut out = http::Response::builder().status(resp.status());
        if let Some(h) = out.headers_mut() {
            *h = resp.headers().clone();
        }
        Ok(out.body(resp.bytes().await?)?)
    }
}

/// `gen_ai.provider.name` for a provider kind (the GenAI conventions' well-known values).
pub fn provider_system(kind: gardefou_core::config::ProviderKind) -> &'static str {
    use gardefou_core::config::ProviderKind as K;
    match kind {
        K::OpenAi | K::OpenAiCompatible => "openai",
        K::Azure => "azure.ai.openai",
        K::Anthropic => "anthropic",
        K::Gemini => "gcp.gemini",
        K::Vertex => "gcp.vertex_ai",
        K::Mock => "gardefou.mock",
        K::Local => "gardefou.local",
    }
}
