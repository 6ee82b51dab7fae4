//! The `mock` provider: a scripted in-process model for demos, tests and benchmarks. Each model's
//! `mock` settings choose how it behaves: a polite model (text, tool calls, JSON mode, limits),
//! echo, fixed text, upstream-like failures, a hang, a broken stream or garbage.
//!
//! One call goes: decide the behaviour (`fail_times` counts calls per model), wait for the first
//! byte (`latency`, on tokio's clock), then plan the answer (`answer`) and hand it back whole or
//! as chunks (`stream`). Embeddings come from `embed`; tool arguments and structured output from
//! `schema`.

mod answer;
mod embed;
mod schema;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gardefou_core::chat::{ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse};
use gardefou_core::config::{MockMode, MockSettings, ModelConfig, ProviderConfig};
use gardefou_core::{Error, Result};

use self::answer::{Answer, Script};
use self::stream::Meta;
use crate::ChunkStream;

/// A mock provider. Its counters live as long as the provider: a config reload that rebuilds it
/// starts `fail_times` over.
#[derive(Debug)]
pub struct Mock {
    name: String,
    /// Latency before the first byte for models that do not set their own.
    latency: Duration,
    /// Calls so far per model name, for `fail_times`.
    calls: Mutex<HashMap<String, u32>>,
    /// Numbers the `chatcmpl-mock-<n>` ids.
    responses: AtomicU64,
    /// Numbers the `call_mock_<n>` tool-call ids.
    tool_calls: AtomicU64,
}

/// What one call does, `fail_times` taken into account.
#[derive(Debug, Clone, Copy)]
enum Behaviour<'a> {
    Answer(Script<'a>),
    Fail,
    Hang,
    BreakStream,
    Garbage,
}

impl Mock {
    pub fn new(cfg: &ProviderConfig) -> Mock {
        Mock {
            name: cfg.name.clone(),
            latency: cfg.latency,
            calls: Mutex::new(HashMap::new()),
            responses: AtomicU64::new(0),
            tool_calls: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn chat(&self, model: &ModelConfig, req: &ChatRequest) -> Result<ChatResponse> {
        let behaviour = self.behaviour(model);
        self.first_byte(model, behaviour).await?;
        let script = match behaviour {
            Behaviour::Answer(script) => script,
            Behaviour::BreakStream => return Err(self.connect_error("connection reset")),
            Behaviour::Garbage => return Err(self.bad_response("response is not valid JSON")),
            Behaviour::Fail | Behaviour::Hang => {
                return Err(Error::Internal("mock behaviour ended early".into()))
            }
        };
        let answer = self.plan(script, req)?;
        let meta = self.meta(model);
        Ok(ChatResponse {
            id: meta.id,
            object: "chat.completion".to_owned(),
            created: meta.created,
            model: meta.model,
            choices: answer.choices(),
            usage: Some(answer.usage),
            system_fingerprint: None,
            service_tier: None,
        })
    }

    /// Starts a streamed answer. Failures (`fail`, `hang`, a rejected request) happen here, before
    /// the stream starts; `break_stream` and `garbage` fail inside the stream.
    pub async fn chat_stream(&self, model: &ModelConfig, req: &ChatRequest) -> Result<ChunkStream> {
        let behaviour = self.behaviour(model);
        self.first_byte(model, behaviour).await?;
        let script = match behaviour {
            Behaviour::Answer(script) => script,
            Behaviour::BreakStream | Behaviour::Garbage => Script::Polite,
            Behaviour::Fail | Behaviour::Hang => {
                return Err(Error::Internal("mock behaviour ended early".into()))
            }
        };
        let all = stream::chunks(&self.plan(script, req)?, &self.meta(model));
        let items: Vec<Result<_>> = match behaviour {
            Behaviour::BreakStream => {
                let kept = stream::broken(all, model.mock.break_after);
                kept.into_iter().map(Ok).chain([Err(stream::closed_early(&self.name))]).collect()
            }
            Behaviour::Garbage => {
                let first = all.into_iter().take(1).map(Ok);
                first.chain([Err(self.bad_response("stream event is not valid JSON"))]).collect()
            }
            _ => all.into_iter().map(Ok).collect(),
        };
        Ok(stream::paced(items, model.mock.chunk_delay))
    }

    pub async fn embed(&self, model: &ModelConfig, req: &EmbeddingsRequest) -> Result<EmbeddingsResponse> {
        let behaviour = self.behaviour(model);
        self.first_byte(model, behaviour).await?;
        match behaviour {
            Behaviour::Answer(_) => embed::embed(req, &model.upstream, &self.name),
            Behaviour::BreakStream => Err(self.connect_error("connection reset")),
            Behaviour::Garbage => Err(self.bad_response("response is not valid JSON")),
            Behaviour::Fail | Behaviour::Hang => Err(Error::Internal("mock behaviour ended early".into())),
        }
    }

    /// The behaviour of this call: `fail` with `fail_times = n` fails the model's first n calls,
    /// then answers politely.
    fn behaviour<'m>(&self, model: &'m ModelConfig) -> Behaviour<'m> {
        let mock = &model.mock;
        match mock.mode {
            MockMode::Polite => Behaviour::Answer(Script::Polite),
            MockMode::Echo => Behaviour::Answer(Script::Echo),
            MockMode::Fixed => Behaviour::Answer(Script::Fixed(mock.text.as_deref().unwrap_or("OK"))),
            MockMode::Fail => match mock.fail_times {
                Some(times) if self.count_call(&model.name) >= times => Behaviour::Answer(Script::Polite),
                _ => Behaviour::Fail,
            },
            MockMode::Hang => Behaviour::Hang,
            MockMode::BreakStream => Behaviour::BreakStream,
            MockMode::Garbage => Behaviour::Garbage,
        }
    }

