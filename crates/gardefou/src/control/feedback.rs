//! Feedback, shared by the API and the CLI: the checks on a posted score (`parse`: name, value,
//! comment, source, each refusal a 400 naming its parameter), the stored row built from a score
//! and its inference (route, model, provider, team and product copied in), and the JSON shape a
//! score is shown in.

use gardefou_core::Error;
use gardefou_store::{Feedback, FeedbackKind, FeedbackSource, InferenceRecord};
use serde_json::{Map, Value};

/// A comment is at most 4 KiB.
pub const MAX_COMMENT: usize = 4 * 1024;
/// A name is 1–64 characters of `[A-Za-z0-9_.-]`.
pub const MAX_NAME: usize = 64;
/// A category is 1–128 characters.
pub const MAX_CATEGORY: usize = 128;
const MAX_INFERENCE_ID: usize = 128;
const FIELDS: [&str; 5] = ["inference_id", "name", "value", "comment", "source"];

/// A posted score, checked, before its inference is looked up.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFeedback {
    pub inference_id: String,
    pub name: String,
    pub kind: FeedbackKind,
    pub value_float: Option<f64>,
    pub value_text: Option<String>,
    pub comment: Option<String>,
    pub source: FeedbackSource,
}

/// Checks the body of `POST /v1/feedback`: `inference_id` and `name` (required), `value` (a
/// boolean, a finite number or a category string; optional when a `comment` is given), `comment`
/// (≤ 4 KiB) and `source` (`user`, the default, or `reviewer`). Unknown fields are refused.
pub fn parse(body: &Map<String, Value>) -> Result<NewFeedback, Error> {
    if let Some(other) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid_param(
            format!("unknown field `{other}`; expected one of {}", FIELDS.join(", ")),
            other.clone(),
        ));
    }
    let text = |field: &'static str| -> Result<Option<&str>, Error> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(Error::invalid_param(format!("`{field}` must be a string"), field)),
        }
    };
    let inference_id = match text("inference_id")?.map(str::trim) {
        Some(id) if !id.is_empty() && id.len() <= MAX_INFERENCE_ID => id.to_owned(),
        Some(_) => {
            return Err(Error::invalid_param(
                format!("`inference_id` must be 1-{MAX_INFERENCE_ID} characters"),
                "inference_id",
            ))
        }
        None => return Err(Error::invalid_param("`inference_id` is required", "inference_id")),
    };
    let name = match text("name")? {
        Some(n) if valid_name(n) => n.to_owned(),
        Some(n) => {
            return Err(Error::invalid_param(
                format!("name `{n}` must be 1-{MAX_NAME} characters of [A-Za-z0-9_.-]"),
                "name",
            ))
        }
        None => return Err(Error::invalid_param("`name` is required (e.g. \"helpful\")", "name")),
    };
    let comment = match text("comment")? {
        Some(c) if c.len() > MAX_COMMENT => {
            return Err(Error::invalid_param(
                format!("`comment` is longer than {MAX_COMMENT} bytes"),
                "comment",
            ))
        }
        Some(c) if !c.trim().is_empty() => Some(c.to_owned()),
        _ => None,
    };
    let source = match text("source")? {
        None => FeedbackSource::User,
        Some(s) => FeedbackSource::parse(s).ok_or_else(|| {
            Error::invalid_param(format!("`source` must be `user` or `reviewer`, got `{s}`"), "source")
        })?,
    };
    let (kind, value_float, value_text) = match body.get("value") {
        None | Some(Value::Null) if comment.is_some() => (FeedbackKind::Comment, None, None),
        None | Some(Value::Null) => {
            return Err(Error::invalid_param(
                "`value` is required (true/false, a number or a category) unless a `comment` is given",
                "value",
            ))
        }
        Some(Value::Bool(b)) => (FeedbackKind::Boolean, Some(if *b { 1.0 } else { 0.0 }), None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => (FeedbackKind::Float, Some(f), None),
            _ => return Err(Error::invalid_param("`value` must be a finite number", "value")),
        },
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_CATEGORY => {
            (FeedbackKind::Category, None, Some(s.clone()))
        }
        Some(Value::String(_)) => {
            return Err(Error::invalid_param(
                format!("a category `value` must be 1-{MAX_CATEGORY} characters"),
                "value",
            ))
        }
        Some(_) => {
            return Err(Error::invalid_param(
                "`value` must be a boolean, a number or a category string",
                "value",
            ))
        }
    };
    Ok(NewFeedback { inference_id, name, kind, value_float, value_text, comment, source })
}

