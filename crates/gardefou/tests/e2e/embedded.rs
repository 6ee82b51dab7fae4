//! The embedded default as a new user runs it: `gardefou serve` with no config in an empty folder
//! takes the bundled example config, says at start-up whether a local model is in the models
//! folder, and answers with no API key: with SmolLM2-135M when `--models-dir` holds it, else with
//! the mock provider. An optional local model whose file is absent is skipped like a disabled
//! provider.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::harness::*;

/// `gardefou serve` in `cwd` (no config there: the bundled one) with `--models-dir`; its base URL
/// and the start-up line about local models.
fn serve_bundled(cwd: &Path, models_dir: &Path) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["serve", "--listen", "127.0.0.1:0", "--models-dir"])
        .arg(models_dir)
        .current_dir(cwd)
        .env_remove("GARDEFOU_CONFIG")
        .env_remove("GARDEFOU_MODELS_DIR")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    (child, base, second.trim().to_owned())
}

async fn say_hi(base: &str, route: &str) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": route, "max_tokens": 3, "seed": 1, "messages": [{"role": "user", "content": "Hi!"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let model =
        resp.headers().get("x-gardefou-model").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, model, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn without_a_model_file_the_bundled_config_says_so_and_answers_with_the_mock() {
    let (cwd, empty) = (temp_dir(), temp_dir());
    let (mut child, base, line) = serve_bundled(&cwd, &empty);
    assert!(line.starts_with("no local model (") && line.contains("smollm2: model file"), "{line}");
    assert!(line.contains("minilm: model file"), "{line}");
    assert!(line.contains("keyless routes answer with the mock provider"), "{line}");
    for route in ["chat", "local"] {
        let (status, model, body) = say_hi(&base, route).await;
        assert_eq!((status, model.as_str()), (200, "mock-chat"), "{route}: {body}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(feature = "local-models")]
#[tokio::test]
async fn with_smollm2_in_the_models_folder_the_bundled_config_answers_with_it() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    if !dir.join("SmolLM2-135M-Instruct/model.gguf").is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} has no SmolLM2; run scripts/fetch-models.sh",
            dir.display()
        );
        eprintln!("note: no SmolLM2 in {} (run scripts/fetch-models.sh); test skipped", dir.display());
        return;
    }
    let _heavy = CPU_HEAVY.write().await;
    let cwd = temp_dir();
    let (mut child, base, line) = serve_bundled(&cwd, &dir);
    assert!(line.starts_with("local models: ") && line.contains("smollm2 ("), "{line}");
    // `chat` prefers OpenAI (no key here: disabled), then the embedded model.
    for route in ["chat", "local"] {
        let (status, model, body) = say_hi(&base, route).await;
        assert_eq!((status, model.as_str()), (200, "smollm2"), "{route}: {body}");
        assert_eq!(body["usage"]["completion_tokens"], 3, "{body}");
    }
    // `embed` prefers OpenAI too, then all-MiniLM-L6-v2 when the folder holds it.
    if dir.join("all-MiniLM-L6-v2/model.safetensors").is_file() {
        let resp = reqwest::Client::new()
            .post(format!("{base}/v1/embeddings"))
            .json(&json!({"model": "embed", "input": "hello"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-gardefou-model"], "minilm");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(384));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn an_optional_local_model_whose_file_is_absent_is_skipped_for_the_fallback() {
    let gw = Gateway::start(&format!(
        "{MOCK}[providers.embedded]\nkind = \"local\"\n[models.absent]\nprovider = \"embedded\"\n\
         path = \"models:no-such-model/model.gguf\"\noptional = true\n[models.polite]\nprovider = \"demo\"\n\
         [routes.r]\ntargets = [{{ model = \"absent\" }}]\nfallbacks = [\"polite\"]\n"
    ))
    .await;
    let resp = gw.chat(json!({"model": "r", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-gardefou-model"], "polite");
    let rt = gw.state.runtime();
    assert!(rt.config.models["absent"].unavailable.as_deref().is_some_and(|w| w.contains("does not exist")));
    assert!(rt.disabled.contains_key("embedded"), "a local provider with no model file is disabled");
    drop(rt);
    gw.stop().await;
}

/// A file that starts like a GGUF file and is then cut off.
fn truncated_gguf(dir: &Path) -> PathBuf {
    let path = dir.join("truncated.gguf");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&[0xff; 5]);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[cfg(feature = "local-models")]
#[test]
fn a_local_model_file_that_fails_to_load_is_a_start_up_error_naming_it() {
    let dir = temp_dir();
    let file = truncated_gguf(&dir);
    let config = dir.join("gardefou.toml");
    std::fs::write(
        &config,
        format!(
            "{MOCK}[providers.embedded]\nkind = \"local\"\n[models.cut]\nprovider = \"embedded\"\npath = \"{}\"\n\
             [routes.r]\ntargets = [{{ model = \"cut\" }}]\n[store]\ndatabase_url = \"sqlite://{}\"\n",
            file.display(),
            dir.join("g.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("providers.embedded") && stderr.contains("truncated.gguf"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "it never listened");
}

#[cfg(feature = "local-models")]
#[tokio::test]
async fn a_reload_whose_local_model_fails_to_load_is_rejected_and_an_unchanged_one_is_not_loaded_again() {
    let smollm =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct/model.gguf");
    let with_model = |path: &Path| {
        format!(
            "{MOCK}[providers.embedded]\nkind = \"local\"\n[models.small]\nprovider = \"embedded\"\npath = \"{}\"\n\
             [models.polite]\nprovider = \"demo\"\n[routes.r]\ntargets = [{{ model = \"small\" }}]\nfallbacks = [\"polite\"]\n",
            path.display()
        )
    };
    let loadable = smollm.is_file();
    let _heavy = CPU_HEAVY.write().await;
    let gw = Gateway::start(&if loadable {
        with_model(&smollm)
    } else {
        format!(
            "{MOCK}[models.polite]\nprovider = \"demo\"\n[routes.r]\ntargets = [{{ model = \"polite\" }}]\n"
        )
    })
    .await;
    let provider = |gw: &Gateway| gw.state.runtime().routes["r"].targets[0].provider.clone();
    let before = provider(&gw);
    let store = std::fs::read_to_string(&gw.config_path).unwrap();
    let store = &store[store.find("[store]").unwrap()..];
    if loadable {
        // Same config: the loaded model is reused, not loaded again.
        assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
        let after = provider(&gw);
        assert!(
            std::sync::Arc::ptr_eq(before.as_ref().unwrap(), after.as_ref().unwrap()),
            "the model was loaded again"
        );
    }
    let file = truncated_gguf(&gw.dir);
    std::fs::write(&gw.config_path, format!("{}{store}", with_model(&file))).unwrap();
    let resp = gw.post("/admin/reload", json!({})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("a local model failed to load") && message.contains("truncated.gguf"),
        "{message}"
    );
    let resp = gw
        .chat(json!({"model": "r", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}))
        .await;
    assert_eq!(resp.status(), 200, "the previous config stays live");
    drop(_heavy);
    gw.stop().await;
}

#[cfg(feature = "local-models")]
#[tokio::test]
async fn a_local_embedding_model_serves_v1_embeddings_matching_sentence_transformers() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} is missing; run scripts/fetch-models.sh",
            dir.display()
        );
        eprintln!("note: {} is missing (run scripts/fetch-models.sh); test skipped", dir.display());
        return;
    }
    let reference: Value =
        serde_json::from_str(include_str!("../../../embed/tests/fixtures/minilm_reference.json")).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().take(3).map(|c| c["text"].as_str().unwrap()).collect();
    let _heavy = CPU_HEAVY.write().await;
    let gw = Gateway::start(&format!(
        "[providers.embedded]\nkind = \"local\"\n[models.minilm]\nprovider = \"embedded\"\npath = \"{}\"\n\
         [routes.embed]\ntargets = [{{ model = \"minilm\" }}]\n",
        dir.display()
    ))
    .await;
    let resp = gw.post("/v1/embeddings", json!({"model": "embed", "input": texts})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    for (i, case) in cases.iter().take(3).enumerate() {
        let got = body["data"][i]["embedding"].as_array().unwrap();
        let want = case["vector"].as_array().unwrap();
        assert_eq!(got.len(), 384);
        let worst = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{}: off by {worst}", case["name"]);
    }
    let tokens: u64 = cases.iter().take(3).map(|c| c["tokens"].as_u64().unwrap()).sum();
    assert_eq!(body["usage"]["prompt_tokens"], tokens, "{body}");

    // base64 is the same floats; other dimensions, token ids and chat are refused with a 400.
    let resp = gw
        .post("/v1/embeddings", json!({"model": "embed", "input": texts[0], "encoding_format": "base64"}))
        .await;
    let b64: Value = resp.json().await.unwrap();
    assert!(b64["data"][0]["embedding"].is_string(), "{b64}");
    for (bad, param) in [
        (json!({"model": "embed", "input": "x", "dimensions": 128}), "dimensions"),
        (json!({"model": "embed", "input": [1, 2, 3]}), "input"),
        (json!({"model": "embed", "input": "x", "encoding_format": "int8"}), "encoding_format"),
    ] {
        let resp = gw.post("/v1/embeddings", bad.clone()).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{e}");
    }
    let chat = gw.chat(json!({"model": "embed", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(chat.status(), 400, "an embedding model does not chat");
    drop(_heavy);
    gw.stop().await;
}
