//! Cost of one call in USD from a model's price table (USD per million tokens).

use crate::chat::Usage;
use crate::config::Price;

/// `None` when the price is unknown: recorded as null, never as a silent zero.
pub fn cost_usd(price: Option<&Price>, usage: &Usage) -> Option<f64> {
    let p = price?;
    let cached = usage.cached_input.min(usage.input);
    let write = usage.cache_write.min(usage.input - cached);
    let fresh = usage.input - cached - write;
    let micro = fresh as f64 * p.input
        + cached as f64 * p.cached_input
        + write as f64 * p.cache_write
        + usage.output as f64 * p.output;
    Some(micro / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_charged_at_their_price() {
        let p = Price { input: 2.5, cached_input: 1.25, cache_write: 3.0, output: 10.0 };
        let u = Usage { input: 1_000, cached_input: 400, cache_write: 100, output: 200, reasoning: 50 };
        // 500 fresh × 2.5 + 400 × 1.25 + 100 × 3 + 200 × 10 = 1250 + 500 + 300 + 2000
        let c = cost_usd(Some(&p), &u).unwrap();
        assert!((c - 0.00405).abs() < 1e-12, "{c}");
        assert_eq!(cost_usd(None, &u), None);
    }
}
