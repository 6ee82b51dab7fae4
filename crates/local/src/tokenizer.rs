//! The model's tokenizer: `tokenizer.json` beside the GGUF file when there is one, else rebuilt
//! from the GGUF metadata (`tokenizer.ggml.*`). Rebuilding covers byte-level BPE (`gpt2`
//! tokenizers: SmolLM, Llama 3, Qwen-style) and SentencePiece BPE with byte fallback (`llama`
//! tokenizers: Gemma 3), whose merges are derived from the token scores as llama.cpp merges.

use std::path::Path;
use std::str::FromStr;

use candle_core::quantized::gguf_file::Content;
use serde_json::{json, Value as Json};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::replace::Replace;
use tokenizers::{AddedToken, DecoderWrapper, Tokenizer};

use crate::error::LocalError;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_NORMAL: i64 = 1;
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// SentencePiece's word boundary mark, which stands for a space.
const SPM_SPACE: &str = "\u{2581}";

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
        Some("llama") => return sentencepiece(content),
        Some(other) => {
            return Err(format!(
                "its tokenizer (`{other}`) cannot be rebuilt from the GGUF metadata; \
                 put the model's tokenizer.json beside the file"
            ))
        }
        None => return Err("no tokenizer.ggml.model in its metadata".to_owned()),
    }
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let merges = strings(content, "tokenizer.ggml.merges")?;
    let types = token_types(content);
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

fn strings(content: &Content, key: &str) -> Result<Vec<String>, String> {
    let list = content.metadata.get(key).ok_or_else(|| format!("no {key} in its metadata"))?;
    let list = list.to_vec().map_err(|e| format!("{key}: {e}"))?;
    list.iter().map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}"))).collect()
}

/// `tokenizer.ggml.token_type`, normal (1) where absent.
fn token_types(content: &Content) -> Vec<i64> {
    match content.metadata.get("tokenizer.ggml.token_type").and_then(|v| v.to_vec().ok()) {
        Some(list) => list.iter().map(|v| v.to_i32().map(i64::from).unwrap_or(TOKEN_NORMAL)).collect(),
        None => Vec::new(),
    }
}

/// A SentencePiece BPE vocabulary (`tokenizer.ggml.model = llama`) as a Hugging Face BPE with
/// byte fallback: spaces become `▁` (no prefix space unless `add_space_prefix`), control and
/// user-defined tokens match the raw text first, and every split of a normal token into two
/// normal tokens is a merge ranked by the merged token's score, best first — llama.cpp's order.
fn sentencepiece(content: &Content) -> Result<Tokenizer, String> {
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let types = token_types(content);
    let scores: Vec<f32> = match content.metadata.get("tokenizer.ggml.scores").and_then(|v| v.to_vec().ok()) {
        Some(list) => list.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
        None => Vec::new(),
    };
    let kind = |id: usize| types.get(id).copied().unwrap_or(TOKEN_NORMAL);
    let vocab: Vocab = tokens.iter().zip(0u32..).map(|(t, id)| (t.clone(), id)).collect();
    let normal = |piece: &str| vocab.get(piece).copied().filter(|id| kind(*id as usize) == TOKEN_NORMAL);
    let mut merges: Vec<(f32, u32, String, String)> = Vec::new();
    for (id, token) in tokens.iter().enumerate().filter(|(id, _)| kind(*id) == TOKEN_NORMAL) {
        let score = scores.get(id).copied().unwrap_or(-(id as f32));
        for (at, _) in token.char_indices().skip(1) {
            let (left, right) = token.split_at(at);
            if normal(left).is_some() && normal(right).is_some() {
                merges.push((score, id as u32, left.to_owned(), right.to_owned()));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let merges: Vec<(String, String)> = merges.into_iter().map(|(_, _, l, r)| (l, r)).collect();
    let unk = crate::model::meta_u32(content, "tokenizer.ggml.unknown_token_id")
        .and_then(|id| tokens.get(id as usize))
        .cloned();
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges).byte_fallback(true).fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let bpe = builder.build().map_err(|e| format!("cannot rebuild its tokenizer: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let space_prefix = content
        .metadata
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let to_spm = Replace::new(" ", SPM_SPACE).map_err(|e| e.to_string())?;
    if space_prefix {
        let prepend = tokenizers::normalizers::prepend::Prepend::new(SPM_SPACE.to_owned());
        let sequence = tokenizers::normalizers::Sequence::new(vec![prepend.into(), to_spm.into()]);
        tokenizer.with_normalizer(Some(sequence)).map_err(|e| e.to_string())?;
    } else {
        tokenizer.with_normalizer(Some(to_spm)).map_err(|e| e.to_string())?;
    }
    let from_spm = Replace::new(SPM_SPACE, " ").map_err(|e| e.to_string())?;
    let mut decoders: Vec<DecoderWrapper> =
        vec![from_spm.into(), ByteFallback::new().into(), Fuse::new().into()];
    if space_prefix {
        decoders.push(tokenizers::decoders::strip::Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(Sequence::new(decoders)));
    let added: Vec<AddedToken> = tokens
        .iter()
        .enumerate()
        .filter(|(id, _)| matches!(kind(*id), TOKEN_CONTROL | TOKEN_USER_DEFINED))
        .map(|(id, t)| AddedToken::from(t.clone(), kind(id) == TOKEN_CONTROL).normalized(false))
        .collect();
    tokenizer.add_tokens(added).map_err(|e| format!("cannot rebuild its tokenizer: {e}"))?;
    Ok(tokenizer)
}
