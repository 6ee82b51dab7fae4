//! Loading a GGUF chat model and admitting requests to it: one runs at a time, at most
//! `max_waiting` more wait, the rest are refused at once.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_gemma3, quantized_llama};
use tokenizers::Tokenizer;

use crate::error::LocalError;
use crate::template::ChatTemplate;

/// Requests that may wait for a busy model before new ones are refused.
pub const DEFAULT_MAX_WAITING: usize = 8;

/// The GGUF `general.architecture` values gardefou runs.
pub const ARCHITECTURES: &[&str] = &["llama", "gemma3"];

/// Token texts that end a turn in the common chat formats, besides the file's own eos.
const END_OF_TURN: &[&str] =
    &["<|im_end|>", "<|eot_id|>", "<|endoftext|>", "</s>", "<|end|>", "<end_of_turn>"];

/// The weights of one of the supported architectures.
pub(crate) enum Weights {
    /// `llama` (Llama, SmolLM, Mistral-style), by candle's `quantized_llama`.
    Llama(quantized_llama::ModelWeights),
    /// `gemma3`, by candle's `quantized_gemma3`.
    Gemma3(quantized_gemma3::ModelWeights),
}

impl Weights {
    /// Reads the weights of an `arch` file from `reader`, past its header (`content`).
    fn read(arch: Arch, content: Content, reader: &mut BufReader<File>) -> candle_core::Result<Weights> {
        Ok(match arch {
            Arch::Llama => {
                Weights::Llama(quantized_llama::ModelWeights::from_gguf(content, reader, &Device::Cpu)?)
            }
            Arch::Gemma3 => {
                Weights::Gemma3(quantized_gemma3::ModelWeights::from_gguf(content, reader, &Device::Cpu)?)
            }
        })
    }

    /// The logits of the token after `input` (shape `[1, n]`), `position` tokens already seen.
    pub(crate) fn forward(&mut self, input: &Tensor, position: usize) -> candle_core::Result<Tensor> {
        match self {
            Weights::Llama(w) => w.forward(input, position),
            Weights::Gemma3(w) => w.forward(input, position),
        }
    }
}

/// A supported architecture: one per entry of [`ARCHITECTURES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    Llama,
    Gemma3,
}

impl Arch {
    fn parse(name: &str) -> Option<Arch> {
        match name {
            "llama" => Some(Arch::Llama),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }

    /// The longest sequence candle's implementation holds.
    fn max_seq_len(self) -> usize {
        match self {
            Arch::Llama => quantized_llama::MAX_SEQ_LEN,
            Arch::Gemma3 => quantized_gemma3::MAX_SEQ_LEN,
        }
    }

    /// The chat template for files that carry none.
    fn default_template(self) -> Option<String> {
        match self {
            Arch::Llama => None,
            Arch::Gemma3 => Some(crate::template::GEMMA.to_owned()),
        }
    }
}

/// A loaded model, shared by every request to it.
pub struct LocalModel {
    pub(crate) file: PathBuf,
    pub(crate) weights: Mutex<Weights>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) template: ChatTemplate,
    /// Token ids that end the answer.
    pub(crate) eos: Vec<u32>,
    /// Prepended to the prompt when the file asks for it and the template did not write it.
    pub(crate) bos: Option<u32>,
    /// Prompt plus answer, in tokens.
    pub(crate) context: usize,
    pending: AtomicUsize,
    max_waiting: usize,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel").field("file", &self.file).field("context", &self.context).finish()
    }
}

/// A request's place in a model's queue; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    model: Arc<LocalModel>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.model.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Permit {
    pub fn model(&self) -> &Arc<LocalModel> {
        &self.model
    }
}

