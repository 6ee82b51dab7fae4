//! The Anthropic Messages API adapter (`POST {base}/v1/messages`, `x-api-key`,
//! `anthropic-version`). Canonical requests are converted in `convert`, the wire shapes live in
//! `wire`, streamed answers are decoded in `stream`.
//!
//! How canonical (OpenAI-shaped) fields map, and what does not survive:
//!
//! | canonical | Anthropic | note |
//! |---|---|---|
//! | `system` / `developer` messages | top-level `system` | a string; text blocks when a part has extra fields (`cache_control`); hoisted from wherever they stand |
//! | `user` / `assistant` messages | `messages` | consecutive same-role turns merged (alternation is required) |
//! | `image_url` part | `image` block | `data:` URL → base64 source, http(s) → URL source; `detail` dropped |
//! | `thinking` / `redacted_thinking` / other parts | the same block | fields from `ContentPart.extra`, as sent |
//! | `tool_calls` | `tool_use` blocks | `input` = the parsed arguments (invalid JSON → 400) |
//! | `tool` messages | `tool_result` blocks in a user turn | `tool_call_id` → `tool_use_id`; `name` dropped |
//! | `tools` | `{name, description, input_schema}` + `Tool.extra` | `strict` dropped; only `function` tools |
//! | `tool_choice` auto/required/none/named | `{"type": auto/any/none/tool}` | dropped when there are no tools |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use` | |
//! | `max_completion_tokens` / `max_tokens` | `max_tokens` | required upstream: [`DEFAULT_MAX_TOKENS`] (4096) when unset |
//! | `stop` | `stop_sequences` | |
//! | `temperature`, `top_p`, extra `top_k` | the same | dropped from `anthropic-version` 2026-10-21 on ([`forbidden_sampling`]) |
//! | `user` | `metadata.user_id` | |
//! | extra `thinking`, `top_k`, `metadata`, `service_tier` | the same | other extra fields are not sent |
//! | `response_format` json_schema / json_object | a forced tool `json_answer` | emulated, see below |
//! | `n` > 1, `logprobs`, `top_logprobs`, `seed`, `presence_penalty`, `frequency_penalty`, `logit_bias` | — | dropped, reported by `unsupported_params` |
//!
//! JSON mode is emulated: the Messages API has no `response_format`, so the request gets a tool
//! `json_answer` whose `input_schema` is the client's schema (`{"type":"object"}` for
//! json_object) and `tool_choice: {"type":"tool","name":"json_answer"}`. The tool's input comes
//! back as the message `content` (a JSON string) with finish reason `stop`. When the client also
//! sends tools, or enables extended thinking (which forbids a forced tool), `json_answer` is only
//! offered beside them, not forced.
//!
//! Answers: text blocks are concatenated into `content`, `tool_use` → `tool_calls` (arguments =
//! the input serialized, keys in sorted order), thinking → `reasoning_content` and
//! `reasoning_signature` (the last one when there are several); `redacted_thinking`, citations
//! and server-tool blocks are dropped. `stop_reason` end_turn/stop_sequence/pause_turn → stop,
//! max_tokens → length, tool_use → tool_calls, refusal → content_filter. Usage: input = input +
//! cache reads + cache writes, `cached_input` = cache reads, `cache_write` = cache creation.

mod convert;
mod stream;
mod wire;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gardefou_core::chat::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use gardefou_core::config::{ModelConfig, ProviderConfig};
use gardefou_core::{Error, Result};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};

pub use convert::{forbidden_sampling, DEFAULT_MAX_TOKENS, JSON_TOOL};

use crate::{http, CallOptions, ChunkStream};

