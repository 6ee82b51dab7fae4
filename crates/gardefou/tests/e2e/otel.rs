//! OpenTelemetry traces against real OTLP receivers on 127.0.0.1:0: an axum server decoding
//! `POST /v1/traces` protobuf bodies and a tonic server implementing the OTLP trace service.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;
use serde_json::json;

use crate::harness::{json_reply, Gateway, Upstream, MOCK};

/// What a receiver got: spans with the `service.name` of their resource.
#[derive(Clone, Default)]
pub(crate) struct Received(Arc<Mutex<Vec<(String, Span)>>>);

impl Received {
    fn take(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s,
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                all.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }

    /// Waits (at most 5 s) until `n` spans arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<(String, Span)> {
        for _ in 0..250 {
            if self.0.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = self.0.lock().unwrap().clone();
        assert!(got.len() >= n, "expected {n} spans, got {}", got.len());
        got
    }
}

pub(crate) struct Collector {
    endpoint: String,
    protocol: &'static str,
    pub(crate) received: Received,
}

pub(crate) async fn http_collector() -> Collector {
    use axum::extract::State;
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(|State(r): State<Received>, body: axum::body::Bytes| async move {
                r.take(ExportTraceServiceRequest::decode(body).unwrap());
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Collector { endpoint: format!("http://{addr}"), protocol: "http/protobuf", received }
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_collector() -> Collector {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(Grpc(received.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    Collector { endpoint: format!("http://{addr}"), protocol: "grpc", received }
}

pub(crate) fn telemetry(c: &Collector, extra: &str) -> String {
    format!(
        "[telemetry]\notlp_endpoint = \"{}\"\notlp_protocol = \"{}\"\nservice_name = \"gardefou-test\"\nexport_interval = \"50ms\"\n{extra}\n",
        c.endpoint, c.protocol
    )
}

fn attr(s: &Span, key: &str) -> Option<AnyValue> {
    s.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn text(s: &Span, key: &str) -> String {
    match attr(s, key) {
        Some(AnyValue::StringValue(v)) => v,
        other => panic!("{key}: {other:?}"),
    }
}

fn int(s: &Span, key: &str) -> i64 {
    match attr(s, key) {
        Some(AnyValue::IntValue(v)) => v,
        other => panic!("{key}: {other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn request(route: &str) -> serde_json::Value {
    json!({"model": route, "max_tokens": 64, "temperature": 0.25,
        "messages": [{"role": "user", "content": "Bonjour from the span test"}]})
}

/// Splits the inference span (the one without a local parent) from its attempt spans.
fn split(spans: &[(String, Span)]) -> (Span, Vec<Span>) {
    let root = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name.starts_with("chat ") || s.name.starts_with("embeddings "));
    let root = root.expect("an inference span").clone();
    let children =
        spans.iter().map(|(_, s)| s.clone()).filter(|s| s.parent_span_id == root.span_id).collect();
    (root, children)
}

async fn retry_then_fallback(c: &Collector) {
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.down]
provider = "demo"
mock = {{ mode = "fail", status = 503 }}
[models.up]
provider = "demo"
[routes.support-bot]
targets = [{{ model = "down" }}]
fallbacks = ["up"]
retry = {{ attempts = 2, backoff = "1ms" }}
breaker = {{ failures = 100 }}
{}"#,
        telemetry(c, "")
    ))
    .await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-gardefou-team", "care")
        .header("x-gardefou-product", "helpdesk")
        .json(&request("support-bot"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let inference_id = resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let spans = c.received.wait_for(4).await;
    assert_eq!(spans.len(), 4, "one inference span and three attempts");
    assert!(spans.iter().all(|(service, _)| service == "gardefou-test"));
    let (root, mut attempts) = split(&spans);
    assert_eq!(root.name, "chat support-bot");
    assert_eq!(root.kind, SpanKind::Client as i32);
    assert!(root.parent_span_id.is_empty(), "a new trace without a client traceparent");
    assert_eq!(text(&root, "gen_ai.operation.name"), "chat");
    assert_eq!(text(&root, "gen_ai.provider.name"), "gardefou.mock");
    assert_eq!(text(&root, "gen_ai.system"), "gardefou.mock");
    assert_eq!(text(&root, "gen_ai.request.model"), "support-bot");
    assert_eq!(text(&root, "gardefou.route"), "support-bot");
    assert!(!text(&root, "gen_ai.response.model").is_empty());
    assert_eq!(text(&root, "gardefou.model"), "up");
    assert!(int(&root, "gen_ai.usage.input_tokens") > 0);
    assert!(int(&root, "gen_ai.usage.output_tokens") > 0);
    match attr(&root, "gen_ai.response.finish_reasons") {
        Some(AnyValue::ArrayValue(a)) => {
            assert_eq!(a.values.len(), 1);
            assert_eq!(a.values[0].value, Some(AnyValue::StringValue("stop".into())));
        }
        other => panic!("finish_reasons: {other:?}"),
    }
    assert_eq!(int(&root, "gen_ai.request.max_tokens"), 64);
    assert_eq!(attr(&root, "gen_ai.request.temperature"), Some(AnyValue::DoubleValue(0.25)));
    assert_eq!(text(&root, "gardefou.inference_id"), inference_id);
    assert_eq!(text(&root, "gardefou.team"), "care");
    assert_eq!(text(&root, "gardefou.product"), "helpdesk");
    assert_eq!(int(&root, "http.response.status_code"), 200);
    assert!(attr(&root, "gardefou.cost_usd").is_some() || attr(&root, "gardefou.model").is_some());
    assert!(attr(&root, "error.type").is_none());
    assert!(attr(&root, "gen_ai.input.messages").is_none(), "no content unless capture_content");
    assert!(attr(&root, "gen_ai.output.messages").is_none());
    assert_ne!(root.status.as_ref().map_or(0, |s| s.code), StatusCode::Error as i32);
    assert!(root.end_time_unix_nano >= root.start_time_unix_nano);

    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 3);
    for a in &attempts {
        assert_eq!(a.trace_id, root.trace_id);
        assert_eq!(a.kind, SpanKind::Client as i32);
        assert!(a.start_time_unix_nano >= root.start_time_unix_nano);
        assert!(a.end_time_unix_nano <= root.end_time_unix_nano);
    }
    let outline: Vec<(String, String)> =
        attempts.iter().map(|a| (text(a, "gardefou.model"), text(a, "gardefou.attempt.outcome"))).collect();
    assert_eq!(outline[2], ("up".into(), "ok".into()));
    assert_eq!(outline[0].0, "down");
    assert_ne!(outline[0].1, "ok");
    assert_eq!(attempts[0].status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32));
    assert!(attr(&attempts[0], "error.type").is_some());
    gw.stop().await;
}

#[tokio::test]
async fn an_inference_becomes_a_genai_span_with_attempt_children_over_otlp_http() {
    retry_then_fallback(&http_collector().await).await;
}

#[tokio::test]
async fn an_inference_becomes_a_genai_span_with_attempt_children_over_otlp_grpc() {
    retry_then_fallback(&grpc_collector().await).await;
}

#[tokio::test]
async fn a_client_traceparent_parents_the_inference_span_and_reaches_the_upstream() {
    let c = http_collector().await;
    let up = Upstream::start(json_reply(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Salut"}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}}),
    ))
    .await;
    let gw = Gateway::start(&format!(
        r#"
[providers.up]
kind = "openai_compatible"
base_url = "{}"
[models.m]
provider = "up"
upstream = "gpt-4o-mini"
[routes.r]
targets = [{{ model = "m" }}]
retry = {{ attempts = 1 }}
{}"#,
        up.base,
        telemetry(&c, "")
    ))
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .header("tracestate", "vendor=abc")
        .json(&request("r"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let spans = c.received.wait_for(2).await;
    let (root, attempts) = split(&spans);
    assert_eq!(hex(&root.trace_id), trace_id);
    assert_eq!(hex(&root.parent_span_id), client_span);
    assert_eq!(root.trace_state, "vendor=abc");
    assert_eq!(text(&root, "gen_ai.provider.name"), "openai");
    assert_eq!(text(&root, "gen_ai.response.model"), "gpt-4o-mini");
    assert_eq!(int(&root, "gen_ai.usage.input_tokens"), 9);
    assert_eq!(attempts.len(), 1);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let sent = seen[0].headers["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(
        sent,
        format!("00-{trace_id}-{}-01", hex(&attempts[0].span_id)),
        "the upstream call names its attempt span"
    );
    assert_eq!(seen[0].headers["tracestate"], "vendor=abc");
    gw.stop().await;
}

#[tokio::test]
async fn a_failed_inference_span_has_status_error_and_error_type() {
    let c = grpc_collector().await;
    let gw = Gateway::start(&format!(
        r#"{MOCK}
[models.down]
provider = "demo"
mock = {{ mode = "fail", status = 500 }}
[routes.r]
targets = [{{ model = "down" }}]
retry = {{ attempts = 1 }}
{}"#,
        telemetry(&c, "")
    ))
    .await;
    let resp = gw.chat(request("r")).await;
    assert!(resp.status().is_server_error());
    let spans = c.received.wait_for(2).await;
    let (root, attempts) = split(&spans);
    assert_eq!(root.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32));
    assert!(!text(&root, "error.type").is_empty());
    assert_eq!(int(&root, "http.response.status_code"), i64::from(resp.status().as_u16()));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32));
    gw.stop().await;
}

#[tokio::test]
async fn content_goes_on_spans_only_with_capture_content() {
    let c = http_collector().await;
    let gw = Gateway::start(&format!(
        "{MOCK}\n[models.up]\nprovider = \"demo\"\n[routes.r]\ntargets = [{{ model = \"up\" }}]\n{}",
        telemetry(&c, "capture_content = true")
    ))
    .await;
    let resp = gw.chat(request("r")).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let spans = c.received.wait_for(2).await;
    let (root, _) = split(&spans);
    let input: serde_json::Value = serde_json::from_str(&text(&root, "gen_ai.input.messages")).unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": "Bonjour from the span test"}]}])
    );
    let output: serde_json::Value = serde_json::from_str(&text(&root, "gen_ai.output.messages")).unwrap();
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(output[0]["parts"][0]["content"], answer["choices"][0]["message"]["content"]);
    assert_eq!(output[0]["finish_reason"], "stop");
    gw.stop().await;
}

#[tokio::test]
async fn nothing_is_exported_without_a_telemetry_section() {
    let c = http_collector().await;
    let up = Upstream::start(json_reply(
        200,
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]}),
    ))
    .await;
    let gw = Gateway::start(&format!(
        "[providers.up]\nkind = \"openai_compatible\"\nbase_url = \"{}\"\n[models.m]\nprovider = \"up\"\n[routes.r]\ntargets = [{{ model = \"m\" }}]\n",
        up.base
    ))
    .await;
    assert!(!gw.state.traces().enabled());
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&request("r"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    gw.records(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.received.0.lock().unwrap().is_empty());
    assert!(up.seen()[0].headers.get("traceparent").is_none(), "no trace context without [telemetry]");
    gw.stop().await;
}
