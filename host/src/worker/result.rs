//! What a job's plugin call becomes on the wire: the bodies the platform's SDK posts for the
//! seed handler (docs/spec/PROTOCOLS.md §B1, §B3, §B4).

use crate::plugin_host::{PluginFailure, PluginReply};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The final POST of a job: its body, and whether it ends a stream (`isStream=true`).
#[derive(Debug, PartialEq)]
pub struct FinalResult {
    pub body: String,
    pub is_stream: bool,
    /// For the logs: whether the job failed.
    pub failed: bool,
}

/// One streamed chunk as the SDK posts it.
pub fn chunk_body(chunk: &str) -> String {
    format!("{{\"output\":{}}}", as_json(chunk))
}

/// The final result of a job whose plugin emitted `emitted` chunks (kept in `aggregate` when
/// the whole stream is to be posted at the end, as with the SDK's `return_aggregate_stream`).
pub fn final_result(
    reply: Result<PluginReply, PluginFailure>,
    emitted: usize,
    aggregate: Option<&[String]>,
) -> FinalResult {
    let is_stream = emitted > 0;
    match reply {
        // A one-shot reply: `{"output": reply}`.
        Ok(PluginReply::Ok(body)) if !is_stream && !body.is_empty() => FinalResult {
            body: format!("{{\"output\":{}}}", as_json(&body)),
            is_stream: false,
            failed: false,
        },
        // The end of a stream (or of one that emitted nothing): `{"output": []}`, or every
        // chunk, or what the plugin returned at the end.
        Ok(PluginReply::Ok(body)) => {
            let output = if !body.is_empty() {
                as_json(&body)
            } else {
                match aggregate {
                    Some(chunks) => {
                        let parts: Vec<String> = chunks.iter().map(|c| as_json(c)).collect();
                        format!("[{}]", parts.join(","))
                    }
                    None => "[]".to_string(),
                }
            };
            FinalResult {
                body: format!("{{\"output\":{output}}}"),
                is_stream: true,
                failed: false,
            }
        }
        Ok(PluginReply::Error(body)) => FinalResult {
            body: error_body(&body),
            is_stream,
            failed: true,
        },
        Err(failure) => FinalResult {
            body: error_body(&crate::error_reply::build(&failure.message, "PluginError")),
            is_stream,
            failed: true,
        },
    }
}

/// An error reply as the SDK posts a handler's dict with an `error` (B3): the error taken
/// out, the rest as the output (left out when nothing remains).
/// `{"error": "'nonces'", "error_type": "KeyError"}` → `{"output": {"error_type": "KeyError"}, "error": "'nonces'"}`.
pub fn error_body(reply: &str) -> String {
    let Ok(mut fields) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(reply) else {
        return json!({ "error": reply }).to_string();
    };
    let error = fields
        .remove("error")
        .map(|raw| match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::String(s)) => s,
            _ => raw.get().to_string(),
        });
    let error = error.unwrap_or_else(|| "the plugin reported an error without a message".into());
    let error = serde_json::to_string(&error).expect("a string serialises");
    if fields.is_empty() {
        format!("{{\"error\":{error}}}")
    } else {
        let output = serde_json::to_string(&fields).expect("raw values serialise");
        format!("{{\"output\":{output},\"error\":{error}}}")
    }
}

/// A plugin's text as a JSON value: itself when it is JSON, else a JSON string.
fn as_json(text: &str) -> String {
    if serde_json::from_str::<&RawValue>(text).is_ok() {
        text.trim().to_string()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_stream_and_error_bodies_are_the_sdks() {
        let r = final_result(Ok(PluginReply::Ok(r#"{"nonces":[1]}"#.into())), 0, None);
        assert_eq!(r.body, r#"{"output":{"nonces":[1]}}"#);
        assert!(!r.is_stream && !r.failed);

        let r = final_result(Ok(PluginReply::Ok(String::new())), 2, None);
        assert_eq!(r.body, r#"{"output":[]}"#);
        assert!(r.is_stream);
        let chunks = vec![r#"{"a":1}"#.to_string(), r#"{"a":2}"#.to_string()];
        let r = final_result(Ok(PluginReply::Ok(String::new())), 2, Some(&chunks));
        assert_eq!(r.body, r#"{"output":[{"a":1},{"a":2}]}"#);
        // A stream that emitted nothing (max_batches 0) still ends as a stream.
        let r = final_result(Ok(PluginReply::Ok(String::new())), 0, None);
        assert_eq!(r.body, r#"{"output":[]}"#);
        assert!(r.is_stream);

        let r = final_result(
            Ok(PluginReply::Error(
                r#"{"error": "'nonces'", "error_type": "KeyError"}"#.into(),
            )),
            0,
            None,
        );
        assert_eq!(
            r.body,
            r#"{"output":{"error_type":"KeyError"},"error":"'nonces'"}"#
        );
        assert!(r.failed && !r.is_stream);

        let r = final_result(
            Err(PluginFailure {
                message: "plugin trapped".into(),
            }),
            1,
            None,
        );
        assert_eq!(
            r.body,
            r#"{"output":{"error_type":"PluginError"},"error":"plugin trapped"}"#
        );
        assert!(r.is_stream);
        assert_eq!(
            chunk_body(r#"{"batch_number":1}"#),
            r#"{"output":{"batch_number":1}}"#
        );
    }

    #[test]
    fn error_replies_of_other_shapes() {
        assert_eq!(error_body(r#"{"error":"x"}"#), r#"{"error":"x"}"#);
        assert_eq!(
            error_body(r#"{"error":"x","a":1}"#),
            r#"{"output":{"a":1},"error":"x"}"#
        );
        assert_eq!(error_body("not json"), r#"{"error":"not json"}"#);
        assert_eq!(
            error_body(r#"{"error":{"k":1}}"#),
            r#"{"error":"{\"k\":1}"}"#
        );
    }
}
