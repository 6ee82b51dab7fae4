//! What a case's answer is checked against: each assertion type as a pure function of the
//! observed answer, plus the judge's prompt and the parsing of its verdict.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::suite::Assertion;

/// A tool call in an answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Value,
}

/// One answer as the client saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observed {
    /// The answer's text (empty when the request failed or called tools only).
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub latency_ms: f64,
    /// `None` when the price of the model that answered is unknown.
    pub cost_usd: Option<f64>,
    pub inference_id: Option<String>,
    pub model: Option<String>,
    pub status: u16,
    /// The gateway's error message for a non-2xx answer (a guard block, an upstream failure).
    pub error: Option<String>,
}

/// The result of one assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// The assertion could not be decided (a judge that never answered in JSON): never a pass.
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(rename = "type")]
    pub kind: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// One line: why it failed, or what was measured.
    pub reason: String,
}

impl Outcome {
    pub fn new(kind: &str, pass: bool, score: Option<f64>, reason: String) -> Outcome {
        let verdict = if pass { Verdict::Pass } else { Verdict::Fail };
        Outcome { kind: kind.to_owned(), verdict, score, reason }
    }

    pub fn error(kind: &str, reason: String) -> Outcome {
        Outcome { kind: kind.to_owned(), verdict: Verdict::Error, score: None, reason }
    }

    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Phrases that start or make up a refusal, lowercase.
const REFUSALS: &[&str] = &[
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm sorry",
    "i am sorry",
    "i'm unable",
    "i am unable",
    "i'm not able",
    "i am not able",
    "as an ai",
    "i must decline",
    "i don't know",
];

/// Whether an answer refuses: a request the gateway blocked (4xx from a guard) or a text that
/// opens with a refusal phrase.
pub fn is_refusal(o: &Observed) -> bool {
    if (400..500).contains(&o.status) && o.error.is_some() {
        return true;
    }
    let text = o.text.trim_start().to_lowercase().replace('’', "'");
    REFUSALS.iter().any(|p| text.starts_with(p) || text.contains(&format!(". {p}")))
}

/// Checks every assertion but `judge` (see [`super::run`]); `similarity` scores two texts in
/// `[−1, 1]` (the embedding cosine).
pub fn check(a: &Assertion, o: &Observed, similarity: &dyn Fn(&str, &str) -> Result<f64, String>) -> Outcome {
    let kind = a.kind();
    let text = o.text.as_str();
    match a {
        Assertion::Contains { value, case_sensitive } => {
            let ok = contains(text, value, *case_sensitive);
            Outcome::new(
                kind,
                ok,
                None,
                if ok { String::new() } else { format!("no `{value}` in {}", excerpt(text)) },
            )
        }
        Assertion::NotContains { value, case_sensitive } => {
            let ok = !contains(text, value, *case_sensitive);
            Outcome::new(
                kind,
                ok,
                None,
                if ok { String::new() } else { format!("`{value}` found in {}", excerpt(text)) },
            )
        }
        Assertion::Equals { value } => {
            let ok = text.trim() == value.trim();
            Outcome::new(kind, ok, None, if ok { String::new() } else { format!("got {}", excerpt(text)) })
        }
        Assertion::Regex { pattern } => match regex::Regex::new(pattern) {
            Ok(re) => {
                let ok = re.is_match(text);
                Outcome::new(
                    kind,
                    ok,
                    None,
                    if ok { String::new() } else { format!("/{pattern}/ does not match {}", excerpt(text)) },
                )
            }
            Err(e) => Outcome::error(kind, e.to_string()),
        },
        Assertion::JsonValid => match serde_json::from_str::<Value>(text) {
            Ok(_) => Outcome::new(kind, true, None, String::new()),
            Err(e) => Outcome::new(kind, false, None, format!("not JSON: {e}")),
        },
        Assertion::JsonSchema { schema } => match gardefou_guard::schema::SchemaGuard::new(schema) {
            Ok(guard) => {
                let findings = guard.check(text);
                let reason = match findings.first().map(|f| f.kind.as_str()) {
                    None => String::new(),
                    Some("INVALID_JSON") => "not JSON".to_owned(),
                    Some(_) => format!("{} schema violation(s)", findings.len()),
                };
                Outcome::new(kind, findings.is_empty(), None, reason)
            }
            Err(e) => Outcome::error(kind, e.to_string()),
        },
        Assertion::ToolCalled { name, arguments } => {
            let named: Vec<&ToolCall> = o.tool_calls.iter().filter(|c| &c.name == name).collect();
            let ok = named.iter().any(|c| arguments.as_ref().is_none_or(|want| subset(want, &c.arguments)));
            let reason = if ok {
                String::new()
            } else if named.is_empty() {
                let called: Vec<&str> = o.tool_calls.iter().map(|c| c.name.as_str()).collect();
                format!(
                    "`{name}` not called (called: {})",
                    if called.is_empty() { "none".into() } else { called.join(", ") }
                )
            } else {
                format!("`{name}` called with {}", named[0].arguments)
            };
            Outcome::new(kind, ok, None, reason)
        }
        Assertion::LatencyMs { max } => {
            let ok = o.latency_ms <= *max;
            Outcome::new(kind, ok, None, format!("{:.0} ms (max {max})", o.latency_ms))
        }
        Assertion::CostUsd { max } => match o.cost_usd {
            Some(c) => Outcome::new(kind, c <= *max, None, format!("${c:.6} (max {max})")),
            None => Outcome::error(kind, "the cost is unknown (no price for the model that answered)".into()),
        },
        Assertion::Refusal { expected } => {
            let refused = is_refusal(o);
            let ok = refused == *expected;
            let reason = match (ok, refused) {
                (true, _) => String::new(),
                (false, true) => format!("refused: {}", excerpt(o.error.as_deref().unwrap_or(text))),
                (false, false) => format!("answered instead of refusing: {}", excerpt(text)),
            };
            Outcome::new(kind, ok, None, reason)
        }
        Assertion::Similar { reference, min } => match similarity(text, reference) {
            Ok(s) => Outcome::new(kind, s >= *min, Some(s), format!("similarity {s:.3} (min {min})")),
            Err(e) => Outcome::error(kind, e),
        },
        Assertion::Judge { .. } | Assertion::Groundedness { .. } | Assertion::Relevance { .. } => {
            Outcome::error(kind, "the judge runs in the runner".into())
        }
    }
}

fn contains(text: &str, value: &str, case_sensitive: bool) -> bool {
    if case_sensitive {
        text.contains(value)
    } else {
        text.to_lowercase().contains(&value.to_lowercase())
    }
}

/// Whether `want` is contained in `got`: objects key by key (recursively), anything else equal.
pub fn subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            w.iter().all(|(k, v)| g.get(k).is_some_and(|gv| subset(v, gv)))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

/// The text quoted on one line, cut at 80 characters.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        format!("«{}…»", one_line.chars().take(80).collect::<String>())
    } else {
        format!("«{one_line}»")
    }
}

