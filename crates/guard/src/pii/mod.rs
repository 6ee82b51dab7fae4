//! Personal data detection: every candidate found by a pattern must pass a validator
//! (checksum, number plan, parse, or context) before it becomes a finding.
//!
//! Types: `EMAIL`, `PHONE`, `CREDIT_CARD`, `IBAN`, `FR_NIR`, `US_SSN`, `IP_ADDRESS`,
//! `DATE_OF_BIRTH`.
//!
//! Decisions on near-misses:
//! - A dotted quad preceded by a version word (`version`, `v`, `release`, `build`, `firmware`,
//!   …) is a version string, not an IP address. Loopback and unspecified addresses
//!   (`127.0.0.1`, `0.0.0.0`, `::1`, `::`) are not personal data and are not reported.
//! - A phone number written as a bare digit run (no `+`, no separators) is only reported when a
//!   phone word (`phone`, `tel`, `mobile`, `call`, …) precedes it: otherwise order numbers and
//!   ids collide with national formats.
//! - A 9-digit run is a US SSN only with an `SSN`/`social security` word before it; the dashed
//!   form `123-45-6789` needs none.
//! - A date is a date of birth only with a birth word (`born`, `DOB`, `né le`, `geboren`, …)
//!   in the 48 characters before it.

mod validate;

use crate::finding::{Finding, GuardKind};
use crate::text::{char_before, is_digit_bounded, is_word_bounded, window_before};
use regex::Regex;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

pub use validate::{fr_nir, iban, luhn, payment_card, us_ssn};

