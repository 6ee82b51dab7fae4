//! `EmbedError`: the one error enum of this crate, with whose fault it is and a metrics label.

use std::path::PathBuf;

use gardefou_core::Fault;

/// Everything that can go wrong loading the model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// 500 at startup: a file the model needs is not in the model folder.
    #[error("model file {} is missing (run scripts/fetch-models.sh or point to a folder holding config.json, tokenizer.json and model.safetensors)", path.display())]
    MissingFile { path: PathBuf },
    /// 500 at startup: a model file exists but cannot be read or does not hold what it should
    /// (unparsable JSON, a safetensors file without the expected tensors, ...).
    #[error("model file {} is unusable: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    /// 500: the tokenizer rejected a text.
    #[error("cannot tokenize text: {0}")]
    Tokenize(String),
    /// 500: the forward pass failed (out of memory, a shape the model cannot take).
    #[error("embedding inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}

impl EmbedError {
    /// Every embedding failure is ours: any text is a valid input.
    pub fn fault(&self) -> Fault {
        Fault::Internal
    }

    /// Never: the same model and the same text fail the same way again.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            EmbedError::MissingFile { .. } => "missing_file",
            EmbedError::BadFile { .. } => "bad_file",
            EmbedError::Tokenize(_) => "tokenize",
            EmbedError::Inference(_) => "inference",
        }
    }
}
