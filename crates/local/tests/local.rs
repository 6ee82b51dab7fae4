//! gardefou-local: loading errors on small hand-made GGUF files, the real SmolLM2-135M-Instruct
//! file (tokenizer rebuilt from its metadata, its chat template, greedy generation) and the real
//! Gemma 3 270M file (SentencePiece tokenizer rebuilt from its metadata, Gemma's turns, end tokens).
//!
//! The models come from `GARDEFOU_LOCAL_MODEL` / `GARDEFOU_GEMMA_MODEL`, else
//! `<repo>/models/SmolLM2-135M-Instruct/model.gguf` / `<repo>/models/gemma-3-270m/model.gguf`
//! (written by `scripts/fetch-models.sh`). Without them those tests fail when `CI=true` and are
//! skipped with a note otherwise.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use gardefou_local::{ChatTemplate, Finish, GenerateParams, LocalError, LocalModel, Turn};

fn model_path() -> PathBuf {
    match std::env::var_os("GARDEFOU_LOCAL_MODEL") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/SmolLM2-135M-Instruct/model.gguf"),
    }
}

/// The real model, loaded once for every test; `None` (with a note) when it is absent outside CI.
fn model() -> Option<&'static Arc<LocalModel>> {
    static MODEL: OnceLock<Option<Arc<LocalModel>>> = OnceLock::new();
    MODEL.get_or_init(|| load_or_skip(model_path())).as_ref()
}

fn gemma() -> Option<&'static Arc<LocalModel>> {
    static MODEL: OnceLock<Option<Arc<LocalModel>>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = match std::env::var_os("GARDEFOU_GEMMA_MODEL") {
                Some(p) => PathBuf::from(p),
                None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/gemma-3-270m/model.gguf"),
            };
            load_or_skip(path)
        })
        .as_ref()
}

fn load_or_skip(path: PathBuf) -> Option<Arc<LocalModel>> {
    if !path.is_file() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{} is missing; run scripts/fetch-models.sh", path.display());
        }
        eprintln!("note: {} is missing (run scripts/fetch-models.sh); test skipped", path.display());
        return None;
    }
    Some(Arc::new(LocalModel::load(&path, Some(2048)).unwrap()))
}

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gardefou-local-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.gguf")
}

/// A small GGUF file with `arch` and one Q4_0 tensor.
fn write_gguf(path: &Path, arch: &str) {
    let t = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, GgmlDType::Q4_0).unwrap();
    let arch = gguf_file::Value::String(arch.to_owned());
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("token_embd.weight", &q)]).unwrap();
}

