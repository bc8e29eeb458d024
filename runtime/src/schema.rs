//! A small JSON Schema checker for tool arguments: `type`, `required`, `properties`, `enum`,
//! `minimum`/`maximum`, `items`, `additionalProperties: false`. Enough to name the offending field
//! in a clear error; anything it does not know it accepts.

use serde_json::Value;

/// Checks `value` against `schema`; the error names the path of the first problem.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "")
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn describe(path: &str) -> String {
    if path.is_empty() {
        "arguments".to_string()
    } else {
        format!("`{path}`")
    }
}

fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => {
            return Err(format!("{} must be of type {t}", describe(path)));
        }
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)) => {
            return Err(format!("{} has the wrong type", describe(path)));
        }
        _ => {}
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(v)
    {
        return Err(format!(
            "{} must be one of {}",
            describe(path),
            Value::Array(allowed.clone())
        ));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{} must be ≥ {min}", describe(path)));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{} must be ≤ {max}", describe(path)));
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("missing required field `{}`", join(path, r)));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(ps, val, &join(path, k))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("unknown field `{}`", join(path, k)));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type":"object","properties":{"a":{"type":"number"},"b":{"type":"integer","minimum":0},"mode":{"enum":["x","y"]},"tags":{"type":"array","items":{"type":"string"}}},"required":["a"],"additionalProperties":false})
    }

    #[test]
    fn accepts_valid_arguments() {
        assert_eq!(
            validate(
                &schema(),
                &json!({"a": 1.5, "b": 2, "mode": "x", "tags": ["t"]})
            ),
            Ok(())
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            validate(&schema(), &json!({})).unwrap_err(),
            "missing required field `a`"
        );
        assert_eq!(
            validate(&schema(), &json!({"a": "1"})).unwrap_err(),
            "`a` must be of type number"
        );
        assert_eq!(
            validate(&schema(), &json!({"a": 1, "b": -1})).unwrap_err(),
            "`b` must be ≥ 0"
        );
        assert_eq!(
            validate(&schema(), &json!({"a": 1, "b": 1.5})).unwrap_err(),
            "`b` must be of type integer"
        );
        assert!(
            validate(&schema(), &json!({"a": 1, "mode": "z"}))
                .unwrap_err()
                .starts_with("`mode` must be one of")
        );
        assert_eq!(
            validate(&schema(), &json!({"a": 1, "tags": [1]})).unwrap_err(),
            "`tags[0]` must be of type string"
        );
        assert_eq!(
            validate(&schema(), &json!({"a": 1, "zz": 1})).unwrap_err(),
            "unknown field `zz`"
        );
        assert_eq!(
            validate(&schema(), &json!([1])).unwrap_err(),
            "arguments must be of type object"
        );
    }
}
