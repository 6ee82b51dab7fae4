//! What the mock answers, decided once per call and shared by the whole and the streamed form:
//! the text (polite, echoed or fixed), tool calls fitting their schemas, JSON in JSON mode, cut by
//! stop sequences and the output limit, `n` times over, with word-counted usage.

use std::sync::atomic::{AtomicU64, Ordering};

use gardefou_core::chat::{
    AssistantMessage, ChatRequest, Choice, FinishReason, FunctionCall, Role, Tool, ToolCall, ToolChoice,
    Usage,
};
use gardefou_core::{Error, Result};
use serde_json::json;

use super::schema;

/// Tokens counted for each message besides its words (role and separators), as real models do.
const PER_MESSAGE_TOKENS: u64 = 3;
/// Quotes of the client's text stop after this many words.
const QUOTE_WORDS: usize = 40;
/// OpenAI's upper limit on `n`.
const MAX_CHOICES: u32 = 128;

/// Which text the mock answers with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Script<'a> {
    /// A well-mannered model: text about the last message, tool calls, JSON mode.
    Polite,
    /// The last user message, as it is.
    Echo,
    /// The configured text.
    Fixed(&'a str),
}

/// One planned choice.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reply {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish: FinishReason,
}

/// The whole planned answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Answer {
    pub replies: Vec<Reply>,
    pub usage: Usage,
}

impl Answer {
    /// The choices of a whole (non-streamed) response.
    pub fn choices(&self) -> Vec<Choice> {
        let choices = self.replies.iter().zip(0..);
        choices
            .map(|(r, index)| Choice {
                index,
                message: AssistantMessage {
                    role: Role::Assistant,
                    content: r.content.clone(),
                    tool_calls: (!r.tool_calls.is_empty()).then(|| r.tool_calls.clone()),
                    ..AssistantMessage::default()
                },
                finish_reason: Some(r.finish),
                logprobs: None,
            })
            .collect()
    }
}

/// Plans the answer to `req`. `call_ids` numbers tool calls across the mock's life so that ids
/// stay unique within a conversation. `provider` names the mock in errors.
pub(super) fn plan(
    script: Script<'_>,
    req: &ChatRequest,
    call_ids: &AtomicU64,
    provider: &str,
) -> Result<Answer> {
    let n = req.n.unwrap_or(1).max(1);
    if n > MAX_CHOICES {
        return Err(Error::ProviderRejected {
            provider: provider.to_owned(),
            status: 400,
            message: format!("n must be at most {MAX_CHOICES}"),
        });
    }
    let tools = match script {
        Script::Polite => tools_to_call(req, provider)?,
        Script::Echo | Script::Fixed(_) => Vec::new(),
    };
    let mut replies = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let reply = if tools.is_empty() {
            text_reply(&answer_text(script, req), req)
        } else {
            Reply {
                content: None,
                tool_calls: tools.iter().map(|t| tool_call(t, call_ids)).collect(),
                finish: FinishReason::ToolCalls,
            }
        };
        replies.push(reply);
    }
    let input: u64 = req.messages.iter().map(|m| words(&m.text_content()) + PER_MESSAGE_TOKENS).sum();
    let output = replies.iter().map(output_tokens).sum();
    Ok(Answer { replies, usage: Usage { input, output, ..Usage::default() } })
}

/// The tools the polite mock calls: none when tools are off or a tool result is to be answered;
/// the named one; every one (in parallel) when allowed; else the first.
fn tools_to_call<'r>(req: &'r ChatRequest, provider: &str) -> Result<Vec<&'r Tool>> {
    let tools = req.tools.as_deref().unwrap_or_default();
    let answering_tool = req.messages.last().is_some_and(|m| m.role == Role::Tool);
    if tools.is_empty() || answering_tool {
        return Ok(Vec::new());
    }
    let parallel = req.parallel_tool_calls != Some(false) && tools.len() >= 2;
    match &req.tool_choice {
        Some(ToolChoice::Mode(mode)) if mode == "none" => Ok(Vec::new()),
        Some(ToolChoice::Named(named)) => {
            match tools.iter().find(|t| t.function.name == named.function.name) {
                Some(tool) => Ok(vec![tool]),
                None => Err(Error::ProviderRejected {
                    provider: provider.to_owned(),
                    status: 400,
                    message: format!(
                        "tool_choice names `{}`, which is not among the tools",
                        named.function.name
                    ),
                }),
            }
        }
        _ if parallel => Ok(tools.iter().collect()),
        _ => Ok(tools.iter().take(1).collect()),
    }
}

fn tool_call(tool: &Tool, call_ids: &AtomicU64) -> ToolCall {
    let id = call_ids.fetch_add(1, Ordering::Relaxed) + 1;
    let arguments = match &tool.function.parameters {
        Some(params) => schema::example(params).to_string(),
        None => "{}".to_owned(),
    };
    ToolCall {
        id: format!("call_mock_{id}"),
        kind: "function".to_owned(),
        function: FunctionCall { name: tool.function.name.clone(), arguments },
    }
}

