//! The translation conformance matrix: each client wire format (OpenAI chat, Anthropic messages)
//! × each provider adapter (OpenAI, Anthropic, Gemini) × each scenario. A raw TCP upstream
//! replays the provider's documented format in 7-byte writes (so SSE events and multi-byte
//! characters are split across reads); each case asserts the client-visible facts and snapshots
//! both the exact outgoing request and the exact client-visible answer.

mod fixtures;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{temp_dir, Gateway};
use fixtures::*;

/// The tool the Anthropic adapter forces to emulate JSON mode.
pub const ANTHROPIC_JSON_TOOL: &str = "json_answer";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ingress {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    PlainText,
    MultiTurn,
    SystemPromptStream,
    ParallelToolsStream,
    ToolResults,
    JsonMode,
    ImageInput,
    StopSequence,
    MaxTokens,
    ErrorMidStream,
    RateLimited,
}

const SCENARIOS: [Scenario; 11] = [
    Scenario::PlainText,
    Scenario::MultiTurn,
    Scenario::SystemPromptStream,
    Scenario::ParallelToolsStream,
    Scenario::ToolResults,
    Scenario::JsonMode,
    Scenario::ImageInput,
    Scenario::StopSequence,
    Scenario::MaxTokens,
    Scenario::ErrorMidStream,
    Scenario::RateLimited,
];

