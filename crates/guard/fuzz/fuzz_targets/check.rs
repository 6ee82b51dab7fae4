//! Policy::check and check_indirect never panic, and findings always index the input.
#![no_main]

use gardefou_guard::Policy;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static POLICY: LazyLock<Policy> = LazyLock::new(Policy::default);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for v in [POLICY.check(text), POLICY.check_indirect(text)] {
        let chars = text.chars().count();
        for f in &v.findings {
            assert!(f.start <= f.end && f.end <= chars);
            assert!(text.get(f.bytes.clone()).is_some());
        }
        assert!((0.0..=1.0).contains(&v.score));
    }
});
