//! `EmbeddingClassifier`: prompt-injection probability from a logistic head over sentence
//! embeddings, for `gardefou_guard::injection::Classifier`.
//!
//! # Method
//! A text is folded by `gardefou_guard::normalize::normalize` (as the detector does before it
//! calls the classifier), embedded to a unit vector `v`, and scored
//! `p = 1 / (1 + exp(-(w · v + b)))`. The head `(w, b)` is an L2-regularised logistic
//! regression fitted by [`Head::fit`] on labelled attacks and benign prompts, with the classes
//! weighted to count equally; the optimiser is candle's AdamW over the full batch. The
//! probability is therefore calibrated for a balanced set, not for live traffic, where attacks
//! are rare: pick the threshold from the measured false-positive rate, not from `p` alone.
//!
//! The shipped head ([`Head::shipped`], `data/injection_head.bin`) is fitted by the example
//! `injection_eval --write-head` on the fitting half of the guard benchmark's corpus, never on
//! its evaluation half (`bench/guard/README.md` says how the halves are drawn and what the head
//! scores on the half it never saw).
//!
//! Embedding a prompt costs milliseconds of CPU: call the detector from a blocking thread. Only
//! the first [`crate::DEFAULT_MAX_TOKENS`] tokens are embedded, so an attack past them is left to
//! the heuristics.
//!
//! # File format (version 1, little-endian)
//! | bytes | field |
//! |---|---|
//! | 8 | magic `GFINJHED` |
//! | 2 | format version, `u16` = 1 |
//! | 2 | dimension `D`, `u16` |
//! | 4 | bias, `f32` |
//! | 1 | model id length `L`, `u8` |
//! | `L` | model id, UTF-8 (the model folder's name, e.g. `all-MiniLM-L6-v2`) |
//! | `D × 4` | weights, `f32` |

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use gardefou_guard::injection::Classifier;

use crate::embedder::Embedder;
use crate::error::EmbedError;

/// File name of the shipped head, under the crate's `data/` folder.
pub const HEAD_FILE: &str = "injection_head.bin";
/// L2 penalty per unit of mean loss used for the shipped head.
pub const DEFAULT_L2: f32 = 2.5e-5;

const MAGIC: &[u8; 8] = b"GFINJHED";
const VERSION: u16 = 1;
const SHIPPED: &[u8] = include_bytes!("../data/injection_head.bin");
/// Full-batch optimiser steps and learning rate of [`Head::fit`].
const STEPS: usize = 4000;
const LEARNING_RATE: f64 = 0.05;

/// One labelled example: a unit vector and whether it is an attack.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub vector: Vec<f32>,
    pub injection: bool,
}

/// A logistic head over embeddings of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The model folder name the vectors come from ([`Embedder::model_id`]).
    pub model_id: String,
    pub weights: Vec<f32>,
    pub bias: f32,
}

