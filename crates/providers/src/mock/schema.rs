//! Example values generated from a JSON schema: the arguments of the mock's tool calls and its
//! structured-output answers. The value fits the schema for the subset models are given in
//! practice (types, `required`, `enum`, `const`, formats, bounds, `anyOf`/`oneOf`, local `$ref`).

use serde_json::{Map, Number, Value};

/// Below this depth optional properties are left out and arrays hold only their `minItems`, so
/// that recursive schemas (a tree node whose children are nodes) end.
const SHALLOW: usize = 6;
/// Past this depth the generator gives up and answers `null`.
const MAX_DEPTH: usize = 32;

/// An example value for `schema`; `root` resolves local references (`#/$defs/…`).
pub(super) fn example(schema: &Value) -> Value {
    Generator { root: schema }.value(schema, 0)
}

struct Generator<'a> {
    root: &'a Value,
}

impl Generator<'_> {
    fn value(&self, schema: &Value, depth: usize) -> Value {
        let Some(s) = schema.as_object() else {
            // `true` (anything goes) or `false` (nothing does): a plain string is as good as any.
            return Value::String("example".to_owned());
        };
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(first) = s.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
            return first.clone();
        }
        if let Some(target) = s.get("$ref").and_then(Value::as_str) {
            return match target.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                Some(def) => self.value(def, depth + 1),
                None => Value::Null,
            };
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|v| v.first()) {
                return self.value(first, depth + 1);
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            return self.all_of(s, all, depth);
        }
        match type_of(s) {
            "object" => Value::Object(self.object(s, depth)),
            "array" => self.array(s, depth),
            "string" => Value::String(string(s)),
            "integer" => Value::Number(integer(s).into()),
            "number" => Number::from_f64(number(s)).map_or(Value::Null, Value::Number),
            "boolean" => Value::Bool(true),
            "null" => Value::Null,
            _ => Value::String("example".to_owned()),
        }
    }

    fn object(&self, s: &Map<String, Value>, depth: usize) -> Map<String, Value> {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                if depth < SHALLOW || required.contains(&name.as_str()) {
                    out.insert(name.clone(), self.value(prop, depth + 1));
                }
            }
        }
        for name in required {
            if !out.contains_key(name) {
                out.insert(name.to_owned(), Value::String("example".to_owned()));
            }
        }
        out
    }

    fn array(&self, s: &Map<String, Value>, depth: usize) -> Value {
        let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let count = if depth < SHALLOW { min.max(1) } else { min };
        // A tuple (`prefixItems`, or `items` as an array in older drafts): one value per position.
        let tuple = s.get("prefixItems").or_else(|| s.get("items").filter(|i| i.is_array()));
        if let Some(positions) = tuple.and_then(Value::as_array) {
            return Value::Array(positions.iter().map(|p| self.value(p, depth + 1)).collect());
        }
        let item = s.get("items").cloned().unwrap_or(Value::Bool(true));
        Value::Array((0..count).map(|_| self.value(&item, depth + 1)).collect())
    }

    /// `allOf`: the parts' objects merged, or the first part when they are not objects.
    fn all_of(&self, s: &Map<String, Value>, all: &[Value], depth: usize) -> Value {
        let mut merged = if type_of(s) == "object" { self.object(s, depth) } else { Map::new() };
        for part in all {
            match self.value(part, depth + 1) {
                Value::Object(fields) => merged.extend(fields),
                other if merged.is_empty() => return other,
                _ => {}
            }
        }
        Value::Object(merged)
    }
}

/// The schema's type: the first non-null one of a list, or guessed from the keywords present.
fn type_of(s: &Map<String, Value>) -> &str {
    match s.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(types)) => {
            let mut names = types.iter().filter_map(Value::as_str);
            let first = names.clone().next().unwrap_or("null");
            names.find(|t| *t != "null").unwrap_or(first)
        }
        _ if s.contains_key("properties") || s.contains_key("required") => "object",
        _ if s.contains_key("items") || s.contains_key("prefixItems") => "array",
        _ => "",
    }
}

