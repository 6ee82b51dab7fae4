//! Embeddings: the Gemini API's `:batchEmbedContents` and Vertex AI's `:predict`, both to and from
//! OpenAI's `/v1/embeddings` shape.
//!
//! - `dimensions` → `outputDimensionality`; `task_type` / `taskType` and `title` in the request's
//!   extra fields are passed on (per request on the Gemini API, per instance on Vertex);
//! - `encoding_format: "base64"` → base64 of the little-endian f32 values, like OpenAI;
//! - usage: Vertex reports `statistics.token_count` per input and those are summed; the Gemini
//!   API reports none, so `prompt_tokens` is estimated as ⌈characters / 4⌉ per input;
//! - token-array inputs are refused: Gemini embeds text only.

use gardefou_core::chat::{
    Embedding, EmbeddingInput, EmbeddingUsage, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse,
};
use gardefou_core::{Error, Result};
use serde_json::{json, Map, Value};

use super::wire::{BatchEmbedRequest, Content, EmbedContentRequest, Part, PredictRequest, Values};

/// The inputs to embed, and whether the client wants base64.
pub(crate) struct Inputs {
    pub texts: Vec<String>,
    pub base64: bool,
}

pub(crate) fn inputs(req: &EmbeddingsRequest) -> Result<Inputs> {
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(Error::invalid_param(
                format!("encoding_format `{other}` is not `float` or `base64`"),
                "encoding_format",
            ))
        }
    };
    let texts = match &req.input {
        EmbeddingInput::One(s) => vec![s.clone()],
        EmbeddingInput::Many(v) => v.clone(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::ManyTokens(_) => {
            return Err(Error::invalid_param("Gemini embeds text, not token arrays", "input"))
        }
    };
    if texts.is_empty() {
        return Err(Error::invalid_param("`input` must not be empty", "input"));
    }
    Ok(Inputs { texts, base64 })
}

fn extra<'a>(req: &'a EmbeddingsRequest, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| req.extra.get(*n))
}

/// The `:batchEmbedContents` body; `model_path` is `models/<upstream>`.
pub(crate) fn gemini_body(req: &EmbeddingsRequest, texts: &[String], model_path: &str) -> BatchEmbedRequest {
    let task_type = extra(req, &["task_type", "taskType"]).cloned();
    let title = extra(req, &["title"]).cloned();
    let requests = texts
        .iter()
        .map(|t| EmbedContentRequest {
            model: model_path.to_owned(),
            content: Content { role: None, parts: vec![Part::text(t.clone())] },
            task_type: task_type.clone(),
            title: title.clone(),
            output_dimensionality: req.dimensions,
        })
        .collect();
    BatchEmbedRequest { requests }
}

/// The Vertex `:predict` body: `instances: [{content}]`, `parameters.outputDimensionality`.
pub(crate) fn vertex_body(req: &EmbeddingsRequest, texts: &[String]) -> PredictRequest {
    let task_type = extra(req, &["task_type", "taskType"]);
    let title = extra(req, &["title"]);
    let instances = texts
        .iter()
        .map(|t| {
            let mut i = Map::new();
            i.insert("content".into(), Value::String(t.clone()));
            if let Some(tt) = task_type {
                i.insert("task_type".into(), tt.clone());
            }
            if let Some(title) = title {
                i.insert("title".into(), title.clone());
            }
            Value::Object(i)
        })
        .collect();
    let parameters = req.dimensions.map(|d| json!({ "outputDimensionality": d }));
    PredictRequest { instances, parameters }
}

/// The canonical answer for `vectors`, one per input text, in order.
pub(crate) fn response(
    vectors: Vec<Values>,
    inputs: &Inputs,
    model: &str,
    provider: &str,
) -> Result<EmbeddingsResponse> {
    if vectors.len() != inputs.texts.len() {
        return Err(Error::BadResponse {
            provider: provider.to_owned(),
            message: format!("{} embeddings for {} inputs", vectors.len(), inputs.texts.len()),
        });
    }
    let mut tokens = 0u64;
    let mut data = Vec::with_capacity(vectors.len());
    for ((v, text), index) in vectors.into_iter().zip(&inputs.texts).zip(0..) {
        tokens += match v.statistics.as_ref().and_then(|s| s.token_count) {
            Some(n) if n.is_finite() && n >= 0.0 => n as u64,
            _ => estimate_tokens(text),
        };
        let embedding = if inputs.base64 {
            EmbeddingVector::Base64(crate::http::f32_base64(&v.values))
        } else {
            EmbeddingVector::Float(v.values)
        };
        data.push(Embedding { object: "embedding".to_owned(), index, embedding });
    }
    Ok(EmbeddingsResponse {
        object: "list".to_owned(),
        data,
        model: model.to_owned(),
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    })
}

/// ⌈characters / 4⌉, the usual rule of thumb for English text.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_estimates() {
        assert_eq!(crate::http::f32_base64(&[1.0]), "AACAPw==");
        assert_eq!(crate::http::f32_base64(&[1.0, -2.5]), "AACAPwAAIMA=");
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("héllo"), 2);
    }
}