/// Every PII type this module reports.
pub const TYPES: &[&str] =
    &["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "FR_NIR", "US_SSN", "IP_ADDRESS", "DATE_OF_BIRTH"];

struct Patterns {
    email: Regex,
    card: Regex,
    iban: Regex,
    nir: Regex,
    ssn: Regex,
    ipv4: Regex,
    ipv6: Regex,
    phone_intl: Regex,
    phone_national: Regex,
    date: Regex,
}

fn build() -> Option<Patterns> {
    Some(Patterns {
        email: crate::text::regex(
            r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
        )?,
        card: crate::text::regex(r"\d(?:[ \-]?\d){11,18}")?,
        iban: crate::text::regex(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,32}")?,
        nir: crate::text::regex(r"(?i)\b[1-478] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b")?,
        ssn: crate::text::regex(r"\b(\d{3})([\- ]?)(\d{2})([\- ]?)(\d{4})\b")?,
        ipv4: crate::text::regex(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")?,
        ipv6: crate::text::regex(r"(?i)[0-9a-f:]*:[0-9a-f:]*:[0-9a-f:.]*")?,
        phone_intl: crate::text::regex(r"(?:\+|\b00)[1-9](?:[ .\-]?\(?\d{1,5}\)?){2,8}")?,
        phone_national: crate::text::regex(concat!(
            r"\b0[1-9](?:[ .\-]?\d{2}){4}\b",                         // FR 0X XX XX XX XX
            r"|\b0\d{3,4}[ ]?\d{6}\b|\b0\d{2,3}[ ]\d{3,4}[ ]\d{4}\b", // UK 0XXXX XXXXXX, 020 XXXX XXXX
            r"|\b0[1-9]\d{1,4}[ /\-]\d{3,8}(?:-\d{1,4})?\b",          // DE 030 1234567, 089/12345-67
            r"|(?:\b1[ .\-]?)?(?:\(\d{3}\)[ ]?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}\b", // US
        ))?,
        date: crate::text::regex(concat!(
            r"(?i)\b(?:\d{1,2}[./\-]\d{1,2}[./\-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}",
            r"|\d{1,2}\.?\s+(?:jan|feb|f[eé]v|m[aä]r|apr|avr|ma[iy]|jun|juin|jul|juil|aug|ao[uû]|sep|o[ck]t|nov|de[cz]|d[eé]c)[a-zéû]*\.?\s+(?:19|20)\d{2}",
            r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+(?:19|20)\d{2})\b",
        ))?,
    })
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(build);

/// Scan `text` for every PII type. Findings are sorted by start and may overlap (the policy's
/// redaction resolves overlaps).
pub fn scan(text: &str) -> Vec<Finding> {
    let Some(p) = PATTERNS.as_ref() else { return Vec::new() };
    let mut out = Vec::new();
    emails(p, text, &mut out);
    cards(p, text, &mut out);
    ibans(p, text, &mut out);
    nirs(p, text, &mut out);
    ssns(p, text, &mut out);
    ips(p, text, &mut out);
    phones(p, text, &mut out);
    dates_of_birth(p, text, &mut out);
    drop_inside_checksummed(&mut out);
    out.sort_by_key(|f| (f.bytes.start, std::cmp::Reverse(f.bytes.end)));
    out
}

/// A checksum-validated value (card, IBAN, NIR, SSN) explains its digits better than a phone
/// or date pattern that happens to fit inside it.
fn drop_inside_checksummed(out: &mut Vec<Finding>) {
    let strong: Vec<std::ops::Range<usize>> = out
        .iter()
        .filter(|f| matches!(f.kind.as_str(), "CREDIT_CARD" | "IBAN" | "FR_NIR" | "US_SSN"))
        .map(|f| f.bytes.clone())
        .collect();
    out.retain(|f| {
        !matches!(f.kind.as_str(), "PHONE" | "DATE_OF_BIRTH")
            || !strong.iter().any(|r| r.start < f.bytes.end && f.bytes.start < r.end)
    });
}

fn push(out: &mut Vec<Finding>, text: &str, kind: &str, start: usize, end: usize, score: f32) {
    out.push(Finding::new(GuardKind::Pii, kind, text, start..end, score));
}

fn digits_of(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).collect()
}

fn emails(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for m in p.email.find_iter(text) {
        let s = m.as_str();
        let Some((local, domain)) = s.split_once('@') else { continue };
        // Trim leading dots/hyphens the character class let in, and reject malformed locals.
        let trim = local.len() - local.trim_start_matches(['.', '-', '+', '%']).len();
        let local = &local[trim..];
        if local.is_empty() || local.ends_with('.') || local.contains("..") || domain.contains("..") {
            continue;
        }
        let start = m.start() + trim;
        if char_before(text, start).is_some_and(|c| c.is_alphanumeric() && !c.is_ascii()) {
            continue;
        }
        push(out, text, "EMAIL", start, m.end(), 0.99);
    }
}

/// Separators in a digit group must be consistent: all spaces, all dashes or none.
fn consistent_separators(s: &str) -> bool {
    let has_space = s.contains(' ');
    let has_dash = s.contains('-');
    !(has_space && has_dash)
}

fn cards(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for m in p.card.find_iter(text) {
        if !is_digit_bounded(text, m.start(), m.end()) || !consistent_separators(m.as_str()) {
            continue;
        }
        let digits = digits_of(m.as_str());
        if payment_card(&digits) {
            push(out, text, "CREDIT_CARD", m.start(), m.end(), 0.97);
        }
    }
}

fn ibans(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for m in p.iban.find_iter(text) {
        // The pattern may run into following words; cut at the country's IBAN length.
        let mut compact = Vec::with_capacity(34);
        let mut end = m.start();
        let upper = m.as_str().to_ascii_uppercase();
        let expected = validate::iban_expected_len(upper.as_bytes());
        let Some(expected) = expected else { continue };
        for (i, b) in upper.bytes().enumerate() {
            if b == b' ' {
                continue;
            }
            compact.push(b);
            end = m.start() + i + 1;
            if compact.len() == expected {
                break;
            }
        }
        if compact.len() == expected && is_word_bounded(text, m.start(), end) && iban(&compact) {
            push(out, text, "IBAN", m.start(), end, 0.99);
        }
    }
}

fn nirs(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for m in p.nir.find_iter(text) {
        if !is_digit_bounded(text, m.start(), m.end()) {
            continue;
        }
        let compact: Vec<u8> = m.as_str().bytes().filter(|b| *b != b' ').collect();
        if fr_nir(&compact) {
            push(out, text, "FR_NIR", m.start(), m.end(), 0.98);
        }
    }
}

const SSN_WORDS: &[&str] = &["ssn", "social security", "soc. sec", "ss#", "ss #"];

fn ssns(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for c in p.ssn.captures_iter(text) {
        let (Some(m), Some(a), Some(s1), Some(g), Some(s2), Some(s)) =
            (c.get(0), c.get(1), c.get(2), c.get(3), c.get(4), c.get(5))
        else {
            continue;
        };
        if s1.as_str() != s2.as_str() || !is_digit_bounded(text, m.start(), m.end()) {
            continue;
        }
        let parse = |x: &str| x.parse::<u32>().unwrap_or(0);
        if !us_ssn(parse(a.as_str()), parse(g.as_str()), parse(s.as_str())) {
            continue;
        }
        let context = window_before(text, m.start(), 40);
        let has_context = SSN_WORDS.iter().any(|w| context.contains(w));
        // Dashed form stands alone; spaced or bare forms need an SSN word nearby.
        if s1.as_str() == "-" || has_context {
            push(out, text, "US_SSN", m.start(), m.end(), if has_context { 0.98 } else { 0.9 });
        }
    }
}

const VERSION_WORDS: &[&str] =
    &["version", "ver", "v", "release", "build", "firmware", "rev", "revision", "update"];

fn ips(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for m in p.ipv4.find_iter(text) {
        if !is_digit_bounded(text, m.start(), m.end()) {
            continue;
        }
        let Ok(ip) = m.as_str().parse::<Ipv4Addr>() else { continue };
        if ip.is_loopback() || ip.is_unspecified() || ip.is_broadcast() {
            continue;
        }
        let before = window_before(text, m.start(), 20);
        let last_word = before.split(|c: char| !c.is_alphanumeric()).rfind(|w| !w.is_empty()).unwrap_or("");
        if VERSION_WORDS.contains(&last_word) || before.ends_with('v') {
            continue;
        }
        push(out, text, "IP_ADDRESS", m.start(), m.end(), 0.95);
    }
    for m in p.ipv6.find_iter(text) {
        let s = m.as_str().trim_end_matches('.');
        let (start, end) = (m.start(), m.start() + s.len());
        if s.matches(':').count() < 2 || char_before(text, start).is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        let Ok(ip) = s.parse::<Ipv6Addr>() else { continue };
        if ip.is_loopback() || ip.is_unspecified() {
            continue;
        }
        // "10::30"-like clock fragments: require a hex letter, or at least three groups.
        let groups = s.split(':').filter(|g| !g.is_empty()).count();
        if groups < 3 && !s.bytes().any(|b| b.is_ascii_alphabetic()) {
            continue;
        }
        push(out, text, "IP_ADDRESS", start, end, 0.95);
    }
}

const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "tél",
    "mobile",
    "cell",
    "call",
    "portable",
    "appel",
    "numéro",
    "numero",
    "whatsapp",
    "sms",
    "fax",
    "telefon",
    "handy",
    "rufnummer",
    "contact",
];