/// 1–64 characters of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// The row to store for `new` on `inference`, posted by `key_id` at `now_ms`.
pub fn to_row(
    new: NewFeedback,
    inference: &InferenceRecord,
    key_id: Option<String>,
    now_ms: i64,
) -> Feedback {
    Feedback {
        id: uuid::Uuid::now_v7().to_string(),
        created_at_ms: now_ms,
        inference_id: new.inference_id,
        name: new.name,
        kind: new.kind,
        value_float: new.value_float,
        value_text: new.value_text,
        comment: new.comment,
        source: new.source,
        key_id,
        route: inference.route.clone(),
        model: inference.model.clone(),
        provider: inference.provider.clone(),
        team: inference.team.clone(),
        product: inference.product.clone(),
    }
}

/// A score as the API and the CLI show it: every stored field, and `value` as posted (a
/// boolean, a number, a category, or null for a comment).
pub fn to_json(f: &Feedback) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("object".to_owned(), Value::from("feedback"));
        obj.insert("value".to_owned(), f.value());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<NewFeedback, Error> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn values_decide_the_kind_and_source_defaults_to_user() {
        let b = p(json!({"inference_id": "i", "name": "helpful", "value": true})).unwrap();
        assert_eq!(
            (b.kind, b.value_float, b.source),
            (FeedbackKind::Boolean, Some(1.0), FeedbackSource::User)
        );
        let f = p(json!({"inference_id": "i", "name": "score", "value": 0.8, "source": "reviewer"})).unwrap();
        assert_eq!(
            (f.kind, f.value_float, f.source),
            (FeedbackKind::Float, Some(0.8), FeedbackSource::Reviewer)
        );
        let c = p(json!({"inference_id": "i", "name": "tone", "value": "friendly"})).unwrap();
        assert_eq!((c.kind, c.value_text.as_deref()), (FeedbackKind::Category, Some("friendly")));
        let m = p(json!({"inference_id": "i", "name": "note", "comment": "too long"})).unwrap();
        assert_eq!(
            (m.kind, m.value_float, m.comment.as_deref()),
            (FeedbackKind::Comment, None, Some("too long"))
        );
    }

    #[test]
    fn bad_bodies_are_a_400_naming_the_field() {
        let long = "x".repeat(MAX_COMMENT + 1);
        for (body, param) in [
            (json!({"name": "helpful", "value": true}), "inference_id"),
            (json!({"inference_id": 7, "name": "helpful", "value": true}), "inference_id"),
            (json!({"inference_id": "i", "value": true}), "name"),
            (json!({"inference_id": "i", "name": "has space", "value": true}), "name"),
            (json!({"inference_id": "i", "name": "x".repeat(65), "value": true}), "name"),
            (json!({"inference_id": "i", "name": "helpful"}), "value"),
            (json!({"inference_id": "i", "name": "helpful", "value": [1]}), "value"),
            (json!({"inference_id": "i", "name": "helpful", "value": ""}), "value"),
            (json!({"inference_id": "i", "name": "helpful", "value": true, "comment": long}), "comment"),
            (json!({"inference_id": "i", "name": "helpful", "value": true, "source": "bot"}), "source"),
            (json!({"inference_id": "i", "name": "helpful", "value": true, "score": 1}), "score"),
        ] {
            let err = p(body.clone()).unwrap_err();
            assert_eq!((err.status(), err.param()), (400, Some(param)), "{body}");
        }
    }
}
