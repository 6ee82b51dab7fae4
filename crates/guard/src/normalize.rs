//! Text folding for the injection detector: the same words written in other ways read the same.
//!
//! Steps, in order, character by character, keeping a map back to the original bytes:
//! 1. Unicode tag characters (U+E0020–U+E007E, "ASCII smuggling") become the ASCII they hide.
//! 2. Zero-width, bidi-control and soft-hyphen characters are removed.
//! 3. NFKD compatibility decomposition with combining marks dropped: full-width, ligature,
//!    mathematical-alphabet and accented letters fold to their base letters (a superset of
//!    NFKC's folding for detection purposes; `é` → `e`).
//! 4. Common Cyrillic and Greek look-alikes fold to ASCII, only inside words that also hold a
//!    Latin letter or consist entirely of look-alikes (so real Russian or Greek text is kept).
//! 5. Leetspeak digits and symbols fold to letters inside words that mix letters and digits
//!    (`1gn0r3` → `ignore`; a plain number stays a number).
//! 6. Lower case; runs of spaces and tabs collapse to one space; line breaks are kept.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Folded text with, for every byte of it, the byte range in the original it came from.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    pub text: String,
    pub(crate) origin: Vec<(u32, u32)>,
}

impl Normalized {
    /// The byte range in the original text that produced `range` of the folded text.
    pub fn original_span(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let start = self.origin.get(range.start).map_or(0, |o| o.0 as usize);
        let end = range.end.checked_sub(1).and_then(|i| self.origin.get(i)).map_or(start, |o| o.1 as usize);
        start..end.max(start)
    }
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180E}'
        | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{E0000}'..='\u{E001F}' | '\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// Cyrillic and Greek letters that look like a Latin letter.
fn confusable(c: char) -> Option<char> {
    Some(match c {
        'а' | 'А' | 'α' | 'Α' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'Е' | 'ё' | 'ε' | 'Ε' => 'e',
        'ɡ' => 'g',
        'һ' | 'Н' | 'Η' => 'h',
        'і' | 'І' | 'ι' | 'Ι' | 'ӏ' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'п' | 'η' | 'Ν' => 'n',
        'о' | 'О' | 'ο' | 'Ο' | 'σ' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' | 'ѵ' => 'v',
        'ш' | 'ω' => 'w',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'у' | 'У' | 'γ' | 'Υ' => 'y',
        'Ζ' => 'z',
        _ => return None,
    })
}

fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        _ => return None,
    })
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(c, '@' | '$')
        || is_invisible(c)
        || is_combining_mark(c)
        || tag_ascii(c).is_some()
}

/// Fold `input` as described in the module docs.
pub fn normalize(input: &str) -> Normalized {
    let mut out =
        Normalized { text: String::with_capacity(input.len()), origin: Vec::with_capacity(input.len()) };
    let mut pending_space: Option<(u32, u32)> = None;
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let Some(first) = rest.chars().next() else { break };
        if !is_word_char(first) {
            let end = i + first.len_utf8();
            let span = (i as u32, end as u32);
            match first {
                ' ' | '\t' | '\u{A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
                    pending_space.get_or_insert(span);
                }
                '\r' => {}
                _ => {
                    if let Some(sp) = pending_space.take() {
                        if first != '\n' {
                            emit(&mut out, ' ', sp);
                        }
                    }
                    let c = tag_ascii(first).unwrap_or(first);
                    fold_char(&mut out, c, span, false, false);
                }
            }
            i = end;
            continue;
        }
        // A word: decide folding once for the whole run.
        let word_len = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        let word = &rest[..word_len];
        let has_latin = word.chars().any(|c| c.is_ascii_alphabetic());
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        let all_confusable = letters > 0
            && word.chars().filter(|c| c.is_alphabetic()).all(|c| c.is_ascii() || confusable(c).is_some());
        let fold_confusables = has_latin || all_confusable;
        let has_letter = letters > 0;
        let fold_leet = has_letter && word.chars().any(|c| leet(c).is_some());
        if let Some(sp) = pending_space.take() {
            if !out.text.is_empty() && !out.text.ends_with('\n') {
                emit(&mut out, ' ', sp);
            }
        }
        for (j, c) in word.char_indices() {
            let span = ((i + j) as u32, (i + j + c.len_utf8()) as u32);
            if let Some(a) = tag_ascii(c) {
                fold_char(&mut out, a, span, false, false);
            } else if !is_invisible(c) {
                fold_char(&mut out, c, span, fold_confusables, fold_leet);
            }
        }
        i += word_len;
    }
    out
}

fn tag_ascii(c: char) -> Option<char> {
    let v = c as u32;
    (0xE0020..=0xE007E).contains(&v).then(|| char::from_u32(v - 0xE0000)).flatten()
}

fn fold_char(out: &mut Normalized, c: char, span: (u32, u32), confusables: bool, leetspeak: bool) {
    if leetspeak {
        if let Some(l) = leet(c) {
            emit(out, l, span);
            return;
        }
    }
    if confusables {
        if let Some(l) = confusable(c) {
            emit(out, l, span);
            return;
        }
    }
    if c.is_ascii() {
        emit(out, c.to_ascii_lowercase(), span);
        return;
    }
    decompose_compatible(c, |d| {
        if is_combining_mark(d) || is_invisible(d) {
            return;
        }
        let d = if confusables { confusable(d).unwrap_or(d) } else { d };
        for l in d.to_lowercase() {
            emit(out, l, span);
        }
    });
}

fn emit(out: &mut Normalized, c: char, span: (u32, u32)) {
    out.text.push(c);
    for _ in 0..c.len_utf8() {
        out.origin.push(span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).text
    }

    #[test]
    fn folds_width_accents_case_and_spaces() {
        assert_eq!(n("ＩＧＮＯＲＥ  Prévious\tInstructions"), "ignore previous instructions");
        assert_eq!(n("ﬁle 𝐢𝐠𝐧𝐨𝐫𝐞"), "file ignore");
        assert_eq!(n("a\r\nb"), "a\nb");
    }

    #[test]
    fn removes_invisible_and_decodes_tag_characters() {
        assert_eq!(n("ig\u{200B}no\u{200D}re pre\u{202E}vious"), "ignore previous");
        let smuggled: String = "hi".chars().map(|c| char::from_u32(0xE0000 + c as u32).unwrap()).collect();
        assert_eq!(n(&format!("ok{smuggled}")), "okhi");
    }

    #[test]
    fn folds_lookalikes_only_in_mixed_or_lookalike_words() {
        assert_eq!(n("іgnоrе"), "ignore", "Cyrillic і, о, е inside a Latin word");
        assert_eq!(n("ΙGΝΟRΕ"), "ignore");
        assert_eq!(n("привет мир"), "привет мир", "real Russian is kept");
    }

    #[test]
    fn folds_leetspeak_in_mixed_words_only() {
        assert_eq!(n("1gn0r3 pr3v10us"), "ignore previous");
        assert_eq!(n("p@$$w0rd 2024"), "password 2024");
    }

    #[test]
    fn maps_back_to_original_bytes() {
        let src = "Say: ＩＧＮＯＲＥ now";
        let norm = normalize(src);
        let at = norm.text.find("ignore").unwrap();
        let span = norm.original_span(at..at + 6);
        assert_eq!(&src[span], "ＩＧＮＯＲＥ");
    }
}