const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` sent when the provider config names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// One configured Anthropic upstream.
pub struct Anthropic {
    name: String,
    client: reqwest::Client,
    url: String,
    version: String,
    /// Auth, version and configured headers, secret values marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Anthropic {
    /// Builds the adapter. `Err` (naming the secret reference, never a value) when a configured
    /// secret cannot be read or no credential is configured at all.
    pub fn new(cfg: &ProviderConfig, connect_timeout: Duration) -> std::result::Result<Anthropic, String> {
        let base = cfg.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let version = cfg.api_version.clone().unwrap_or_else(|| DEFAULT_VERSION.to_owned());
        let api_key_header = HeaderName::from_static("x-api-key");
        let version_header = HeaderName::from_static("anthropic-version");

        let mut headers = Vec::with_capacity(cfg.headers.len() + 2);
        for (name, secret) in &cfg.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            let value = secret.resolve()?;
            headers
                .push((name.clone(), http::sensitive(value.expose(), &format!("header {name} ({secret})"))?));
        }
        let has_header =
            |headers: &[(HeaderName, HeaderValue)], n: &HeaderName| headers.iter().any(|(h, _)| h == n);
        match &cfg.api_key {
            Some(key_ref) => {
                let key = key_ref.resolve()?;
                if !has_header(&headers, &api_key_header) {
                    headers.insert(
                        0,
                        (api_key_header, http::sensitive(key.expose(), &format!("api_key ({key_ref})"))?),
                    );
                }
            }
            None if has_header(&headers, &api_key_header) || has_header(&headers, &AUTHORIZATION) => {}
            None => return Err("an `anthropic` provider needs an api_key".to_owned()),
        }
        if !has_header(&headers, &version_header) {
            let value = HeaderValue::from_str(&version)
                .map_err(|_| format!("api_version `{version}` is not a valid header value"))?;
            headers.push((version_header, value));
        }

        Ok(Anthropic {
            name: cfg.name.clone(),
            client: http::client(connect_timeout)?,
            url: format!("{base}/v1/messages"),
            version,
            headers,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Request parameters this provider lacks (dropped, or rejected per the route's policy),
    /// including the sampling parameters the configured `anthropic-version` rejects.
    pub fn unsupported_params(&self, req: &ChatRequest) -> Vec<&'static str> {
        convert::unsupported_params(req, &self.version)
    }

    pub async fn chat(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChatResponse> {
        let body = self.body(model, req, false)?;
        let resp = self.send(body, opts, false).await?;
        let bytes = resp.bytes().await.map_err(|e| http::send_error(&self.name, e))?;
        let answer =
            serde_json::from_slice::<wire::MessagesResponse>(&bytes).map_err(
                |e| match serde_json::from_slice::<wire::ErrorEnvelope>(&bytes) {
                    Ok(env) => convert::api_error(&self.name, &env.error.kind, &env.error.message),
                    Err(_) => Error::BadResponse {
                        provider: self.name.clone(),
                        message: format!("invalid JSON answer: {e}"),
                    },
                },
            )?;
        Ok(convert::from_wire(answer, req.wants_json(), now()))
    }

    /// Resolves once the upstream answered with a success status; the stream yields its chunks.
    pub async fn chat_stream(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChunkStream> {
        let body = self.body(model, req, true)?;
        let resp = self.send(body, opts, true).await?;
        Ok(stream::chunks(&self.name, resp.bytes_stream(), req.wants_json(), now()))
    }

    /// Anthropic has no embeddings API.
    pub async fn embed(
        &self,
        _model: &ModelConfig,
        _req: &EmbeddingsRequest,
        _opts: &CallOptions,
    ) -> Result<EmbeddingsResponse> {
        Err(Error::invalid_param(
            format!(
                "provider {} (Anthropic) has no embeddings API; route embeddings to another provider",
                self.name
            ),
            "model",
        ))
    }

    fn body(&self, model: &ModelConfig, req: &ChatRequest, stream: bool) -> Result<Vec<u8>> {
        let body = convert::to_wire(req, &model.upstream, &self.version, stream)?;
        serde_json::to_vec(&body).map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))
    }

    /// POSTs `body` and waits (at most `opts.first_byte_timeout`) for a success status. Any other
    /// status is read for its message and mapped (429 → rate limited, 529 → retryable server error,
    /// 401/403 → auth, other 4xx → rejected with Anthropic's `error.message`).
    /// POSTs `body` with this provider's headers; see `http::send_json`.
    async fn send(&self, body: Vec<u8>, opts: &CallOptions, sse: bool) -> Result<reqwest::Response> {
        let mut rb = self.client.post(&self.url);
        for (name, value) in &self.headers {
            rb = rb.header(name.clone(), value.clone());
        }
        http::send_json(&self.name, rb, body, opts, sse, http::error_from_status).await
    }
}

/// Seconds since the epoch, for `created` (the Messages API has no timestamp).
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