fn string(s: &Map<String, Value>) -> String {
    let format = s.get("format").and_then(Value::as_str).unwrap_or("");
    let mut text = match format {
        "date" => "2024-01-15",
        "date-time" => "2024-01-15T09:30:00Z",
        "time" => "09:30:00",
        "duration" => "P1D",
        "email" | "idn-email" => "user@example.com",
        "uri" | "url" | "iri" => "https://example.com",
        "uri-reference" | "iri-reference" => "/example",
        "hostname" | "idn-hostname" => "example.com",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "uuid" => "123e4567-e89b-42d3-a456-426614174000",
        _ => "example",
    }
    .to_owned();
    if format.is_empty() {
        let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = s.get("maxLength").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
        while text.len() < min {
            text.push('x');
        }
        text.truncate(max);
    }
    text
}

/// 1, moved inside the schema's bounds.
fn integer(s: &Map<String, Value>) -> i64 {
    let bound = |key: &str| s.get(key).and_then(Value::as_f64);
    let mut v = 1_i64;
    if let Some(min) = bound("minimum") {
        v = v.max(min.ceil() as i64);
    }
    if let Some(min) = bound("exclusiveMinimum") {
        v = v.max(min.floor() as i64 + 1);
    }
    if let Some(max) = bound("maximum") {
        v = v.min(max.floor() as i64);
    }
    if let Some(max) = bound("exclusiveMaximum") {
        v = v.min(max.ceil() as i64 - 1);
    }
    v
}

/// 1.5, moved inside the schema's bounds.
fn number(s: &Map<String, Value>) -> f64 {
    let bound = |key: &str| s.get(key).and_then(Value::as_f64);
    let mut v = 1.5_f64;
    if let Some(min) = bound("minimum") {
        v = v.max(min);
    }
    if let Some(min) = bound("exclusiveMinimum") {
        if v <= min {
            v = min + 0.5;
        }
    }
    if let Some(max) = bound("maximum") {
        v = v.min(max);
    }
    if let Some(max) = bound("exclusiveMaximum") {
        if v >= max {
            v = max - 0.5;
        }
    }
    v
}

/// A hand-written check of the schema subset the generator covers, for the mock's tests.
#[cfg(test)]
pub(super) fn check(value: &Value, schema: &Value) -> Result<(), String> {
    check_at(value, schema, schema, "$")
}

