//! The `local` provider: GGUF chat models run in-process by gardefou-local. Every model of the
//! provider is loaded when the provider is built (start-up and each reload); a model that cannot
//! be loaded disables the provider, naming the file. Generation runs on a blocking thread, one
//! request at a time per model; a full queue answers 429 at once. A dropped stream or caller
//! stops generation before the next token.
//!
//! Sampling: `temperature`, `top_p`, `seed`, `frequency_penalty` and `presence_penalty` from the
//! OpenAI request, and `top_k`, `min_p` and `repetition_penalty` as extra body fields (as vLLM
//! takes them). A value out of its range is a 400 naming the parameter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream;
use gardefou_core::chat::{
    AssistantMessage, ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta, EmbeddingsRequest,
    EmbeddingsResponse, FinishReason, ResponseFormat, Role, Usage,
};
use gardefou_core::config::{ModelConfig, ProviderConfig};
use gardefou_core::{Error, Result};
use gardefou_local::{Finish, GenerateParams, LocalError, LocalModel, Outcome, Turn};
use tokio::sync::mpsc;

use crate::ChunkStream;

/// Streamed pieces buffered between the generating thread and the client.
const STREAM_BUFFER: usize = 64;
/// What a refused (queue full) caller is told to wait.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Local {
    name: String,
    /// Loaded models, by model name.
    models: HashMap<String, Arc<LocalModel>>,
    /// Loaded embedding models (sentence-transformers folders), by model name.
    embedders: HashMap<String, gardefou_embed::Embedder>,
    /// Numbers the `chatcmpl-local-<n>` ids.
    responses: AtomicU64,
}

