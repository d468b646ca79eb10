//! A refused request: the Python-style error type the network's reference handlers report
//! (`KeyError`, `TypeError`, `ValueError`, …), the sentence that says what to fix, and the
//! words those sentences use for what a request gave instead.

use serde_json::Value;

/// A refused request: the `error_type` and the sentence of the error response.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    pub error_type: &'static str,
    pub message: String,
}

impl RequestError {
    /// The error response, `{"error": …, "error_type": …}`, as the reference handlers answer.
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Error<'a> {
            error: &'a str,
            error_type: &'a str,
        }
        serde_json::to_string(&Error {
            error: &self.message,
            error_type: self.error_type,
        })
        .expect("two strings serialise")
    }

    pub fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }
    pub fn missing(field: &str, what: &str) -> Self {
        Self::new(
            "KeyError",
            format!("missing field `{field}` in input: {what}"),
        )
    }
    pub fn wrong_type(field: &str, expected: &str, got: &str) -> Self {
        Self::new(
            "TypeError",
            format!("`{field}` must be {expected}, got {got}"),
        )
    }
    pub fn value(message: impl Into<String>) -> Self {
        Self::new("ValueError", message)
    }
}

/// "a string", "the number 1.5", … for error messages.
pub fn kind_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// [`kind_of`] for JSON text, which may not parse ("something else").
pub fn kind_of_text(text: &str) -> String {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => "an array".into(),
        Some(b'{') => "an object".into(),
        _ if crate::numbers::is_beyond_float(text) => format!(
            "the number {}, beyond any float ({})",
            crate::numbers::as_sent(text),
            crate::numbers::FLOAT_LIMIT
        ),
        _ => serde_json::from_str::<Value>(text)
            .map(|v| kind_of(&v))
            .unwrap_or_else(|_| "something else".into()),
    }
}
