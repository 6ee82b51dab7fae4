//! `Embedder`: a BERT sentence-embedding model loaded from a folder, turning texts into unit vectors.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config, DTYPE};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::error::EmbedError;
use crate::pool::mean_pool_normalized;

/// The model's architecture and sizes (Hugging Face `config.json`).
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer (Hugging Face `tokenizers` format).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The weights, with unprefixed BERT tensor names (`embeddings.*`, `encoder.*`).
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Longest input, in tokens including `[CLS]` and `[SEP]`, that is embedded; longer texts are
/// cut to their first tokens. 256 is the sequence length all-MiniLM-L6-v2 was trained with (and
/// sentence-transformers' `max_seq_length` for it); the position table would allow 512, but
/// quality past the trained length is not promised.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Texts run through the model together. Inputs are grouped by length first, so a batch pads
/// its sequences to about the same length.
const BATCH_SIZE: usize = 32;

/// A loaded embedding model. Cloning is cheap (one `Arc`), and it is `Send + Sync`: share one
/// instance and call [`Embedder::embed`] from blocking threads (`tokio::task::spawn_blocking`).
///
/// Inference is CPU bound and parallel inside: matrix products run on rayon's global pool with
/// `RAYON_NUM_THREADS` threads (default: the number of physical cores), and element-wise kernels
/// on candle's own pool of `CANDLE_NUM_THREADS` threads (default: `RAYON_NUM_THREADS`). Set those
/// variables before the first embedding to bound the cores it takes.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    /// Truncates to `max_tokens`, never pads: padding and the attention mask are built per batch.
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, for counting.
    counter: Tokenizer,
    model_id: String,
    dimension: usize,
    max_tokens: usize,
    pad_id: u32,
    device: Device,
}

impl Embedder {
    /// Loads the model from a folder holding `config.json`, `tokenizer.json` and
    /// `model.safetensors` (as written by `scripts/fetch-models.sh`). The whole weights file is
    /// read into memory (about 90 MB for all-MiniLM-L6-v2).
    ///
    /// Errors name the file that is missing or unusable.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let config_path = dir.join(CONFIG_FILE);
        let config_text = read_file(&config_path)?;
        let config: Config = serde_json::from_slice(&config_text).map_err(|e| bad_file(&config_path, e))?;
        let max_tokens = DEFAULT_MAX_TOKENS.min(config.max_position_embeddings);

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_text = read_file(&tokenizer_path)?;
        let mut counter = Tokenizer::from_bytes(&tokenizer_text).map_err(|e| bad_file(&tokenizer_path, e))?;
        // The shipped tokenizer.json pads every input to a fixed length; padding is built per
        // batch instead, together with the attention mask that keeps it out of the mean.
        counter.with_padding(None);
        counter.with_truncation(None).map_err(|e| bad_file(&tokenizer_path, e))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..TruncationParams::default() }))
            .map_err(|e| bad_file(&tokenizer_path, e))?;

        let device = Device::Cpu;
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights = read_file(&weights_path)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DTYPE, &device)
            .map_err(|e| bad_file(&weights_path, e))?;
        let model = BertModel::load(vb, &config).map_err(|e| bad_file(&weights_path, e))?;

        Ok(Embedder {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                counter,
                model_id: model_id_of(dir),
                dimension: config.hidden_size,
                max_tokens,
                pad_id: u32::try_from(config.pad_token_id).map_err(|e| bad_file(&config_path, e))?,
                device,
            }),
        })
    }

    /// One unit-length vector of [`Embedder::dimension`] floats per text, in input order: the
    /// mean of the model's token vectors over the text's tokens, L2-normalised. Texts longer
    /// than [`Embedder::max_tokens`] are embedded from their first tokens only. An empty text
    /// is valid (it embeds `[CLS] [SEP]`).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let inner = &*self.inner;
        let encodings = texts
            .iter()
            .map(|text| inner.tokenizer.encode(*text, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EmbedError::Tokenize(e.to_string()))?;

        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        let mut vectors = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(BATCH_SIZE) {
            let batch_encodings: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
            for (&i, vector) in batch.iter().zip(inner.forward(&batch_encodings)?) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// Length of the vectors (384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.inner.dimension
    }

    /// The model's name: the name of the folder it was loaded from (e.g. `all-MiniLM-L6-v2`).
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// Longest input in tokens (special tokens included) that is embedded whole.
    pub fn max_tokens(&self) -> usize {
        self.inner.max_tokens
    }

    /// Number of model tokens in `text`, `[CLS]` and `[SEP]` included, before truncation: the
    /// text is embedded whole when this is at most [`Embedder::max_tokens`].
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        self.inner
            .counter
            .encode(text, true)
            .map(|encoding| encoding.len())
            .map_err(|e| EmbedError::Tokenize(e.to_string()))
    }
}

impl Inner {
    /// Runs one batch through the model: pads to the longest sequence, masks the padding.
    fn forward(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rows = encodings.len();
        let seq_len = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        if rows == 0 || seq_len == 0 {
            return Ok(vec![vec![0.0; self.dimension]; rows]);
        }
        let mut ids = vec![self.pad_id; rows * seq_len];
        let mut type_ids = vec![0u32; rows * seq_len];
        let mut mask = vec![0u32; rows * seq_len];
        for (row, encoding) in encodings.iter().enumerate() {
            let start = row * seq_len;
            let len = encoding.len();
            ids[start..start + len].copy_from_slice(encoding.get_ids());
            type_ids[start..start + len].copy_from_slice(encoding.get_type_ids());
            mask[start..start + len].copy_from_slice(encoding.get_attention_mask());
        }
        let shape = (rows, seq_len);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;

        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        Ok(mean_pool_normalized(&hidden, &mask)?.to_vec2::<f32>()?)
    }
}

impl fmt::Debug for Embedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.inner.model_id)
            .field("dimension", &self.inner.dimension)
            .field("max_tokens", &self.inner.max_tokens)
            .finish_non_exhaustive()
    }
}

/// Reads a whole model file, telling a missing file from an unreadable one.
fn read_file(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EmbedError::MissingFile { path: path.to_path_buf() },
        _ => bad_file(path, e),
    })
}

fn bad_file(path: &Path, reason: impl fmt::Display) -> EmbedError {
    EmbedError::BadFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// The folder's name, resolving `.` and `..`; `local` when there is none (the root folder).
fn model_id_of(dir: &Path) -> String {
    let resolved: Option<PathBuf> = match dir.file_name() {
        Some(_) => Some(dir.to_path_buf()),
        None => dir.canonicalize().ok(),
    };
    resolved
        .as_deref()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedder_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Embedder>();
    }

    #[test]
    fn missing_folder_names_the_config_file() {
        let dir = std::env::temp_dir().join("gardefou-embed-no-such-model");
        let err = Embedder::load(&dir).unwrap_err();
        assert_eq!(err.kind(), "missing_file");
        assert!(err.to_string().contains(CONFIG_FILE), "{err}");
    }

    #[test]
    fn model_id_is_the_folder_name() {
        assert_eq!(model_id_of(Path::new("models/all-MiniLM-L6-v2")), "all-MiniLM-L6-v2");
        assert_eq!(model_id_of(Path::new("models/all-MiniLM-L6-v2/")), "all-MiniLM-L6-v2");
        assert_eq!(model_id_of(Path::new("/")), "local");
    }
}