impl Local {
    /// Loads every model file of the provider; `Err` names the first that cannot be used.
    pub fn new(cfg: &ProviderConfig) -> std::result::Result<Local, String> {
        let mut models = HashMap::new();
        let mut embedders = HashMap::new();
        for (name, spec) in &cfg.local_models {
            let started = Instant::now();
            if spec.embeddings {
                let e = gardefou_embed::Embedder::load(&spec.path)
                    .map_err(|e| format!("embedding model `{}`: {e}", spec.path.display()))?;
                tracing::info!(
                    provider = %cfg.name,
                    model = %name,
                    folder = %spec.path.display(),
                    dimension = e.dimension(),
                    load_ms = started.elapsed().as_millis() as u64,
                    "local embedding model loaded"
                );
                embedders.insert(name.clone(), e);
                continue;
            }
            let model = LocalModel::load(&spec.path, spec.context_window.map(|c| c as usize))
                .map_err(|e| e.to_string())?;
            tracing::info!(
                provider = %cfg.name,
                model = %name,
                file = %spec.path.display(),
                context = model.context_length(),
                load_ms = started.elapsed().as_millis() as u64,
                "local model loaded"
            );
            models.insert(name.clone(), Arc::new(model));
        }
        Ok(Local { name: cfg.name.clone(), models, embedders, responses: AtomicU64::new(0) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything but messages, the sampling parameters, max tokens, seed and stop.
    pub fn unsupported_params(&self, req: &ChatRequest) -> Vec<&'static str> {
        let mut out = Vec::new();
        if req.n.is_some_and(|n| n > 1) {
            out.push("n");
        }
        if req.tools.is_some() {
            out.push("tools");
        }
        if req.tool_choice.is_some() {
            out.push("tool_choice");
        }
        if req.parallel_tool_calls.is_some() {
            out.push("parallel_tool_calls");
        }
        if req.response_format.as_ref().is_some_and(|f| !matches!(f, ResponseFormat::Text)) {
            out.push("response_format");
        }
        if req.logprobs == Some(true) {
            out.push("logprobs");
        }
        if req.top_logprobs.is_some() {
            out.push("top_logprobs");
        }
        out
    }

    pub async fn chat(&self, model: &ModelConfig, req: &ChatRequest) -> Result<ChatResponse> {
        let (lm, turns, params) = self.prepare(model, req)?;
        let permit = lm.admit().map_err(|e| self.error(e))?;
        let cancel = CancelOnDrop::default();
        let flag = cancel.0.clone();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            let out = permit.model().generate(&turns, &params, &flag, |_| true);
            drop(permit);
            out
        })
        .await
        .map_err(|e| Error::Internal(format!("local generation thread: {e}")))?
        .map_err(|e| self.error(e))?;
        drop(cancel);
        self.log(model, &outcome, started);
        let (id, created) = self.meta();
        Ok(ChatResponse {
            id,
            object: "chat.completion".to_owned(),
            created,
            model: model.upstream.clone(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: Role::Assistant,
                    content: Some(outcome.text.clone()),
                    ..AssistantMessage::default()
                },
                finish_reason: Some(finish_reason(outcome.finish)),
                logprobs: None,
            }],
            usage: Some(usage(&outcome)),
            system_fingerprint: None,
            service_tier: None,
        })
    }

    /// Starts a streamed answer: a role chunk, one chunk per decoded piece, the finish reason,
    /// then the usage. Refusals (queue full, prompt too long) come back here, before the stream.
    pub async fn chat_stream(&self, model: &ModelConfig, req: &ChatRequest) -> Result<ChunkStream> {
        let (lm, turns, params) = self.prepare(model, req)?;
        let prompt = lm.encode_prompt(&turns).map_err(|e| self.error(e))?;
        if prompt.len() >= lm.context_length() {
            let e = LocalError::ContextOverflow { prompt: prompt.len(), limit: lm.context_length() };
            return Err(self.error(e));
        }
        let permit = lm.admit().map_err(|e| self.error(e))?;
        let (id, created) = self.meta();
        let upstream = model.upstream.clone();
        let chunk = move |choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatChunk {
            id: id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created,
            model: upstream.clone(),
            choices,
            usage,
            system_fingerprint: None,
            service_tier: None,
        };
        let delta = |delta: Delta, finish: Option<FinishReason>| {
            vec![ChunkChoice { index: 0, delta, finish_reason: finish, logprobs: None }]
        };
        let (tx, rx) = mpsc::channel::<Result<ChatChunk>>(STREAM_BUFFER);
        let role = Delta { role: Some(Role::Assistant), content: Some(String::new()), ..Delta::default() };
        // The channel is empty: the first chunk always fits.
        let _ = tx.try_send(Ok(chunk(delta(role, None), None)));
        let cancel = CancelOnDrop::default();
        let flag = cancel.0.clone();
        let provider = self.name.clone();
        let model_name = model.name.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let out = permit.model().generate(&turns, &params, &flag, |piece| {
                let d = Delta { content: Some(piece.to_owned()), ..Delta::default() };
                tx.blocking_send(Ok(chunk(delta(d, None), None))).is_ok()
            });
            drop(permit);
            let last = match out {
                Ok(outcome) if outcome.finish == Finish::Cancelled => return,
                Ok(outcome) => {
                    log_speed(&provider, &model_name, &outcome, started);
                    let end = chunk(delta(Delta::default(), Some(finish_reason(outcome.finish))), None);
                    if tx.blocking_send(Ok(end)).is_err() {
                        return;
                    }
                    Ok(chunk(Vec::new(), Some(usage(&outcome))))
                }
                Err(e) => Err(to_error(&provider, e)),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Box::pin(stream::unfold((rx, cancel), |(mut rx, cancel)| async move {
            let item = rx.recv().await?;
            Some((item, (rx, cancel)))
        })))
    }

    /// Embeddings from a local sentence-transformers model (mean pooling over the attention
    /// mask, L2-normalised, as sentence-transformers computes them), on a blocking thread.
    pub async fn embed(&self, model: &ModelConfig, req: &EmbeddingsRequest) -> Result<EmbeddingsResponse> {
        let Some(embedder) = self.embedders.get(&model.name).cloned() else {
            return Err(Error::InvalidRequest {
                message: format!("model `{}` is a local chat model; it does not make embeddings", model.name),
                param: Some("model".to_owned()),
            });
        };
        let invalid =
            |message: String, param: &str| Error::InvalidRequest { message, param: Some(param.to_owned()) };
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(invalid(
                    format!("encoding_format `{other}`: expected `float` or `base64`"),
                    "encoding_format",
                ))
            }
        };
        if let Some(d) = req.dimensions.filter(|d| *d as usize != embedder.dimension()) {
            return Err(invalid(
                format!(
                    "model `{}` makes {}-dimensional vectors; `dimensions` = {d} is not supported",
                    model.name,
                    embedder.dimension()
                ),
                "dimensions",
            ));
        }
        let texts = match &req.input {
            gardefou_core::chat::EmbeddingInput::One(t) => vec![t.clone()],
            gardefou_core::chat::EmbeddingInput::Many(t) => t.clone(),
            _ => {
                return Err(invalid(
                    "a local embedding model takes text input, not token ids".to_owned(),
                    "input",
                ))
            }
        };
        let (vectors, tokens) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let tokens: usize = refs.iter().map(|t| embedder.count_tokens(t).unwrap_or(0)).sum();
            embedder.embed(&refs).map(|v| (v, tokens))
        })
        .await
        .map_err(|e| Error::Internal(format!("the embedding task failed: {e}")))?
        .map_err(|e| Error::Internal(format!("local embedding model `{}`: {e}", model.name)))?;
        let data = vectors
            .into_iter()
            .zip(0..)
            .map(|(v, index)| gardefou_core::chat::Embedding {
                object: "embedding".to_owned(),
                index,
                embedding: if base64 {
                    gardefou_core::chat::EmbeddingVector::Base64(crate::http::f32_base64(&v))
                } else {
                    gardefou_core::chat::EmbeddingVector::Float(v)
                },
            })
            .collect();
        let tokens = tokens as u64;
        Ok(EmbeddingsResponse {
            object: "list".to_owned(),
            data,
            model: model.name.clone(),
            usage: gardefou_core::chat::EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
        })
    }

    fn prepare(
        &self,
        model: &ModelConfig,
        req: &ChatRequest,
    ) -> Result<(Arc<LocalModel>, Vec<Turn>, GenerateParams)> {
        let lm = self.models.get(&model.name).cloned().ok_or_else(|| {
            Error::Unavailable(format!(
                "local model `{}` is not loaded by provider `{}`",
                model.name, self.name
            ))
        })?;
        let turns = req
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System | Role::Developer => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                    Role::Tool | Role::Function => "tool",
                };
                Turn::new(role, m.text_content())
            })
            .collect();
        Ok((lm, turns, params(req)?))
    }

    fn meta(&self) -> (String, u64) {
        let n = self.responses.fetch_add(1, Ordering::Relaxed) + 1;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        (format!("chatcmpl-local-{n}"), created)
    }

    fn error(&self, e: LocalError) -> Error {
        to_error(&self.name, e)
    }

    fn log(&self, model: &ModelConfig, outcome: &Outcome, started: Instant) {
        log_speed(&self.name, &model.name, outcome, started);
    }
}

