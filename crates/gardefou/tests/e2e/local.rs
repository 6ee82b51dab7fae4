//! The `local` provider end to end: a route answered by SmolLM2-135M-Instruct running in-process
//! (non-streamed and streamed, seeded, cut by a stop string and by `max_tokens`). One test, short
//! prompts and answers: the model runs on the CPU the other tests share.
//!
//! The model is `<repo>/models/SmolLM2-135M-Instruct/model.gguf` (or `GARDEFOU_LOCAL_MODEL`),
//! written by `scripts/fetch-models.sh`. Without it this test fails when `CI=true` and is
//! skipped with a note otherwise.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::*;

fn model_file() -> Option<PathBuf> {
    let path = match std::env::var_os("GARDEFOU_LOCAL_MODEL") {
        Some(p) => PathBuf::from(p),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct/model.gguf")
        }
    };
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} is missing; run scripts/fetch-models.sh", path.display());
    }
    eprintln!("note: {} is missing (run scripts/fetch-models.sh); test skipped", path.display());
    None
}

/// A short question; the system message replaces SmolLM2's longer default one.
fn ask(settings: &Value) -> Value {
    let mut body = json!({"model": "r", "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"}]});
    for (k, v) in settings.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn answer(gw: &Gateway, settings: &Value) -> Value {
    let resp = gw.chat(ask(settings)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn content(answer: &Value) -> &str {
    answer["choices"][0]["message"]["content"].as_str().unwrap()
}

#[tokio::test]
async fn local_model_answers_streams_and_stops_like_an_upstream() {
    let _heavy = CPU_HEAVY.write().await;
    let Some(file) = model_file() else { return };
    let gw = Gateway::start(&format!(
        r#"
[providers.local]
kind = "local"
[models.smol]
provider = "local"
path = "{}"
context_length = 2048
[routes.r]
targets = [{{ model = "smol" }}]
"#,
        file.display()
    ))
    .await;

    // Non-streamed: text, exact usage; seeded and greedy, so the same twice.
    let settings = json!({"seed": 42, "temperature": 0.0, "max_tokens": 8});
    let first = answer(&gw, &settings).await;
    let text = content(&first).to_owned();
    assert!(!text.trim().is_empty(), "{first}");
    let usage = &first["usage"];
    let (prompt, completion) =
        (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    assert!((1..=8).contains(&completion) && prompt > 10, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
    let finish = first["choices"][0]["finish_reason"].as_str().unwrap();
    assert!(finish == "stop" || (finish == "length" && completion == 8), "{first}");
    let second = answer(&gw, &settings).await;
    assert_eq!((content(&second), &second["usage"]), (text.as_str(), usage));

    // Streamed: a role chunk, one chunk per decoded piece, usage last; the same text.
    let mut streamed = settings.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let resp = gw.chat(ask(&streamed)).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let events = sse_events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "role chunk first: {body}");
    let pieces: Vec<&str> =
        chunks.iter().filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str()).collect();
    assert_eq!(pieces.concat(), text);
    assert!(pieces.len() > 2, "one chunk per decoded piece: {body}");
    let last = chunks.last().unwrap();
    assert_eq!(&last["usage"], usage, "usage chunk last: {body}");

    // A stop string from the middle of that answer cuts it there.
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 3, "{text}");
    let stop = format!(" {}", words[2]);
    let mut stopped = settings.clone();
    stopped["stop"] = json!([stop]);
    let cut = answer(&gw, &stopped).await;
    assert_eq!(content(&cut), &text[..text.find(&stop).unwrap()], "{cut}");
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");

    // `max_tokens` cuts at exactly that many tokens, with finish_reason "length".
    let short = answer(
        &gw,
        &json!({"temperature": 0.0, "max_tokens": 5, "messages": [
        {"role": "system", "content": "You are a storyteller."},
        {"role": "user", "content": "Tell a long story about a dragon."}]}),
    )
    .await;
    assert_eq!(short["choices"][0]["finish_reason"], "length", "{short}");
    assert_eq!(short["usage"]["completion_tokens"], 5, "{short}");

    // What a local model cannot do is dropped and named.
    let resp = gw.chat(ask(&json!({"max_tokens": 1, "frequency_penalty": 0.5}))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-dropped-params"], "frequency_penalty");
    gw.stop().await;
}