/// The full text before stop sequences and the output limit apply.
fn answer_text(script: Script<'_>, req: &ChatRequest) -> String {
    match script {
        Script::Echo => last_user_text(req),
        Script::Fixed(text) => text.to_owned(),
        Script::Polite => {
            let text = polite_text(req);
            if let Some(schema) = req.json_schema() {
                schema::example(schema).to_string()
            } else if req.wants_json() {
                json!({ "answer": text }).to_string()
            } else {
                text
            }
        }
    }
}

/// The polite answer: it quotes the last user message, or the tool results it was given back.
pub(super) fn polite_text(req: &ChatRequest) -> String {
    let trailing_tools: Vec<String> = match req.messages.iter().rposition(|m| m.role != Role::Tool) {
        Some(last_other) => &req.messages[last_other + 1..],
        None => &req.messages[..],
    }
    .iter()
    .map(|m| m.text_content())
    .collect();
    if trailing_tools.is_empty() {
        format!(
            "Mock answer: you said «{}». This is a scripted reply from the gardefou mock provider, \
             long enough to arrive in several streamed chunks.",
            quote(&last_user_text(req))
        )
    } else {
        format!(
            "Mock answer: the tool returned «{}». This is a scripted summary from the gardefou mock \
             provider, long enough to arrive in several streamed chunks.",
            quote(&trailing_tools.join("; "))
        )
    }
}

fn last_user_text(req: &ChatRequest) -> String {
    req.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.text_content()).unwrap_or_default()
}

/// At most `QUOTE_WORDS` words of `text`, marked with an ellipsis when cut.
fn quote(text: &str) -> String {
    let text = text.trim();
    match cut_after_words(text, QUOTE_WORDS) {
        Some(head) => format!("{head}…"),
        None => text.to_owned(),
    }
}

/// Applies the stop sequences, then the output limit, to a text answer.
fn text_reply(text: &str, req: &ChatRequest) -> Reply {
    let stop_at =
        req.stop_sequences().iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    let text = match stop_at {
        Some(at) => &text[..at],
        None => text,
    };
    let limit = req.max_output_tokens().map(|m| m as usize);
    match limit.and_then(|limit| cut_after_words(text, limit)) {
        Some(head) => {
            Reply { content: Some(head.to_owned()), tool_calls: Vec::new(), finish: FinishReason::Length }
        }
        None => Reply { content: Some(text.to_owned()), tool_calls: Vec::new(), finish: FinishReason::Stop },
    }
}

/// The mock's token count: whitespace-separated words.
pub(super) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn output_tokens(r: &Reply) -> u64 {
    let text = r.content.as_deref().map_or(0, words);
    let args: u64 = r.tool_calls.iter().map(|c| (c.function.arguments.len() as u64).div_ceil(4)).sum();
    text + args
}

