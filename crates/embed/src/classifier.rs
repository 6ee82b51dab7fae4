//! `SimilarityClassifier`: prompt-injection probability from embedding similarity to labelled
//! attacks and benign prompts, for `gardefou_guard::injection::Classifier`.
//!
//! # Method
//! The reference set holds unit vectors of known attacks and known benign prompts. For a text
//! with vector `v`:
//! 1. `attack = mean of the k largest cos(v, a)` over the attacks `a`, and `benign` the same over
//!    the benign examples (fewer than `k` in a class: all of them).
//! 2. `margin = attack - benign`, in `[-2, 2]`: positive when the text sits closer to attacks.
//! 3. `probability = 1 / (1 + exp(-(slope * margin + intercept)))`.
//!
//! `slope` and `intercept` are fitted by [`Reference::fit`] with Platt scaling on
//! leave-one-out margins: each reference example is scored against all the *others*, and a
//! logistic regression maps those margins to labels, with Platt's smoothed targets
//! (`(n₊ + 1) / (n₊ + 2)` and `1 / (n₋ + 2)`) so that a separable set still gets a finite slope.
//! The probability is thus calibrated for the reference set's own class balance (about even),
//! not for live traffic, where attacks are rare.
//!
//! The shipped reference ([`Reference::shipped`], `data/injection_reference.bin`, with its texts
//! in `data/injection_reference.jsonl`) is built from the tuning split of the guard benchmark
//! only (`bench/guard/data/injection_tune.jsonl`, all 154 texts, `k = 3`); the example
//! `injection_eval --write-reference` rebuilds it. Texts are folded with
//! `gardefou_guard::normalize::normalize` before embedding, as the detector does before calling
//! the classifier.
//!
//! Embedding a prompt costs milliseconds of CPU (see `bench/guard/README.md`): call the
//! detector from a blocking thread. Only the first [`crate::DEFAULT_MAX_TOKENS`] tokens of a
//! text are embedded, so an attack past them is left to the heuristics.
//!
//! # File format (version 1, little-endian)
//! | bytes | field |
//! |---|---|
//! | 8 | magic `GFINJREF` |
//! | 2 | format version, `u16` = 1 |
//! | 2 | dimension `D`, `u16` |
//! | 4 | example count `N`, `u32` |
//! | 2 | `k`, `u16` |
//! | 2 | reserved, 0 |
//! | 4 | slope, `f32` |
//! | 4 | intercept, `f32` |
//! | 1 | model id length `L`, `u8` |
//! | `L` | model id, UTF-8 (the model folder's name, e.g. `all-MiniLM-L6-v2`) |
//! | `N × (5 + D)` | per example: label `u8` (1 attack, 0 benign), scale `f32`, `D` × `i8` |
//!
//! A component is `i8 × scale`, with `scale = max |component| / 127` per vector; vectors are
//! scaled back to unit length on load. Quantisation moves a cosine by about 1e-4.

use std::path::{Path, PathBuf};

use gardefou_guard::injection::Classifier;

use crate::embedder::Embedder;
use crate::error::EmbedError;

/// File name of the shipped reference, under the crate's `data/` folder.
pub const REFERENCE_FILE: &str = "injection_reference.bin";
/// Neighbours averaged per class when none is given.
pub const DEFAULT_K: usize = 3;

const MAGIC: &[u8; 8] = b"GFINJREF";
const VERSION: u16 = 1;
const SHIPPED: &[u8] = include_bytes!("../data/injection_reference.bin");

/// One reference example: a unit vector and whether it is an attack.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub vector: Vec<f32>,
    pub injection: bool,
}

/// How a margin becomes a probability: `k` neighbours per class, then a logistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub k: usize,
    pub slope: f32,
    pub intercept: f32,
}

impl Calibration {
    /// The probability of an attack for a margin.
    pub fn probability(&self, margin: f32) -> f32 {
        1.0 / (1.0 + (-(self.slope * margin + self.intercept)).exp())
    }
}

/// A labelled reference set with its calibration, tied to the model that embedded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The model folder name the vectors come from ([`Embedder::model_id`]).
    pub model_id: String,
    pub dimension: usize,
    pub calibration: Calibration,
    pub examples: Vec<Labelled>,
}

impl Reference {
    /// Builds a reference from labelled vectors and fits its calibration (see the module docs).
    /// Both classes must be present, with at least two examples each.
    pub fn fit(model_id: &str, examples: Vec<Labelled>, k: usize) -> Result<Reference, EmbedError> {
        let dimension = examples.first().map_or(0, |e| e.vector.len());
        let k = k.max(1);
        let mut reference = Reference {
            model_id: model_id.to_owned(),
            dimension,
            calibration: Calibration { k, slope: 1.0, intercept: 0.0 },
            examples,
        };
        reference.validate(Path::new("reference"))?;
        let attacks = reference.examples.iter().filter(|e| e.injection).count();
        if attacks < 2 || reference.examples.len() - attacks < 2 {
            return Err(invalid(Path::new("reference"), "fitting needs two examples of each class"));
        }
        let margins: Vec<(f32, bool)> = reference.leave_one_out_margins();
        let (slope, intercept) = platt(&margins);
        reference.calibration.slope = slope;
        reference.calibration.intercept = intercept;
        Ok(reference)
    }

