//! Streamed output guards where text used to slip past them: Anthropic-format streams
//! (`/v1/messages`), every choice of an `n > 1` stream, and the tail still held back when an
//! upstream ends its stream without a finish reason.

use serde_json::{json, Value};

use crate::harness::*;

const EMAIL: &str = "ana.lopez@example.com";
const CARD: &str = "4111 1111 1111 1111";

fn chunk(index: u32, content: &str, finish: Option<&str>) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": index, "delta": {"content": content}, "finish_reason": finish}]})
    .to_string()
}

/// The answer in small pieces, each value split across chunks.
fn pieces() -> Vec<String> {
    let text = format!("Write to {EMAIL} and pay with {CARD} today, thanks for waiting.");
    text.as_bytes().chunks(5).map(|c| String::from_utf8_lossy(c).into_owned()).collect()
}

async fn gateway(up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        "[providers.up]
kind = \"openai_compatible\"
base_url = \"{}\"
[models.m]
provider = \"up\"
[guards.out]
pii = \"redact\"
[routes.chat]
targets = [{{ model = \"m\" }}]
guards = {{ output = \"out\" }}
",
        up.base
    ))
    .await
}

/// Text of each choice of an OpenAI SSE body, and the finish reasons seen.
fn openai_texts(body: &str) -> (Vec<String>, Vec<Value>) {
    let mut texts = vec![String::new(); 2];
    let mut finishes = Vec::new();
    for e in sse_events(body).iter().filter(|e| *e != "[DONE]") {
        let v: Value = serde_json::from_str(e).unwrap();
        for c in v["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap() as usize;
            texts[i].push_str(c["delta"]["content"].as_str().unwrap_or(""));
            if !c["finish_reason"].is_null() {
                finishes.push(c["finish_reason"].clone());
            }
        }
    }
    (texts, finishes)
}

fn assert_redacted(text: &str) {
    assert!(!text.contains(EMAIL) && !text.contains("4111"), "raw value leaked: {text}");
    assert!(text.contains("[EMAIL_1]") && text.contains("today, thanks for waiting."), "{text}");
}

#[tokio::test]
async fn anthropic_streams_go_through_the_output_guards() {
    let mut events = pieces().iter().map(|p| chunk(0, p, None)).collect::<Vec<_>>();
    events.push(chunk(0, "", Some("stop")));
    events.push("[DONE]".to_owned());
    let up = Upstream::start(sse_reply(&events.iter().map(String::as_str).collect::<Vec<_>>())).await;
    let gw = gateway(&up).await;
    let resp = gw
        .post(
            "/v1/messages",
            json!({"model": "chat", "max_tokens": 100, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let mut text = String::new();
    for frame in body.split("\n\n") {
        let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
        let v: Value = serde_json::from_str(data).unwrap();
        if v["type"] == "content_block_delta" {
            text.push_str(v["delta"]["text"].as_str().unwrap_or(""));
        }
    }
    assert_redacted(&text);
    assert!(body.contains("message_stop"), "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn every_choice_of_a_stream_is_scanned() {
    let mut events = Vec::new();
    for p in pieces() {
        events.push(chunk(0, &p, None));
        events.push(chunk(1, &p, None));
    }
    events.push(chunk(0, "", Some("stop")));
    events.push(chunk(1, "", Some("stop")));
    events.push("[DONE]".to_owned());
    let up = Upstream::start(sse_reply(&events.iter().map(String::as_str).collect::<Vec<_>>())).await;
    let gw = gateway(&up).await;
    let resp = gw
        .chat(
            json!({"model": "chat", "n": 2, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let (texts, finishes) = openai_texts(&resp.text().await.unwrap());
    assert_redacted(&texts[0]);
    assert_redacted(&texts[1]);
    assert_eq!(finishes, [json!("stop"), json!("stop")]);
    gw.stop().await;
}

#[tokio::test]
async fn text_held_back_is_released_when_the_upstream_ends_without_a_finish_reason() {
    let mut events = pieces().iter().map(|p| chunk(0, p, None)).collect::<Vec<_>>();
    events.push("[DONE]".to_owned());
    let up = Upstream::start(sse_reply(&events.iter().map(String::as_str).collect::<Vec<_>>())).await;
    let gw = gateway(&up).await;
    let resp = gw
        .chat(json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let (texts, _) = openai_texts(&body);
    assert_redacted(&texts[0]);
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    gw.stop().await;
}