#[cfg(test)]
fn check_at(value: &Value, schema: &Value, root: &Value, at: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else { return Ok(()) };
    if let Some(c) = s.get("const") {
        return if c == value { Ok(()) } else { Err(format!("{at}: {value} is not the const {c}")) };
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        return if e.contains(value) { Ok(()) } else { Err(format!("{at}: {value} is not in the enum")) };
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let def = root.pointer(r.trim_start_matches('#')).ok_or(format!("{at}: unresolved {r}"))?;
        return check_at(value, def, root, at);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = s.get(key).and_then(Value::as_array) {
            return match options.iter().any(|o| check_at(value, o, root, at).is_ok()) {
                true => Ok(()),
                false => Err(format!("{at}: {value} fits none of {key}")),
            };
        }
    }
    for part in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        check_at(value, part, root, at)?;
    }
    let fits = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    let ok = match s.get("type") {
        Some(Value::String(t)) => fits(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(fits),
        _ => true,
    };
    if !ok {
        return Err(format!("{at}: {value} does not have type {}", s["type"]));
    }
    if let Some(obj) = value.as_object() {
        for key in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !obj.contains_key(key) {
                return Err(format!("{at}: required `{key}` is missing"));
            }
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, v) in obj {
                if let Some(p) = props.get(k) {
                    check_at(v, p, root, &format!("{at}.{k}"))?;
                } else if s.get("additionalProperties") == Some(&Value::Bool(false)) {
                    return Err(format!("{at}: unexpected property `{k}`"));
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check_at(v, items, root, &format!("{at}[{i}]"))?;
        }
    }
    if let (Some(n), Some(min)) = (value.as_f64(), s.get("minimum").and_then(Value::as_f64)) {
        if n < min {
            return Err(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let (Some(n), Some(max)) = (value.as_f64(), s.get("maximum").and_then(Value::as_f64)) {
        if n > max {
            return Err(format!("{at}: {n} is above the maximum {max}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn weather_tool_arguments_fit_their_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 3, "maximum": 10},
                "detailed": {"type": "boolean"}
            },
            "required": ["city", "unit"],
            "additionalProperties": false
        });
        let v = example(&schema);
        check(&v, &schema).unwrap();
        assert_eq!(v, json!({"city": "example", "unit": "celsius", "days": 3, "detailed": true}));
    }

    #[test]
    fn scalars_follow_type_format_and_bounds() {
        assert_eq!(example(&json!({"type": "string", "format": "date"})), "2024-01-15");
        assert_eq!(example(&json!({"type": "string", "format": "email"})), "user@example.com");
        assert_eq!(example(&json!({"type": "string", "format": "uri"})), "https://example.com");
        assert_eq!(example(&json!({"type": "string", "minLength": 10})), "examplexxx");
        assert_eq!(example(&json!({"type": "string", "maxLength": 3})), "exa");
        assert_eq!(example(&json!({"type": "integer"})), 1);
        assert_eq!(example(&json!({"type": "integer", "exclusiveMaximum": 0})), -1);
        assert_eq!(example(&json!({"type": "number"})), 1.5);
        assert_eq!(example(&json!({"type": "number", "minimum": 2.25})), 2.25);
        assert_eq!(example(&json!({"type": "boolean"})), true);
        assert_eq!(example(&json!({"type": ["null", "string"]})), "example");
        assert_eq!(example(&json!({"type": "null"})), Value::Null);
        assert_eq!(example(&json!({"const": "v1"})), "v1");
        assert_eq!(example(&json!({"enum": [3, 4]})), 3);
    }

    #[test]
    fn nested_objects_arrays_and_unions_fit() {
        let schema = json!({
            "type": "object",
            "properties": {
                "order": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "lines": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                            "required": ["sku", "qty"]
                        }},
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "kind": {"oneOf": [{"const": "retail"}, {"const": "wholesale"}]}
                    },
                    "required": ["id", "lines", "note", "kind"]
                },
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}
            },
            "required": ["order"]
        });
        let v = example(&schema);
        check(&v, &schema).unwrap();
        assert_eq!(v["order"]["lines"][0], json!({"sku": "example", "qty": 1}));
        assert_eq!(v["order"]["kind"], "retail");
        assert_eq!(v["pair"], json!([1, "example"]));
    }

    #[test]
    fn local_refs_resolve_and_recursive_schemas_end() {
        let schema = json!({
            "$defs": {"node": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                "required": ["name"]
            }},
            "type": "object",
            "properties": {"root": {"$ref": "#/$defs/node"}},
            "required": ["root"]
        });
        let v = example(&schema);
        check(&v, &schema).unwrap();
        assert_eq!(v["root"]["name"], "example");
        assert_eq!(example(&json!({"$ref": "https://elsewhere/schema.json"})), Value::Null);
    }

    #[test]
    fn all_of_merges_object_parts() {
        let schema = json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]}
        ]});
        let v = example(&schema);
        check(&v, &schema).unwrap();
        assert_eq!(v, json!({"a": 1, "b": true}));
    }

    #[test]
    fn the_checker_catches_misfits() {
        let schema =
            json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n", "m"]});
        assert!(check(&json!({"n": 1}), &schema).unwrap_err().contains("`m`"));
        assert!(check(&json!({"n": "1", "m": 0}), &schema).is_err());
        assert!(check(&json!([]), &schema).is_err());
    }
}
