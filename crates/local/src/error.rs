//! The one error type of gardefou-local. Each variant says which HTTP status the gateway maps it to.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// 503 at start-up (the provider is disabled): the model file cannot be used.
    #[error("cannot load the local model {}: {reason}", file.display())]
    Load { file: PathBuf, reason: String },
    /// 400: the prompt does not fit the model's context.
    #[error("the prompt has {prompt} tokens; the model's context holds {limit}")]
    ContextOverflow { prompt: usize, limit: usize },
    /// 400: a sampling parameter is out of its range.
    #[error("{message}")]
    Param { param: &'static str, message: String },
    /// 400: the chat template refused the messages (e.g. its `raise_exception`).
    #[error("the model's chat template failed: {0}")]
    Template(String),
    /// 429: more requests are already waiting for this model than its queue holds.
    #[error("the local model is busy: {waiting} requests already waiting")]
    Busy { waiting: usize },
    /// 500: the tokenizer or the forward pass failed mid-answer.
    #[error("local generation failed: {0}")]
    Generation(String),
}

impl LocalError {
    pub(crate) fn load(file: &std::path::Path, reason: impl Into<String>) -> LocalError {
        LocalError::Load { file: file.to_path_buf(), reason: reason.into() }
    }
}
