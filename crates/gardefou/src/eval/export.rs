//! Dataset building: a stored inference (its request body) or an answered escalation (its
//! conversation and the human answer) as a draft case, and drafts written as a suite TOML that
//! `gardefou eval run` reads unchanged, each case under a comment saying where it came from.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use gardefou_core::chat::{Content, Role};
use gardefou_store::{Escalation, InferenceRecord};
use serde_json::{Map, Value};

use super::suite::Message;

/// Request fields a case does not carry: the runner sets the first three (`params` may not), the
/// others would change what the runner reads back (several choices, log probabilities) or name
/// the end user.
const DROPPED_PARAMS: &[&str] =
    &["model", "messages", "stream", "stream_options", "n", "user", "metadata", "logprobs", "top_logprobs"];

/// The judge's rubric when a case is judged.
pub const RUBRIC: &str = "The answer addresses the user's request correctly.";

/// One case to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub id: String,
    /// The route the conversation was sent to, if known.
    pub route: Option<String>,
    pub messages: Vec<Message>,
    /// Request fields kept as the case's `params` (temperature, max_tokens, tools, …).
    pub params: Map<String, Value>,
    /// The recorded answer, or the human's: what a reference check compares with.
    pub reference: Option<String>,
    /// Where it came from, one line (written as a comment).
    pub provenance: String,
    /// What was left out (tool turns, images), written as comments.
    pub notes: Vec<String>,
}

/// The assertion each case gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// None: the case passes when the route answers; the reference is shown commented out.
    None,
    /// `similar` to the reference, at least `min`.
    Reference { min: f64 },
    /// `equals` the reference (deterministic routes).
    Exact,
    /// `judge` with [`RUBRIC`] (and the reference, when there is one) on `route` (the runner's
    /// default judge route when `None`).
    Judge { route: Option<String> },
}

/// A chat inference with a stored request body as a case `inf-<id>`.
pub fn from_inference(rec: &InferenceRecord) -> Result<Draft, String> {
    let bodies = rec.bodies.as_ref().ok_or("no stored request body")?;
    let request: Value =
        serde_json::from_str(&bodies.request).map_err(|e| format!("unreadable request body: {e}"))?;
    let obj = request.as_object().ok_or("the request body is not a JSON object")?;
    let (messages, notes) = messages_of(obj.get("messages"))?;
    let params = obj
        .iter()
        .filter(|(k, _)| !DROPPED_PARAMS.contains(&k.as_str()))
        .filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v)))
        .collect();
    let mut provenance = format!(
        "inference {} · {} · route {} · model {} · status {}",
        rec.id,
        time(rec.created_at_ms),
        rec.route.as_deref().unwrap_or("-"),
        rec.model.as_deref().unwrap_or("-"),
        rec.status
    );
    if !rec.tags.is_empty() {
        let tags: Vec<String> = rec.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        provenance.push_str(&format!(" · tags {}", tags.join(",")));
    }
    Ok(Draft {
        id: format!("inf-{}", rec.id),
        route: rec.route.clone(),
        messages,
        params,
        reference: bodies.response.as_deref().and_then(answer_text),
        provenance,
        notes,
    })
}

/// An escalation holding an answer as a case `esc-<id>`: its conversation, the answer as the
/// reference.
pub fn from_escalation(e: &Escalation) -> Result<Draft, String> {
    let answer = e.answer.clone().ok_or("no answer")?;
    let conversation = match &e.conversation {
        Value::Object(o) => o.get("messages"),
        other => Some(other),
    };
    let (messages, notes) = messages_of(conversation)?;
    let provenance = format!(
        "escalation {} · {} · route {} · reason {} · answered by {} at {}{}",
        e.id,
        time(e.created_at_ms),
        e.route,
        e.reason,
        e.answered_by.as_deref().unwrap_or("-"),
        e.answered_at_ms.map_or_else(|| "-".to_owned(), time),
        e.inference_id.as_deref().map(|i| format!(" · inference {i}")).unwrap_or_default(),
    );
    Ok(Draft {
        id: format!("esc-{}", e.id),
        route: Some(e.route.clone()),
        messages,
        params: Map::new(),
        reference: Some(answer),
        provenance,
        notes,
    })
}

