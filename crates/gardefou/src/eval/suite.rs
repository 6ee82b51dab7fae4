//! An eval suite as written: cases, their assertions and the suite's thresholds, parsed from TOML
//! and checked before anything is sent. Errors carry the file, line, column and the faulty case id.

use std::collections::BTreeMap;
use std::path::Path;

use gardefou_core::config::ConfigError;
use serde::Deserialize;
use toml::Spanned;

/// A parsed, validated suite.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub defaults: Defaults,
    /// Wraps every `prompt` case: `{{prompt}}` is the case's prompt, `{{name}}` its vars.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub thresholds: Thresholds,
    pub cases: Vec<Case>,
    /// SHA-256 (hex) of the suite's text: tells runs of different versions of a suite apart.
    #[serde(skip)]
    pub hash: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub route: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: Spanned<String>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Documents sent as a system message before the conversation, and shown to the judge.
    #[serde(default)]
    pub context: Vec<String>,
    /// Extra request fields merged into the chat request (`tools`, `response_format`, …).
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub assert: Vec<Assertion>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

fn yes() -> bool {
    true
}

fn judge_min() -> f64 {
    0.7
}

/// One check on a case's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Assertion {
    Contains {
        value: String,
        #[serde(default = "yes")]
        case_sensitive: bool,
    },
    NotContains {
        value: String,
        #[serde(default = "yes")]
        case_sensitive: bool,
    },
    /// The answer, trimmed, equals `value` trimmed.
    Equals {
        value: String,
    },
    Regex {
        pattern: String,
    },
    JsonValid,
    JsonSchema {
        schema: serde_json::Value,
    },
    /// A tool call with this name whose arguments hold `arguments` (a subset match).
    ToolCalled {
        name: String,
        #[serde(default)]
        arguments: Option<serde_json::Value>,
    },
    LatencyMs {
        max: f64,
    },
    CostUsd {
        max: f64,
    },
    Refusal {
        #[serde(default = "yes")]
        expected: bool,
    },
    Similar {
        reference: String,
        min: f64,
    },
    Judge {
        rubric: String,
        #[serde(default)]
        route: Option<String>,
        #[serde(default = "judge_min")]
        min: f64,
    },
    /// Every claim of the answer is supported by the case's `context` (the judge route decides).
    Groundedness {
        #[serde(default)]
        route: Option<String>,
        #[serde(default = "judge_min")]
        min: f64,
    },
    /// The answer addresses the question (the judge route decides).
    Relevance {
        #[serde(default)]
        route: Option<String>,
        #[serde(default = "judge_min")]
        min: f64,
    },
}

/// An assertion the judge route decides: its type, rubric, route (`None`: the default judge)
/// and minimum score.
pub struct Judged<'a> {
    pub kind: &'static str,
    pub rubric: std::borrow::Cow<'a, str>,
    pub route: Option<&'a str>,
    pub min: f64,
}

impl Assertion {
    /// The `type` as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Contains { .. } => "contains",
            Self::NotContains { .. } => "not_contains",
            Self::Equals { .. } => "equals",
            Self::Regex { .. } => "regex",
            Self::JsonValid => "json_valid",
            Self::JsonSchema { .. } => "json_schema",
            Self::ToolCalled { .. } => "tool_called",
            Self::LatencyMs { .. } => "latency_ms",
            Self::CostUsd { .. } => "cost_usd",
            Self::Refusal { .. } => "refusal",
            Self::Similar { .. } => "similar",
            Self::Judge { .. } => "judge",
            Self::Groundedness { .. } => "groundedness",
            Self::Relevance { .. } => "relevance",
        }
    }

    /// The judge's part of a judged assertion (`judge`, `groundedness`, `relevance`); `None` for
    /// the assertions checked locally. Groundedness and relevance use the rubrics of online
    /// quality, so offline and online scores mean the same.
    pub fn judged(&self) -> Option<Judged<'_>> {
        use gardefou_core::config::QualityCheck;
        let (kind, rubric, route, min) = match self {
            Self::Judge { rubric, route, min } => ("judge", rubric.as_str().into(), route, *min),
            Self::Groundedness { route, min } => {
                ("groundedness", crate::quality::rubric(QualityCheck::Groundedness, None).into(), route, *min)
            }
            Self::Relevance { route, min } => {
                ("relevance", crate::quality::rubric(QualityCheck::Relevance, None).into(), route, *min)
            }
            _ => return None,
        };
        Some(Judged { kind, rubric, route: route.as_deref(), min })
    }
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Fraction of cases that must pass [default: 1.0].
    pub pass_rate: Option<f64>,
    pub max_p95_latency_ms: Option<f64>,
    /// Total cost of the run.
    pub max_cost_usd: Option<f64>,
    /// Minimum mean score per assertion type (`similar`, `judge`).
    #[serde(default)]
    pub min_mean_score: BTreeMap<String, f64>,
}

