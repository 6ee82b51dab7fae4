//! The Gemini adapter: Google's Gemini API (`kind = "gemini"`) and Gemini on Vertex AI
//! (`kind = "vertex"`). Both take the same `generateContent` body at the same paths under their
//! base URL; they differ in base URL, credentials and the embeddings method.
//!
//! | kind | base URL | auth | embeddings |
//! |---|---|---|---|
//! | `gemini` | `https://generativelanguage.googleapis.com/v1beta` (or `…/{api_version}`) | `x-goog-api-key: <api_key>` | `:batchEmbedContents` |
//! | `vertex` | required, e.g. `https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/L/publishers/google` | `Authorization: Bearer <api_key>` | `:predict` |
//!
//! Paths: `{base}/models/{upstream}:generateContent`, `…:streamGenerateContent?alt=sse`. The key
//! is never put in the URL, so it never lands in a log line. An upstream name with a `/`
//! (`models/x`, `tunedModels/y`) is used as the path as it is.
//!
//! On Vertex, `api_key` refers to an OAuth access token, which lives an hour: point it at a file
//! that a sidecar refreshes (`api_key = "file:/var/run/gcp/token"`, e.g. written by
//! `gcloud auth print-access-token` on a timer or by a metadata-server agent). The reference is
//! read again on every call, so a refreshed token is used without a config reload. A configured
//! `Authorization` (Vertex) or `x-goog-api-key` (Gemini) header replaces `api_key`.

mod answer;
mod convert;
mod embed;
mod error;
mod schema;
mod stream;
mod wire;

use std::time::Duration;

use gardefou_core::chat::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use gardefou_core::config::{ModelConfig, ProviderConfig, ProviderKind, SecretRef};
use gardefou_core::{Error, Result};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{http, CallOptions, ChunkStream};

const GOOGLE_AI_HOST: &str = "https://generativelanguage.googleapis.com";
const DEFAULT_API_VERSION: &str = "v1beta";
const API_KEY_HEADER: &str = "x-goog-api-key";
/// One configured Gemini API or Vertex AI upstream.
pub struct Gemini {
    name: String,
    client: reqwest::Client,
    /// Without a trailing `/`.
    base: String,
    vertex: bool,
    auth: Auth,
    /// Configured headers, values marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
}

enum Auth {
    /// Sent as it is on every call; `None` when a configured header authenticates.
    Fixed(Option<(HeaderName, HeaderValue)>),
    /// Vertex: the access token, read from its reference on every call.
    Token(SecretRef),
}

