//! What each provider's upstream answers in each scenario, in its documented wire format, and
//! what each client sends. Texts carry multi-byte characters so that split reads are exercised.

use serde_json::{json, Value};

use super::{Ingress, Provider, Scenario};

pub const TEXT: &str = "Bonjour 日本 🦀!";
pub const STOP_TEXT: &str = "Bonjour";
pub const LENGTH_TEXT: &str = "Bonjour 日本";
pub const TOOL_ANSWER: &str = "Il fait 18 °C à Paris.";
pub const JSON_TEXT: &str = r#"{"answer":"Paris"}"#;
pub const IMAGE: &str = "iVBORw0KGgo=";

/// An upstream reply: status, headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

fn json_reply(v: Value) -> Reply {
    Reply { status: 200, headers: vec![("content-type", "application/json".into())], body: v.to_string() }
}

fn sse(events: &[(Option<&str>, Value)]) -> Reply {
    let mut body = String::new();
    for (event, data) in events {
        if let Some(e) = event {
            body.push_str(&format!("event: {e}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    Reply { status: 200, headers: vec![("content-type", "text/event-stream".into())], body }
}

fn rate_limited(body: Value) -> Reply {
    Reply {
        status: 429,
        headers: vec![("content-type", "application/json".into()), ("retry-after", "9".into())],
        body: body.to_string(),
    }
}

pub fn reply(p: Provider, s: Scenario) -> Reply {
    match p {
        Provider::OpenAi => openai(s),
        Provider::Anthropic => anthropic(s),
        Provider::Gemini => gemini(s),
    }
}

// ------------------------------------------------------------------ OpenAI Chat Completions

fn oa_message(content: &str, finish: &str) -> Reply {
    json_reply(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    }))
}

fn oa_chunk(delta: Value, finish: Value) -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

fn oa_usage() -> (Option<&'static str>, Value) {
    (
        None,
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}),
    )
}

fn done() -> Reply {
    Reply { status: 200, headers: vec![], body: "data: [DONE]\n\n".into() }
}

fn append(mut a: Reply, b: Reply) -> Reply {
    a.body.push_str(&b.body);
    a
}

fn openai(s: Scenario) -> Reply {
    match s {
        Scenario::PlainText | Scenario::MultiTurn | Scenario::ImageInput => oa_message(TEXT, "stop"),
        Scenario::ToolResults => oa_message(TOOL_ANSWER, "stop"),
        Scenario::JsonMode => oa_message(JSON_TEXT, "stop"),
        Scenario::StopSequence => oa_message(STOP_TEXT, "stop"),
        Scenario::MaxTokens => oa_message(LENGTH_TEXT, "length"),
        Scenario::SystemPromptStream => append(
            sse(&[
                oa_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                oa_chunk(json!({"content": "Bonjour "}), Value::Null),
                oa_chunk(json!({"content": "日本 🦀!"}), Value::Null),
                oa_chunk(json!({}), json!("stop")),
                oa_usage(),
            ]),
            done(),
        ),
        Scenario::ParallelToolsStream => append(
            sse(&[
                oa_chunk(json!({"role": "assistant", "content": null}), Value::Null),
                oa_chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null,
                ),
                oa_chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null,
                ),
                oa_chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null,
                ),
                oa_chunk(
                    json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null,
                ),
                oa_chunk(
                    json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\":\"Tokyo\"}"}}]}),
                    Value::Null,
                ),
                oa_chunk(json!({}), json!("tool_calls")),
                oa_usage(),
            ]),
            done(),
        ),
        Scenario::ErrorMidStream => sse(&[
            oa_chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            oa_chunk(json!({"content": "Bonjour "}), Value::Null),
            (
                None,
                json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "code": null}}),
            ),
        ]),
        Scenario::RateLimited => rate_limited(
            json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}),
        ),
    }
}

// ------------------------------------------------------------------ Anthropic Messages

fn an_message(content: Value, stop: &str, stop_sequence: Value) -> Reply {
    json_reply(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": content, "stop_reason": stop, "stop_sequence": stop_sequence,
        "usage": {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    }))
}

