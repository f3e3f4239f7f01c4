//! The rank request's `context`: a JSON object of any shape, flattened by [`tokens`] into the
//! `name=value` tokens the network reads (it hashes each token into a bucket).
//!
//! The rule, one line per JSON type (the path of a nested value joins its keys with `.`):
//! - a string `"country": "France"` gives `country=France`;
//! - a boolean `"member": true` gives `member=true`;
//! - a number gives `name=value`: an integer of magnitude under 1,000 as written (`age=34`,
//!   `2.0` as `2`), any other number rounded to two significant digits in scientific notation
//!   (`basket=1.2e3`, `score=4.6e-2`), so that nearby values share a token rather than each
//!   price or timestamp making its own;
//! - an object `"device": {"os": "ios"}` gives `device.os=ios`;
//! - an array gives each element's tokens under the array's own name (`"tags": ["a", "b"]`
//!   gives `tags=a` and `tags=b`);
//! - `null` gives nothing.
//!
//! At most [`MAX_TOKENS`] tokens, each at most [`MAX_TOKEN_BYTES`] bytes, nested at most
//! [`MAX_DEPTH`] levels: a context past these limits is refused with the path at fault rather
//! than cut, so a shop never has features dropped without knowing it.

use crate::error::ApiError;
use serde_json::{Map, Value};

/// Most tokens one context may flatten to.
pub const MAX_TOKENS: usize = 64;
/// Longest token, in bytes.
pub const MAX_TOKEN_BYTES: usize = 512;
/// Deepest nesting of objects and arrays below `context`.
pub const MAX_DEPTH: usize = 8;

/// The tokens of a context object, in the order of its keys, or a 422 naming the path that
/// breaks a limit.
pub(super) fn tokens(context: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in context {
        walk(key, value, 1, &mut out)?;
    }
    Ok(out)
}

fn walk(path: &str, value: &Value, depth: usize, out: &mut Vec<String>) -> Result<(), ApiError> {
    let invalid = |message: String| ApiError::unprocessable("invalid_field", message);
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "field `context.{path}`: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let value = match value {
        Value::Null => return Ok(()),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => {
            for item in items {
                walk(path, item, depth + 1, out)?;
            }
            return Ok(());
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                walk(&format!("{path}.{key}"), item, depth + 1, out)?;
            }
            return Ok(());
        }
    };
    if out.len() == MAX_TOKENS {
        return Err(invalid(format!(
            "field `context`: more than {MAX_TOKENS} features after flattening (at `context.{path}`)"
        )));
    }
    let token = format!("{path}={value}");
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid(format!(
            "field `context.{path}`: the feature `name=value` is {} bytes, at most {MAX_TOKEN_BYTES}",
            token.len()
        )));
    }
    out.push(token);
    Ok(())
}

/// A number's token value: small integers exactly, anything else to two significant digits.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1000.0 {
        // `-0.0` and `0.0` are one value.
        format!("{}", x as i64)
    } else {
        format!("{x:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The tokens, sorted: their order does not matter to the network (each sets a bucket),
    /// and it follows the map's, which a `serde_json` feature can change.
    fn flat(v: Value) -> Vec<String> {
        let mut t = tokens(v.as_object().unwrap()).unwrap();
        t.sort();
        t
    }

    #[test]
    fn strings_keep_the_tokens_they_always_gave() {
        assert_eq!(flat(json!({"country": "France"})), ["country=France"]);
    }

    #[test]
    fn every_json_type_flattens_by_the_documented_rule() {
        let t = flat(json!({
            "age": 34,
            "two": 2.0,
            "basket": 1234.5,
            "score": 0.0456,
            "neg": -0.0,
            "member": true,
            "device": {"os": "ios", "screen": {"w": 390}},
            "tags": ["a", "b", {"deep": false}],
            "gone": null,
        }));
        assert_eq!(
            t,
            [
                "age=34",
                "basket=1.2e3",
                "device.os=ios",
                "device.screen.w=390",
                "member=true",
                "neg=0",
                "score=4.6e-2",
                "tags.deep=false",
                "tags=a",
                "tags=b",
                "two=2",
            ]
        );
    }

    #[test]
    fn nearby_numbers_share_a_token_and_distant_ones_do_not() {
        assert_eq!(number(1234.0), number(1240.0));
        assert_ne!(number(1234.0), number(1340.0));
        assert_eq!(number(999.0), "999");
        assert_eq!(number(1000.0), "1.0e3");
    }

    #[test]
    fn limits_are_refused_with_the_path() {
        let mut deep = json!("x");
        for _ in 0..MAX_DEPTH {
            deep = json!({ "k": deep });
        }
        let e = tokens(json!({ "a": deep }).as_object().unwrap()).unwrap_err();
        assert!(e.message.contains("context.a.k"), "{}", e.message);
        let many: Map<String, Value> = (0..=MAX_TOKENS)
            .map(|i| (format!("k{i:03}"), json!(i)))
            .collect();
        let e = tokens(&many).unwrap_err();
        assert!(e.message.contains("more than 64"), "{}", e.message);
        let e = tokens(json!({"long": "x".repeat(600)}).as_object().unwrap()).unwrap_err();
        assert!(e.message.contains("context.long"), "{}", e.message);
    }
}