impl Gemini {
    /// Builds the adapter. `Err` (naming the secret reference, never a value) when a secret cannot
    /// be read, when there is no credential at all, or when a Vertex provider has no base_url.
    pub fn new(cfg: &ProviderConfig, connect_timeout: Duration) -> std::result::Result<Gemini, String> {
        let vertex = cfg.kind == ProviderKind::Vertex;
        let base = match (&cfg.base_url, vertex) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, true) => {
                return Err("a `vertex` provider needs a base_url, e.g. https://us-central1-aiplatform.googleapis.com/v1/projects/P/locations/L/publishers/google".to_owned())
            }
            (None, false) => {
                format!("{GOOGLE_AI_HOST}/{}", cfg.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION))
            }
        };
        let mut headers = Vec::with_capacity(cfg.headers.len());
        for (name, secret) in &cfg.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            let value = secret.resolve()?;
            headers
                .push((name.clone(), http::sensitive(value.expose(), &format!("header {name} ({secret})"))?));
        }
        let auth_header = if vertex { AUTHORIZATION } else { HeaderName::from_static(API_KEY_HEADER) };
        let configured = headers.iter().any(|(h, _)| *h == auth_header);
        let auth = match &cfg.api_key {
            _ if configured => Auth::Fixed(None),
            Some(key_ref) => {
                // Resolved now even on Vertex, so that a missing token disables the provider at once.
                let key = key_ref.resolve()?;
                let what = format!("api_key ({key_ref})");
                if vertex {
                    http::sensitive(&format!("Bearer {}", key.expose()), &what)?;
                    Auth::Token(key_ref.clone())
                } else {
                    Auth::Fixed(Some((auth_header, http::sensitive(key.expose(), &what)?)))
                }
            }
            None => return Err(format!("a `{}` provider needs an api_key", cfg.kind.as_str())),
        };
        Ok(Gemini {
            name: cfg.name.clone(),
            client: http::client(connect_timeout)?,
            base,
            vertex,
            auth,
            headers,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Request parameters Gemini lacks (dropped, or rejected per the route's policy):
    /// `parallel_tool_calls: false`, `top_logprobs` over 20, `user`, and OpenAI-only fields such
    /// as `logit_bias`, `prediction`, `audio`, `service_tier`, `store`.
    pub fn unsupported_params(&self, req: &ChatRequest) -> Vec<&'static str> {
        convert::unsupported_params(req)
    }

    pub async fn chat(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChatResponse> {
        let body = encode(&convert::to_wire(req)?)?;
        let resp = self.send(&self.url(model, "generateContent"), body, opts, false).await?;
        let bytes = resp.bytes().await.map_err(|e| http::send_error(&self.name, e))?;
        answer::from_wire(self.parse(&bytes)?, &model.upstream, &self.name)
    }

    /// Resolves once the upstream answered with a success status; the stream yields its chunks.
    pub async fn chat_stream(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChunkStream> {
        let body = encode(&convert::to_wire(req)?)?;
        let url = format!("{}?alt=sse", self.url(model, "streamGenerateContent"));
        let resp = self.send(&url, body, opts, true).await?;
        Ok(stream::chunks(&self.name, &model.upstream, resp.bytes_stream()))
    }

    pub async fn embed(
        &self,
        model: &ModelConfig,
        req: &EmbeddingsRequest,
        opts: &CallOptions,
    ) -> Result<EmbeddingsResponse> {
        let inputs = embed::inputs(req)?;
        let vectors = if self.vertex {
            let body = encode(&embed::vertex_body(req, &inputs.texts))?;
            let resp = self.send(&self.url(model, "predict"), body, opts, false).await?;
            let bytes = resp.bytes().await.map_err(|e| http::send_error(&self.name, e))?;
            let answer: wire::PredictResponse = self.parse(&bytes)?;
            answer.predictions.into_iter().map(|p| p.embeddings).collect()
        } else {
            let body = encode(&embed::gemini_body(req, &inputs.texts, &model_path(&model.upstream)))?;
            let resp = self.send(&self.url(model, "batchEmbedContents"), body, opts, false).await?;
            let bytes = resp.bytes().await.map_err(|e| http::send_error(&self.name, e))?;
            let answer: wire::BatchEmbedResponse = self.parse(&bytes)?;
            answer.embeddings
        };
        embed::response(vectors, &inputs, &model.upstream, &self.name)
    }

    /// `{base}/models/{upstream}:{method}`.
    fn url(&self, model: &ModelConfig, method: &str) -> String {
        format!("{}/{}:{method}", self.base, model_path(&model.upstream))
    }

    fn auth(&self) -> Result<Option<(HeaderName, HeaderValue)>> {
        match &self.auth {
            Auth::Fixed(h) => Ok(h.clone()),
            Auth::Token(key_ref) => {
                let value = key_ref.resolve().and_then(|t| {
                    http::sensitive(&format!("Bearer {}", t.expose()), &format!("api_key ({key_ref})"))
                });
                match value {
                    Ok(v) => Ok(Some((AUTHORIZATION, v))),
                    Err(reason) => {
                        tracing::warn!(provider = %self.name, %reason, "cannot read the Vertex access token");
                        Err(Error::ProviderAuth { provider: self.name.clone(), status: 401 })
                    }
                }
            }
        }
    }

    /// POSTs `body` with this provider's auth and headers; see `http::send_json`.
    async fn send(
        &self,
        url: &str,
        body: Vec<u8>,
        opts: &CallOptions,
        sse: bool,
    ) -> Result<reqwest::Response> {
        let mut rb = self.client.post(url);
        if let Some((name, value)) = self.auth()? {
            rb = rb.header(name, value);
        }
        for (name, value) in &self.headers {
            rb = rb.header(name.clone(), value.clone());
        }
        http::send_json(&self.name, rb, body, opts, sse, error::from_status).await
    }

    /// Parses a success body; an `{"error":…}` object in its place is mapped like a stream error.
    fn parse<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let bad = |e: serde_json::Error| Error::BadResponse {
            provider: self.name.clone(),
            message: format!("invalid JSON answer: {e}"),
        };
        let value: Value = serde_json::from_slice(bytes).map_err(bad)?;
        if let Some(err) = value.get("error") {
            return Err(error::from_object(&self.name, err));
        }
        serde_json::from_value(value).map_err(bad)
    }
}

/// `models/<upstream>`, or the upstream name itself when it already is a resource path.
fn model_path(upstream: &str) -> String {
    if upstream.contains('/') {
        upstream.to_owned()
    } else {
        format!("models/{upstream}")
    }
}

fn encode<T: serde::Serialize>(body: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))
}