fn an_text(text: &str, stop: &str) -> Reply {
    an_message(json!([{"type": "text", "text": text}]), stop, Value::Null)
}

fn an_start() -> (Option<&'static str>, Value) {
    (
        Some("message_start"),
        json!({"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    )
}

fn an_event(kind: &'static str, v: Value) -> (Option<&'static str>, Value) {
    (Some(kind), v)
}

fn an_end(stop: &str) -> [(Option<&'static str>, Value); 2] {
    [
        an_event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ),
        an_event("message_stop", json!({"type": "message_stop"})),
    ]
}

fn anthropic(s: Scenario) -> Reply {
    match s {
        Scenario::PlainText | Scenario::MultiTurn | Scenario::ImageInput => an_text(TEXT, "end_turn"),
        Scenario::ToolResults => an_text(TOOL_ANSWER, "end_turn"),
        // JSON mode is emulated with a forced tool whose input is the answer.
        Scenario::JsonMode => an_message(
            json!([{"type": "tool_use", "id": "toolu_json", "name": super::ANTHROPIC_JSON_TOOL, "input": {"answer": "Paris"}}]),
            "tool_use",
            Value::Null,
        ),
        Scenario::StopSequence => {
            an_message(json!([{"type": "text", "text": STOP_TEXT}]), "stop_sequence", json!("END"))
        }
        Scenario::MaxTokens => an_text(LENGTH_TEXT, "max_tokens"),
        Scenario::SystemPromptStream => {
            let mut ev = vec![
                an_start(),
                an_event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                an_event("ping", json!({"type": "ping"})),
                an_event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bonjour "}}),
                ),
                an_event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "日本 🦀!"}}),
                ),
                an_event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ];
            ev.extend(an_end("end_turn"));
            sse(&ev)
        }
        Scenario::ParallelToolsStream => {
            let mut ev = vec![an_start()];
            for (i, (id, city)) in [("toolu_1", "Paris"), ("toolu_2", "Tokyo")].into_iter().enumerate() {
                ev.push(an_event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": "tool_use", "id": id, "name": "get_weather", "input": {}}}),
                ));
                ev.push(an_event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
                ));
                ev.push(an_event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": format!("\"{city}\"}}")}}),
                ));
                ev.push(an_event("content_block_stop", json!({"type": "content_block_stop", "index": i})));
            }
            ev.extend(an_end("tool_use"));
            sse(&ev)
        }
        Scenario::ErrorMidStream => sse(&[
            an_start(),
            an_event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            an_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bonjour "}}),
            ),
            an_event(
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        ]),
        Scenario::RateLimited => rate_limited(
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}),
        ),
    }
}

// ------------------------------------------------------------------ Gemini generateContent

fn ge_usage(out: u64) -> Value {
    json!({"promptTokenCount": 12, "candidatesTokenCount": out, "totalTokenCount": 12 + out})
}

fn ge_response(parts: Value, finish: Option<&str>, out: u64) -> Value {
    let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        cand["finishReason"] = json!(f);
    }
    json!({"candidates": [cand], "usageMetadata": ge_usage(out), "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"})
}

fn gemini(s: Scenario) -> Reply {
    let text = |t: &str, finish: &str| json_reply(ge_response(json!([{"text": t}]), Some(finish), 5));
    match s {
        Scenario::PlainText | Scenario::MultiTurn | Scenario::ImageInput => text(TEXT, "STOP"),
        Scenario::ToolResults => text(TOOL_ANSWER, "STOP"),
        Scenario::JsonMode => text(JSON_TEXT, "STOP"),
        Scenario::StopSequence => text(STOP_TEXT, "STOP"),
        Scenario::MaxTokens => text(LENGTH_TEXT, "MAX_TOKENS"),
        // usageMetadata is cumulative on every chunk: the last one counts.
        Scenario::SystemPromptStream => sse(&[
            (None, ge_response(json!([{"text": "Bonjour "}]), None, 1)),
            (None, ge_response(json!([{"text": "日本 🦀!"}]), Some("STOP"), 5)),
        ]),
        Scenario::ParallelToolsStream => sse(&[(
            None,
            ge_response(
                json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                       {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}}]),
                Some("STOP"),
                5,
            ),
        )]),
        Scenario::ErrorMidStream => sse(&[
            (None, ge_response(json!([{"text": "Bonjour "}]), None, 1)),
            (
                None,
                json!({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}),
            ),
        ]),
        Scenario::RateLimited => rate_limited(
            json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}),
        ),
    }
}

