//! The OpenAI adapter: OpenAI itself, every OpenAI-compatible server (their differences are
//! `Quirks`), and Azure OpenAI (its URLs and `api-key` header). Calls, not conversions: the
//! canonical types already are OpenAI's wire shape.

mod stream;
mod wire;

use std::time::Duration;

use gardefou_core::chat::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use gardefou_core::config::{ModelConfig, ProviderConfig, ProviderKind, Quirks};
use gardefou_core::{Error, Result};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};

use crate::{http, CallOptions, ChunkStream};

const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// One configured OpenAI-shaped upstream.
pub struct OpenAi {
    name: String,
    client: reqwest::Client,
    urls: Urls,
    /// Auth and configured headers, values marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
    quirks: Quirks,
}

/// Where requests go, parsed once.
enum Urls {
    /// The same URLs for every model (OpenAI, compatible servers, Azure's `v1` API).
    Fixed { chat: reqwest::Url, embeddings: reqwest::Url },
    /// Azure deployments: `{prefix}{deployment}{/chat/completions|/embeddings}{query}`.
    Deployment { prefix: String, query: String },
}

impl Urls {
    fn chat(&self, model: &ModelConfig) -> Result<reqwest::Url> {
        match self {
            Urls::Fixed { chat, .. } => Ok(chat.clone()),
            Urls::Deployment { prefix, query } => {
                parse_url(&format!("{prefix}{}/chat/completions{query}", model.upstream))
            }
        }
    }

    fn embeddings(&self, model: &ModelConfig) -> Result<reqwest::Url> {
        match self {
            Urls::Fixed { embeddings, .. } => Ok(embeddings.clone()),
            Urls::Deployment { prefix, query } => {
                parse_url(&format!("{prefix}{}/embeddings{query}", model.upstream))
            }
        }
    }
}

fn fixed_url(url: &str) -> std::result::Result<reqwest::Url, String> {
    reqwest::Url::parse(url).map_err(|e| format!("invalid base_url: {e}"))
}

fn parse_url(url: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(url).map_err(|e| Error::Internal(format!("invalid upstream URL: {e}")))
}

impl OpenAi {
    /// Builds the adapter. `Err` (naming the secret reference, never a value) when a configured
    /// secret cannot be read, or when OpenAI or Azure has no credential at all.
    pub fn new(cfg: &ProviderConfig, connect_timeout: Duration) -> Result<OpenAi, String> {
        let base = match (&cfg.base_url, cfg.kind) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, ProviderKind::OpenAi) => DEFAULT_BASE_URL.to_owned(),
            (None, kind) => return Err(format!("a `{}` provider needs a base_url", kind.as_str())),
        };
        let urls = match cfg.kind {
            ProviderKind::Azure => match cfg.api_version.as_deref() {
                None => return Err("an `azure` provider needs an api_version".to_owned()),
                Some("v1") => Urls::Fixed {
                    chat: fixed_url(&format!("{base}/openai/v1/chat/completions"))?,
                    embeddings: fixed_url(&format!("{base}/openai/v1/embeddings"))?,
                },
                Some(version) => Urls::Deployment {
                    prefix: format!("{base}/openai/deployments/"),
                    query: format!("?api-version={version}"),
                },
            },
            _ => Urls::Fixed {
                chat: fixed_url(&format!("{base}/chat/completions"))?,
                embeddings: fixed_url(&format!("{base}/embeddings"))?,
            },
        };

        let mut headers = Vec::with_capacity(cfg.headers.len() + 1);
        for (name, secret) in &cfg.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            let value = secret.resolve()?;
            headers
                .push((name.clone(), http::sensitive(value.expose(), &format!("header {name} ({secret})"))?));
        }
        let has_header = |n: &HeaderName| headers.iter().any(|(h, _)| h == n);
        match (&cfg.api_key, cfg.kind) {
            (Some(key_ref), kind) => {
                let key = key_ref.resolve()?;
                let what = format!("api_key ({key_ref})");
                let auth = match kind {
                    ProviderKind::Azure => {
                        (HeaderName::from_static("api-key"), http::sensitive(key.expose(), &what)?)
                    }
                    _ => (AUTHORIZATION, http::sensitive(&format!("Bearer {}", key.expose()), &what)?),
                };
                if !has_header(&auth.0) {
                    headers.insert(0, auth);
                }
            }
            (None, ProviderKind::OpenAi) if !has_header(&AUTHORIZATION) => {
                return Err("an `openai` provider needs an api_key".to_owned())
            }
            (None, ProviderKind::Azure)
                if !has_header(&HeaderName::from_static("api-key")) && !has_header(&AUTHORIZATION) =>
            {
                return Err("an `azure` provider needs an api_key".to_owned())
            }
            (None, _) => {}
        }

        Ok(OpenAi {
            name: cfg.name.clone(),
            client: http::client(connect_timeout)?,
            urls,
            headers,
            quirks: cfg.quirks.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether streamed answers end with a usage chunk (`stream_options.include_usage` is
    /// honoured); if not, the gateway counts the tokens itself.
    /// Fields of other providers' formats this server would refuse; they are removed.
    pub fn unsupported_params(&self, req: &ChatRequest) -> Vec<&'static str> {
        if self.quirks.strict_schema {
            wire::foreign_params(req)
        } else {
            Vec::new()
        }
    }

    pub fn reports_stream_usage(&self) -> bool {
        self.quirks.stream_usage
    }

    pub async fn chat(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChatResponse> {
        let body = wire::ChatBody { req, model: &model.upstream, stream: false, quirks: &self.quirks };
        let body = body.to_vec().map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
        let resp = self.send(self.urls.chat(model)?, body, opts, false).await?;
        let bytes = resp.bytes().await.map_err(|e| http::send_error(&self.name, e))?;
        self.parse_answer(&bytes)
    }

    /// Resolves once the upstream answered with a success status; the stream yields its chunks.
    pub async fn chat_stream(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChunkStream> {
        let body = wire::ChatBody { req, model: &model.upstream, stream: true, quirks: &self.quirks };
        let body = body.to_vec().map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
        let resp = self.send(self.urls.chat(model)?, body, opts, true).await?;
        Ok(stream::chunks(&self.name, resp.bytes_stream()))
    }

    pub async fn embed(
        &self,
        model: &ModelConfig,
        req: &EmbeddingsRequest,
        opts: &CallOptions,
    ) -> Result<EmbeddingsResponse> {
        let body = wire::EmbeddingsBody { req, model: &model.upstream };
        let body = serde_json::to_vec(&body)
            .map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
        let resp = self.send(self.urls.embeddings(model)?, body, opts, false).await?;
        let bytes = resp.bytes().await.map_err(|e| http::send_error(&self.name, e))?;
        self.parse_answer(&bytes)
    }

    /// POSTs `body` with this provider's headers; see `http::send_json`.
    async fn send(
        &self,
        url: reqwest::Url,
        body: Vec<u8>,
        opts: &CallOptions,
        sse: bool,
    ) -> Result<reqwest::Response> {
        let mut rb = self.client.post(url);
        for (name, value) in &self.headers {
            rb = rb.header(name.clone(), value.clone());
        }
        http::send_json(&self.name, rb, body, opts, sse, http::error_from_status).await
    }

    /// Parses a success body; an `{"error":…}` object in its place is mapped like a stream error.
    fn parse_answer<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| match wire::error_payload(bytes) {
            Some(err) => stream::stream_error(&self.name, &err),
            None => Error::BadResponse {
                provider: self.name.clone(),
                message: format!("invalid JSON answer: {e}"),
            },
        })
    }
}
