//! What gardefou tells the outside about itself: Prometheus metrics, logs and (cargo feature
//! `otel`) OpenTelemetry traces.

pub mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(not(feature = "otel"))]
#[path = "otel_off.rs"]
pub mod otel;

pub use metrics::Metrics;
pub use otel::{TraceStart, Traces};

/// Logs to stderr; `RUST_LOG` filters (default `info`), `GARDEFOU_LOG_FORMAT=json` for JSON lines.
pub fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("GARDEFOU_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