impl Head {
    /// Fits the head on labelled vectors (see the module docs): balanced class weights, mean
    /// cross-entropy plus `l2 × |w|²`. Both classes must be present, every vector of the same
    /// dimension.
    pub fn fit(model_id: &str, examples: &[Labelled], l2: f32) -> Result<Head, EmbedError> {
        let here = Path::new("training set");
        let dimension = examples.first().map_or(0, |e| e.vector.len());
        if dimension == 0 || examples.iter().any(|e| e.vector.len() != dimension) {
            return Err(invalid(here, "every example needs a vector of the same, non-zero dimension"));
        }
        let attacks = examples.iter().filter(|e| e.injection).count();
        if attacks == 0 || attacks == examples.len() {
            return Err(invalid(here, "fitting needs attacks and benign examples"));
        }
        let device = Device::Cpu;
        let n = examples.len();
        let flat: Vec<f32> = examples.iter().flat_map(|e| e.vector.iter().copied()).collect();
        let x = Tensor::from_vec(flat, (n, dimension), &device)?;
        let y = Tensor::from_vec(
            examples.iter().map(|e| f32::from(u8::from(e.injection))).collect(),
            n,
            &device,
        )?;
        // Each class weighs half of the loss.
        let (pos, neg) = (0.5 / attacks as f32, 0.5 / (n - attacks) as f32);
        let weights = Tensor::from_vec(
            examples.iter().map(|e| if e.injection { pos } else { neg }).collect(),
            n,
            &device,
        )?;
        let w = Var::zeros((dimension, 1), DType::F32, &device)?;
        let b = Var::zeros(1, DType::F32, &device)?;
        let params = ParamsAdamW { lr: LEARNING_RATE, weight_decay: 0.0, ..ParamsAdamW::default() };
        let mut optimiser = AdamW::new(vec![w.clone(), b.clone()], params)?;
        for _ in 0..STEPS {
            let z = x.matmul(w.as_tensor())?.squeeze(D::Minus1)?.broadcast_add(b.as_tensor())?;
            // Cross-entropy with logits, stable for any z: max(z, 0) - y z + ln(1 + e^-|z|).
            let softplus = (z.relu()? + z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
            let loss = (softplus - (&y * &z)?)?;
            let loss = ((loss * &weights)?.sum_all()? + (w.as_tensor().sqr()?.sum_all()? * f64::from(l2))?)?;
            optimiser.backward_step(&loss)?;
        }
        let head = Head {
            model_id: model_id.to_owned(),
            weights: w.as_tensor().flatten_all()?.to_vec1()?,
            bias: b.as_tensor().to_vec1::<f32>()?.first().copied().unwrap_or(0.0),
        };
        head.validate(here)?;
        Ok(head)
    }

    /// The probability of an attack for an embedded text.
    pub fn probability(&self, vector: &[f32]) -> f32 {
        let z: f32 = self.weights.iter().zip(vector).map(|(w, x)| w * x).sum::<f32>() + self.bias;
        1.0 / (1.0 + (-z).exp())
    }

    /// The head built into the crate (fitted as the module docs say, with all-MiniLM-L6-v2).
    pub fn shipped() -> Result<Head, EmbedError> {
        Head::from_bytes(SHIPPED, Path::new(HEAD_FILE))
    }

    /// Reads a head file (format in the module docs).
    pub fn read(path: &Path) -> Result<Head, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EmbedError::MissingFile { path: path.to_path_buf() },
            _ => invalid(path, e),
        })?;
        Head::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a head file; `path` only names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Head, EmbedError> {
        let mut r = Reader { bytes, at: 0, path };
        if r.take(8)? != MAGIC {
            return Err(invalid(path, "not a gardefou injection head (bad magic)"));
        }
        let version = u16::from_le_bytes(r.array()?);
        if version != VERSION {
            return Err(invalid(path, format!("format version {version}, expected {VERSION}")));
        }
        let dimension = usize::from(u16::from_le_bytes(r.array()?));
        let bias = f32::from_le_bytes(r.array()?);
        let id_len = usize::from(r.take(1)?[0]);
        let model_id = std::str::from_utf8(r.take(id_len)?).map_err(|e| invalid(path, e))?.to_owned();
        if r.bytes.len() - r.at != dimension * 4 {
            return Err(invalid(
                path,
                format!("{} bytes of weights, expected {}", r.bytes.len() - r.at, dimension * 4),
            ));
        }
        let weights =
            r.take(dimension * 4)?.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let head = Head { model_id, weights: weights.collect(), bias };
        head.validate(path)?;
        Ok(head)
    }

    /// The file bytes for this head.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmbedError> {
        let here = Path::new("head");
        self.validate(here)?;
        let dimension = u16::try_from(self.weights.len()).map_err(|e| invalid(here, e))?;
        let id_len = u8::try_from(self.model_id.len()).map_err(|e| invalid(here, e))?;
        let mut out = Vec::with_capacity(17 + self.model_id.len() + self.weights.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&dimension.to_le_bytes());
        out.extend_from_slice(&self.bias.to_le_bytes());
        out.push(id_len);
        out.extend_from_slice(self.model_id.as_bytes());
        self.weights.iter().for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
        Ok(out)
    }

    /// A non-empty, finite head.
    fn validate(&self, path: &Path) -> Result<(), EmbedError> {
        if self.weights.is_empty() || self.weights.len() > usize::from(u16::MAX) {
            return Err(invalid(path, format!("dimension {}", self.weights.len())));
        }
        if !self.bias.is_finite() || self.weights.iter().any(|w| !w.is_finite()) {
            return Err(invalid(path, "weights or bias are not finite numbers"));
        }
        Ok(())
    }
}

/// Scores text with a [`Head`] over its embedding (see the module docs). `Send + Sync`;
/// cloning shares the model.
#[derive(Debug, Clone)]
pub struct EmbeddingClassifier {
    embedder: Embedder,
    head: Head,
}

impl EmbeddingClassifier {
    /// Loads the model from `model_dir` with the shipped head.
    pub fn load(model_dir: &Path) -> Result<EmbeddingClassifier, EmbedError> {
        EmbeddingClassifier::from_parts(Embedder::load(model_dir)?, Head::shipped()?)
    }