    /// Each example's margin against all the other examples, with its label.
    pub fn leave_one_out_margins(&self) -> Vec<(f32, bool)> {
        self.examples
            .iter()
            .enumerate()
            .map(|(i, e)| (margin(&self.examples, self.calibration.k, &e.vector, Some(i)), e.injection))
            .collect()
    }

    /// The reference shipped with this crate (built from the guard benchmark's tuning split
    /// with all-MiniLM-L6-v2).
    pub fn shipped() -> Result<Reference, EmbedError> {
        Reference::from_bytes(SHIPPED, Path::new(REFERENCE_FILE))
    }

    /// Reads a reference file (format in the module docs).
    pub fn read(path: &Path) -> Result<Reference, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EmbedError::MissingFile { path: path.to_path_buf() },
            _ => invalid(path, e),
        })?;
        Reference::from_bytes(&bytes, path)
    }

    /// Parses the bytes of a reference file; `path` only names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Reference, EmbedError> {
        let mut r = Reader { bytes, at: 0, path };
        if r.take(8)? != MAGIC {
            return Err(invalid(path, "not a gardefou injection reference (bad magic)"));
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(invalid(path, format!("format version {version}, expected {VERSION}")));
        }
        let dimension = usize::from(r.u16()?);
        let count = usize::try_from(r.u32()?).map_err(|e| invalid(path, e))?;
        let k = usize::from(r.u16()?);
        r.take(2)?;
        let slope = r.f32()?;
        let intercept = r.f32()?;
        let id_len = usize::from(r.take(1)?[0]);
        let model_id = std::str::from_utf8(r.take(id_len)?).map_err(|e| invalid(path, e))?.to_owned();
        let expected = count.checked_mul(5 + dimension).ok_or_else(|| invalid(path, "count too large"))?;
        if r.bytes.len() - r.at != expected {
            return Err(invalid(
                path,
                format!("{} bytes of examples, expected {expected}", r.bytes.len() - r.at),
            ));
        }
        let mut examples = Vec::with_capacity(count);
        for _ in 0..count {
            let injection = match r.take(1)?[0] {
                0 => false,
                1 => true,
                other => return Err(invalid(path, format!("label byte {other}"))),
            };
            let scale = r.f32()?;
            let vector: Vec<f32> = r.take(dimension)?.iter().map(|&q| f32::from(q as i8) * scale).collect();
            examples.push(Labelled { vector: unit(vector), injection });
        }
        let reference =
            Reference { model_id, dimension, calibration: Calibration { k, slope, intercept }, examples };
        reference.validate(path)?;
        Ok(reference)
    }

    /// The file bytes for this reference, vectors quantised to `i8`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmbedError> {
        let here = Path::new("reference");
        self.validate(here)?;
        let dimension = u16::try_from(self.dimension).map_err(|e| invalid(here, e))?;
        let count = u32::try_from(self.examples.len()).map_err(|e| invalid(here, e))?;
        let k = u16::try_from(self.calibration.k).map_err(|e| invalid(here, e))?;
        let id_len = u8::try_from(self.model_id.len()).map_err(|e| invalid(here, e))?;
        let mut out =
            Vec::with_capacity(29 + self.model_id.len() + self.examples.len() * (5 + self.dimension));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&dimension.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&k.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.calibration.slope.to_le_bytes());
        out.extend_from_slice(&self.calibration.intercept.to_le_bytes());
        out.push(id_len);
        out.extend_from_slice(self.model_id.as_bytes());
        for e in &self.examples {
            out.push(u8::from(e.injection));
            let largest = e.vector.iter().fold(0f32, |m, x| m.max(x.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            out.extend_from_slice(&scale.to_le_bytes());
            // Rounded and clamped to ±127, so the cast cannot wrap.
            out.extend(e.vector.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8 as u8));
        }
        Ok(out)
    }

    /// Both classes present, every vector of the stated dimension, parameters finite.
    fn validate(&self, path: &Path) -> Result<(), EmbedError> {
        if self.dimension == 0 || self.dimension > usize::from(u16::MAX) {
            return Err(invalid(path, format!("dimension {}", self.dimension)));
        }
        if let Some(i) = self.examples.iter().position(|e| e.vector.len() != self.dimension) {
            return Err(invalid(path, format!("example {i} is not {}-dimensional", self.dimension)));
        }
        if !self.examples.iter().any(|e| e.injection) || self.examples.iter().all(|e| e.injection) {
            return Err(invalid(path, "needs at least one attack and one benign example"));
        }
        let c = &self.calibration;
        if c.k == 0 || !c.slope.is_finite() || !c.intercept.is_finite() {
            return Err(invalid(path, format!("unusable calibration {c:?}")));
        }
        Ok(())
    }
}