/// Changes to the judge prompt change this version; it is recorded in every report.
pub const JUDGE_PROMPT_VERSION: &str = "judge-v1";

const JUDGE_SYSTEM: &str = "You are a strict evaluator of an AI assistant's answer. Score how well the \
answer meets the rubric, from 0 (not at all) to 1 (fully). Reply with one JSON object and nothing \
else: {\"score\": <number between 0 and 1>, \"reasoning\": \"<one or two sentences>\"}.";

/// The judge's messages (system, user) for one answer.
pub fn judge_messages(
    rubric: &str,
    question: &str,
    answer: &str,
    context: &[String],
) -> [(String, String); 2] {
    let mut user = format!("Rubric:\n{rubric}\n\nQuestion:\n{question}\n\n");
    if !context.is_empty() {
        user.push_str(&super::suite::context_message(context));
        user.push('\n');
    }
    user.push_str(&format!("Answer to evaluate:\n{answer}\n"));
    [("system".to_owned(), JUDGE_SYSTEM.to_owned()), ("user".to_owned(), user)]
}

/// The structured output asked of the judge (OpenAI `json_schema`); the prompt asks for the same
/// object, so a judge that ignores it still answers in kind.
pub fn judge_response_format() -> Value {
    serde_json::json!({
        "type": "json_schema",
        "json_schema": {
            "name": "judge_verdict",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "score": { "type": "number", "minimum": 0, "maximum": 1 },
                    "reasoning": { "type": "string" }
                },
                "required": ["score", "reasoning"],
                "additionalProperties": false
            }
        }
    })
}

