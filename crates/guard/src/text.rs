//! Small text helpers shared by the scanners: offsets and character classes.

/// Compile a built-in pattern with ASCII word boundaries. Unicode `\b` makes the regex crate
/// leave its lazy DFA for a much slower engine whenever the text holds a non-ASCII character;
/// all built-in patterns anchor on ASCII words, so the ASCII boundary means the same there.
pub(crate) fn regex(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&ascii_boundaries(pattern)).ok()
}

pub(crate) fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

/// Number of characters in `text[..byte]` (clamped to a char boundary at or before `byte`).
pub(crate) fn char_offset(text: &str, byte: usize) -> usize {
    let mut end = byte.min(text.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).map_or(0, |s| s.chars().count())
}

/// The character just before byte `at`, if any.
pub(crate) fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|s| s.chars().next_back())
}

/// The character starting at byte `at`, if any.
pub(crate) fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|s| s.chars().next())
}

/// True when the span `start..end` is not glued to a letter or digit on either side.
pub(crate) fn is_word_bounded(text: &str, start: usize, end: usize) -> bool {
    !char_before(text, start).is_some_and(char::is_alphanumeric)
        && !char_at(text, end).is_some_and(char::is_alphanumeric)
}

/// True when no ASCII digit touches the span on either side, nor a `.digit`/`-digit`
/// continuation (so a number is not cut out of a longer dotted or dashed run).
pub(crate) fn is_digit_bounded(text: &str, start: usize, end: usize) -> bool {
    let before = char_before(text, start);
    let after = char_at(text, end);
    if before.is_some_and(|c| c.is_ascii_alphanumeric()) || after.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    // "1.2.3.4.5" or "12-34-56-78": a separator followed by a digit continues the run.
    let glued = |c: Option<char>| matches!(c, Some('.' | '-' | '/' | ':' | ','));
    let b = text.as_bytes();
    if glued(after) && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    if glued(before) && start >= 2 && b.get(start - 2).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    true
}

/// Lower-cased window of up to `chars` characters before byte `at`.
pub(crate) fn window_before(text: &str, at: usize, chars: usize) -> String {
    let head = text.get(..at).unwrap_or("");
    let start = head.char_indices().rev().take(chars).last().map_or(at, |(i, _)| i);
    head.get(start..).unwrap_or("").to_lowercase()
}

/// Shannon entropy of `s` in bits per character.
pub(crate) fn shannon_entropy(s: &str) -> f32 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = n as f32;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_offsets_count_characters_not_bytes() {
        let t = "héllo wörld";
        assert_eq!(char_offset(t, 0), 0);
        assert_eq!(char_offset(t, 3), 2);
        assert_eq!(char_offset(t, t.len()), 11);
        assert_eq!(char_offset(t, 2), 1, "inside a char clamps back");
    }

    #[test]
    fn entropy_of_random_token_is_high() {
        assert!(shannon_entropy("aaaaaaaa") < 0.1);
        assert!(shannon_entropy("x7Kp9QzL2mV4tR8w") > 3.5);
    }

    #[test]
    fn digit_bounded_rejects_dotted_continuation() {
        let t = "v 1.2.3.4.5";
        assert!(!is_digit_bounded(t, 2, 9));
        assert!(is_digit_bounded("ip 1.2.3.4 ok", 3, 10));
    }
}