impl LocalModel {
    /// Reads the GGUF file at `path`. `context` caps prompt plus answer (the file's own
    /// `<arch>.context_length` and candle's 4096 apply too).
    pub fn load(path: &Path, context: Option<usize>) -> Result<LocalModel, LocalError> {
        let file = File::open(path).map_err(|e| LocalError::load(path, format!("cannot open it: {e}")))?;
        let len = file.metadata().map_err(|e| LocalError::load(path, e.to_string()))?.len();
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader)
            .map_err(|e| LocalError::load(path, format!("not a readable GGUF file: {e}")))?;
        let arch_name = meta_str(&content, "general.architecture")
            .ok_or_else(|| LocalError::load(path, "no general.architecture in its metadata"))?;
        let arch = Arch::parse(arch_name).ok_or_else(|| {
            LocalError::load(
                path,
                format!(
                    "its architecture `{arch_name}` is not supported (supported: {})",
                    ARCHITECTURES.join(", ")
                ),
            )
        })?;
        check_complete(&content, len).map_err(|reason| LocalError::load(path, reason))?;
        let tokenizer = crate::tokenizer::load(path, &content)?;
        let template = ChatTemplate::new(
            meta_str(&content, "tokenizer.chat_template")
                .map(str::to_owned)
                .or_else(|| arch.default_template()),
        );
        let token_text =
            |key: &str| meta_u32(&content, key).and_then(|id| tokenizer.id_to_token(id).map(|t| (id, t)));
        let bos = token_text("tokenizer.ggml.bos_token_id");
        let eos_token = token_text("tokenizer.ggml.eos_token_id");
        let mut eos: Vec<u32> = eos_token.iter().map(|(id, _)| *id).collect();
        eos.extend(END_OF_TURN.iter().filter_map(|t| tokenizer.token_to_id(t)));
        eos.sort_unstable();
        eos.dedup();
        let add_bos = content.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok());
        let file_context = meta_u32(&content, &format!("{arch_name}.context_length")).map(|c| c as usize);
        let max = arch.max_seq_len();
        let context = [context, file_context, Some(max)].into_iter().flatten().min().unwrap_or(max);
        let template = template.with_tokens(
            bos.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
            eos_token.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
        );
        let weights = Weights::read(arch, content, &mut reader)
            .map_err(|e| LocalError::load(path, format!("cannot read its weights: {e}")))?;
        Ok(LocalModel {
            file: path.to_path_buf(),
            weights: Mutex::new(weights),
            tokenizer,
            template,
            eos,
            bos: if add_bos == Some(true) { bos.map(|(id, _)| id) } else { None },
            context,
            pending: AtomicUsize::new(0),
            max_waiting: DEFAULT_MAX_WAITING,
        })
    }

    /// Sets how many requests may wait while one runs.
    pub fn with_max_waiting(mut self, max_waiting: usize) -> LocalModel {
        self.max_waiting = max_waiting;
        self
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The token ids that end an answer (the file's eos and the end-of-turn tokens it has).
    pub fn end_tokens(&self) -> &[u32] {
        &self.eos
    }

    /// Prompt plus answer, in tokens.
    pub fn context_length(&self) -> usize {
        self.context
    }

    /// Takes a place in the queue, or `Busy` when `max_waiting` requests already wait.
    pub fn admit(self: &Arc<Self>) -> Result<Permit, LocalError> {
        let before = self.pending.fetch_add(1, Ordering::AcqRel);
        let permit = Permit { model: self.clone() };
        if before > self.max_waiting {
            return Err(LocalError::Busy { waiting: before.saturating_sub(1) });
        }
        Ok(permit)
    }
}

fn meta_str<'c>(content: &'c Content, key: &str) -> Option<&'c str> {
    content.metadata.get(key).and_then(|v| v.to_string().ok()).map(String::as_str)
}

pub(crate) fn meta_u32(content: &Content, key: &str) -> Option<u32> {
    match content.metadata.get(key)? {
        Value::U32(v) => Some(*v),
        Value::I32(v) => u32::try_from(*v).ok(),
        Value::U64(v) => u32::try_from(*v).ok(),
        Value::I64(v) => u32::try_from(*v).ok(),
        _ => None,
    }
}

/// Every tensor's bytes lie inside the file: a cut-short download is named as such.
fn check_complete(content: &Content, len: u64) -> Result<(), String> {
    for (name, info) in &content.tensor_infos {
        let blocks = info.shape.elem_count() / info.ggml_dtype.block_size();
        let end = content.tensor_data_offset + info.offset + (blocks * info.ggml_dtype.type_size()) as u64;
        if end > len {
            return Err(format!(
                "it is truncated: tensor `{name}` ends at byte {end} but the file has {len} bytes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_architecture_is_dispatched_and_no_other() {
        for name in ARCHITECTURES {
            assert!(Arch::parse(name).is_some(), "{name}");
        }
        for name in ["gemma2", "gemma", "qwen2", "Llama", ""] {
            assert_eq!(Arch::parse(name), None, "{name}");
        }
    }
}