/// The text turns of an OpenAI `messages` array: multi-part content as its text parts joined by
/// newlines; tool results and tool-call-only turns left out (a case's messages are text), said in
/// the notes.
fn messages_of(v: Option<&Value>) -> Result<(Vec<Message>, Vec<String>), String> {
    let v = v.ok_or("no messages")?;
    let raw: Vec<gardefou_core::chat::Message> =
        serde_json::from_value(v.clone()).map_err(|e| format!("unreadable messages: {e}"))?;
    let (mut out, mut tool_turns, mut other_parts) = (Vec::new(), 0, 0);
    for m in &raw {
        if matches!(m.role, Role::Tool | Role::Function) {
            tool_turns += 1;
            continue;
        }
        if let Some(Content::Parts(parts)) = &m.content {
            other_parts += parts.iter().filter(|p| p.text.is_none()).count();
        }
        let text = m.text_content();
        if text.is_empty() {
            tool_turns += usize::from(m.tool_calls.is_some());
            continue;
        }
        let role = serde_json::to_value(m.role).ok().and_then(|r| r.as_str().map(str::to_owned));
        out.push(Message { role: role.unwrap_or_default(), content: text });
    }
    if !out.iter().any(|m| m.role == "user") {
        return Err("no user message with text".to_owned());
    }
    let mut notes = Vec::new();
    if tool_turns > 0 {
        notes.push(format!("{tool_turns} tool turn(s) left out: a case's messages are text"));
    }
    if other_parts > 0 {
        notes.push(format!("{other_parts} non-text content part(s) (images, audio, files) left out"));
    }
    Ok((out, notes))
}

/// The answer's text in a stored response body: a whole chat response (its first choice) or a
/// streamed answer (`{"content": …}`). `None` when there is no text (tool calls only).
fn answer_text(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let text = match v.pointer("/choices/0/message") {
        Some(m) => serde_json::from_value::<gardefou_core::chat::Message>(m.clone()).ok()?.text_content(),
        None => v.get("content")?.as_str()?.to_owned(),
    };
    (!text.trim().is_empty()).then_some(text)
}

/// `v` with every null (TOML has none) removed; `None` for a null.
fn without_nulls(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => Some(Value::Array(a.iter().filter_map(without_nulls).collect())),
        Value::Object(o) => Some(Value::Object(
            o.iter().filter_map(|(k, v)| without_nulls(v).map(|v| (k.clone(), v))).collect(),
        )),
        other => Some(other.clone()),
    }
}

fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The suite: `name`, `description`, the most common route as the default (a case on another
/// route names its own), one case per draft with its provenance above it. Fails when no draft
/// has a route (the suite would have none).
pub fn render(name: &str, description: &str, drafts: &[Draft], check: &Check) -> Result<String, String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in drafts {
        if let Some(r) = &d.route {
            *counts.entry(r).or_default() += 1;
        }
    }
    // The most common; on a tie the first by name.
    let default_route = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(r, _)| *r)
        .ok_or("no case has a route: narrow the export to inferences that reached one")?;
    let mut out = format!(
        "# {}\n# Review the cases before gating a release on them: each one's source is in the comment above it.\n",
        one_line(description)
    );
    out.push_str(&format!("name = {}\ndescription = {}\n", toml_str(name), toml_str(description)));
    out.push_str(&format!("\n[defaults]\nroute = {}\n", toml_str(default_route)));
    for d in drafts {
        out.push('\n');
        out.push_str(&case(d, default_route, check));
    }
    Ok(out)
}