/// Scores text by its embedding's similarity to known attacks and benign prompts (see the
/// module docs). `Send + Sync`; cloning shares the model.
#[derive(Debug, Clone)]
pub struct SimilarityClassifier {
    embedder: Embedder,
    reference: Reference,
}

impl SimilarityClassifier {
    /// Loads the model from `model_dir` and a reference file from `reference`.
    pub fn load(model_dir: &Path, reference: &Path) -> Result<SimilarityClassifier, EmbedError> {
        let reference = Reference::read(reference)?;
        SimilarityClassifier::from_parts(Embedder::load(model_dir)?, reference)
    }

    /// Combines a loaded model with a reference set; fails when the reference was embedded
    /// with another model (name or dimension), as its similarities would mean nothing.
    pub fn from_parts(embedder: Embedder, reference: Reference) -> Result<SimilarityClassifier, EmbedError> {
        let here = PathBuf::from("reference");
        reference.validate(&here)?;
        if reference.model_id != embedder.model_id() || reference.dimension != embedder.dimension() {
            return Err(invalid(
                &here,
                format!(
                    "built with {} ({} dimensions), but the model is {} ({} dimensions)",
                    reference.model_id,
                    reference.dimension,
                    embedder.model_id(),
                    embedder.dimension()
                ),
            ));
        }
        Ok(SimilarityClassifier { embedder, reference })
    }

    /// The reference set in use.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// The model in use.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// The margin (mean similarity to the nearest attacks minus to the nearest benign
    /// examples) of an already embedded text.
    pub fn margin(&self, vector: &[f32]) -> f32 {
        margin(&self.reference.examples, self.reference.calibration.k, vector, None)
    }

    /// The probability of an attack for an already embedded text.
    pub fn score_vector(&self, vector: &[f32]) -> f32 {
        self.reference.calibration.probability(self.margin(vector))
    }
}

impl Classifier for SimilarityClassifier {
    /// `None` for blank text and when embedding fails: the heuristics then decide alone.
    fn score(&self, normalized: &str) -> Option<f32> {
        if normalized.trim().is_empty() {
            return None;
        }
        let vectors = self.embedder.embed(&[normalized]).ok()?;
        vectors.first().map(|v| self.score_vector(v))
    }
}

/// Mean of the `k` best similarities to attacks minus the same for benign examples, leaving
/// out example `skip`.
fn margin(examples: &[Labelled], k: usize, vector: &[f32], skip: Option<usize>) -> f32 {
    let mut best = [Vec::with_capacity(k + 1), Vec::with_capacity(k + 1)];
    for (i, e) in examples.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        let sim: f32 = e.vector.iter().zip(vector).map(|(a, b)| a * b).sum();
        let top: &mut Vec<f32> = &mut best[usize::from(e.injection)];
        let at = top.partition_point(|&s| s >= sim);
        if at < k {
            top.insert(at, sim);
            top.truncate(k);
        }
    }
    let mean = |v: &[f32]| if v.is_empty() { 0.0 } else { v.iter().sum::<f32>() / v.len() as f32 };
    mean(&best[1]) - mean(&best[0])
}

