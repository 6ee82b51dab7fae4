//! Stand-in for `otel` when the cargo feature is off: tracing is never enabled and costs nothing.

use gardefou_core::config::TelemetryConfig;
use gardefou_store::InferenceRecord;

#[derive(Clone, Default)]
pub struct Traces;

/// Never constructed without the `otel` feature.
#[derive(Debug, Clone)]
pub struct TraceStart;

pub struct SpanInput<'a> {
    pub rec: &'a InferenceRecord,
    pub provider_system: Option<&'a str>,
    pub response_model: Option<&'a str>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub input_messages: Option<&'a str>,
    pub output_messages: Option<&'a str>,
}

impl Traces {
    pub fn from_config(cfg: Option<&TelemetryConfig>) -> Result<Traces, String> {
        if cfg.is_some() {
            tracing::warn!("[telemetry] is set but this build has no `otel` feature: no spans are exported");
        }
        Ok(Traces)
    }

    pub fn enabled(&self) -> bool {
        false
    }

    pub fn capture_content(&self) -> bool {
        false
    }

    pub fn start(&self, _traceparent: Option<&str>, _tracestate: Option<&str>) -> Option<TraceStart> {
        None
    }

    pub fn export(&self, _start: TraceStart, _span: SpanInput<'_>) {}

    pub async fn shutdown(&self) {}
}

impl TraceStart {
    pub fn next_attempt(&mut self, _ids: &Traces) -> Vec<(String, String)> {
        Vec::new()
    }
}

pub fn provider_system(_kind: gardefou_core::config::ProviderKind) -> &'static str {
    ""
}