fn phones(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    let mut seen: Vec<std::ops::Range<usize>> = Vec::new();
    for m in p.phone_intl.find_iter(text) {
        let s = m.as_str().trim_end_matches([' ', '.', '-', '(']);
        let end = m.start() + s.len();
        if !is_digit_bounded(text, m.start(), end) && !s.starts_with('+') {
            continue;
        }
        if char_at_is_digit(text, end) {
            continue;
        }
        let digits = digits_of(s);
        let digits = if s.starts_with("00") { &digits[2..] } else { &digits[..] };
        // E.164: at most 15 digits including the country code; at least 8 in practice.
        if !(8..=15).contains(&digits.len()) || validate::calling_code_len(digits).is_none() {
            continue;
        }
        seen.push(m.start()..end);
        push(out, text, "PHONE", m.start(), end, 0.95);
    }
    for m in p.phone_national.find_iter(text) {
        if seen.iter().any(|r| r.start < m.end() && m.start() < r.end) {
            continue;
        }
        if !is_digit_bounded(text, m.start(), m.end()) {
            continue;
        }
        let s = m.as_str();
        let digits = digits_of(s);
        let bare = s.bytes().all(|b| b.is_ascii_digit());
        let context = window_before(text, m.start(), 32);
        let has_context = PHONE_WORDS.iter().any(|w| context.contains(w));
        if bare && !has_context {
            continue;
        }
        if !(9..=12).contains(&digits.len()) || !phone_plan_ok(s, &digits) {
            continue;
        }
        // Dates written 2024-11-29 or 12.03.2024 never reach here (no leading 0X group of this
        // shape), but "01-02-2024 12" could: reject runs that parse as a date.
        if looks_like_date(s) {
            continue;
        }
        push(out, text, "PHONE", m.start(), m.end(), if has_context { 0.95 } else { 0.85 });
    }
}

fn char_at_is_digit(text: &str, at: usize) -> bool {
    text.as_bytes().get(at).is_some_and(u8::is_ascii_digit)
}

/// Number-plan checks that patterns cannot express.
fn phone_plan_ok(s: &str, digits: &[u8]) -> bool {
    if digits[0] == b'0' {
        // FR/UK/DE trunk prefix: the next digit is never 0.
        return digits.get(1).is_some_and(|d| *d != b'0');
    }
    // NANP: optional leading 1, then area code and exchange both start with 2-9.
    let d = if digits.len() == 11 && digits[0] == b'1' { &digits[1..] } else { digits };
    d.len() == 10 && d[0] >= b'2' && d[3] >= b'2' && !s.starts_with('+')
}

fn looks_like_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split(['.', '-', '/']).collect();
    parts.len() == 3 && parts[2].len() == 4 && parts[0].len() <= 2 && parts[1].len() <= 2
}

const BIRTH_WORDS: &[&str] = &[
    "born",
    "birth",
    "dob",
    "d.o.b",
    "birthday",
    "né le",
    "née le",
    "né(e) le",
    "naissance",
    "geboren",
    "geburtsdatum",
    "geb.",
    "nacido",
    "nacida",
    "nata il",
    "nato il",
];

fn dates_of_birth(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    for m in p.date.find_iter(text) {
        if !is_digit_bounded(text, m.start(), m.end()) || !plausible_date(m.as_str()) {
            continue;
        }
        let context = window_before(text, m.start(), 48);
        if BIRTH_WORDS.iter().any(|w| context.contains(w)) {
            push(out, text, "DATE_OF_BIRTH", m.start(), m.end(), 0.95);
        }
    }
}

/// Numeric dates need a real day and month (either day-first or month-first).
fn plausible_date(s: &str) -> bool {
    let nums: Vec<u32> = s.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse().ok()).collect();
    match nums.as_slice() {
        [y, m, d] if *y >= 1000 => (1..=12).contains(m) && (1..=31).contains(d),
        [a, b, _] => {
            (1..=31).contains(a) && (1..=12).contains(b) || (1..=12).contains(a) && (1..=31).contains(b)
        }
        [d, _] => (1..=31).contains(d),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
