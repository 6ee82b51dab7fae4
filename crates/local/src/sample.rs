//! Choosing the next token: repetition, frequency and presence penalties on the logits, then
//! temperature, min-p, top-k and top-p on the probabilities (candle's `LogitsProcessor`), seeded.
//! Greedy (temperature 0) takes the best logit after the penalties.

use std::collections::{HashMap, VecDeque};

use candle_core::{DType, Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use crate::error::LocalError;
use crate::generate::GenerateParams;

/// Tokens `repetition_penalty` looks back over (prompt and answer), as llama.cpp's
/// `--repeat-last-n` default.
pub const REPEAT_WINDOW: usize = 64;

impl GenerateParams {
    /// Every sampling parameter in its range; the error names the first that is not.
    pub fn validate(&self) -> Result<(), LocalError> {
        let bad = |param: &'static str, range: &str, value: f64| {
            Err(LocalError::Param { param, message: format!("`{param}` must be {range}; got {value}") })
        };
        if let Some(t) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return bad("temperature", "between 0 and 2", t);
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return bad("top_p", "greater than 0 and at most 1", p);
        }
        if let Some(p) = self.min_p.filter(|p| !(0.0..=1.0).contains(p)) {
            return bad("min_p", "between 0 and 1", p);
        }
        if let Some(r) = self.repetition_penalty.filter(|r| !(*r > 0.0 && r.is_finite())) {
            return bad("repetition_penalty", "greater than 0", r);
        }
        if let Some(f) = self.frequency_penalty.filter(|f| !(-2.0..=2.0).contains(f)) {
            return bad("frequency_penalty", "between -2 and 2", f);
        }
        if let Some(p) = self.presence_penalty.filter(|p| !(-2.0..=2.0).contains(p)) {
            return bad("presence_penalty", "between -2 and 2", p);
        }
        Ok(())
    }
}

/// The sampling state of one answer.
pub(crate) struct Sampler {
    processor: LogitsProcessor,
    min_p: Option<f32>,
    penalties: Penalties,
    /// The last [`REPEAT_WINDOW`] tokens of prompt and answer.
    recent: VecDeque<u32>,
    /// How often each token occurs in the answer so far.
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub(crate) fn new(params: &GenerateParams, seed: u64, prompt: &[u32]) -> Sampler {
        let temperature = params.temperature.unwrap_or(1.0);
        let top_k = params.top_k.filter(|k| *k > 0);
        let top_p = params.top_p.filter(|p| *p < 1.0);
        let sampling = match (top_k, top_p) {
            _ if temperature < 1e-7 => Sampling::ArgMax,
            (None, None) => Sampling::All { temperature },
            (Some(k), None) => Sampling::TopK { k, temperature },
            (None, Some(p)) => Sampling::TopP { p, temperature },
            (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
        };
        let start = prompt.len().saturating_sub(REPEAT_WINDOW);
        Sampler {
            processor: LogitsProcessor::from_sampling(seed, sampling),
            min_p: params.min_p.filter(|p| *p > 0.0).map(|p| p as f32),
            penalties: Penalties {
                repetition: params.repetition_penalty.unwrap_or(1.0) as f32,
                frequency: params.frequency_penalty.unwrap_or(0.0) as f32,
                presence: params.presence_penalty.unwrap_or(0.0) as f32,
            },
            recent: prompt[start..].iter().copied().collect(),
            counts: HashMap::new(),
        }
    }

    /// The next token for these logits (shape `[vocab]`).
    pub(crate) fn sample(&mut self, logits: &Tensor) -> candle_core::Result<u32> {
        let min_p = self.min_p;
        let keep = |prs: &mut [f32]| {
            if let Some(m) = min_p {
                keep_min_p(prs, m);
            }
        };
        if self.penalties.is_off() {
            return self.processor.sample_f(logits, keep);
        }
        let mut values: Vec<f32> = logits.to_dtype(DType::F32)?.to_vec1()?;
        self.penalties.apply(&mut values, &self.recent, &self.counts);
        let len = values.len();
        let logits = Tensor::from_vec(values, len, &Device::Cpu)?;
        self.processor.sample_f(&logits, keep)
    }

    /// Records a token of the answer.
    pub(crate) fn accept(&mut self, token: u32) {
        if self.recent.len() == REPEAT_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
        *self.counts.entry(token).or_default() += 1;
    }
}

/// The penalties of one request; 1, 0 and 0 are off.
#[derive(Debug, Clone, Copy)]
struct Penalties {
    repetition: f32,
    frequency: f32,
    presence: f32,
}

impl Penalties {
    fn is_off(&self) -> bool {
        self.repetition == 1.0 && self.frequency == 0.0 && self.presence == 0.0
    }