fn case(d: &Draft, default_route: &str, check: &Check) -> String {
    let mut out = format!("# {}\n", one_line(&d.provenance));
    for n in &d.notes {
        out.push_str(&format!("# {}\n", one_line(n)));
    }
    out.push_str(&format!("[[cases]]\nid = {}\n", toml_str(&d.id)));
    if let Some(r) = d.route.as_deref().filter(|r| *r != default_route) {
        out.push_str(&format!("route = {}\n", toml_str(r)));
    }
    out.push_str("messages = [\n");
    for m in &d.messages {
        out.push_str(&format!("  {{ role = {}, content = {} }},\n", toml_str(&m.role), toml_str(&m.content)));
    }
    out.push_str("]\n");
    if !d.params.is_empty() {
        out.push_str(&format!("params = {}\n", toml_value(&Value::Object(d.params.clone()))));
    }
    let similar =
        |r: &str, min: f64| format!("{{ type = \"similar\", reference = {}, min = {min:?} }}", toml_str(r));
    match (check, d.reference.as_deref()) {
        (Check::None, Some(r)) => {
            out.push_str("# No assertion: the case passes when the route answers. To check the answer:\n");
            out.push_str(&format!("# assert = [{}]\n", similar(r, 0.8)));
        }
        (Check::Reference { min }, Some(r)) => out.push_str(&format!("assert = [{}]\n", similar(r, *min))),
        (Check::Exact, Some(r)) => {
            out.push_str(&format!("assert = [{{ type = \"equals\", value = {} }}]\n", toml_str(r)));
        }
        (Check::Judge { route }, reference) => {
            let rubric = match reference {
                Some(r) => format!("{RUBRIC} It agrees in substance with this reference answer: {r}"),
                None => RUBRIC.to_owned(),
            };
            let route = route.as_deref().map(|r| format!(", route = {}", toml_str(r))).unwrap_or_default();
            out.push_str(&format!(
                "assert = [{{ type = \"judge\", rubric = {}{route} }}]\n",
                toml_str(&rubric)
            ));
        }
        (Check::None | Check::Reference { .. } | Check::Exact, None) => {
            out.push_str("# No recorded answer to compare with: no assertion.\n");
        }
    }
    out
}

/// Control characters (newlines included) as spaces, for a comment line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A TOML basic string: JSON's escapes are TOML's, but for DEL, which TOML wants escaped too.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default().replace('\u{7f}', "\\u007F")
}

