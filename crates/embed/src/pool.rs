//! Pooling of token vectors into one sentence vector, and vector maths on the results.

use candle_core::{DType, Tensor, D};

/// Averages the token vectors of each sequence over its real tokens (mask = 1), then scales the
/// result to unit length: the pooling all-MiniLM-L6-v2 was trained with.
///
/// `hidden` is `(batch, seq, dim)`, `mask` is `(batch, seq)` of 0/1 in any integer or float type.
pub(crate) fn mean_pool_normalized(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    // Same floor as sentence-transformers: a sequence with no real token divides by 1e-9.
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    l2_normalize(&mean)
}

/// Scales each row of a `(batch, dim)` tensor to unit length (rows of zeros stay zero).
fn l2_normalize(xs: &Tensor) -> candle_core::Result<Tensor> {
    let norms = xs
        .to_dtype(DType::F32)?
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        // torch.nn.functional.normalize's epsilon.
        .clamp(1e-12, f64::MAX)?;
    xs.broadcast_div(&norms)
}

/// Cosine similarity of two vectors: 1 for the same direction, 0 for orthogonal, -1 opposite.
///
/// Vectors from [`crate::Embedder::embed`] are unit length, so this is their dot product; the
/// norms are still divided out so any pair of vectors can be compared. Returns 0 when either
/// vector is all zeros or the lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    if denom == 0.0 {
        0.0
    } else {
        dot / denom
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-2.0, -2.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn padding_tokens_do_not_move_the_mean() {
        let dev = Device::Cpu;
        // One sequence: two real tokens then a padding token with a large vector.
        let hidden = Tensor::new(&[[[3.0f32, 0.0], [1.0, 4.0], [100.0, -100.0]]], &dev).unwrap();
        let mask = Tensor::new(&[[1u32, 1, 0]], &dev).unwrap();
        let pooled = mean_pool_normalized(&hidden, &mask).unwrap();
        let got = pooled.to_vec2::<f32>().unwrap();
        // mean = (2, 2) → unit length (0.7071, 0.7071).
        let expected = std::f32::consts::FRAC_1_SQRT_2;
        assert!((got[0][0] - expected).abs() < 1e-6, "{got:?}");
        assert!((got[0][1] - expected).abs() < 1e-6, "{got:?}");
    }
}
