//! Mock embeddings: a deterministic unit-norm vector per input text (an FNV-1a hash of the text
//! seeds a small PRNG), as floats or as base64 of little-endian f32 like OpenAI's
//! `encoding_format: "base64"`.

use gardefou_core::chat::{
    Embedding, EmbeddingUsage, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
};
use gardefou_core::{Error, Result};

use super::answer::words;

/// Dimension when the request does not ask for one.
const DEFAULT_DIMENSIONS: u32 = 256;
/// Largest dimension the mock accepts (OpenAI's largest model has 3072).
const MAX_DIMENSIONS: u32 = 8192;

/// Embeds every input of `req`; `model` is the upstream model name echoed in the response.
pub(super) fn embed(req: &EmbeddingsRequest, model: &str, provider: &str) -> Result<EmbeddingsResponse> {
    let rejected = |message: &str| Error::ProviderRejected {
        provider: provider.to_owned(),
        status: 400,
        message: message.to_owned(),
    };
    let dimensions = req.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if !(1..=MAX_DIMENSIONS).contains(&dimensions) {
        return Err(rejected(&format!("dimensions must be between 1 and {MAX_DIMENSIONS}")));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return Err(rejected("encoding_format must be `float` or `base64`")),
    };
    if req.input.is_empty() {
        return Err(rejected("input must not be empty"));
    }
    let texts = req.input.texts();
    let tokens: u64 = texts.iter().map(|t| words(t)).sum();
    let data = texts
        .iter()
        .zip(0..)
        .map(|(text, index)| {
            let v = vector(text, dimensions as usize);
            let embedding = if base64 {
                EmbeddingVector::Base64(crate::http::f32_base64(&v))
            } else {
                EmbeddingVector::Float(v)
            };
            Embedding { object: "embedding".to_owned(), index, embedding }
        })
        .collect();
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data,
        model: model.to_owned(),
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    })
}

/// The unit-norm vector of `text`: the same text always gives the same vector.
pub(super) fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut rng = SplitMix64(fnv1a(text.as_bytes()));
    let mut v: Vec<f32> = (0..dimensions).map(|_| rng.next_unit()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else if let Some(first) = v.first_mut() {
        *first = 1.0;
    }
    v
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64: tiny, fast, and good enough to spread a hash over a vector.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_unit(&mut self) -> f32 {
        // The top 24 bits fill an f32 mantissa exactly.
        let unit = (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
        unit * 2.0 - 1.0
    }
}

#[cfg(test)]
pub(super) fn decode_f32_le(text: &str) -> Vec<f32> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> EmbeddingsRequest {
        serde_json::from_value(body).unwrap()
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(crate::http::f32_base64(&[1.0]), "AACAPw==");
        assert_eq!(crate::http::f32_base64(&[1.0, -2.5]), "AACAPwAAIMA=");
        assert_eq!(crate::http::f32_base64(&[]), "");
        assert_eq!(decode_f32_le("AACAPwAAIMA="), [1.0, -2.5]);
    }

    #[test]
    fn same_text_same_unit_vector_and_different_texts_differ() {
        let a = vector("the cat sat", 64);
        assert_eq!(a, vector("the cat sat", 64));
        assert_ne!(a, vector("the cat sat!", 64));
        assert!((norm(&a) - 1.0).abs() < 1e-5);
        assert!((norm(&vector("", 3)) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn floats_by_default_with_256_dimensions_and_word_usage() {
        let r =
            embed(&request(json!({"model": "e", "input": ["hello world", "bye"]})), "up-e", "demo").unwrap();
        assert_eq!((r.model.as_str(), r.data.len()), ("up-e", 2));
        assert_eq!((r.usage.prompt_tokens, r.usage.total_tokens), (3, 3));
        let EmbeddingVector::Float(v) = &r.data[1].embedding else { panic!("floats expected") };
        assert_eq!((r.data[1].index, v.len()), (1, 256));
        assert_eq!(v, &vector("bye", 256));
    }

    #[test]
    fn base64_embeddings_decode_to_unit_norm_floats_of_the_asked_dimension() {
        let r = embed(
            &request(json!({"model": "e", "input": "hello", "encoding_format": "base64", "dimensions": 48})),
            "up-e",
            "demo",
        )
        .unwrap();
        let EmbeddingVector::Base64(text) = &r.data[0].embedding else { panic!("base64 expected") };
        let v = decode_f32_le(text);
        assert_eq!(v.len(), 48);
        assert!((norm(&v) - 1.0).abs() < 1e-5);
        assert_eq!(v, vector("hello", 48));
    }

    #[test]
    fn invalid_embedding_requests_are_rejected_like_upstream() {
        for body in [
            json!({"model": "e", "input": "x", "dimensions": 0}),
            json!({"model": "e", "input": "x", "encoding_format": "int8"}),
            json!({"model": "e", "input": []}),
        ] {
            let err = embed(&request(body.clone()), "up", "demo").unwrap_err();
            assert!(matches!(err, Error::ProviderRejected { status: 400, .. }), "{body}: {err:?}");
        }
    }
}
