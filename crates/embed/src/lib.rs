//! Local sentence embeddings: all-MiniLM-L6-v2 (or any BERT sentence-transformers model in the
//! same layout) run on the CPU with candle, for guards, the semantic cache, the router and
//! `/v1/embeddings`.
//!
//! ```no_run
//! # fn main() -> Result<(), gardefou_embed::EmbedError> {
//! use gardefou_embed::{cosine, Embedder};
//!
//! let embedder = Embedder::load(std::path::Path::new("models/all-MiniLM-L6-v2"))?;
//! let vectors = embedder.embed(&["a cat sits on the mat", "a kitten rests on a rug"])?;
//! assert_eq!(vectors[0].len(), embedder.dimension());
//! let similarity = cosine(&vectors[0], &vectors[1]);
//! # let _ = similarity;
//! # Ok(())
//! # }
//! ```
//!
//! The model folder holds `config.json`, `tokenizer.json` and `model.safetensors`;
//! `scripts/fetch-models.sh` writes them. Vectors match sentence-transformers' output for the
//! same model (mean pooling over the attention mask, then L2 normalisation; inputs truncated at
//! [`DEFAULT_MAX_TOKENS`] tokens). See [`Embedder`] for sharing it and bounding its threads.
//!
//! [`classifier::EmbeddingClassifier`] plugs into the guard's prompt-injection detector: a
//! logistic head, shipped with the crate, scores a prompt's embedding.

pub mod classifier;
mod embedder;
mod error;
mod pool;

pub use embedder::{Embedder, CONFIG_FILE, DEFAULT_MAX_TOKENS, TOKENIZER_FILE, WEIGHTS_FILE};
pub use error::EmbedError;
pub use pool::cosine;
