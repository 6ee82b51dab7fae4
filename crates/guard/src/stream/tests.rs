use super::*;
use crate::policy::PolicyConfig;

fn policy(toml_like: PolicyConfig) -> Arc<Policy> {
    Arc::new(Policy::try_from(toml_like).unwrap())
}

fn redact_policy() -> Arc<Policy> {
    policy(PolicyConfig { injection: None, ..PolicyConfig::default() })
}

/// Feed `text` in the given pieces and return everything released.
fn run(scanner: &mut StreamScanner, pieces: &[&str]) -> (String, Vec<Finding>, Option<Verdict>) {
    let mut out = String::new();
    let mut findings = Vec::new();
    for p in pieces {
        let c = scanner.push(p);
        out.push_str(&c.text);
        findings.extend(c.findings);
        if c.stop.is_some() {
            return (out, findings, c.stop);
        }
    }
    let c = scanner.finish();
    out.push_str(&c.text);
    findings.extend(c.findings);
    (out, findings, c.stop)
}

/// Split `text` at every character boundary into two chunks, and also into 1-char chunks.
fn splits(text: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for (i, _) in text.char_indices().skip(1) {
        all.push(vec![text[..i].to_string(), text[i..].to_string()]);
    }
    all.push(text.chars().map(String::from).collect());
    all
}

fn assert_redacted_at_every_split(text: &str, secret: &str, expected: &str) {
    let p = redact_policy();
    for pieces in splits(text) {
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let mut s = StreamScanner::new(p.clone());
        let (out, _, stop) = run(&mut s, &refs);
        assert!(stop.is_none());
        assert!(!out.contains(secret), "leaked with split {:?}: {out}", refs.first());
        assert_eq!(out, expected, "split {:?}", refs.first());
    }
}

#[test]
fn email_split_at_every_boundary_is_redacted() {
    let text = "Please write to jean.dupont@example.com if anything changes in the plan for tomorrow.";
    let expected = "Please write to [EMAIL_1] if anything changes in the plan for tomorrow.";
    assert_redacted_at_every_split(text, "jean.dupont@example.com", expected);
}

#[test]
fn card_number_split_at_every_boundary_is_redacted() {
    let text = "Charge card 4111 1111 1111 1111 for the order, then confirm by replying to this message.";
    let expected = "Charge card [CREDIT_CARD_1] for the order, then confirm by replying to this message.";
    assert_redacted_at_every_split(text, "4111 1111", expected);
}

#[test]
fn api_key_longer_than_the_window_split_at_every_boundary_is_redacted() {
    let key = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_xyz";
    assert!(key.len() > DEFAULT_HOLDBACK);
    let text = format!("Use the key {key} for the staging environment and rotate it after the demo please.");
    let expected =
        "Use the key [ANTHROPIC_KEY_1] for the staging environment and rotate it after the demo please.";
    assert_redacted_at_every_split(&text, "AbCdEfGhIjKl", expected);
}

#[test]
fn pem_block_longer_than_the_window_is_held_whole() {
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----",
        "A".repeat(64),
        "B".repeat(40)
    );
    let text = format!("Here it is:\n{pem}\nDone, keep it safe and do not share it with anyone else.");
    let p = redact_policy();
    for size in [1, 3, 7, 16, 50] {
        let pieces: Vec<String> =
            text.chars().collect::<Vec<_>>().chunks(size).map(|c| c.iter().collect()).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (out, _, _) = run(&mut StreamScanner::new(p.clone()), &refs);
        assert!(!out.contains("AAAA") && !out.contains("BBBB"), "chunk {size}: {out}");
        assert!(out.contains("[PRIVATE_KEY_1]"));
    }
}

#[test]
fn block_stops_the_stream_before_the_secret_is_released() {
    let p = policy(PolicyConfig {
        secrets: Some(crate::policy::GuardSetting::Action(Action::Block)),
        ..PolicyConfig::default()
    });
    let text = "All fine so far. Now the token is ghp_0123456789abcdefghijABCDEFGHIJ012345 and more text follows here.";
    for pieces in splits(text) {
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let mut s = StreamScanner::new(p.clone());
        let (out, _, stop) = run(&mut s, &refs);
        let stop = stop.expect("stream must stop");
        assert_eq!(stop.verdict, VerdictKind::Block);
        assert!(!out.contains("ghp_"), "{out}");
        assert_eq!(stop.findings[0].kind, "GITHUB_TOKEN");
        assert!(s.push("more").text.is_empty());
    }
}

#[test]
fn finding_offsets_are_in_the_original_stream() {
    let p = redact_policy();
    let mut s = StreamScanner::new(p).with_holdback(8);
    let text = format!("{} a@b.io end", "word ".repeat(30));
    let (_, findings, _) = run(&mut s, &[&text[..100], &text[100..]]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].start, 151);
    assert_eq!(findings[0].end, 157);
}

#[test]
fn context_before_the_cut_still_counts() {
    let p = redact_policy();
    let mut s = StreamScanner::new(p).with_holdback(4);
    let (out, _, _) = run(&mut s, &["She was born on ", "12/03/1985 in Lyon."]);
    assert_eq!(out, "She was born on [DATE_OF_BIRTH_1] in Lyon.");
}

#[test]
fn held_text_is_bounded() {
    let p = redact_policy();
    let mut s = StreamScanner::new(p).with_max_hold(1024);
    let blob = "x".repeat(10_000);
    let c = s.push(&blob);
    assert!(s.held() <= 1024 && !c.text.is_empty());
    let mut total = c.text.len();
    total += s.finish().text.len();
    assert_eq!(total, 10_000);
}

#[test]
fn flag_only_findings_pass_through() {
    let c = PolicyConfig {
        pii: Some(crate::policy::GuardSetting::Action(Action::Flag)),
        ..PolicyConfig::default()
    };
    let mut s = StreamScanner::new(policy(c));
    let (out, findings, stop) = run(&mut s, &["mail me at a@b.io ", "thanks"]);
    assert_eq!(out, "mail me at a@b.io thanks");
    assert_eq!(findings.len(), 1);
    assert!(stop.is_none());
}
