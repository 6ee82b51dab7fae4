//! The `local` provider end to end: a route answered by SmolLM2-135M-Instruct (llama architecture)
//! running in-process (non-streamed and streamed, seeded, cut by a stop string and by
//! `max_tokens`), and one answered by Gemma 3 270M (gemma3 architecture, its tokenizer rebuilt
//! from SentencePiece metadata; seeded sampling with top_k, min_p and repetition_penalty,
//! streamed, cut by a stop string; out-of-range sampling parameters refused). Short prompts and
//! answers: the models run on the CPU the other tests share.
//!
//! The models are `<repo>/models/SmolLM2-135M-Instruct/model.gguf` (or `GARDEFOU_LOCAL_MODEL`) and
//! `<repo>/models/gemma-3-270m/model.gguf` (or `GARDEFOU_GEMMA_MODEL`), written by
//! `scripts/fetch-models.sh`. Without them these tests fail when `CI=true` and are skipped with a
//! note otherwise.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::*;

fn model_file() -> Option<PathBuf> {
    model_file_at("GARDEFOU_LOCAL_MODEL", "SmolLM2-135M-Instruct")
}

fn gemma_file() -> Option<PathBuf> {
    model_file_at("GARDEFOU_GEMMA_MODEL", "gemma-3-270m")
}

/// `$var`, else `<repo>/models/<folder>/model.gguf`; `None` (with a note) when absent outside CI.
fn model_file_at(var: &str, folder: &str) -> Option<PathBuf> {
    let path = match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../models/{folder}/model.gguf")),
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

    // What a local model cannot do is dropped and named; the penalties it now applies are not.
    let resp = gw.chat(ask(&json!({"max_tokens": 1, "logprobs": true, "frequency_penalty": 0.5}))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-dropped-params"], "logprobs");
    gw.stop().await;
}

/// The streamed text of `body`'s answer, checking the chunks' shape on the way.
async fn streamed_text(gw: &Gateway, body: Value) -> String {
    let resp = gw.chat(body).await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let events = sse_events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "role chunk first: {body}");
    let pieces: Vec<&str> =
        chunks.iter().filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str()).collect();
    assert!(pieces.len() > 2, "one chunk per decoded piece: {body}");
    pieces.concat()
}

#[tokio::test]
async fn gemma3_model_answers_seeded_streams_stops_and_refuses_bad_sampling() {
    let _heavy = CPU_HEAVY.write().await;
    let Some(file) = gemma_file() else { return };
    let gw = Gateway::start(&format!(
        r#"
[providers.local]
kind = "local"
[models.gemma]
provider = "local"
path = "{}"
context_length = 1024
[routes.r]
targets = [{{ model = "gemma" }}]
"#,
        file.display()
    ))
    .await;

    // Seeded sampling through every new parameter: the same answer twice, and streamed.
    let sampled = json!({"seed": 7, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
        "repetition_penalty": 1.1, "presence_penalty": 0.2, "max_tokens": 10});
    let first = answer(&gw, &sampled).await;
    let text = content(&first).to_owned();
    assert!(!text.is_empty(), "{first}");
    let completion = first["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=10).contains(&completion), "{first}");
    let second = answer(&gw, &sampled).await;
    assert_eq!((content(&second), &second["usage"]), (text.as_str(), &first["usage"]));
    let mut streamed = sampled.clone();
    streamed["stream"] = json!(true);
    assert_eq!(streamed_text(&gw, ask(&streamed)).await, text);

    // Greedy, then cut by a stop string taken from the middle of that answer.
    let greedy = json!({"temperature": 0.0, "max_tokens": 10});
    let text = content(&answer(&gw, &greedy).await).to_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 3, "{text:?}");
    // The third word, wherever it first appears (the answer may break lines, not only spaces).
    let stop = words[2].to_owned();
    let mut stopped = greedy.clone();
    stopped["stop"] = json!([stop]);
    let cut = answer(&gw, &stopped).await;
    assert_eq!(content(&cut), &text[..text.find(&stop).unwrap()], "{text:?} cut at {stop:?}: {cut}");
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    stopped["stream"] = json!(true);
    assert_eq!(streamed_text(&gw, ask(&stopped)).await, content(&cut));

    // Out-of-range sampling parameters: 400 invalid_request_error naming the parameter.
    for (name, value) in [
        ("top_p", json!(0)),
        ("top_k", json!(-5)),
        ("min_p", json!(1.5)),
        ("repetition_penalty", json!(0)),
        ("presence_penalty", json!(3)),
    ] {
        let resp = gw.chat(ask(&json!({"max_tokens": 1, name: value}))).await;
        assert_eq!(resp.status(), 400, "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["param"], name, "{body}");
    }
    gw.stop().await;
}