    /// Each token in `recent` once: a positive logit divided by the repetition penalty, a
    /// negative one multiplied (llama.cpp, candle's `apply_repeat_penalty`). Then OpenAI's rule
    /// for each token of the answer: minus `count × frequency`, minus `presence` once.
    fn apply(&self, logits: &mut [f32], recent: &VecDeque<u32>, counts: &HashMap<u32, u32>) {
        if self.repetition != 1.0 {
            let mut seen = std::collections::HashSet::new();
            for token in recent.iter().filter(|t| seen.insert(**t)) {
                if let Some(l) = logits.get_mut(*token as usize) {
                    *l = if *l >= 0.0 { *l / self.repetition } else { *l * self.repetition };
                }
            }
        }
        if self.frequency != 0.0 || self.presence != 0.0 {
            for (token, count) in counts {
                if let Some(l) = logits.get_mut(*token as usize) {
                    *l -= *count as f32 * self.frequency + self.presence;
                }
            }
        }
    }
}

/// Zeroes every probability below `min_p` × the largest one (the largest always stays).
fn keep_min_p(prs: &mut [f32], min_p: f32) {
    let max = prs.iter().copied().fold(0.0f32, f32::max);
    let floor = max * min_p;
    for p in prs.iter_mut().filter(|p| **p < floor) {
        *p = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> GenerateParams {
        GenerateParams::default()
    }

    /// The tokens drawn from `logits` over many seeds.
    fn drawn(params: &GenerateParams, logits: &[f32], history: &[u32]) -> std::collections::BTreeSet<u32> {
        let t = Tensor::new(logits, &Device::Cpu).unwrap();
        (0..300)
            .map(|seed| {
                let mut s = Sampler::new(params, seed, &[]);
                for h in history {
                    s.accept(*h);
                }
                s.sample(&t).unwrap()
            })
            .collect()
    }

    #[test]
    fn min_p_zeroes_tokens_below_the_fraction_of_the_best() {
        let mut prs = [0.5, 0.3, 0.1, 0.05, 0.05];
        keep_min_p(&mut prs, 0.2);
        assert_eq!(prs, [0.5, 0.3, 0.1, 0.0, 0.0]);
        let mut prs = [0.5, 0.3, 0.2];
        keep_min_p(&mut prs, 1.0);
        assert_eq!(prs, [0.5, 0.0, 0.0]);
    }

    #[test]
    fn min_p_limits_what_sampling_draws() {
        // Probabilities about 0.46, 0.31, 0.17, 0.06: min_p 0.4 keeps the first two.
        let logits = [2.0, 1.6, 1.0, 0.0];
        let all = drawn(&GenerateParams { temperature: Some(1.0), ..params() }, &logits, &[]);
        assert_eq!(all.len(), 4, "without min_p every token is drawn: {all:?}");
        let kept =
            drawn(&GenerateParams { temperature: Some(1.0), min_p: Some(0.4), ..params() }, &logits, &[]);
        assert_eq!(kept, [0, 1].into());
    }

    #[test]
    fn top_k_limits_what_sampling_draws_and_zero_is_off() {
        let logits = [2.0, 1.6, 1.0, 0.0];
        let two = drawn(&GenerateParams { temperature: Some(1.0), top_k: Some(2), ..params() }, &logits, &[]);
        assert_eq!(two, [0, 1].into());
        let one = drawn(&GenerateParams { temperature: Some(1.5), top_k: Some(1), ..params() }, &logits, &[]);
        assert_eq!(one, [0].into());
        let off = drawn(&GenerateParams { temperature: Some(1.0), top_k: Some(0), ..params() }, &logits, &[]);
        assert_eq!(off.len(), 4);
        let both = GenerateParams { temperature: Some(1.0), top_k: Some(3), top_p: Some(0.5), ..params() };
        assert_eq!(drawn(&both, &logits, &[]), [0, 1].into());
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits_once_per_token() {
        let p = Penalties { repetition: 2.0, frequency: 0.0, presence: 0.0 };
        let mut logits = [4.0, -1.0, 3.0, 1.0];
        p.apply(&mut logits, &[0, 1, 0, 0].into_iter().collect(), &HashMap::new());
        assert_eq!(logits, [2.0, -2.0, 3.0, 1.0]);
    }

    #[test]
    fn repetition_penalty_looks_back_over_the_last_64_tokens_only() {
        let p = GenerateParams { temperature: Some(0.0), repetition_penalty: Some(4.0), ..params() };
        // Token 0 is the best, but it is in the prompt's window: greedy takes token 1.
        let logits = Tensor::new(&[3.0f32, 2.0, 0.0], &Device::Cpu).unwrap();
        let mut prompt = vec![0u32];
        assert_eq!(Sampler::new(&p, 0, &prompt).sample(&logits).unwrap(), 1);
        // 64 other tokens later it is out of the window again.
        prompt.extend(std::iter::repeat_n(2, REPEAT_WINDOW));
        assert_eq!(Sampler::new(&p, 0, &prompt).sample(&logits).unwrap(), 0);
        // Tokens of the answer enter the window.
        let mut s = Sampler::new(&p, 0, &prompt);
        s.accept(0);
        assert_eq!(s.sample(&logits).unwrap(), 1);
    }

    #[test]
    fn frequency_and_presence_penalties_follow_openai() {
        let p = Penalties { repetition: 1.0, frequency: 0.5, presence: 1.0 };
        let mut logits = [4.0, 4.0, 4.0];
        let counts: HashMap<u32, u32> = [(0, 3), (1, 1)].into();
        p.apply(&mut logits, &VecDeque::new(), &counts);
        assert_eq!(logits, [4.0 - 1.5 - 1.0, 4.0 - 0.5 - 1.0, 4.0]);
        // In a sampler, a repeated answer token loses to a fresh one.
        let g = GenerateParams { temperature: Some(0.0), presence_penalty: Some(1.0), ..params() };
        assert_eq!(drawn(&g, &[3.0, 2.5, 0.0], &[0]), [1].into());
    }

    #[test]
    fn out_of_range_parameters_are_named() {
        let cases = [
            (GenerateParams { temperature: Some(2.5), ..params() }, "temperature"),
            (GenerateParams { temperature: Some(-0.1), ..params() }, "temperature"),
            (GenerateParams { top_p: Some(0.0), ..params() }, "top_p"),
            (GenerateParams { top_p: Some(1.5), ..params() }, "top_p"),
            (GenerateParams { min_p: Some(-0.1), ..params() }, "min_p"),
            (GenerateParams { min_p: Some(1.1), ..params() }, "min_p"),
            (GenerateParams { repetition_penalty: Some(0.0), ..params() }, "repetition_penalty"),
            (GenerateParams { frequency_penalty: Some(2.5), ..params() }, "frequency_penalty"),
            (GenerateParams { presence_penalty: Some(-3.0), ..params() }, "presence_penalty"),
            (GenerateParams { temperature: Some(f64::NAN), ..params() }, "temperature"),
        ];
        for (p, name) in cases {
            match p.validate() {
                Err(LocalError::Param { param, .. }) => assert_eq!(param, name),
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
        let fine = GenerateParams {
            temperature: Some(0.0),
            top_p: Some(1.0),
            top_k: Some(0),
            min_p: Some(0.0),
            repetition_penalty: Some(1.1),
            frequency_penalty: Some(-2.0),
            presence_penalty: Some(2.0),
            ..params()
        };
        assert!(fine.validate().is_ok());
    }
}