fn snake(s: Scenario) -> String {
    let name = format!("{s:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// One request the upstream received.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Value,
}

/// A raw HTTP/1.1 upstream answering every connection with the scenario's reply, split in small
/// writes, then closing.
async fn raw_upstream(reply: Reply) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let reply = Arc::new(reply);
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let reply = reply.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let header_end = loop {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < header_end + len {
                    let n = sock.read(&mut tmp).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                }
                let body = serde_json::from_slice(&buf[header_end..]).unwrap_or(Value::Null);
                log.lock().unwrap().push(Received { request_line, headers, body });

                let mut head = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", reply.status);
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = sock.write_all(head.as_bytes()).await;
                for piece in reply.body.as_bytes().chunks(7) {
                    if sock.write_all(piece).await.is_err() {
                        return;
                    }
                    let _ = sock.flush().await;
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn provider_config(p: Provider, base: &str, key: &std::path::Path) -> String {
    let (kind, url, upstream) = match p {
        Provider::OpenAi => ("openai", format!("{base}/v1"), "gpt-4o-mini"),
        Provider::Anthropic => ("anthropic", base.to_owned(), "claude-sonnet-4-5"),
        Provider::Gemini => ("gemini", format!("{base}/v1beta"), "gemini-2.5-flash"),
    };
    format!(
        r#"
[providers.up]
kind = "{kind}"
base_url = "{url}"
api_key = "file:{}"
[models.m]
provider = "up"
upstream = "{upstream}"
price = {{ input = 1.0, output = 2.0 }}
[routes.r]
targets = [{{ model = "m" }}]
retry = {{ attempts = 1 }}
"#,
        key.display()
    )
}

/// The client-visible facts of an answer, in canonical words.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    status: u16,
    retry_after: Option<String>,
    text: String,
    tool_calls: Vec<(String, Value)>,
    finish: Option<String>,
    usage: Option<(u64, u64)>,
    error: bool,
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(k.as_str(), "id" | "created") && (x.is_string() || x.is_number()) {
                    *x = json!(format!("[{k}]"));
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

fn finish_canonical(ingress: Ingress, f: &str) -> String {
    match (ingress, f) {
        (Ingress::Anthropic, "end_turn" | "stop_sequence") => "stop".into(),
        (Ingress::Anthropic, "max_tokens") => "length".into(),
        (Ingress::Anthropic, "tool_use") => "tool_calls".into(),
        (Ingress::Anthropic, "refusal") => "content_filter".into(),
        _ => f.into(),
    }
}

/// Reads the client-visible answer into `Seen`, and its redacted form for the snapshot.
fn read_answer(
    ingress: Ingress,
    status: u16,
    retry_after: Option<String>,
    body: &str,
    stream: bool,
) -> (Seen, Value) {
    let mut seen = Seen { status, retry_after, ..Seen::default() };
    if status != 200 {
        let mut v: Value = serde_json::from_str(body).unwrap_or(json!(body));
        seen.error = true;
        redact(&mut v);
        return (seen, v);
    }
    if !stream {
        let mut v: Value = serde_json::from_str(body).unwrap();
        match ingress {
            Ingress::OpenAi => {
                let c = &v["choices"][0];
                seen.text = c["message"]["content"].as_str().unwrap_or_default().to_owned();
                for t in c["message"]["tool_calls"].as_array().into_iter().flatten() {
                    let args = serde_json::from_str(t["function"]["arguments"].as_str().unwrap()).unwrap();
                    seen.tool_calls.push((t["function"]["name"].as_str().unwrap().to_owned(), args));
                }
                seen.finish = c["finish_reason"].as_str().map(|f| finish_canonical(ingress, f));
                seen.usage = Some((
                    v["usage"]["prompt_tokens"].as_u64().unwrap(),
                    v["usage"]["completion_tokens"].as_u64().unwrap(),
                ));
            }
            Ingress::Anthropic => {
                for b in v["content"].as_array().unwrap() {
                    match b["type"].as_str() {
                        Some("text") => seen.text.push_str(b["text"].as_str().unwrap()),
                        Some("tool_use") => {
                            seen.tool_calls.push((b["name"].as_str().unwrap().to_owned(), b["input"].clone()))
                        }
                        _ => {}
                    }
                }
                seen.finish = v["stop_reason"].as_str().map(|f| finish_canonical(ingress, f));
                let u = &v["usage"];
                let input = u["input_tokens"].as_u64().unwrap()
                    + u["cache_read_input_tokens"].as_u64().unwrap_or(0)
                    + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
                seen.usage = Some((input, u["output_tokens"].as_u64().unwrap()));
            }
        }
        redact(&mut v);
        return (seen, v);
    }
    let mut events = Vec::new();
    let mut args: Vec<(String, String)> = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut event = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_owned());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if data == "[DONE]" {
            events.push(json!("[DONE]"));
            continue;
        }
        let mut v: Value = serde_json::from_str(&data).unwrap();
        match ingress {
            Ingress::OpenAi => {
                if v.get("error").is_some() {
                    seen.error = true;
                }
                if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                    seen.usage = Some((
                        u["prompt_tokens"].as_u64().unwrap(),
                        u["completion_tokens"].as_u64().unwrap(),
                    ));
                }
                for c in v["choices"].as_array().into_iter().flatten() {
                    if let Some(t) = c["delta"]["content"].as_str() {
                        seen.text.push_str(t);
                    }
                    for t in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                        let i = t["index"].as_u64().unwrap() as usize;
                        if args.len() <= i {
                            args.resize(i + 1, (String::new(), String::new()));
                        }
                        if let Some(n) = t["function"]["name"].as_str() {
                            args[i].0 = n.to_owned();
                        }
                        if let Some(a) = t["function"]["arguments"].as_str() {
                            args[i].1.push_str(a);
                        }
                    }
                    if let Some(f) = c["finish_reason"].as_str() {
                        seen.finish = Some(f.to_owned());
                    }
                }
                redact(&mut v);
                events.push(v);
            }
            Ingress::Anthropic => {
                match v["type"].as_str().unwrap_or_default() {
                    "error" => seen.error = true,
                    "message_start" => {
                        let u = &v["message"]["usage"];
                        let input = u["input_tokens"].as_u64().unwrap_or(0)
                            + u["cache_read_input_tokens"].as_u64().unwrap_or(0)
                            + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
                        seen.usage = Some((input, 0));
                    }
                    "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                        args.push((v["content_block"]["name"].as_str().unwrap().to_owned(), String::new()));
                    }
                    "content_block_delta" => match v["delta"]["type"].as_str() {
                        Some("text_delta") => seen.text.push_str(v["delta"]["text"].as_str().unwrap()),
                        Some("input_json_delta") => {
                            args.last_mut().unwrap().1.push_str(v["delta"]["partial_json"].as_str().unwrap())
                        }
                        _ => {}
                    },
                    "message_delta" => {
                        seen.finish =
                            v["delta"]["stop_reason"].as_str().map(|f| finish_canonical(ingress, f));
                        // message_delta carries the final totals (input too, when known only at the end)
                        let u = &v["usage"];
                        let start_input = seen.usage.map_or(0, |(i, _)| i);
                        let input = match u["input_tokens"].as_u64() {
                            Some(i) => {
                                i + u["cache_read_input_tokens"].as_u64().unwrap_or(0)
                                    + u["cache_creation_input_tokens"].as_u64().unwrap_or(0)
                            }
                            None => start_input,
                        };
                        seen.usage = u["output_tokens"].as_u64().map(|o| (input, o));
                    }
                    _ => {}
                }
                redact(&mut v);
                events.push(json!({"event": event, "data": v}));
            }
        }
    }
    seen.tool_calls =
        args.into_iter().map(|(n, a)| (n, serde_json::from_str(&a).unwrap_or(json!(a)))).collect();
    (seen, json!(events))
}