// ------------------------------------------------------------------ client requests

fn weather_tool_openai() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn weather_tool_anthropic() -> Value {
    json!({"name": "get_weather", "description": "Current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// The client's request, or `None` where the ingress has no such feature.
pub fn request(ingress: Ingress, s: Scenario, tool_call_id: &str) -> Option<Value> {
    let user = |t: &str| json!({"role": "user", "content": t});
    Some(match ingress {
        Ingress::OpenAi => {
            let mut r = json!({"model": "r", "messages": [user("Say hello")]});
            match s {
                Scenario::PlainText | Scenario::RateLimited => {}
                Scenario::MultiTurn => {
                    r["messages"] = json!([user("Hi"), {"role": "assistant", "content": "Hello! How can I help?"}, user("Say hello in French")]);
                }
                Scenario::SystemPromptStream | Scenario::ErrorMidStream => {
                    r["messages"] =
                        json!([{"role": "system", "content": "You are terse."}, user("Say hello")]);
                    r["stream"] = json!(true);
                    r["stream_options"] = json!({"include_usage": true});
                }
                Scenario::ParallelToolsStream => {
                    r["messages"] = json!([user("Weather in Paris and Tokyo?")]);
                    r["tools"] = json!([weather_tool_openai()]);
                    r["stream"] = json!(true);
                    r["stream_options"] = json!({"include_usage": true});
                }
                Scenario::ToolResults => {
                    r["tools"] = json!([weather_tool_openai()]);
                    r["messages"] = json!([
                        user("Weather in Paris?"),
                        {"role": "assistant", "content": null, "tool_calls": [{"id": tool_call_id, "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                        {"role": "tool", "tool_call_id": tool_call_id, "content": "{\"temp_c\":18}"}
                    ]);
                }
                Scenario::JsonMode => {
                    r["messages"] = json!([user("Capital of France, as JSON")]);
                    r["response_format"] = json!({"type": "json_object"});
                }
                Scenario::ImageInput => {
                    r["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{IMAGE}")}}]}]);
                }
                Scenario::StopSequence => r["stop"] = json!(["END"]),
                Scenario::MaxTokens => r["max_tokens"] = json!(2),
            }
            r
        }
        Ingress::Anthropic => {
            let mut r = json!({"model": "r", "max_tokens": 256, "messages": [user("Say hello")]});
            match s {
                Scenario::PlainText | Scenario::RateLimited => {}
                Scenario::MultiTurn => {
                    r["messages"] = json!([user("Hi"), {"role": "assistant", "content": "Hello! How can I help?"}, user("Say hello in French")]);
                }
                Scenario::SystemPromptStream | Scenario::ErrorMidStream => {
                    r["system"] = json!("You are terse.");
                    r["stream"] = json!(true);
                }
                Scenario::ParallelToolsStream => {
                    r["messages"] = json!([user("Weather in Paris and Tokyo?")]);
                    r["tools"] = json!([weather_tool_anthropic()]);
                    r["stream"] = json!(true);
                }
                Scenario::ToolResults => {
                    r["tools"] = json!([weather_tool_anthropic()]);
                    r["messages"] = json!([
                        user("Weather in Paris?"),
                        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_call_id, "name": "get_weather", "input": {"city": "Paris"}}]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_call_id, "content": "{\"temp_c\":18}"}]}
                    ]);
                }
                // The Messages API has no JSON mode.
                Scenario::JsonMode => return None,
                Scenario::ImageInput => {
                    r["messages"] = json!([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}}]}]);
                }
                Scenario::StopSequence => r["stop_sequences"] = json!(["END"]),
                Scenario::MaxTokens => r["max_tokens"] = json!(2),
            }
            r
        }
    })
}