/// Platt scaling: `(slope, intercept)` of the logistic regression of labels on margins, with
/// smoothed targets; Newton's method with step halving.
fn platt(margins: &[(f32, bool)]) -> (f32, f32) {
    let positives = margins.iter().filter(|m| m.1).count() as f64;
    let negatives = margins.len() as f64 - positives;
    let hi = (positives + 1.0) / (positives + 2.0);
    let lo = 1.0 / (negatives + 2.0);
    let data: Vec<(f64, f64)> =
        margins.iter().map(|&(m, y)| (f64::from(m), if y { hi } else { lo })).collect();
    let loss = |a: f64, b: f64| -> f64 {
        data.iter()
            .map(|&(x, t)| {
                // log(1 + exp(z)) - t z, computed without overflow.
                let z = a * x + b;
                z.max(0.0) + (-z.abs()).exp().ln_1p() - t * z
            })
            .sum()
    };
    let (mut a, mut b) = (1.0f64, ((positives + 1.0) / (negatives + 1.0)).ln());
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for &(x, t) in &data {
            let p = 1.0 / (1.0 + (-(a * x + b)).exp());
            let w = p * (1.0 - p);
            ga += (p - t) * x;
            gb += p - t;
            haa += w * x * x;
            hab += w * x;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-6 {
            let next = loss(a - step * da, b - step * db);
            if next < current {
                a -= step * da;
                b -= step * db;
                improved = current - next > 1e-12;
                current = next;
                break;
            }
            step /= 2.0;
        }
        if !improved || (ga.abs() < 1e-9 && gb.abs() < 1e-9) {
            break;
        }
    }
    (a as f32, b as f32)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> EmbedError {
    EmbedError::BadFile { path: path.to_path_buf(), reason: reason.to_string() }
}

/// A cursor over a reference file that reports truncation as a bad file.
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

    fn u16(&mut self) -> Result<u16, EmbedError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, EmbedError> {
        self.array().map(u32::from_le_bytes)
    }

    fn f32(&mut self) -> Result<f32, EmbedError> {
        self.array().map(f32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attacks cluster around the first axis, benign texts around the second.
    fn toy() -> Vec<Labelled> {
        let mut examples = Vec::new();
        for i in 0..6 {
            let t = i as f32 * 0.05;
            examples.push(Labelled { vector: unit(vec![1.0, t, 0.1]), injection: true });
            examples.push(Labelled { vector: unit(vec![t, 1.0, 0.1]), injection: false });
        }
        examples
    }

    #[test]
    fn classifier_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<SimilarityClassifier>();
    }

    #[test]
    fn margin_is_positive_near_attacks_and_negative_near_benign() {
        let examples = toy();
        assert!(margin(&examples, 3, &unit(vec![1.0, 0.1, 0.0]), None) > 0.5);
        assert!(margin(&examples, 3, &unit(vec![0.1, 1.0, 0.0]), None) < -0.5);
        // k larger than a class: all of it is averaged.
        let all = margin(&examples, 100, &[1.0, 0.0, 0.0], None);
        assert!(all.is_finite() && all > 0.0);
    }

    #[test]
    fn leaving_an_example_out_ignores_it() {
        let examples = toy();
        let alone = margin(&examples, 1, &examples[0].vector, None);
        let left_out = margin(&examples, 1, &examples[0].vector, Some(0));
        assert!((alone - left_out).abs() > 0.0 && left_out < alone);
    }

    #[test]
    fn fitted_calibration_orders_and_separates_the_classes() {
        let reference = Reference::fit("toy", toy(), 3).unwrap();
        let c = reference.calibration;
        assert!(c.slope > 0.0, "{c:?}");
        assert!(c.probability(0.8) > 0.9 && c.probability(-0.8) < 0.1, "{c:?}");
        // Smoothed targets keep a separable set from an infinite slope.
        assert!(c.slope < 1e4, "{c:?}");
    }

    #[test]
    fn file_round_trip_keeps_labels_parameters_and_directions() {
        let reference = Reference::fit("toy-model", toy(), 2).unwrap();
        let bytes = reference.to_bytes().unwrap();
        assert_eq!(bytes.len(), 29 + "toy-model".len() + 12 * (5 + 3));
        let back = Reference::from_bytes(&bytes, Path::new("toy.bin")).unwrap();
        assert_eq!(back.model_id, "toy-model");
        assert_eq!(back.calibration, reference.calibration);
        for (a, b) in reference.examples.iter().zip(&back.examples) {
            assert_eq!(a.injection, b.injection);
            let cos: f32 = a.vector.iter().zip(&b.vector).map(|(x, y)| x * y).sum();
            assert!(cos > 0.9999, "{cos}");
        }
    }

    #[test]
    fn damaged_files_are_reported_not_trusted() {
        let bytes = Reference::fit("toy", toy(), 3).unwrap().to_bytes().unwrap();
        let path = Path::new("toy.bin");
        for (cut, what) in [(bytes.len() - 1, "bytes of examples"), (10, "ends early"), (0, "ends early")] {
            let err = Reference::from_bytes(&bytes[..cut], path).unwrap_err();
            assert_eq!(err.kind(), "bad_file");
            assert!(err.to_string().contains(what), "{err}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = b'X';
        assert!(Reference::from_bytes(&wrong, path).unwrap_err().to_string().contains("magic"));
        let mut label = bytes;
        label[29 + 3] = 7;
        assert!(Reference::from_bytes(&label, path).unwrap_err().to_string().contains("label byte 7"));
    }

    #[test]
    fn one_class_references_are_refused() {
        let attacks: Vec<Labelled> = toy().into_iter().filter(|e| e.injection).collect();
        assert!(Reference::fit("toy", attacks, 3).is_err());
    }

    #[test]
    fn shipped_reference_parses() {
        let shipped = Reference::shipped().unwrap();
        assert_eq!(shipped.model_id, "all-MiniLM-L6-v2");
        assert_eq!(shipped.dimension, 384);
        assert!(shipped.examples.iter().filter(|e| e.injection).count() >= 10);
        assert!(shipped.calibration.slope > 0.0);
    }
}
