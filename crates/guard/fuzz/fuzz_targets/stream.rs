//! StreamScanner never panics, never holds more than its bound, and releases text whose
//! unredacted form is exactly the input (when nothing is redacted or blocked).
#![no_main]

use gardefou_guard::{Policy, PolicyConfig, StreamScanner};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};

static FLAG_ONLY: LazyLock<Arc<Policy>> = LazyLock::new(|| {
    let config: PolicyConfig =
        serde_json::from_str(r#"{"pii":"flag","secrets":"flag","injection":"flag"}"#).unwrap_or_default();
    Arc::new(Policy::try_from(config).unwrap_or_default())
});
static DEFAULT: LazyLock<Arc<Policy>> = LazyLock::new(|| Arc::new(Policy::default()));

fuzz_target!(|data: &[u8]| {
    // First byte picks the chunk size, the rest is the stream.
    let Some((&size, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let size = usize::from(size % 32) + 1;
    let chars: Vec<char> = text.chars().collect();
    for policy in [&*FLAG_ONLY, &*DEFAULT] {
        let mut s = StreamScanner::new(policy.clone()).with_holdback(size * 2).with_max_hold(4096);
        let mut out = String::new();
        for chunk in chars.chunks(size) {
            let piece: String = chunk.iter().collect();
            out.push_str(&s.push(&piece).text);
            assert!(s.held() <= 4096 + piece.len() * 4 + 64);
        }
        out.push_str(&s.finish().text);
        if Arc::ptr_eq(policy, &FLAG_ONLY) {
            assert_eq!(out, text);
        }
    }
});
