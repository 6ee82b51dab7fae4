//! Chat templates: the GGUF file's `tokenizer.chat_template` (Jinja, as Hugging Face renders it:
//! blocks trimmed, `raise_exception` available), else ChatML.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::error::LocalError;

/// ChatML, for files without a template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n' }}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// One message of the conversation, as templates see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Turn {
        Turn { role: role.into(), content: content.into() }
    }
}

#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// `source` is the file's template; `None` means ChatML.
    pub fn new(source: Option<String>) -> ChatTemplate {
        ChatTemplate {
            source: source.unwrap_or_else(|| CHATML.to_owned()),
            bos_token: String::new(),
            eos_token: String::new(),
        }
    }

    /// The texts of the bos and eos tokens, which templates may write.
    pub fn with_tokens(mut self, bos_token: String, eos_token: String) -> ChatTemplate {
        self.bos_token = bos_token;
        self.eos_token = eos_token;
        self
    }

    /// The prompt for `turns`, ending where the assistant's answer begins.
    pub fn render(&self, turns: &[Turn]) -> Result<String, LocalError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.render_str(
            &self.source,
            context! {
                messages => turns,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            },
        )
        .map_err(|e| LocalError::Template(e.to_string()))
    }
}