    /// Counts a call of `model`; returns how many calls came before it.
    fn count_call(&self, model: &str) -> u32 {
        // A panic elsewhere cannot leave a plain counter map inconsistent: keep counting.
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        match calls.get_mut(model) {
            Some(count) => {
                let before = *count;
                *count = count.saturating_add(1);
                before
            }
            None => {
                calls.insert(model.to_owned(), 1);
                0
            }
        }
    }

    /// Waits as an upstream would before its first byte: the model's latency, else the
    /// provider's. A hanging model never gets there; a failing one fails then.
    async fn first_byte(&self, model: &ModelConfig, behaviour: Behaviour<'_>) -> Result<()> {
        if let Behaviour::Hang = behaviour {
            std::future::pending::<()>().await;
        }
        let latency = model.mock.latency.unwrap_or(self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match behaviour {
            Behaviour::Fail => Err(self.failure(&model.mock)),
            _ => Ok(()),
        }
    }

    /// The error an upstream answering `settings.status` would produce.
    fn failure(&self, settings: &MockSettings) -> Error {
        let provider = self.name.clone();
        let status = settings.status;
        let retry_after = settings.retry_after;
        match status {
            429 => {
                Error::RateLimited { provider, message: "rate limit reached (mock)".to_owned(), retry_after }
            }
            401 | 403 => Error::ProviderAuth { provider, status },
            504 => Error::Timeout { provider, phase: "first byte" },
            500..=599 => {
                let message = format!("mock upstream failed with status {status}");
                Error::ProviderServer { provider, status, message, retry_after }
            }
            _ => {
                let message = format!("mock upstream rejected the request with status {status}");
                Error::ProviderRejected { provider, status, message }
            }
        }
    }

    fn plan(&self, script: Script<'_>, req: &ChatRequest) -> Result<Answer> {
        answer::plan(script, req, &self.tool_calls, &self.name)
    }

    fn meta(&self, model: &ModelConfig) -> Meta {
        let n = self.responses.fetch_add(1, Ordering::Relaxed) + 1;
        Meta { id: format!("chatcmpl-mock-{n}"), created: unix_now(), model: model.upstream.clone() }
    }

    fn connect_error(&self, message: &str) -> Error {
        Error::Connect { provider: self.name.clone(), message: message.to_owned() }
    }

    fn bad_response(&self, message: &str) -> Error {
        Error::BadResponse { provider: self.name.clone(), message: message.to_owned() }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
