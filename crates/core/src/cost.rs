//! Cost of one call in USD from a model's price (USD per million tokens).
//!
//! Canonical `Usage` counts every input token in `input` — cache reads (`cached_input`) and cache
//! writes (`cache_write`) included — and every output token in `output`, reasoning included
//! (`reasoning` is the part of `output` spent thinking). So:
//!
//! - fresh input = input − cached − written, at `price.input`;
//! - cache reads at `price.cached_input`, cache writes at `price.cache_write`;
//! - output at `price.output`; reasoning is billed as output by every provider and is already in
//!   `output`, so it is never added a second time.

use crate::chat::Usage;
use crate::config::Price;

/// `None` when the price is unknown: recorded as null, never as a silent zero.
pub fn cost_usd(price: Option<&Price>, usage: &Usage) -> Option<f64> {
    let p = price?;
    let cached = usage.cached_input.min(usage.input);
    let write = usage.cache_write.min(usage.input - cached);
    let fresh = usage.input - cached - write;
    // Reasoning is part of output; should an adapter ever report more reasoning than output, the
    // larger count is billed once — never the sum.
    let output = usage.output.max(usage.reasoning);
    let micro = fresh as f64 * p.input
        + cached as f64 * p.cached_input
        + write as f64 * p.cache_write
        + output as f64 * p.output;
    Some(micro / 1_000_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price() -> Price {
        Price {
            input: 2.5,
            cached_input: 1.25,
            cache_write: 3.0,
            output: 10.0,
            batch_input: Some(1.25),
            batch_output: Some(5.0),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cached_tokens_are_charged_at_their_price() {
        let p = price();
        let u = Usage { input: 1_000, cached_input: 400, cache_write: 100, output: 200, reasoning: 50 };
        // 500 fresh × 2.5 + 400 × 1.25 + 100 × 3 + 200 × 10 = 1250 + 500 + 300 + 2000
        let c = cost_usd(Some(&p), &u).unwrap();
        assert!(close(c, 0.00405), "{c}");
        assert_eq!(cost_usd(None, &u), None);
    }

    #[test]
    fn reasoning_is_billed_once_as_output() {
        let p = price();
        let plain = Usage { input: 0, cached_input: 0, cache_write: 0, output: 1_000, reasoning: 0 };
        let thinking = Usage { reasoning: 800, ..plain };
        let plain_cost = cost_usd(Some(&p), &plain).unwrap();
        // 1000 output tokens of which 800 reasoning: still 1000 × 10, not 1800 × 10.
        assert!(close(plain_cost, 0.01), "{plain_cost}");
        assert_eq!(cost_usd(Some(&p), &thinking), Some(plain_cost));
        // An inconsistent count (reasoning above output) bills the reasoning, once.
        let odd = Usage { output: 100, reasoning: 300, ..plain };
        assert!(close(cost_usd(Some(&p), &odd).unwrap(), 0.003));
    }

    #[test]
    fn cache_writes_and_reads_never_exceed_the_input() {
        let p = price();
        // Anthropic-style: 10k written to the cache, 2k fresh.
        let write = Usage { input: 12_000, cached_input: 0, cache_write: 10_000, output: 0, reasoning: 0 };
        assert!(close(cost_usd(Some(&p), &write).unwrap(), (2_000.0 * 2.5 + 10_000.0 * 3.0) / 1e6));
        // Over-reported cache counts are capped by the input: reads first, then writes.
        let over = Usage { input: 100, cached_input: 80, cache_write: 80, output: 0, reasoning: 0 };
        assert!(close(cost_usd(Some(&p), &over).unwrap(), (80.0 * 1.25 + 20.0 * 3.0) / 1e6));
    }
}