fn expect(s: Scenario, seen: &Seen, case: &str) {
    let ok = |text: &str, finish: &str| {
        assert_eq!((seen.status, seen.error), (200, false), "{case}: {seen:?}");
        assert_eq!(seen.text, text, "{case}");
        assert_eq!(seen.finish.as_deref(), Some(finish), "{case}");
    };
    match s {
        Scenario::PlainText | Scenario::MultiTurn | Scenario::ImageInput | Scenario::SystemPromptStream => {
            ok(TEXT, "stop");
            assert_eq!(seen.usage, Some((12, 5)), "{case}");
        }
        Scenario::ToolResults => ok(TOOL_ANSWER, "stop"),
        Scenario::JsonMode => {
            assert_eq!(seen.status, 200, "{case}: {seen:?}");
            let v: Value =
                serde_json::from_str(&seen.text).unwrap_or_else(|e| panic!("{case}: {e}: {:?}", seen.text));
            assert_eq!(v, json!({"answer": "Paris"}), "{case}");
            assert_eq!(seen.finish.as_deref(), Some("stop"), "{case}");
        }
        Scenario::StopSequence => ok(STOP_TEXT, "stop"),
        Scenario::MaxTokens => ok(LENGTH_TEXT, "length"),
        Scenario::ParallelToolsStream => {
            assert_eq!((seen.status, seen.error), (200, false), "{case}: {seen:?}");
            let expected = vec![
                ("get_weather".to_owned(), json!({"city": "Paris"})),
                ("get_weather".to_owned(), json!({"city": "Tokyo"})),
            ];
            assert_eq!(seen.tool_calls, expected, "{case}");
            assert_eq!(seen.finish.as_deref(), Some("tool_calls"), "{case}");
        }
        Scenario::ErrorMidStream => {
            assert_eq!(seen.status, 200, "{case}: the stream had started");
            assert_eq!(seen.text, "Bonjour ", "{case}");
            assert!(seen.error, "{case}: the client sees an error event, never a silent end");
            assert_eq!(seen.finish, None, "{case}");
        }
        Scenario::RateLimited => {
            assert_eq!(seen.status, 429, "{case}");
            assert_eq!(seen.retry_after.as_deref(), Some("9"), "{case}");
        }
    }
}

async fn run(ingress: Ingress, provider: Provider) {
    let dir = temp_dir();
    let key = dir.join("provider-key");
    std::fs::write(&key, "sk-provider-secret").unwrap();
    for s in SCENARIOS {
        let case = format!(
            "{}_{}_{}",
            format!("{ingress:?}").to_lowercase(),
            format!("{provider:?}").to_lowercase(),
            snake(s)
        );
        let tool_call_id = match ingress {
            Ingress::OpenAi => "call_1",
            Ingress::Anthropic => "toolu_1",
        };
        let Some(request) = request(ingress, s, tool_call_id) else { continue };
        let (base, received) = raw_upstream(reply(provider, s)).await;
        let gw = Gateway::start(&provider_config(provider, &base, &key)).await;
        let client = reqwest::Client::new();
        let resp = match ingress {
            Ingress::OpenAi => {
                client.post(gw.url("/v1/chat/completions")).bearer_auth("sk-client").json(&request)
            }
            Ingress::Anthropic => client
                .post(gw.url("/v1/messages"))
                .header("x-api-key", "sk-client")
                .header("anthropic-version", "2023-06-01")
                .json(&request),
        }
        .send()
        .await
        .unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body = resp.text().await.unwrap();
        let stream = request["stream"] == json!(true);
        let (seen, client_view) = read_answer(ingress, status, retry_after, &body, stream);
        expect(s, &seen, &case);

        let got = received.lock().unwrap().clone();
        assert_eq!(got.len(), 1, "{case}: one upstream call");
        let up = &got[0];
        let secret_headers = ["authorization", "x-api-key", "x-goog-api-key", "api-key"];
        let headers: serde_json::Map<String, Value> = up
            .headers
            .iter()
            .filter(|(k, _)| {
                secret_headers.contains(&k.as_str()) || k.starts_with("anthropic-") || k == "content-type"
            })
            .map(|(k, v)| {
                let shown = if secret_headers.contains(&k.as_str()) {
                    assert!(
                        v.contains("sk-provider-secret"),
                        "{case}: the provider key, not the client's, goes upstream"
                    );
                    v.replace("sk-provider-secret", "[provider key]")
                } else {
                    v.clone()
                };
                (k.clone(), json!(shown))
            })
            .collect();
        let snapshot = json!({
            "upstream_request": {"line": up.request_line, "headers": headers, "body": up.body},
            "client": {"status": status, "retry_after": seen.retry_after, "answer": client_view},
        });
        insta::assert_json_snapshot!(case.clone(), snapshot);
        gw.stop().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn openai_ingress_to_openai() {
    run(Ingress::OpenAi, Provider::OpenAi).await;
}

#[tokio::test]
async fn openai_ingress_to_anthropic() {
    run(Ingress::OpenAi, Provider::Anthropic).await;
}

#[tokio::test]
async fn openai_ingress_to_gemini() {
    run(Ingress::OpenAi, Provider::Gemini).await;
}

#[tokio::test]
async fn anthropic_ingress_to_openai() {
    run(Ingress::Anthropic, Provider::OpenAi).await;
}

#[tokio::test]
async fn anthropic_ingress_to_anthropic() {
    run(Ingress::Anthropic, Provider::Anthropic).await;
}

#[tokio::test]
async fn anthropic_ingress_to_gemini() {
    run(Ingress::Anthropic, Provider::Gemini).await;
}