/// The judge's `{"score", "reasoning"}`, also when wrapped in prose or a code fence; `None` when
/// there is no such object or the score is outside `[0, 1]`.
pub fn parse_judge(text: &str) -> Option<(f64, String)> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let v: Value = serde_json::from_str(text.get(start..=end)?).ok()?;
    let score = v.get("score")?.as_f64().filter(|s| (0.0..=1.0).contains(s))?;
    let reasoning = v.get("reasoning").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some((score, reasoning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(text: &str) -> Observed {
        Observed {
            text: text.into(),
            status: 200,
            latency_ms: 120.0,
            cost_usd: Some(0.002),
            ..Observed::default()
        }
    }

    fn run(a: Assertion, o: &Observed) -> Outcome {
        let sim = |a: &str, b: &str| -> Result<f64, String> { Ok(if a == b { 1.0 } else { 0.2 }) };
        check(&a, o, &sim)
    }

    fn both(a: Assertion, pass: &Observed, fail: &Observed) {
        let p = run(a.clone(), pass);
        assert!(p.passed(), "{a:?} should pass: {p:?}");
        let f = run(a.clone(), fail);
        assert_eq!(f.verdict, Verdict::Fail, "{a:?} should fail: {f:?}");
        assert!(!f.reason.is_empty());
    }

    #[test]
    fn contains_and_not_contains_with_and_without_case() {
        let (hello, bye) = (answer("Hello there"), answer("Goodbye"));
        both(Assertion::Contains { value: "hello".into(), case_sensitive: false }, &hello, &bye);
        both(Assertion::Contains { value: "Hello".into(), case_sensitive: true }, &hello, &answer("hello"));
        both(
            Assertion::NotContains { value: "sorry".into(), case_sensitive: false },
            &hello,
            &answer("SORRY"),
        );
    }

    #[test]
    fn equals_trims() {
        both(Assertion::Equals { value: "42".into() }, &answer(" 42\n"), &answer("43"));
    }

    #[test]
    fn regex_matches() {
        both(Assertion::Regex { pattern: r"^\d{3}-\d{4}$".into() }, &answer("555-1234"), &answer("call me"));
        assert_eq!(run(Assertion::Regex { pattern: "(".into() }, &answer("x")).verdict, Verdict::Error);
    }

    #[test]
    fn json_valid_and_json_schema() {
        both(Assertion::JsonValid, &answer(r#"{"a": 1}"#), &answer("{a: 1}"));
        let schema = json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}});
        let s = Assertion::JsonSchema { schema };
        both(s.clone(), &answer(r#"{"a": 1}"#), &answer(r#"{"a": "x"}"#));
        assert_eq!(run(s, &answer("nope")).reason, "not JSON");
    }

    #[test]
    fn tool_called_matches_a_subset_of_the_arguments() {
        let call = |args: Value| Observed {
            tool_calls: vec![ToolCall { name: "get_weather".into(), arguments: args }],
            ..answer("")
        };
        let a =
            Assertion::ToolCalled { name: "get_weather".into(), arguments: Some(json!({"city": "Paris"})) };
        both(a.clone(), &call(json!({"city": "Paris", "unit": "c"})), &call(json!({"city": "Lyon"})));
        let f = run(a, &answer("no tools"));
        assert!(f.reason.contains("not called (called: none)"), "{f:?}");
        both(
            Assertion::ToolCalled { name: "get_weather".into(), arguments: None },
            &call(json!({})),
            &answer(""),
        );
    }

    #[test]
    fn latency_and_cost_have_maxima() {
        let slow = Observed { latency_ms: 5000.0, cost_usd: Some(0.5), ..answer("x") };
        both(Assertion::LatencyMs { max: 2000.0 }, &answer("x"), &slow);
        both(Assertion::CostUsd { max: 0.01 }, &answer("x"), &slow);
        let unknown = Observed { cost_usd: None, ..answer("x") };
        assert_eq!(run(Assertion::CostUsd { max: 1.0 }, &unknown).verdict, Verdict::Error);
    }

    #[test]
    fn refusal_by_phrase_or_by_a_guard_block() {
        let sorry = answer("I'm sorry, I can't help with that.");
        both(Assertion::Refusal { expected: false }, &answer("Paris is in France."), &sorry);
        both(Assertion::Refusal { expected: true }, &sorry, &answer("Sure: 4."));
        let blocked = Observed { status: 403, error: Some("blocked by guard".into()), ..answer("") };
        assert!(run(Assertion::Refusal { expected: true }, &blocked).passed());
    }

    #[test]
    fn similar_scores_against_the_reference() {
        let a = Assertion::Similar { reference: "the same".into(), min: 0.8 };
        both(a.clone(), &answer("the same"), &answer("different"));
        assert_eq!(run(a, &answer("the same")).score, Some(1.0));
        let broken = |_: &str, _: &str| -> Result<f64, String> { Err("no model".into()) };
        let o = check(&Assertion::Similar { reference: "x".into(), min: 0.5 }, &answer("x"), &broken);
        assert_eq!(o.verdict, Verdict::Error);
    }

    #[test]
    fn judge_output_is_parsed_or_rejected() {
        assert_eq!(parse_judge(r#"{"score": 0.9, "reasoning": "ok"}"#), Some((0.9, "ok".into())));
        assert_eq!(parse_judge("```json\n{\"score\": 1, \"reasoning\": \"\"}\n```").map(|s| s.0), Some(1.0));
        assert_eq!(parse_judge("great answer!"), None);
        assert_eq!(parse_judge(r#"{"score": 7}"#), None);
        let [sys, user] = judge_messages("be polite", "hi?", "hello", &["doc".into()]);
        assert!(sys.1.contains("\"score\""));
        assert!(user.1.contains("be polite") && user.1.contains("[1] doc") && user.1.contains("hello"));
    }
}
