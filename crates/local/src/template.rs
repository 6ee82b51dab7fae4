//! Chat templates: the GGUF file's `tokenizer.chat_template` (Jinja, as Hugging Face renders it:
//! blocks trimmed, `raise_exception`, `bos_token` and `eos_token` available), else the
//! architecture's own format (Gemma's turns for `gemma3`), else ChatML.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::error::LocalError;

/// ChatML, for files without a template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n' }}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Gemma 3's chat template, as google/gemma-3-*-it ship it (text parts only), for Gemma files
/// without one: the system message is put before the first user message; roles must alternate.
pub(crate) const GEMMA: &str = r#"{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"#;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn gemma() -> ChatTemplate {
        ChatTemplate::new(Some(GEMMA.to_owned())).with_tokens("<bos>".to_owned(), "<eos>".to_owned())
    }

    #[test]
    fn gemma_template_writes_bos_turns_and_the_system_message_into_the_first_user_turn() {
        let turns = [
            Turn::new("system", "Answer briefly."),
            Turn::new("user", " Hi "),
            Turn::new("assistant", "Hello."),
            Turn::new("user", "Capital of France?"),
        ];
        assert_eq!(
            gemma().render(&turns).unwrap(),
            "<bos><start_of_turn>user\nAnswer briefly.\n\nHi<end_of_turn>\n\
             <start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn gemma_template_raise_exception_becomes_a_template_error() {
        let turns = [Turn::new("user", "a"), Turn::new("user", "b")];
        match gemma().render(&turns) {
            Err(LocalError::Template(m)) => assert!(m.contains("must alternate"), "{m}"),
            other => panic!("expected a template error, got {other:?}"),
        }
    }

    #[test]
    fn a_template_without_its_own_source_is_chatml() {
        let out = ChatTemplate::new(None).render(&[Turn::new("user", "Hi")]).unwrap();
        assert_eq!(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }
}
