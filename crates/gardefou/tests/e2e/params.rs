//! Parameters a provider lacks: dropped and named in `x-gardefou-dropped-params`, or rejected
//! with a 400 naming them when the route says `unsupported_params = "reject"`.

use serde_json::{json, Value};

use crate::harness::*;

fn anthropic_answer() -> Reply {
    json_reply(
        200,
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 3, "output_tokens": 1}}),
    )
}

async fn gateway(kind: &str, base: &str, policy: &str) -> (Gateway, std::path::PathBuf) {
    let dir = temp_dir();
    let key = dir.join("key");
    std::fs::write(&key, "sk-provider").unwrap();
    let gw = Gateway::start(&format!(
        r#"
[providers.up]
kind = "{kind}"
base_url = "{base}"
api_key = "file:{}"
[models.m]
provider = "up"
[routes.r]
targets = [{{ model = "m" }}]
unsupported_params = "{policy}"
"#,
        key.display()
    ))
    .await;
    (gw, dir)
}

fn hello_with_seed() -> Value {
    json!({"model": "r", "seed": 7, "logprobs": true, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_parameter_the_provider_lacks_is_dropped_and_named() {
    let up = Upstream::start(anthropic_answer()).await;
    let base = up.base.trim_end_matches("/v1").to_owned();
    let (gw, dir) = gateway("anthropic", &base, "drop").await;
    let resp = gw.chat(hello_with_seed()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-dropped-params"], "logprobs,seed");
    let sent = &up.seen()[0].body;
    assert!(sent.get("seed").is_none() && sent.get("logprobs").is_none(), "{sent}");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_route_that_rejects_unsupported_parameters_answers_400_naming_them() {
    let up = Upstream::start(anthropic_answer()).await;
    let base = up.base.trim_end_matches("/v1").to_owned();
    let (gw, dir) = gateway("anthropic", &base, "reject").await;
    let resp = gw.chat(hello_with_seed()).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "logprobs");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("logprobs, seed") && msg.contains("`up`"), "{msg}");
    assert!(up.seen().is_empty(), "the provider was not called");
    // without those parameters the same route answers
    let ok = gw.chat(json!({"model": "r", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().get("x-gardefou-dropped-params").is_none());
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn anthropic_only_features_sent_to_openai_are_dropped_and_named() {
    let up = Upstream::start(json_reply(
        200,
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}),
    ))
    .await;
    let (gw, dir) = gateway("openai", &up.base, "drop").await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "sk-client")
        .json(&json!({"model": "r", "max_tokens": 50, "top_k": 5,
            "system": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-dropped-params"], "top_k,cache_control");
    let sent = &up.seen()[0].body;
    assert!(sent.get("top_k").is_none(), "{sent}");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "rules"}]})
    );
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    // the same on a route that rejects: a 400 in Anthropic's shape naming the feature
    let (gw, dir) = gateway("openai", &up.base, "reject").await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .json(&json!({"model": "r", "max_tokens": 50, "top_k": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"].as_str().unwrap().contains("top_k"));
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