/// A JSON value as an inline TOML value (nulls already removed).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Null => "\"\"".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() => n.to_string(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or_default();
            format!("{f:?}")
        }
        Value::String(s) => toml_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(o) if o.is_empty() => "{}".to_owned(),
        Value::Object(o) => {
            let fields: Vec<String> =
                o.iter().map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        k.to_owned()
    } else {
        toml_str(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::suite::{Assertion, Suite};
    use gardefou_store::{Bodies, EscalationStatus};
    use serde_json::json;

    fn record(id: &str, route: &str, request: Value, response: Option<Value>) -> InferenceRecord {
        InferenceRecord {
            id: id.into(),
            created_at_ms: 1_735_689_600_000,
            request_id: "req".into(),
            endpoint: "chat".into(),
            route: Some(route.into()),
            model: Some("polite".into()),
            provider: Some("demo".into()),
            key_id: None,
            team: None,
            product: None,
            end_user: None,
            status: 200,
            error_kind: None,
            error_message: None,
            stream: false,
            input_tokens: None,
            cached_input_tokens: None,
            output_tokens: None,
            reasoning_tokens: None,
            tokens_estimated: false,
            cost_usd: None,
            latency_ms: 1.0,
            ttft_ms: None,
            finish_reason: None,
            attempts: Vec::new(),
            tags: BTreeMap::from([("feature".into(), "faq".into())]),
            bodies: Some(Bodies { request: request.to_string(), response: response.map(|r| r.to_string()) }),
        }
    }

    fn chat_response(text: &str) -> Value {
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "polite",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
    }

    #[test]
    fn a_request_body_becomes_text_turns_params_and_a_reference() {
        let request = json!({
            "model": "support", "stream": true, "stream_options": {"include_usage": true}, "user": "u-7",
            "temperature": 0.2, "max_tokens": 64, "seed": 7, "stop": ["\n\n"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": null}},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}, {"type": "text", "text": "this?"}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "a cat"},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "Sure? 🦀"}
            ]
        });
        let d = from_inference(&record("0190-a", "support", request, Some(chat_response("Yes, a cat."))))
            .unwrap();
        assert_eq!(d.id, "inf-0190-a");
        let turns: Vec<(&str, &str)> =
            d.messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
        assert_eq!(
            turns,
            [
                ("system", "Be brief."),
                ("user", "What is\nthis?"),
                ("assistant", "A cat."),
                ("user", "Sure? 🦀")
            ]
        );
        assert_eq!(d.reference.as_deref(), Some("Yes, a cat."));
        let mut keys: Vec<&str> = d.params.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["max_tokens", "response_format", "seed", "stop", "temperature"]);
        assert_eq!(d.params["response_format"]["json_schema"].get("strict"), None, "nulls dropped");
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);
        assert!(d
            .provenance
            .contains("inference 0190-a · 2025-01-01T00:00:00Z · route support · model polite"));
        assert!(d.provenance.ends_with("tags feature=faq"), "{}", d.provenance);

        let streamed = record(
            "b",
            "support",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            Some(json!({"content": "hello", "finish_reason": "stop"})),
        );
        assert_eq!(from_inference(&streamed).unwrap().reference.as_deref(), Some("hello"));
        let failed = record("c", "support", json!({"messages": [{"role": "user", "content": "hi"}]}), None);
        assert_eq!(from_inference(&failed).unwrap().reference, None);
        let no_user = record("d", "support", json!({"messages": [{"role": "system", "content": "x"}]}), None);
        assert!(from_inference(&no_user).unwrap_err().contains("no user message"));
        let no_body = InferenceRecord { bodies: None, ..failed };
        assert!(from_inference(&no_body).is_err());
    }

    fn escalation() -> Escalation {
        Escalation {
            id: "0190-e".into(),
            created_at_ms: 1_735_689_600_000,
            updated_at_ms: 0,
            status: EscalationStatus::Answered,
            reason: "refusal".into(),
            route: "support".into(),
            team: None,
            product: None,
            key_id: None,
            end_user: None,
            inference_id: Some("0190-i".into()),
            conversation: json!([{"role": "user", "content": "Can I get a refund for [REDACTED:card]?"}]),
            claimed_by: None,
            claimed_at_ms: None,
            answer: Some("Yes, within 30 days.\nSee \"refunds\".".into()),
            answered_by: Some("cli:ana".into()),
            answered_at_ms: Some(1_735_689_660_000),
            closed_at_ms: None,
            callback_url: None,
        }
    }

    #[test]
    fn an_answered_escalation_becomes_a_case_with_the_human_answer_as_reference() {
        let d = from_escalation(&escalation()).unwrap();
        assert_eq!(d.id, "esc-0190-e");
        assert_eq!(
            d.messages,
            [Message { role: "user".into(), content: "Can I get a refund for [REDACTED:card]?".into() }]
        );
        assert_eq!(d.reference.as_deref(), Some("Yes, within 30 days.\nSee \"refunds\"."));
        assert!(
            d.provenance.contains("answered by cli:ana at 2025-01-01T00:01:00Z · inference 0190-i"),
            "{}",
            d.provenance
        );
        let wrapped =
            Escalation { conversation: json!({"messages": escalation().conversation}), ..escalation() };
        assert_eq!(from_escalation(&wrapped).unwrap().messages, d.messages);
        assert!(from_escalation(&Escalation { answer: None, ..escalation() }).is_err());
    }

    fn drafts() -> Vec<Draft> {
        let weird = "quotes \" backslash \\ tab\t newline\n DEL\u{7f} 🦀 '''";
        let request = json!({"temperature": 0.5, "tools": [{"type": "function", "function": {"name": "get weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                             "messages": [{"role": "user", "content": weird}]});
        vec![
            from_inference(&record("1", "support", request, Some(chat_response(weird)))).unwrap(),
            from_inference(&record(
                "2",
                "support",
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                None,
            ))
            .unwrap(),
            from_inference(&record(
                "3",
                "sales",
                json!({"messages": [{"role": "user", "content": "price?"}]}),
                Some(chat_response("10 €")),
            ))
            .unwrap(),
            from_escalation(&escalation()).unwrap(),
        ]
    }

    #[test]
    fn the_exported_suite_parses_back_with_every_case_route_and_check() {
        let drafts = drafts();
        for check in [
            Check::None,
            Check::Reference { min: 0.75 },
            Check::Exact,
            Check::Judge { route: Some("judge".into()) },
        ] {
            let text = render("prod-faq", "3 inferences, 1 escalation", &drafts, &check).unwrap();
            let suite = Suite::parse(&text, "export.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(suite.name, "prod-faq");
            assert_eq!(suite.defaults.route.as_deref(), Some("support"), "the most common route");
            let ids: Vec<&str> = suite.cases.iter().map(|c| c.id.get_ref().as_str()).collect();
            assert_eq!(ids, ["inf-1", "inf-2", "inf-3", "esc-0190-e"]);
            assert_eq!(suite.cases[2].route.as_deref(), Some("sales"));
            assert_eq!(suite.cases[0].route, None);
            let first = &suite.cases[0];
            assert_eq!(first.messages.as_ref().unwrap(), &drafts[0].messages, "strings survive TOML");
            let params = first.params.as_ref().unwrap();
            assert_eq!(params["temperature"], json!(0.5));
            assert_eq!(params["tools"][0]["function"]["name"], "get weather");
            let kinds: Vec<Vec<&str>> =
                suite.cases.iter().map(|c| c.assert.iter().map(Assertion::kind).collect()).collect();
            match &check {
                Check::None => {
                    assert!(kinds.iter().all(Vec::is_empty));
                    assert!(
                        text.contains("# assert = [{ type = \"similar\", reference = \"10 €\", min = 0.8 }]"),
                        "{text}"
                    );
                }
                Check::Reference { .. } => {
                    assert_eq!(kinds, [vec!["similar"], vec![], vec!["similar"], vec!["similar"]]);
                    assert!(
                        matches!(&first.assert[0], Assertion::Similar { reference, min } if reference == &drafts[0].messages[0].content && *min == 0.75)
                    );
                }
                Check::Exact => {
                    assert!(
                        matches!(&suite.cases[3].assert[0], Assertion::Equals { value } if value.starts_with("Yes, within 30 days.\n"))
                    );
                    assert!(text.contains("# No recorded answer to compare with"));
                }
                Check::Judge { .. } => {
                    assert!(kinds.iter().all(|k| k == &["judge"]));
                    let Assertion::Judge { rubric, route, .. } = &suite.cases[3].assert[0] else { panic!() };
                    assert!(rubric.starts_with(RUBRIC) && rubric.ends_with("See \"refunds\"."), "{rubric}");
                    assert_eq!(route.as_deref(), Some("judge"));
                    let Assertion::Judge { rubric, .. } = &suite.cases[1].assert[0] else { panic!() };
                    assert_eq!(rubric, RUBRIC, "no answer recorded: the bare rubric");
                }
            }
            assert!(text.contains("# inference 3 · 2025-01-01T00:00:00Z · route sales"), "{text}");
            assert!(text.contains("# escalation 0190-e"), "{text}");
        }
    }

    #[test]
    fn a_suite_needs_a_route_among_its_cases() {
        let mut d = drafts();
        d.iter_mut().for_each(|d| d.route = None);
        assert!(render("x", "y", &d, &Check::None).unwrap_err().contains("no case has a route"));
    }
}