fn load_error(path: &Path) -> String {
    match LocalModel::load(path, None) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e @ LocalError::Load { .. }) => e.to_string(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[test]
fn load_rejects_a_file_that_is_not_gguf() {
    let path = temp_file("not-gguf");
    std::fs::write(&path, b"{\"this is\": \"json\"}").unwrap();
    let msg = load_error(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a readable GGUF file"), "{msg}");
}

#[test]
fn load_rejects_a_truncated_file() {
    let path = temp_file("truncated");
    write_gguf(&path, "llama");
    let len = std::fs::metadata(&path).unwrap().len();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..(len - 20) as usize]).unwrap();
    let msg = load_error(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn load_rejects_another_architecture() {
    let path = temp_file("arch");
    write_gguf(&path, "gpt2");
    let msg = load_error(&path);
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("architecture `gpt2` is not supported (supported: llama, gemma3)"), "{msg}");
}

#[test]
fn load_names_a_missing_file() {
    let msg = load_error(Path::new("/nonexistent/model.gguf"));
    assert!(msg.contains("/nonexistent/model.gguf") && msg.contains("cannot open"), "{msg}");
}

#[test]
fn chatml_fallback_renders_a_generation_prompt() {
    let t = ChatTemplate::new(None);
    let out = t.render(&[Turn::new("system", "Be brief."), Turn::new("user", "Hi")]).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn template_raise_exception_is_a_template_error() {
    let src =
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok";
    let t = ChatTemplate::new(Some(src.to_owned()));
    assert_eq!(t.render(&[Turn::new("user", "x")]).unwrap(), "ok");
    let err = t.render(&[Turn::new("assistant", "x")]).unwrap_err();
    assert!(matches!(err, LocalError::Template(ref m) if m.contains("first must be user")), "{err}");
}

#[test]
fn smollm_tokenizer_from_metadata_round_trips() {
    let Some(m) = model() else { return };
    let text = "Hello, world! Numbers like 12345 and café — ünïcode too.";
    let ids = m.encode(text).unwrap();
    assert!(ids.len() > 10, "{ids:?}");
    assert_eq!(m.decode(&ids).unwrap(), text);
    // Digits are split one by one (SmolLM's pre-tokenizer).
    assert_eq!(m.encode("12345").unwrap().len(), 5);
    for special in ["<|im_start|>", "<|im_end|>", "<|endoftext|>"] {
        assert_eq!(m.encode(special).unwrap().len(), 1, "{special}");
    }
}

#[test]
fn smollm_template_from_the_file_adds_its_default_system_prompt() {
    let Some(m) = model() else { return };
    let ids = m.encode_prompt(&[Turn::new("user", "Hi")]).unwrap();
    let ids_start = m.encode("<|im_start|>").unwrap()[0];
    assert_eq!(ids[0], ids_start);
    let text = m.decode(&ids).unwrap();
    assert!(text.contains("You are a helpful AI assistant named SmolLM"), "{text}");
}

#[test]
fn smollm_greedy_generation_is_repeatable_and_counts_tokens() {
    let Some(m) = model() else { return };
    let turns = [Turn::new("user", "What is the capital of France?")];
    let params = GenerateParams { temperature: Some(0.0), max_tokens: Some(12), ..Default::default() };
    let mut pieces = String::new();
    let a = m
        .generate(&turns, &params, &AtomicBool::new(false), |p| {
            pieces.push_str(p);
            true
        })
        .unwrap();
    let b = m.generate(&turns, &params, &AtomicBool::new(false), |_| true).unwrap();
    assert!(!a.text.trim().is_empty());
    assert_eq!(a, b);
    assert_eq!(pieces, a.text);
    assert_eq!(a.prompt_tokens, m.encode_prompt(&turns).unwrap().len());
    assert!(a.completion_tokens <= 12);
    if a.finish == Finish::Length {
        assert_eq!(a.completion_tokens, 12);
    }
}

#[test]
fn smollm_stops_at_max_tokens_and_on_cancel() {
    let Some(m) = model() else { return };
    let turns = [Turn::new("user", "Write a long story about a dragon.")];
    let params = GenerateParams { temperature: Some(0.0), max_tokens: Some(5), ..Default::default() };
    let out = m.generate(&turns, &params, &AtomicBool::new(false), |_| true).unwrap();
    assert_eq!((out.finish, out.completion_tokens), (Finish::Length, 5));
    let cancelled = m.generate(&turns, &params, &AtomicBool::new(true), |_| true).unwrap();
    assert_eq!((cancelled.finish, cancelled.completion_tokens), (Finish::Cancelled, 0));
    // A receiver that goes away after the first piece (a dropped stream) stops generation there.
    let long = GenerateParams { max_tokens: Some(16), ..params };
    let dropped = m.generate(&turns, &long, &AtomicBool::new(false), |_| false).unwrap();
    assert_eq!(dropped.finish, Finish::Cancelled);
    assert!(dropped.completion_tokens < 4, "{dropped:?}");
}

#[test]
fn admit_refuses_when_the_queue_is_full() {
    let Some(_) = model() else { return };
    let m = Arc::new(LocalModel::load(&model_path(), None).unwrap().with_max_waiting(1));
    let running = m.admit().unwrap();
    let waiting = m.admit().unwrap();
    assert!(matches!(m.admit(), Err(LocalError::Busy { .. })));
    drop(waiting);
    let again = m.admit().unwrap();
    drop((running, again));
}

#[test]
fn gemma_tokenizer_from_sentencepiece_metadata_round_trips() {
    let Some(m) = gemma() else { return };
    let text = "Hello, world!  Numbers like 12345,\ttabs\n\nand café — ünïcode 🦀 too.";
    let ids = m.encode(text).unwrap();
    assert!(ids.len() > 10, "{ids:?}");
    assert_eq!(m.decode(&ids).unwrap(), text);
    // Whole words with their leading space (`▁`) are single tokens, merged as SentencePiece does.
    let hello = m.encode("Hello world").unwrap();
    assert_eq!(hello.len(), 2, "{hello:?}");
    assert_eq!(m.decode(&hello[1..]).unwrap(), " world");
    // Control and user-defined tokens match the raw text.
    for special in ["<start_of_turn>", "<end_of_turn>", "<bos>", "\n", "\n\n"] {
        assert_eq!(m.encode(special).unwrap().len(), 1, "{special:?}");
    }
    // A character outside the vocabulary falls back to its UTF-8 bytes and decodes back.
    let rare = m.encode("\u{10FFFD}").unwrap();
    assert_eq!(rare.len(), 4, "{rare:?}");
    assert_eq!(m.decode(&rare).unwrap(), "\u{10FFFD}");
}

#[test]
fn gemma_prompt_is_gemma_turns_and_end_of_turn_ends_the_answer() {
    let Some(m) = gemma() else { return };
    let turns = [Turn::new("system", "Be brief."), Turn::new("user", "Hi")];
    let ids = m.encode_prompt(&turns).unwrap();
    // Control tokens are skipped when decoding; the system text joins the user turn.
    assert_eq!(m.decode(&ids).unwrap(), "user\nBe brief.\n\nHi\nmodel\n", "{ids:?}");
    let id = |t: &str| m.encode(t).unwrap()[0];
    assert_eq!(ids[0], id("<bos>"), "one bos, written by the template: {ids:?}");
    assert_ne!(ids[1], id("<bos>"), "{ids:?}");
    assert_eq!(ids[1], id("<start_of_turn>"));
    assert_eq!(&ids[ids.len() - 3..], &[id("<start_of_turn>"), id("model"), id("\n")]);
    for end in ["<end_of_turn>", "<eos>"] {
        assert!(m.end_tokens().contains(&id(end)), "{end} ends the answer: {:?}", m.end_tokens());
    }
}

#[test]
fn gemma_seeded_sampling_is_repeatable() {
    let Some(m) = gemma() else { return };
    let turns = [Turn::new("user", "Write a sentence about the sea.")];
    let params = GenerateParams {
        temperature: Some(0.9),
        top_k: Some(20),
        min_p: Some(0.05),
        repetition_penalty: Some(1.3),
        seed: Some(3),
        max_tokens: Some(8),
        ..Default::default()
    };
    let a = m.generate(&turns, &params, &AtomicBool::new(false), |_| true).unwrap();
    let b = m.generate(&turns, &params, &AtomicBool::new(false), |_| true).unwrap();
    assert_eq!(a, b);
    assert!(a.completion_tokens >= 1);
    let bad = GenerateParams { min_p: Some(2.0), ..params };
    let err = m.generate(&turns, &bad, &AtomicBool::new(false), |_| true).unwrap_err();
    assert!(matches!(err, LocalError::Param { param: "min_p", .. }), "{err}");
}
