//! Credentials: provider API keys and tokens by their documented formats, PEM private keys,
//! JWTs whose header decodes to a JSON object with `alg`, and high-entropy values assigned
//! to secret-looking names (`password = "…"`, `token: …`).
//!
//! The finding's span covers only the secret value, never the assignment's name, so a
//! redacted `api_key = [GENERIC_SECRET_1]` still reads naturally.

use crate::finding::{Finding, GuardKind};
use crate::text::{is_word_bounded, shannon_entropy};
use base64::Engine;
use regex::Regex;
use std::sync::LazyLock;

/// Every secret type this module reports.
pub const TYPES: &[&str] = &[
    "OPENAI_KEY",
    "ANTHROPIC_KEY",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "GCP_API_KEY",
    "GCP_SERVICE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_CONNECTION_STRING",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "SLACK_TOKEN",
    "SLACK_WEBHOOK",
    "STRIPE_KEY",
    "JWT",
    "PRIVATE_KEY",
    "GENERIC_SECRET",
];

/// Minimum Shannon entropy (bits per character) of a value assigned to a token-like name.
pub const TOKEN_ENTROPY: f32 = 3.5;
/// Minimum entropy for a value assigned to a password-like name (people pick weaker ones).
pub const PASSWORD_ENTROPY: f32 = 2.5;