    /// Combines a loaded model with a head; fails when the head was fitted on another model's
    /// vectors (name or dimension), as its weights would mean nothing.
    pub fn from_parts(embedder: Embedder, head: Head) -> Result<EmbeddingClassifier, EmbedError> {
        if head.model_id != embedder.model_id() || head.weights.len() != embedder.dimension() {
            return Err(invalid(
                &PathBuf::from("head"),
                format!(
                    "fitted on {} ({} dimensions), but the model is {} ({} dimensions)",
                    head.model_id,
                    head.weights.len(),
                    embedder.model_id(),
                    embedder.dimension()
                ),
            ));
        }
        Ok(EmbeddingClassifier { embedder, head })
    }

    /// The head in use.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The model in use.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }
}

impl Classifier for EmbeddingClassifier {
    /// `None` for blank text and when embedding fails: the heuristics then decide alone.
    fn score(&self, normalized: &str) -> Option<f32> {
        if normalized.trim().is_empty() {
            return None;
        }
        let vectors = self.embedder.embed(&[normalized]).ok()?;
        vectors.first().map(|v| self.head.probability(v))
    }
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> EmbedError {
    EmbedError::BadFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// A cursor over a head file that reports truncation as a bad file.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EmbedError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| invalid(self.path, "file ends early"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EmbedError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(mut v: Vec<f32>) -> Vec<f32> {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// Attacks lie around the first axis, benign texts around the second; three times as many
    /// benign texts, so an unweighted fit would lean towards "benign".
    fn toy() -> Vec<Labelled> {
        let mut examples = Vec::new();
        for i in 0..6 {
            let t = i as f32 * 0.05;
            examples.push(Labelled { vector: unit(vec![1.0, t, 0.1]), injection: true });
            for j in 0..3 {
                examples.push(Labelled { vector: unit(vec![t, 1.0, 0.1 * j as f32]), injection: false });
            }
        }
        examples
    }

    #[test]
    fn classifier_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<EmbeddingClassifier>();
    }

    #[test]
    fn fitted_head_separates_the_classes_and_balances_them() {
        let head = Head::fit("toy", &toy(), DEFAULT_L2).unwrap();
        assert!(head.probability(&unit(vec![1.0, 0.1, 0.0])) > 0.9, "{head:?}");
        assert!(head.probability(&unit(vec![0.1, 1.0, 0.0])) < 0.1, "{head:?}");
        // Halfway between the classes: balanced weights put it near even odds.
        let middle = head.probability(&unit(vec![1.0, 1.0, 0.1]));
        assert!((0.2..0.8).contains(&middle), "{middle}");
        // The penalty keeps the weights finite on a separable set.
        let strong = Head::fit("toy", &toy(), 1.0).unwrap();
        let norm = |h: &Head| h.weights.iter().map(|w| w * w).sum::<f32>();
        assert!(norm(&strong) < norm(&head), "{strong:?} vs {head:?}");
    }

    #[test]
    fn one_class_or_ragged_training_sets_are_refused() {
        let attacks: Vec<Labelled> = toy().into_iter().filter(|e| e.injection).collect();
        assert!(Head::fit("toy", &attacks, DEFAULT_L2).is_err());
        let mut ragged = toy();
        ragged[3].vector.push(0.0);
        assert!(Head::fit("toy", &ragged, DEFAULT_L2).is_err());
    }

    #[test]
    fn file_round_trip_keeps_the_head() {
        let head = Head::fit("toy-model", &toy(), DEFAULT_L2).unwrap();
        let bytes = head.to_bytes().unwrap();
        assert_eq!(bytes.len(), 17 + "toy-model".len() + 3 * 4);
        assert_eq!(Head::from_bytes(&bytes, Path::new("toy.bin")).unwrap(), head);
    }

    #[test]
    fn damaged_files_are_reported_not_trusted() {
        let bytes = Head::fit("toy", &toy(), DEFAULT_L2).unwrap().to_bytes().unwrap();
        let path = Path::new("toy.bin");
        for (cut, what) in [(bytes.len() - 1, "bytes of weights"), (10, "ends early"), (0, "ends early")] {
            let err = Head::from_bytes(&bytes[..cut], path).unwrap_err();
            assert_eq!(err.kind(), "bad_file");
            assert!(err.to_string().contains(what), "{err}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(Head::from_bytes(&wrong, path).unwrap_err().to_string().contains("magic"));
        let mut nan = bytes;
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Head::from_bytes(&nan, path).unwrap_err().to_string().contains("finite"));
    }

    #[test]
    fn shipped_head_parses() {
        let shipped = Head::shipped().unwrap();
        assert_eq!(shipped.model_id, "all-MiniLM-L6-v2");
        assert_eq!(shipped.weights.len(), 384);
    }
}
