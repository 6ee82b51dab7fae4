//! One answer: the prompt rendered and encoded, processed in one forward pass, then one token at
//! a time sampled, decoded and handed on, until an end-of-turn token, a stop string, the token
//! limit or the caller's cancellation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::PoisonError;

use candle_core::{Device, Tensor};

use crate::error::LocalError;
use crate::model::LocalModel;
use crate::sample::Sampler;
use crate::template::Turn;

/// Sampling and stopping settings of one request. [`GenerateParams::validate`] checks the ranges.
#[derive(Debug, Clone, Default)]
pub struct GenerateParams {
    /// 0 to 2; `None` = 1.0; 0 = greedy.
    pub temperature: Option<f64>,
    /// Above 0, at most 1; 1 or `None` = off.
    pub top_p: Option<f64>,
    /// 0 or `None` = off.
    pub top_k: Option<usize>,
    /// 0 to 1: drops tokens less likely than `min_p` × the likeliest; 0 or `None` = off.
    pub min_p: Option<f64>,
    /// Above 0, over the last [`crate::REPEAT_WINDOW`] tokens; 1 or `None` = off.
    pub repetition_penalty: Option<f64>,
    /// -2 to 2, OpenAI's: minus count × penalty per token of the answer.
    pub frequency_penalty: Option<f64>,
    /// -2 to 2, OpenAI's: minus the penalty once per token in the answer.
    pub presence_penalty: Option<f64>,
    pub seed: Option<u64>,
    /// `None` = until the context is full.
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
}

/// Why the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` or the context is used up.
    Length,
    /// The caller went away.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish: Finish,
}

impl LocalModel {
    /// The prompt's token ids for `turns`.
    pub fn encode_prompt(&self, turns: &[Turn]) -> Result<Vec<u32>, LocalError> {
        let text = self.template.render(turns)?;
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LocalError::Generation(format!("encoding: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if let Some(bos) = self.bos {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LocalError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| LocalError::Generation(format!("encoding: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, LocalError> {
        self.tokenizer.decode(ids, true).map_err(|e| LocalError::Generation(format!("decoding: {e}")))
    }

    /// Generates an answer to `turns`, blocking (run it on a blocking thread). `on_text` gets each
    /// new piece of text as soon as it is final; it returns `false` to stop. `cancel` is checked
    /// between tokens. Waits for the model if another request holds it.
    pub fn generate(
        &self,
        turns: &[Turn],
        params: &GenerateParams,
        cancel: &AtomicBool,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Outcome, LocalError> {
        params.validate()?;
        let prompt = self.encode_prompt(turns)?;
        if prompt.len() >= self.context {
            return Err(LocalError::ContextOverflow { prompt: prompt.len(), limit: self.context });
        }
        let room = self.context - prompt.len();
        let limit = params.max_tokens.map_or(room, |m| m.min(room));
        let seed = params.seed.unwrap_or_else(random_seed);
        let mut sampler = Sampler::new(params, seed, &prompt);
        let failed = |e: candle_core::Error| LocalError::Generation(e.to_string());

        let mut weights = self.weights.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = Text::new(&params.stop);
        let mut completion: Vec<u32> = Vec::new();
        let mut finish = Finish::Length;
        let mut input =
            Tensor::new(prompt.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(failed)?;
        let mut position = 0;
        while completion.len() < limit {
            if cancel.load(Ordering::Relaxed) {
                finish = Finish::Cancelled;
                break;
            }
            let logits = weights.forward(&input, position).and_then(|l| l.squeeze(0)).map_err(failed)?;
            position += input.dim(1).map_err(failed)?;
            let next = sampler.sample(&logits).map_err(failed)?;
            if self.eos.contains(&next) {
                finish = Finish::Stop;
                break;
            }
            sampler.accept(next);
            completion.push(next);
            let decoded = self.decode(&completion)?;
            let (piece, stopped) = text.advance(decoded);
            if !piece.is_empty() && !on_text(&piece) {
                finish = Finish::Cancelled;
                break;
            }
            if stopped {
                finish = Finish::Stop;
                break;
            }
            input = Tensor::new(&[next], &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(failed)?;
        }
        drop(weights);
        if finish != Finish::Cancelled {
            let rest = text.flush();
            if !rest.is_empty() {
                on_text(&rest);
            }
        }
        Ok(Outcome {
            text: text.kept,
            prompt_tokens: prompt.len(),
            completion_tokens: completion.len(),
            finish,
        })
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

/// The answer's text as tokens arrive: holds back what may be the start of a stop string or an
/// unfinished UTF-8 character, and cuts the answer at the first stop string.
struct Text<'s> {
    stop: &'s [String],
    /// The whole decoded answer so far (stop string cut off once found).
    kept: String,
    /// Bytes of `kept` already handed on.
    sent: usize,
}

impl<'s> Text<'s> {
    fn new(stop: &'s [String]) -> Text<'s> {
        Text { stop, kept: String::new(), sent: 0 }
    }

    /// Takes the decoding of the whole answer so far; returns the piece now final, and whether a
    /// stop string ended the answer.
    fn advance(&mut self, decoded: String) -> (String, bool) {
        self.kept = decoded;
        let found =
            self.stop.iter().filter(|s| !s.is_empty()).filter_map(|s| self.kept.find(s.as_str())).min();
        if let Some(at) = found {
            self.kept.truncate(at);
            return (self.take(at), true);
        }
        // An unfinished multi-byte character decodes as U+FFFD until its last byte arrives.
        let mut end = self.kept.trim_end_matches('\u{FFFD}').len();
        for s in self.stop.iter().filter(|s| !s.is_empty()) {
            let hold = (1..s.len())
                .rev()
                .filter(|n| s.is_char_boundary(*n))
                .find(|n| self.kept[..end].ends_with(&s[..*n]))
                .unwrap_or(0);
            end = end.min(self.kept[..end].len() - hold);
        }
        (self.take(end), false)
    }

    fn take(&mut self, end: usize) -> String {
        if end <= self.sent {
            return String::new();
        }
        let piece = self.kept[self.sent..end].to_owned();
        self.sent = end;
        piece
    }

    fn flush(&mut self) -> String {
        self.take(self.kept.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cuts_at_a_stop_string_split_across_tokens() {
        let stop = vec!["END".to_owned()];
        let mut t = Text::new(&stop);
        assert_eq!(t.advance("Hello E".into()), ("Hello ".into(), false));
        assert_eq!(t.advance("Hello EN".into()), (String::new(), false));
        assert_eq!(t.advance("Hello ENDing".into()), (String::new(), true));
        assert_eq!(t.kept, "Hello ");
    }

    #[test]
    fn text_releases_a_held_back_prefix_that_was_no_stop_string() {
        let stop = vec!["END".to_owned()];
        let mut t = Text::new(&stop);
        assert_eq!(t.advance("an E".into()), ("an ".into(), false));
        assert_eq!(t.advance("an Ex".into()), ("Ex".into(), false));
        assert_eq!(t.flush(), "");
    }

    #[test]
    fn text_holds_an_unfinished_character() {
        let mut t = Text::new(&[]);
        assert_eq!(t.advance("caf\u{FFFD}".into()), ("caf".into(), false));
        assert_eq!(t.advance("café".into()), ("é".into(), false));
    }
}