/// `text` up to the end of its `n`-th word, or `None` when it has no more than `n` words.
fn cut_after_words(text: &str, n: usize) -> Option<&str> {
    let mut seen = 0;
    let mut in_word = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_word = false;
        } else if !in_word {
            if seen == n {
                return Some(text[..i].trim_end());
            }
            in_word = true;
            seen += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use gardefou_core::chat::Message;
    use serde_json::Value;

    fn request(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn polite(req: &ChatRequest) -> Answer {
        plan(Script::Polite, req, &AtomicU64::new(0), "demo").unwrap()
    }

    fn weather_tools() -> Value {
        json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {
                "type": "object", "properties": {"zone": {"type": "string"}, "day": {"type": "string", "format": "date"}},
                "required": ["zone", "day"]}}}
        ])
    }

    #[test]
    fn polite_text_quotes_the_last_user_message() {
        let req = request(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"}]}));
        let a = polite(&req);
        let text = a.replies[0].content.as_deref().unwrap();
        assert!(text.starts_with("Mock answer: you said «hello there»."), "{text}");
        assert!(words(text) >= 20);
        assert_eq!(a.replies[0].finish, FinishReason::Stop);
        // 2 + 3 for the system message, 2 + 3 for the user message.
        assert_eq!(a.usage.input, 10);
        assert_eq!(a.usage.output, words(text));
    }

    #[test]
    fn long_messages_are_quoted_in_part() {
        let long = "word ".repeat(100);
        let req = ChatRequest { messages: vec![Message::text(Role::User, long)], ..ChatRequest::default() };
        let text = polite_text(&req);
        assert!(text.contains(&format!("«{}…»", ["word"; 40].join(" "))), "{text}");
    }

    #[test]
    fn calls_the_first_tool_with_arguments_fitting_its_schema() {
        let tools = weather_tools();
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "weather?"}],
            "tools": tools, "parallel_tool_calls": false}));
        let a = polite(&req);
        let r = &a.replies[0];
        assert_eq!((r.content.as_deref(), r.finish), (None, FinishReason::ToolCalls));
        assert_eq!(r.tool_calls.len(), 1);
        let call = &r.tool_calls[0];
        assert_eq!((call.id.as_str(), call.function.name.as_str()), ("call_mock_1", "get_weather"));
        let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
        schema::check(&args, &tools[0]["function"]["parameters"]).unwrap();
        assert_eq!(a.usage.output, (call.function.arguments.len() as u64).div_ceil(4));
    }

    #[test]
    fn calls_every_tool_in_parallel_when_allowed() {
        let tools = weather_tools();
        for choice in [json!("auto"), json!("required"), Value::Null] {
            let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                "tools": tools, "tool_choice": choice}));
            let calls = &polite(&req).replies[0].tool_calls;
            let names: Vec<_> = calls.iter().map(|c| c.function.name.as_str()).collect();
            assert_eq!(names, ["get_weather", "get_time"], "tool_choice {choice}");
            assert_eq!(calls[1].id, "call_mock_2");
            for (call, tool) in calls.iter().zip(tools.as_array().unwrap()) {
                let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
                schema::check(&args, &tool["function"]["parameters"]).unwrap();
            }
        }
    }

    #[test]
    fn named_tool_choice_calls_that_tool_and_none_answers_text() {
        let tools = weather_tools();
        let req =
            request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "get_time"}}}));
        let calls = &polite(&req).replies[0].tool_calls;
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].function.name, "get_time");

        let req =
            request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools,
            "tool_choice": "none"}));
        assert!(polite(&req).replies[0].content.as_deref().unwrap().contains("«hi»"));

        let req =
            request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "nope"}}}));
        let err = plan(Script::Polite, &req, &AtomicU64::new(0), "demo").unwrap_err();
        assert!(matches!(err, Error::ProviderRejected { status: 400, .. }), "{err:?}");
    }

    #[test]
    fn a_tool_result_is_answered_with_text_that_mentions_it() {
        let req = request(json!({"model": "m", "tools": weather_tools(), "messages": [
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "tool_calls": [{"id": "call_mock_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_mock_1", "content": "18°C and sunny"}]}));
        let r = &polite(&req).replies[0];
        assert!(r.tool_calls.is_empty());
        assert!(r.content.as_deref().unwrap().contains("the tool returned «18°C and sunny»"), "{r:?}");
    }

    #[test]
    fn json_modes_answer_valid_json() {
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"}}));
        let content = polite(&req).replies[0].content.clone().unwrap();
        let v: Value = serde_json::from_str(&content).unwrap();
        assert!(v["answer"].as_str().unwrap().contains("«hi»"));

        let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"], "additionalProperties": false});
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}}}));
        let content = polite(&req).replies[0].content.clone().unwrap();
        schema::check(&serde_json::from_str(&content).unwrap(), &schema).unwrap();
    }

    #[test]
    fn max_tokens_cuts_to_that_many_words() {
        let req =
            request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}));
        let a = polite(&req);
        let r = &a.replies[0];
        assert_eq!(r.content.as_deref(), Some("Mock answer: you said «hi»."));
        assert_eq!((r.finish, a.usage.output), (FinishReason::Length, 5));

        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 7, "max_tokens": 100}));
        let r = &polite(&req).replies[0];
        assert_eq!(words(r.content.as_deref().unwrap()), 7);
        assert_eq!(r.finish, FinishReason::Length);

        let req = request(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 500}),
        );
        assert_eq!(polite(&req).replies[0].finish, FinishReason::Stop);
    }

    #[test]
    fn stop_sequences_cut_before_the_first_match() {
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stop": ["mock provider", "scripted"]}));
        let r = &polite(&req).replies[0];
        assert_eq!(r.content.as_deref(), Some("Mock answer: you said «hi». This is a "));
        assert_eq!(r.finish, FinishReason::Stop);
        // The stop sequence comes before the limit: the answer stopped, it was not cut.
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stop": "said", "max_tokens": 3}));
        let r = &polite(&req).replies[0];
        assert_eq!((r.content.as_deref(), r.finish), (Some("Mock answer: you "), FinishReason::Stop));
    }

    #[test]
    fn n_gives_that_many_choices() {
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 3}));
        let a = polite(&req);
        let choices = a.choices();
        assert_eq!(choices.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(a.usage.output, 3 * words(a.replies[0].content.as_deref().unwrap()));
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": 1000}));
        assert!(plan(Script::Polite, &req, &AtomicU64::new(0), "demo").is_err());
    }

    #[test]
    fn echo_and_fixed_scripts() {
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "say  this back"}],
            "tools": weather_tools(), "response_format": {"type": "json_object"}}));
        let echo = plan(Script::Echo, &req, &AtomicU64::new(0), "demo").unwrap();
        assert_eq!(echo.replies[0].content.as_deref(), Some("say  this back"));
        let fixed = plan(Script::Fixed("OK"), &req, &AtomicU64::new(0), "demo").unwrap();
        assert_eq!(fixed.replies[0].content.as_deref(), Some("OK"));
        assert_eq!(fixed.usage.output, 1);
    }

    #[test]
    fn cutting_after_words_keeps_the_original_spacing() {
        assert_eq!(cut_after_words("a  b\nc d", 2), Some("a  b"));
        assert_eq!(cut_after_words("  a b  ", 1), Some("  a"));
        assert_eq!(cut_after_words("a b", 2), None);
        assert_eq!(cut_after_words("a b ", 2), None);
        assert_eq!(cut_after_words("a b", 0), Some(""));
    }
}