/// Prefix-anchored formats: (type, pattern, capture group holding the secret).
const FORMATS: &[(&str, &str, usize)] = &[
    ("ANTHROPIC_KEY", r"\bsk-ant-[A-Za-z0-9_\-]{20,}", 0),
    ("OPENAI_KEY", r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}", 0),
    ("OPENAI_KEY", r"\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b", 0),
    ("OPENAI_KEY", r"\bsk-[A-Za-z0-9]{40,64}\b", 0),
    ("AWS_ACCESS_KEY", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z2-7]{16}\b", 0),
    (
        "AWS_SECRET_KEY",
        r#"(?i)aws[A-Za-z0-9_\-.]{0,24}(?:secret|private)[A-Za-z0-9_\-.]{0,24}["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})\b"#,
        1,
    ),
    ("GCP_API_KEY", r"\bAIza[0-9A-Za-z_\-]{35}", 0),
    ("GCP_SERVICE_ACCOUNT", r#""private_key_id"\s*:\s*"([a-f0-9]{40})""#, 1),
    (
        "AZURE_CONNECTION_STRING",
        r"DefaultEndpointsProtocol=https?;AccountName=[A-Za-z0-9]{3,24};AccountKey=[A-Za-z0-9+/]{86}==(?:;EndpointSuffix=[A-Za-z0-9.]+)?",
        0,
    ),
    ("AZURE_STORAGE_KEY", r"(?:AccountKey|SharedAccessKey)=([A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==)", 1),
    ("GITHUB_TOKEN", r"\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36,255}\b", 0),
    ("GITHUB_TOKEN", r"\bgithub_pat_[A-Za-z0-9_]{50,255}\b", 0),
    ("GITLAB_TOKEN", r"\bglpat-[A-Za-z0-9_\-]{20,}", 0),
    ("SLACK_TOKEN", r"\bxox[abpr]-[A-Za-z0-9\-]{10,}", 0),
    ("SLACK_WEBHOOK", r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,}", 0),
    ("STRIPE_KEY", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}", 0),
];

/// Longest PEM body searched for its END line, in bytes.
const MAX_PEM_BYTES: usize = 16 * 1024;

struct Patterns {
    formats: Vec<(&'static str, Regex, usize)>,
    pem_begin: Regex,
    pem_end: Regex,
    pem_body: Regex,
    jwt: Regex,
    assignment: Regex,
}

fn build() -> Option<Patterns> {
    let mut formats = Vec::with_capacity(FORMATS.len());
    for &(kind, pat, group) in FORMATS {
        formats.push((kind, crate::text::regex(pat)?, group));
    }
    Some(Patterns {
        formats,
        pem_begin: crate::text::regex(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")?,
        pem_end: crate::text::regex(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")?,
        pem_body: crate::text::regex(r"^[A-Za-z0-9+/=\s:\-,]*")?,
        jwt: crate::text::regex(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{10,}")?,
        assignment: crate::text::regex(concat!(
            r#"(?i)([A-Za-z0-9_.\-]*(?:password|passwd|pwd|passphrase|secret|token|api[_\-]?key|apikey|access[_\-]?key|auth[_\-]?key|credential|private[_\-]?key|client[_\-]?secret)[A-Za-z0-9_.\-]*)"#,
            r#"["']?\s*(?::=|=>|=|:)\s*(?:["']([^"'\s]{6,256})["']|([^\s"',;]{6,256}))"#,
        ))?,
    })
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(build);

/// Scan `text` for credentials. Findings are sorted by start.
pub fn scan(text: &str) -> Vec<Finding> {
    let Some(p) = PATTERNS.as_ref() else { return Vec::new() };
    let mut out: Vec<Finding> = Vec::new();
    for (kind, re, group) in &p.formats {
        for c in re.captures_iter(text) {
            if let Some(m) = c.get(*group) {
                out.push(Finding::new(GuardKind::Secrets, *kind, text, m.start()..m.end(), 0.99));
            }
        }
    }
    private_keys(p, text, &mut out);
    for m in p.jwt.find_iter(text) {
        if jwt_header_ok(m.as_str()) {
            out.push(Finding::new(GuardKind::Secrets, "JWT", text, m.start()..m.end(), 0.97));
        }
    }
    for c in p.assignment.captures_iter(text) {
        let (Some(name), Some(value)) = (c.get(1), c.get(2).or_else(|| c.get(3))) else { continue };
        if out.iter().any(|f| f.bytes.start < value.end() && value.start() < f.bytes.end) {
            continue; // already reported as a known format
        }
        if let Some(score) = generic_secret_score(name.as_str(), value.as_str()) {
            if is_word_bounded(text, value.start(), value.end()) || c.get(2).is_some() {
                out.push(Finding::new(
                    GuardKind::Secrets,
                    "GENERIC_SECRET",
                    text,
                    value.start()..value.end(),
                    score,
                ));
            }
        }
    }
    out.sort_by_key(|f| (f.bytes.start, std::cmp::Reverse(f.bytes.end)));
    out
}

/// PEM private keys: BEGIN line to END line, or to the end of the base64 body when the END
/// line is missing (a truncated paste, a stream still arriving). The next END line is found
/// once and reused, so many BEGIN lines cost linear time.
fn private_keys(p: &Patterns, text: &str, out: &mut Vec<Finding>) {
    let mut pos = 0;
    let mut next_end: Option<std::ops::Range<usize>> = None;
    let mut no_more_end = false;
    while let Some(b) = p.pem_begin.find_at(text, pos) {
        if !no_more_end && next_end.as_ref().is_none_or(|e| e.start < b.end()) {
            next_end = p.pem_end.find_at(text, b.end()).map(|m| m.range());
            no_more_end = next_end.is_none();
        }
        let end = match &next_end {
            Some(e) if e.start >= b.end() && e.start - b.end() <= MAX_PEM_BYTES => e.end,
            _ => b.end() + text.get(b.end()..).and_then(|rest| p.pem_body.find(rest)).map_or(0, |m| m.end()),
        };
        let end = text.get(..end).map_or(end, |s| s.trim_end().len()).max(b.end());
        out.push(Finding::new(GuardKind::Secrets, "PRIVATE_KEY", text, b.start()..end, 0.99));
        pos = end;
    }
}

/// The header of a JWT is base64url JSON with an `alg` member.
fn jwt_header_ok(token: &str) -> bool {
    let Some(header) = token.split('.').next() else { return false };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('='))
    else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.get("alg").is_some())
}

const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change_me",
    "password",
    "passwd",
    "secret",
    "example",
    "your_",
    "your-",
    "xxxx",
    "****",
    "....",
    "<",
    ">",
    "${",
    "{{",
    "%(",
    "$(",
    "process.env",
    "os.environ",
    "getenv",
    "env:",
    "env(",
    "null",
    "none",
    "undefined",
    "true",
    "false",
    "redacted",
    "placeholder",
    "dummy",
    "sample",
];

/// Score a value assigned to a secret-looking name, or `None` when it is a placeholder, a
/// reference (env var, template) or too regular to be a secret.
fn generic_secret_score(name: &str, value: &str) -> Option<f32> {
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || value.chars().all(|c| c == value.chars().next().unwrap_or(c))
    {
        return None;
    }
    // Words joined by separators ("my_token_name", "some-setting") are identifiers, not secrets.
    if value.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '-' || c == '.') {
        return None;
    }
    let name = name.to_ascii_lowercase();
    let password_like = ["password", "passwd", "pwd", "passphrase"].iter().any(|w| name.contains(w));
    let entropy = shannon_entropy(value);
    let (threshold, min_len) = if password_like { (PASSWORD_ENTROPY, 6) } else { (TOKEN_ENTROPY, 16) };
    (value.len() >= min_len && entropy >= threshold).then_some(if password_like { 0.9 } else { 0.85 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, String)> {
        scan(text).into_iter().map(|f| (f.kind.clone(), text[f.bytes].to_string())).collect()
    }

    fn has(text: &str, kind: &str, value: &str) -> bool {
        found(text).iter().any(|(k, v)| k == kind && v == value)
    }

    #[test]
    fn all_patterns_compile() {
        assert!(build().is_some());
    }

    #[test]
    fn provider_keys() {
        let openai = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcDEF";
        assert!(has(&format!("key {openai} end"), "OPENAI_KEY", openai));
        let legacy = "sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJAbCdEfGhIjKlMnOpQrSt";
        assert!(has(legacy, "OPENAI_KEY", legacy));
        let ant = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIj-_xyz";
        assert!(has(ant, "ANTHROPIC_KEY", ant));
        assert!(!found(ant).iter().any(|(k, _)| k == "OPENAI_KEY"));
        assert!(has("id AKIAIOSFODNN7EXAMPLE.", "AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"));
        assert!(has(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_SECRET_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        ));
        let gcp = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW";
        assert!(has(gcp, "GCP_API_KEY", gcp));
        let gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        assert!(has(gh, "GITHUB_TOKEN", gh));
        let pat = format!("github_pat_11ABCDEFG0{}", "a".repeat(72));
        assert!(has(&pat, "GITHUB_TOKEN", &pat));
        assert!(has("glpat-AbCdEfGhIj0123456789", "GITLAB_TOKEN", "glpat-AbCdEfGhIj0123456789"));
        assert!(has("xoxb-123456789012-abcdefABCDEF", "SLACK_TOKEN", "xoxb-123456789012-abcdefABCDEF"));
        let hook = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
        assert!(has(hook, "SLACK_WEBHOOK", hook));
        let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        assert!(has(stripe, "STRIPE_KEY", stripe));
    }

    #[test]
    fn azure_and_gcp_service_account() {
        let key = format!("{}==", "A".repeat(40) + &"b".repeat(46));
        let conn = format!("DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey={key};EndpointSuffix=core.windows.net");
        assert!(has(&conn, "AZURE_CONNECTION_STRING", &conn));
        let sa =
            r#"{"type": "service_account", "private_key_id": "0123456789abcdef0123456789abcdef01234567"}"#;
        assert!(has(sa, "GCP_SERVICE_ACCOUNT", "0123456789abcdef0123456789abcdef01234567"));
    }

    #[test]
    fn pem_private_keys_whole_or_truncated() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----";
        assert!(has(&format!("x\n{pem}\ny"), "PRIVATE_KEY", pem));
        let cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC";
        assert!(has(cut, "PRIVATE_KEY", cut));
        assert!(found("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----").is_empty());
    }

    #[test]
    fn jwt_needs_json_header_with_alg() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(has(&format!("Bearer {jwt}"), "JWT", jwt));
        assert!(found("eyJub3RhbGciOjF9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N").is_empty());
    }

    #[test]
    fn generic_assignments_by_entropy() {
        assert!(has(r#"password = "Summer2024!x""#, "GENERIC_SECRET", "Summer2024!x"));
        assert!(has(
            "API_TOKEN: 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
            "GENERIC_SECRET",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
        ));
        for benign in [
            r#"password = "changeme""#,
            "token: ${GITHUB_TOKEN}",
            "api_key = env:OPENAI_API_KEY",
            r#"password = "<your password>""#,
            "secret_name = my_service_secret",
            "token = aaaaaaaaaaaaaaaaaaaaaa",
            "the token: expires tomorrow",
            "max_tokens: 1024",
        ] {
            assert!(found(benign).is_empty(), "{benign}: {:?}", found(benign));
        }
    }

    #[test]
    fn near_misses_are_not_secrets() {
        for t in [
            "sk-learn is a library; ask-me-anything",
            "uuid 123e4567-e89b-12d3-a456-426614174000",
            "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "AKIA is a prefix",
            "risk_level_high",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }
}
