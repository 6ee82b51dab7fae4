//! The model's tokenizer: `tokenizer.json` beside the GGUF file when there is one, else rebuilt
//! from the GGUF metadata (`tokenizer.ggml.*`). Rebuilding covers byte-level BPE (`gpt2`
//! tokenizers: SmolLM, Llama 3, Qwen-style); SentencePiece (`llama`) files need a tokenizer.json.

use std::path::Path;
use std::str::FromStr;

use candle_core::quantized::gguf_file::Content;
use serde_json::{json, Value as Json};
use tokenizers::Tokenizer;

use crate::error::LocalError;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// Llama 3's pre-tokenizer split.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

pub(crate) fn load(path: &Path, content: &Content) -> Result<Tokenizer, LocalError> {
    let beside = path.with_file_name("tokenizer.json");
    if beside.is_file() {
        return Tokenizer::from_file(&beside)
            .map_err(|e| LocalError::load(path, format!("cannot read {}: {e}", beside.display())));
    }
    from_metadata(content).map_err(|reason| LocalError::load(path, reason))
}

/// Rebuilds the tokenizer from `tokenizer.ggml.*`, as a tokenizer.json document.
pub(crate) fn from_metadata(content: &Content) -> Result<Tokenizer, String> {
    let md = |key: &str| content.metadata.get(key);
    let kind = md("tokenizer.ggml.model").and_then(|v| v.to_string().ok()).map(String::as_str);
    match kind {
        Some("gpt2") => {}
        Some(other) => {
            return Err(format!(
                "its tokenizer (`{other}`) cannot be rebuilt from the GGUF metadata; \
                 put the model's tokenizer.json beside the file"
            ))
        }
        None => return Err("no tokenizer.ggml.model in its metadata".to_owned()),
    }
    let strings = |key: &str| -> Result<Vec<String>, String> {
        let list = md(key).ok_or_else(|| format!("no {key} in its metadata"))?;
        let list = list.to_vec().map_err(|e| format!("{key}: {e}"))?;
        list.iter().map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}"))).collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match md("tokenizer.ggml.token_type").and_then(|v| v.to_vec().ok()) {
        Some(list) => list.iter().map(|v| v.to_i32().map(i64::from).unwrap_or(1)).collect(),
        None => Vec::new(),
    };
    let vocab: serde_json::Map<String, Json> =
        tokens.iter().zip(0u32..).map(|(t, id)| (t.clone(), json!(id))).collect();
    let added: Vec<Json> = tokens
        .iter()
        .zip(0u32..)
        .filter_map(|(t, id)| {
            let kind = types.get(id as usize).copied()?;
            (kind == TOKEN_CONTROL || kind == TOKEN_USER_DEFINED).then(|| {
                json!({
                    "id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": kind == TOKEN_CONTROL,
                })
            })
        })
        .collect();
    let pre = md("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str);
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let pre_tokenizer = match pre {
        // SmolLM: every digit alone, then GPT-2's split.
        Some("smollm") => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        Some("llama-bpe" | "llama3") => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": false},
            byte_level(false)]}),
        _ => byte_level(true),
    };
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    Tokenizer::from_str(&doc.to_string()).map_err(|e| format!("cannot rebuild its tokenizer: {e}"))
}