/// The request's sampling and stopping settings, each checked against its range.
fn params(req: &ChatRequest) -> Result<GenerateParams> {
    let params = GenerateParams {
        temperature: req.temperature.map(f64::from),
        top_p: req.top_p.map(f64::from),
        top_k: top_k(req)?,
        min_p: extra_number(req, "min_p")?,
        repetition_penalty: extra_number(req, "repetition_penalty")?,
        frequency_penalty: req.frequency_penalty.map(f64::from),
        presence_penalty: req.presence_penalty.map(f64::from),
        seed: req.seed.map(|s| s as u64),
        max_tokens: req.max_output_tokens().map(|m| m as usize),
        stop: req.stop_sequences().to_vec(),
    };
    params.validate().map_err(|e| to_error("local", e))?;
    Ok(params)
}

/// `top_k`: a whole number, 0 (or vLLM's -1) for off.
fn top_k(req: &ChatRequest) -> Result<Option<usize>> {
    let Some(v) = req.extra.get("top_k").filter(|v| !v.is_null()) else { return Ok(None) };
    match v.as_i64() {
        Some(-1) => Ok(Some(0)),
        Some(k) if k >= 0 => Ok(Some(usize::try_from(k).unwrap_or(usize::MAX))),
        _ => Err(Error::invalid_param(
            format!("`top_k` must be a whole number ≥ 0 (0 is off); got {v}"),
            "top_k",
        )),
    }
}

/// An optional number among the extra body fields.
fn extra_number(req: &ChatRequest, name: &'static str) -> Result<Option<f64>> {
    match req.extra.get(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::invalid_param(format!("`{name}` must be a number; got {v}"), name)),
    }
}

