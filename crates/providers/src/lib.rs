//! gardefou-providers: one adapter per upstream API behind `enum Provider`, the only `match` on
//! provider kinds. OpenAI-compatible vendors and Azure OpenAI are settings of the OpenAI adapter;
//! `mock` is a scripted in-process model for demos, tests and benchmarks; `local` runs GGUF models
//! in-process.

pub mod anthropic;
pub mod gemini;
pub mod http;
#[cfg(feature = "local")]
pub mod local;
pub mod mock;
pub mod openai;
pub mod sse;

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use gardefou_core::chat::{ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use gardefou_core::config::{ModelConfig, ProviderConfig, ProviderKind};
use gardefou_core::Result;

/// The chunks of a streamed answer. An `Err` item ends the stream: the upstream broke off or sent
/// an error event; the client must see it, never a silently shortened answer.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk>> + Send>>;

/// Per-call settings the pipeline hands to an adapter.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// How long to wait for the upstream's response headers (connect included).
    pub first_byte_timeout: Option<Duration>,
    /// Extra headers for the upstream request (e.g. `traceparent`).
    pub headers: Vec<(String, String)>,
}

/// A configured upstream, ready to call.
pub enum Provider {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
    Mock(mock::Mock),
    #[cfg(feature = "local")]
    Local(local::Local),
}

impl Provider {
    /// Builds the adapter, resolving its secret references. An `Err` means the provider cannot be
    /// used (e.g. its API key is not set); the reason names the reference, never a value.
    /// `connect_timeout` applies to new upstream connections.
    pub fn build(cfg: &ProviderConfig, connect_timeout: Duration) -> std::result::Result<Provider, String> {
        Ok(match cfg.kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Azure => {
                Provider::OpenAi(openai::OpenAi::new(cfg, connect_timeout)?)
            }
            ProviderKind::Anthropic => Provider::Anthropic(anthropic::Anthropic::new(cfg, connect_timeout)?),
            ProviderKind::Gemini | ProviderKind::Vertex => {
                Provider::Gemini(gemini::Gemini::new(cfg, connect_timeout)?)
            }
            ProviderKind::Mock => Provider::Mock(mock::Mock::new(cfg)),
            #[cfg(feature = "local")]
            ProviderKind::Local => Provider::Local(local::Local::new(cfg)?),
            #[cfg(not(feature = "local"))]
            ProviderKind::Local => {
                return Err(
                    "this gardefou was built without local models (the `local-models` feature)".to_owned()
                )
            }
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Provider::OpenAi(p) => p.name(),
            Provider::Anthropic(p) => p.name(),
            Provider::Gemini(p) => p.name(),
            Provider::Mock(p) => p.name(),
            #[cfg(feature = "local")]
            Provider::Local(p) => p.name(),
        }
    }

    /// Request parameters the provider lacks: the route drops them (and says so in a response
    /// header) or rejects the request naming them.
    pub fn unsupported_params(&self, req: &ChatRequest) -> Vec<&'static str> {
        match self {
            Provider::Anthropic(p) => p.unsupported_params(req),
            Provider::Gemini(p) => p.unsupported_params(req),
            Provider::OpenAi(p) => p.unsupported_params(req),
            Provider::Mock(_) => Vec::new(),
            #[cfg(feature = "local")]
            Provider::Local(p) => p.unsupported_params(req),
        }
    }

    /// Whether streamed answers end with a usage chunk; if not, gardefou counts the tokens.
    pub fn reports_stream_usage(&self) -> bool {
        match self {
            Provider::OpenAi(p) => p.reports_stream_usage(),
            Provider::Anthropic(_) | Provider::Gemini(_) | Provider::Mock(_) => true,
            #[cfg(feature = "local")]
            Provider::Local(_) => true,
        }
    }

    pub async fn chat(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChatResponse> {
        match self {
            Provider::OpenAi(p) => p.chat(model, req, opts).await,
            Provider::Anthropic(p) => p.chat(model, req, opts).await,
            Provider::Gemini(p) => p.chat(model, req, opts).await,
            Provider::Mock(p) => p.chat(model, req).await,
            #[cfg(feature = "local")]
            Provider::Local(p) => p.chat(model, req).await,
        }
    }

    /// Starts a streamed answer; resolves once the upstream accepted the request.
    pub async fn chat_stream(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
        opts: &CallOptions,
    ) -> Result<ChunkStream> {
        match self {
            Provider::OpenAi(p) => p.chat_stream(model, req, opts).await,
            Provider::Anthropic(p) => p.chat_stream(model, req, opts).await,
            Provider::Gemini(p) => p.chat_stream(model, req, opts).await,
            Provider::Mock(p) => p.chat_stream(model, req).await,
            #[cfg(feature = "local")]
            Provider::Local(p) => p.chat_stream(model, req).await,
        }
    }

    pub async fn embed(
        &self,
        model: &ModelConfig,
        req: &EmbeddingsRequest,
        opts: &CallOptions,
    ) -> Result<EmbeddingsResponse> {
        match self {
            Provider::OpenAi(p) => p.embed(model, req, opts).await,
            Provider::Anthropic(p) => p.embed(model, req, opts).await,
            Provider::Gemini(p) => p.embed(model, req, opts).await,
            Provider::Mock(p) => p.embed(model, req).await,
            #[cfg(feature = "local")]
            Provider::Local(p) => p.embed(model, req).await,
        }
    }
}
