//! JSON Schema (as clients write it for tools and structured output) → Gemini's `Schema`, an
//! OpenAPI 3.0 subset that rejects the keywords it does not know.
//!
//! Rules, in order:
//! - local `$ref`s (`#/$defs/X`, `#/definitions/X`) are inlined, at most [`MAX_DEPTH`] deep (a
//!   recursive schema ends in `{"type":"object"}`); `allOf` members are merged into the schema;
//! - `const: v` → `enum: [v]`; `oneOf` → `anyOf`; `type: [t, "null"]` → `type: t, nullable: true`
//!   (of several non-null types only the first is kept);
//! - `enum` values become strings (Gemini's `enum` is a list of strings);
//! - `format` is kept only where Gemini supports it (`enum`, `date-time`, `int32`, `int64`,
//!   `float`, `double`);
//! - every other keyword is dropped: [`KEPT`] lists what survives. Notably dropped: `$schema`,
//!   `$id`, `$defs`, `definitions`, `additionalProperties`, `patternProperties`,
//!   `unevaluatedProperties`, `not`, `if`/`then`/`else`, `examples`, `strict`, `$comment`.

use serde_json::{Map, Value};

/// Keywords of Gemini's `Schema` that are copied (after conversion of their values).
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "items",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "anyOf",
    "propertyOrdering",
    "default",
    "example",
];

const FORMATS: &[&str] = &["enum", "date-time", "int32", "int64", "float", "double"];

/// How deep `$ref`s are followed.
const MAX_DEPTH: usize = 8;

/// The Gemini form of `schema`.
pub(crate) fn to_gemini(schema: &Value) -> Value {
    let defs = definitions(schema);
    convert(schema, &defs, 0)
}

/// `parameters` of a function declaration: `None` for an object schema without properties, which
/// Gemini refuses ("properties: should be non-empty for OBJECT type").
pub(crate) fn parameters(schema: &Value) -> Option<Value> {
    let out = to_gemini(schema);
    let empty_object =
        out.get("type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("object"))
            && out.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty)
            && out.get("anyOf").is_none();
    (!empty_object).then_some(out)
}

fn definitions(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(m)) = schema.get(key) {
            for (name, def) in m {
                defs.insert(format!("#/{key}/{name}"), def.clone());
            }
        }
    }
    defs
}

fn convert(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Value::Object(src) = schema else {
        // `true` / `false` schemas and anything odd: "anything".
        return Value::Object(Map::new());
    };
    let merged = flatten(src, defs, depth);
    let mut out = Map::new();
    for (key, value) in &merged {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let mut non_null = types.iter().filter(|t| t.as_str() != Some("null"));
                    if let Some(t) = non_null.next() {
                        out.insert("type".into(), t.clone());
                    }
                    if types.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                }
                Value::String(t) if t == "null" => {
                    out.insert("nullable".into(), Value::Bool(true));
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), Value::Array(vec![stringify(value)]));
            }
            "enum" => {
                let values = value.as_array().map(|v| v.iter().map(stringify).collect()).unwrap_or_default();
                out.insert("enum".into(), Value::Array(values));
            }
            "format" if value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                out.insert("format".into(), value.clone());
            }
            "format" => {}
            "properties" => {
                let props = value
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), convert(v, defs, depth + 1))).collect())
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(props));
            }
            "items" => {
                out.insert("items".into(), convert(value, defs, depth + 1));
            }
            "anyOf" | "oneOf" => {
                let alts: Vec<Value> = value
                    .as_array()
                    .map(|v| v.iter().map(|s| convert(s, defs, depth + 1)).collect())
                    .unwrap_or_default();
                out.insert("anyOf".into(), Value::Array(alts));
            }
            k if KEPT.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    if out.get("type").is_none() && out.get("properties").is_some() {
        out.insert("type".into(), Value::String("object".into()));
    }
    Value::Object(out)
}

/// The schema with its `$ref` resolved and its `allOf` members merged in (the schema's own
/// keywords win over those of what it refers to).
fn flatten(src: &Map<String, Value>, defs: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut merged: Map<String, Value> = src
        .iter()
        .filter(|(k, _)| *k != "$ref" && *k != "allOf")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(Value::String(r)) = src.get("$ref") {
        match defs.get(r) {
            Some(Value::Object(target)) if depth < MAX_DEPTH => absorb(&mut merged, target, defs, depth),
            _ => {
                merged.entry("type").or_insert_with(|| Value::String("object".into()));
            }
        }
    }
    if let Some(Value::Array(members)) = src.get("allOf") {
        for m in members {
            if let Value::Object(m) = m {
                absorb(&mut merged, m, defs, depth);
            }
        }
    }
    merged
}

/// Merges `other` (flattened) into `merged`: missing keywords are added, `properties` and
/// `required` are united.
fn absorb(
    merged: &mut Map<String, Value>,
    other: &Map<String, Value>,
    defs: &Map<String, Value>,
    depth: usize,
) {
    for (k, v) in flatten(other, defs, depth + 1) {
        match (merged.get_mut(&k), v) {
            (Some(Value::Object(mine)), Value::Object(theirs)) if k == "properties" => {
                for (name, s) in theirs {
                    mine.entry(name).or_insert(s);
                }
            }
            (Some(Value::Array(mine)), Value::Array(theirs)) if k == "required" => {
                for r in theirs {
                    if !mine.contains(&r) {
                        mine.push(r);
                    }
                }
            }
            (Some(_), _) => {}
            (None, v) => {
                merged.insert(k, v);
            }
        }
    }
}

fn stringify(v: &Value) -> Value {
    match v {
        Value::String(_) => v.clone(),
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejected_keywords_are_stripped_and_refs_inlined() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "format": "hostname", "minLength": 1},
                "when": {"type": ["string", "null"], "format": "date-time"},
                "unit": {"$ref": "#/$defs/Unit", "description": "the unit"},
                "level": {"const": 3},
                "tags": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}
            },
            "required": ["city"],
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "additionalProperties": false}}
        });
        assert_eq!(
            to_gemini(&schema),
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1},
                    "when": {"type": "string", "nullable": true, "format": "date-time"},
                    "unit": {"type": "string", "enum": ["c", "f"], "description": "the unit"},
                    "level": {"enum": ["3"]},
                    "tags": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn recursive_refs_stop_and_all_of_merges() {
        let schema = json!({
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
            "allOf": [{"$ref": "#/$defs/Node"}, {"properties": {"id": {"type": "integer"}}, "required": ["id"]}]
        });
        let out = to_gemini(&schema);
        assert_eq!(out["properties"]["id"], json!({"type": "integer"}));
        assert_eq!(out["required"], json!(["id"]));
        let mut node = &out;
        for _ in 0..MAX_DEPTH + 2 {
            match node.get("properties").and_then(|p| p.get("next")) {
                Some(next) => node = next,
                None => break,
            }
        }
        assert_eq!(node["type"], "object");
    }

    #[test]
    fn object_parameters_without_properties_are_omitted() {
        assert_eq!(parameters(&json!({"type": "object", "properties": {}})), None);
        assert_eq!(parameters(&json!({"type": "object"})), None);
        assert_eq!(
            parameters(&json!({"type": "object", "properties": {"a": {"type": "string"}}})),
            Some(json!({"type": "object", "properties": {"a": {"type": "string"}}}))
        );
    }
}
