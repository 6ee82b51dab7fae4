//! Deny-lists of terms (topics) and custom regular expressions, configured per policy.
//!
//! Terms match case-insensitively (ASCII case folding, plus the lower- and upper-case forms of
//! non-ASCII terms) and only as whole words: `gun` does not match `begun`. Custom patterns use
//! the `regex` crate (linear time) with compiled-size limits.

use crate::error::GuardError;
use crate::finding::{Finding, GuardKind};
use crate::text::is_word_bounded;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};

/// Most deny-list terms per policy.
pub const MAX_TERMS: usize = 10_000;
/// Most custom patterns per policy.
pub const MAX_PATTERNS: usize = 64;
/// Longest custom pattern source, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;
/// Compiled-program size limit per custom pattern.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A compiled deny-list. Findings carry the kind `TOPIC`.
#[derive(Debug, Clone)]
pub struct DenyList {
    matcher: AhoCorasick,
}

impl DenyList {
    pub fn new<S: AsRef<str>>(terms: &[S]) -> Result<Self, GuardError> {
        if terms.len() > MAX_TERMS {
            return Err(GuardError::TooMany { what: "deny-list terms", max: MAX_TERMS });
        }
        let mut all: Vec<String> = Vec::with_capacity(terms.len());
        for t in terms {
            let t = t.as_ref().trim();
            if t.is_empty() {
                continue;
            }
            all.push(t.to_string());
            if !t.is_ascii() {
                all.push(t.to_lowercase());
                all.push(t.to_uppercase());
            }
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(&all)
            .map_err(|e| GuardError::InvalidPattern { name: "topics".into(), reason: e.to_string() })?;
        Ok(Self { matcher })
    }

    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.matcher
            .find_iter(text)
            .filter(|m| is_word_bounded(text, m.start(), m.end()))
            .map(|m| Finding::new(GuardKind::Topics, "TOPIC", text, m.start()..m.end(), 1.0))
            .collect()
    }
}

/// A named custom pattern. Findings carry the pattern's name in upper case as their kind.
#[derive(Debug, Clone)]
pub struct CustomPattern {
    kind: String,
    regex: Regex,
}

impl CustomPattern {
    pub fn new(name: &str, pattern: &str) -> Result<Self, GuardError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(GuardError::InvalidPattern {
                name: name.into(),
                reason: format!("longer than {MAX_PATTERN_LEN} bytes"),
            });
        }
        let regex = RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .dfa_size_limit(2 * PATTERN_SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map_err(|e| GuardError::InvalidPattern { name: name.into(), reason: e.to_string() })?;
        Ok(Self { kind: name.to_uppercase(), regex })
    }

    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.regex
            .find_iter(text)
            .filter(|m| !m.is_empty())
            .map(|m| Finding::new(GuardKind::Regex, self.kind.clone(), text, m.start()..m.end(), 1.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_list_whole_words_any_case() {
        let d = DenyList::new(&["gun", "Crypto Trading", "Élection"]).unwrap();
        let spans = |t: &str| d.scan(t).into_iter().map(|f| t[f.bytes].to_string()).collect::<Vec<_>>();
        assert_eq!(spans("I have a GUN."), vec!["GUN"]);
        assert!(spans("the show has begun; guns").is_empty());
        assert_eq!(spans("about crypto trading bots"), vec!["crypto trading"]);
        assert_eq!(spans("l'élection présidentielle"), vec!["élection"]);
    }

    #[test]
    fn custom_patterns_are_bounded() {
        let p = CustomPattern::new("ticket", r"TICKET-\d{4,}").unwrap();
        let f = p.scan("see TICKET-12345 please");
        assert_eq!(f[0].kind, "TICKET");
        assert_eq!((f[0].start, f[0].end), (4, 16));
        assert!(CustomPattern::new("bad", r"(unclosed").is_err());
        assert!(CustomPattern::new("huge", r"\w{1000}{1000}").is_err(), "exceeds the size limit");
        assert!(CustomPattern::new("long", &"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(CustomPattern::new("empty", r"x*").unwrap().scan("abc").is_empty());
    }
}