impl Suite {
    /// Reads and validates the suite at `path`.
    pub fn load(path: &Path) -> Result<Suite, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(&file, "suite", &e))?;
        Suite::parse(&text, &file)
    }

    /// Parses and validates a suite; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Suite, ConfigError> {
        let suite: Suite = toml::from_str(text).map_err(|e| {
            if let Some((at, id, i, message)) = assertion_error(text) {
                return err(file, text, at, &format!("{id}.assert[{i}]"), message);
            }
            let at = e.span().map_or(0, |s| s.start);
            let case = case_at(text, at).unwrap_or_default();
            err(file, text, at, &case, e.message().trim().replace('\n', ": "))
        })?;
        suite.validate(text, file)?;
        let mut suite = suite;
        suite.hash = {
            use sha2::{Digest, Sha256};
            Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
        };
        Ok(suite)
    }

    /// The checks serde cannot make: one of `messages` / `prompt`, known template variables,
    /// unique ids, compilable patterns and schemas, a route for every case.
    fn validate(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        if self.cases.is_empty() {
            return Err(err(file, text, 0, "", "the suite has no cases".into()));
        }
        for case in &self.cases {
            let id = case.id.get_ref();
            let fail = |message: String| err(file, text, case.id.span().start, id, message);
            if !seen.insert(id.clone()) {
                return Err(fail("duplicate case id".into()));
            }
            match (&case.messages, &case.prompt) {
                (Some(m), None) if !m.is_empty() => {}
                (None, Some(_)) => {
                    self.render(case).map_err(fail)?;
                }
                _ => return Err(fail("a case needs `messages` (not empty) or `prompt`, not both".into())),
            }
            if let Some(k) = case
                .params
                .iter()
                .flat_map(|p| p.keys())
                .find(|k| ["model", "messages", "stream"].contains(&k.as_str()))
            {
                return Err(fail(format!("`params` cannot set `{k}`: the runner does")));
            }
            if case.route.is_none() && self.defaults.route.is_none() {
                return Err(fail("no route: set `route` on the case or in `[defaults]`".into()));
            }
            for (i, a) in case.assert.iter().enumerate() {
                let bad = |m: String| fail(format!("assert[{i}] ({}): {m}", a.kind()));
                match a {
                    Assertion::Regex { pattern } => {
                        regex::Regex::new(pattern).map_err(|e| bad(e.to_string()))?;
                    }
                    Assertion::JsonSchema { schema } => {
                        gardefou_guard::schema::SchemaGuard::new(schema).map_err(|e| bad(e.to_string()))?;
                    }
                    Assertion::Similar { min, .. }
                    | Assertion::Judge { min, .. }
                    | Assertion::Groundedness { min, .. }
                    | Assertion::Relevance { min, .. }
                        if !(0.0..=1.0).contains(min) =>
                    {
                        return Err(bad("`min` must be between 0 and 1".into()));
                    }
                    Assertion::Groundedness { .. } if case.context.is_empty() => {
                        return Err(bad(
                            "needs the case's `context` (the documents the answer must rest on)".into(),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The messages of a case: its own, or its prompt with vars, wrapped in the suite template.
    pub fn messages(&self, case: &Case) -> Vec<Message> {
        let mut out = Vec::new();
        if !case.context.is_empty() {
            out.push(Message { role: "system".into(), content: context_message(&case.context) });
        }
        match &case.messages {
            Some(m) => out.extend(m.iter().cloned()),
            None => out.push(Message { role: "user".into(), content: self.render(case).unwrap_or_default() }),
        }
        out
    }

    fn render(&self, case: &Case) -> Result<String, String> {
        let prompt = substitute(case.prompt.as_deref().unwrap_or_default(), &case.vars, None)?;
        match &self.template {
            Some(t) => substitute(t, &case.vars, Some(&prompt)),
            None => Ok(prompt),
        }
    }

    /// The route a case runs on: `--route`, else the case's, else the suite default.
    pub fn route_of<'a>(&'a self, case: &'a Case, cli: Option<&'a str>) -> &'a str {
        cli.or(case.route.as_deref()).or(self.defaults.route.as_deref()).unwrap_or_default()
    }
}

/// The context documents as one system message.
pub fn context_message(docs: &[String]) -> String {
    let mut s = String::from("Use these documents to answer:\n");
    for (i, d) in docs.iter().enumerate() {
        s.push_str(&format!("[{}] {d}\n", i + 1));
    }
    s
}

/// Replaces `{{name}}` (spaces allowed inside the braces) with vars, `{{prompt}}` with `prompt`.
fn substitute(text: &str, vars: &BTreeMap<String, String>, prompt: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| "unclosed `{{` in the prompt or template".to_owned())?;
        let name = after[..end].trim();
        match (name, prompt) {
            ("prompt", Some(p)) => out.push_str(p),
            _ => out.push_str(vars.get(name).ok_or_else(|| format!("unknown variable `{name}`"))?),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn err(file: &str, text: &str, at: usize, case: &str, message: String) -> ConfigError {
    let (line, column) = line_col(text, at);
    ConfigError {
        file: file.to_owned(),
        line,
        column,
        path: if case.is_empty() { String::new() } else { format!("cases.{case}") },
        message,
        hint: None,
    }
}

/// The first assertion serde rejects, with its position, case id and index: the typed parse
/// reads `assert` items without spans and would only point at the list.
fn assertion_error(text: &str) -> Option<(usize, String, usize, String)> {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(default)]
        cases: Vec<LooseCase>,
    }
    #[derive(Deserialize)]
    struct LooseCase {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        assert: Vec<Spanned<toml::Value>>,
    }
    let loose: Loose = toml::from_str(text).ok()?;
    for case in loose.cases {
        for (i, a) in case.assert.into_iter().enumerate() {
            let at = a.span().start;
            if let Err(e) = Assertion::deserialize(a.into_inner()) {
                return Some((at, case.id.unwrap_or_default(), i, e.message().trim().to_owned()));
            }
        }
    }
    None
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The id of the `[[cases]]` table around byte offset `at`, read from the text (a syntax or type
/// error leaves no parsed value to ask).
fn case_at(text: &str, at: usize) -> Option<String> {
    let head = text.get(..at.min(text.len()))?.rfind("[[cases]]")?;
    let body = &text[head + "[[cases]]".len()..];
    let body = &body[..body.find("\n[").unwrap_or(body.len())];
    let line =
        body.lines().map(str::trim).find(|l| l.starts_with("id") && l[2..].trim_start().starts_with('='))?;
    let value = line.split_once('=')?.1.trim();
    Some(value.trim_matches(|c| c == '"' || c == '\'').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "s"
template = "Support question: {{prompt}}"
[defaults]
route = "demo"
[[cases]]
id = "a"
prompt = "Where is {{ city }}?"
vars = { city = "Paris" }
assert = [{ type = "contains", value = "Paris" }]
[[cases]]
id = "b"
route = "echo"
messages = [{ role = "user", content = "hi" }]
context = ["doc one"]
[thresholds]
pass_rate = 0.5
min_mean_score = { similar = 0.8 }
"#;

    #[test]
    fn parses_prompts_templates_and_context() {
        let s = Suite::parse(OK, "s.toml").unwrap();
        let m = s.messages(&s.cases[0]);
        assert_eq!(m[0].content, "Support question: Where is Paris?");
        let m = s.messages(&s.cases[1]);
        assert_eq!(m[0].role, "system");
        assert!(m[0].content.contains("[1] doc one"));
        assert_eq!(s.route_of(&s.cases[1], None), "echo");
        assert_eq!(s.route_of(&s.cases[0], None), "demo");
        assert_eq!(s.route_of(&s.cases[0], Some("x")), "x");
        assert_eq!(s.thresholds.min_mean_score["similar"], 0.8);
    }

    #[test]
    fn every_example_suite_is_valid_and_uses_every_assertion_type() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/evals");
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let suite = Suite::load(&entry.unwrap().path()).unwrap_or_else(|e| panic!("{e}"));
            kinds.extend(suite.cases.iter().flat_map(|c| &c.assert).map(Assertion::kind));
        }
        assert_eq!(kinds.len(), 14, "{kinds:?}");
    }

    #[test]
    fn groundedness_needs_context_and_judged_types_carry_their_rubric() {
        let grounded = OK.replace(
            "context = [\"doc one\"]",
            "context = [\"doc one\"]\nassert = [{ type = \"groundedness\", route = \"j\" }, { type = \"relevance\", min = 0.9 }]",
        );
        let s = Suite::parse(&grounded, "s.toml").unwrap();
        let judged: Vec<_> = s.cases[1].assert.iter().map(|a| a.judged().unwrap()).collect();
        assert_eq!((judged[0].kind, judged[0].route, judged[0].min), ("groundedness", Some("j"), 0.7));
        assert!(judged[0].rubric.contains("context"), "{}", judged[0].rubric);
        assert_eq!((judged[1].kind, judged[1].route, judged[1].min), ("relevance", None, 0.9));
        assert!(s.cases[0].assert[0].judged().is_none(), "contains is checked locally");
        let no_context = grounded.replace("context = [\"doc one\"]\n", "");
        let e = Suite::parse(&no_context, "s.toml").unwrap_err().to_string();
        assert!(e.contains("groundedness") && e.contains("needs the case's `context`"), "{e}");
    }

    #[test]
    fn a_bad_assertion_names_the_line_and_the_case() {
        let text = OK.replace(
            r#"{ type = "contains", value = "Paris" }"#,
            r#"{ type = "contains", valeu = "Paris" }"#,
        );
        let e = Suite::parse(&text, "s.toml").unwrap_err().to_string();
        assert!(e.starts_with("s.toml:10:11: unknown field `valeu`"), "{e}");
        assert!(e.contains("(at `cases.a.assert[0]`)"), "{e}");
    }

    #[test]
    fn validation_errors_point_at_the_case_id() {
        let text = OK.replace("{{ city }}", "{{ town }}");
        let e = Suite::parse(&text, "s.toml").unwrap_err().to_string();
        assert!(e.starts_with("s.toml:7:6: unknown variable `town`"), "{e}");
        let text = OK.replace(r#"type = "contains", value = "Paris""#, r#"type = "regex", pattern = "(""#);
        let e = Suite::parse(&text, "s.toml").unwrap_err().to_string();
        assert!(e.contains("assert[0] (regex)") && e.contains("cases.a"), "{e}");
        let text = OK.replace("context = [", "params = { stream = true }\ncontext = [");
        assert!(Suite::parse(&text, "s.toml").unwrap_err().to_string().contains("cannot set `stream`"));
        let text = OK.replace("id = \"b\"", "id = \"a\"");
        assert!(Suite::parse(&text, "s.toml").unwrap_err().to_string().contains("duplicate case id"));
    }
}
