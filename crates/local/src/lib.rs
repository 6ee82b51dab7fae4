//! gardefou-local: chat models run in-process with candle. A GGUF file of the llama architecture
//! (Llama, SmolLM, Mistral-style) or the gemma3 one (Gemma 3) is loaded once (`model`), its
//! tokenizer taken from a `tokenizer.json` beside it or rebuilt from the GGUF metadata
//! (`tokenizer`), its chat template rendered with minijinja (`template`), and answers decoded
//! token by token (`generate`), each token sampled with penalties, temperature, min-p, top-k and
//! top-p (`sample`). One request at a time per model; a bounded number wait, the rest are refused
//! (`LocalError::Busy`).

mod error;
mod generate;
mod model;
mod sample;
mod template;
mod tokenizer;

pub use error::LocalError;
pub use generate::{Finish, GenerateParams, Outcome};
pub use model::{LocalModel, Permit, ARCHITECTURES, DEFAULT_MAX_WAITING};
pub use sample::REPEAT_WINDOW;
pub use template::{ChatTemplate, Turn};
