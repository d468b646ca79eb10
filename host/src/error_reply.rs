//! The error reply every plugin contract shares, `{"error": message, "error_type": type}`
//! (docs/spec/REQUESTS.md §4): the host builds its own (a host failure, a plugin that failed, a
//! job cancelled before it started) and reads plugins' here, in one place.

use serde_json::{Value, json};

/// `{"error": message, "error_type": error_type}`.
pub fn build(message: &str, error_type: &str) -> String {
    json!({ "error": message, "error_type": error_type }).to_string()
}

/// A plugin's error reply as (message, type); a body of another shape is the message itself,
/// of type `Error`.
pub fn read(body: &str) -> (String, String) {
    let parsed: Value = serde_json::from_str(body).unwrap_or_default();
    (
        parsed["error"].as_str().unwrap_or(body).to_string(),
        parsed["error_type"].as_str().unwrap_or("Error").to_string(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn built_replies_read_back() {
        let body = super::build("cancelled before it started", "Cancelled");
        assert_eq!(
            body,
            r#"{"error":"cancelled before it started","error_type":"Cancelled"}"#
        );
        assert_eq!(
            super::read(&body),
            ("cancelled before it started".into(), "Cancelled".into())
        );
        assert_eq!(super::read("not json"), ("not json".into(), "Error".into()));
    }
}