/// Sets its flag when dropped: the caller (or the stream) went away, generation stops.
#[derive(Default)]
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn to_error(provider: &str, e: LocalError) -> Error {
    match e {
        LocalError::Busy { .. } => Error::RateLimited {
            provider: provider.to_owned(),
            message: e.to_string(),
            retry_after: Some(BUSY_RETRY_AFTER),
        },
        LocalError::ContextOverflow { .. } | LocalError::Template(_) => {
            Error::InvalidRequest { message: e.to_string(), param: Some("messages".to_owned()) }
        }
        LocalError::Param { param, message } => Error::invalid_param(message, param),
        LocalError::Load { .. } => Error::Unavailable(e.to_string()),
        LocalError::Generation(_) => Error::ProviderServer {
            provider: provider.to_owned(),
            status: 500,
            message: e.to_string(),
            retry_after: None,
        },
    }
}

fn finish_reason(finish: Finish) -> FinishReason {
    match finish {
        Finish::Length => FinishReason::Length,
        Finish::Stop | Finish::Cancelled => FinishReason::Stop,
    }
}

fn usage(outcome: &Outcome) -> Usage {
    Usage {
        input: outcome.prompt_tokens as u64,
        output: outcome.completion_tokens as u64,
        ..Usage::default()
    }
}

fn log_speed(provider: &str, model: &str, outcome: &Outcome, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    tracing::debug!(
        provider,
        model,
        prompt_tokens = outcome.prompt_tokens,
        completion_tokens = outcome.completion_tokens,
        tokens_per_second = outcome.completion_tokens as f64 / secs.max(1e-9),
        "local answer generated"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(fields: serde_json::Value) -> ChatRequest {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn local_params_read_openai_fields_and_vllm_extras() {
        let p = params(&request(json!({
            "temperature": 0.5, "top_p": 0.9, "seed": 7, "max_tokens": 12, "stop": ["\n"],
            "frequency_penalty": 0.25, "presence_penalty": -0.5,
            "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1,
        })))
        .unwrap();
        assert_eq!(
            (p.temperature, p.top_p, p.seed, p.max_tokens),
            (Some(0.5), Some(0.9f32 as f64), Some(7), Some(12))
        );
        assert_eq!((p.top_k, p.min_p, p.repetition_penalty), (Some(40), Some(0.05), Some(1.1)));
        assert_eq!((p.frequency_penalty, p.presence_penalty), (Some(0.25), Some(-0.5)));
        assert_eq!(p.stop, ["\n"]);
        assert_eq!(params(&request(json!({"top_k": -1}))).unwrap().top_k, Some(0));
        assert_eq!(params(&request(json!({"top_k": 0}))).unwrap().top_k, Some(0));
    }

    #[test]
    fn local_params_out_of_range_are_400_naming_the_parameter() {
        let cases = [
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"top_p": 0.0}), "top_p"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"top_k": -2}), "top_k"),
            (json!({"top_k": 2.5}), "top_k"),
            (json!({"top_k": "many"}), "top_k"),
            (json!({"min_p": 1.5}), "min_p"),
            (json!({"min_p": "low"}), "min_p"),
            (json!({"repetition_penalty": 0}), "repetition_penalty"),
            (json!({"repetition_penalty": -1.0}), "repetition_penalty"),
            (json!({"frequency_penalty": 3}), "frequency_penalty"),
            (json!({"presence_penalty": -2.5}), "presence_penalty"),
        ];
        for (fields, name) in cases {
            let e = params(&request(fields.clone())).unwrap_err();
            assert_eq!(e.status(), 400, "{fields}: {e}");
            match e {
                Error::InvalidRequest { param, message } => {
                    assert_eq!(param.as_deref(), Some(name), "{fields}: {message}");
                    assert!(message.contains(name), "{message}");
                }
                other => panic!("{fields}: {other:?}"),
            }
        }
    }

    #[test]
    fn local_keeps_the_penalties_and_drops_what_it_cannot_do() {
        let local = Local {
            name: "local".to_owned(),
            models: HashMap::new(),
            embedders: HashMap::new(),
            responses: AtomicU64::new(0),
        };
        let req = request(json!({"frequency_penalty": 0.5, "presence_penalty": 0.5, "logprobs": true}));
        assert_eq!(local.unsupported_params(&req), ["logprobs"]);
    }
}
