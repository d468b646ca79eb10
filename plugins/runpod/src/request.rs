//! The serverless request (`{"input": {...}}`, docs/spec/REQUESTS.md §1), checked field by
//! field. Pure Rust with no host calls, so it is unit-tested natively.

use powhost_plugin_kit::{
    Fields, devices, integer_field, object, object_field, optional, params, positive_number,
    reject_unknown, required, text_field,
};
// MAX_NONCES: most nonces one request may list (the kit's limit, and the host's).
use crate::work::work;
pub use crate::work::{DEFAULT_STREAM_BATCH_SIZE, MAX_BATCH_SIZE, Work};
pub use powhost_plugin_kit::{MAX_NONCES, PartialParams, RequestError};

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub block_hash: String,
    pub block_height: i64,
    pub public_key: String,
    pub r_target: f64,
    pub work: Work,
    pub params: PartialParams,
    /// Empty when the request names none.
    pub devices: Vec<String>,
}

const INPUT_FIELDS: &[&str] = &[
    "block_hash",
    "block_height",
    "public_key",
    "nonces",
    "r_target",
    "params",
    "devices",
    "start_nonce",
    "batch_size",
    "streaming",
    "max_batches",
];
/// Keys the serverless platform itself puts beside `input`; ignored.
const ENVELOPE_FIELDS: &[&str] = &["input", "id", "webhook", "policy", "s3Config"];

impl Request {
    /// The request as JSON that `parse` reads back to the same request.
    pub fn to_json(&self) -> String {
        let mut input = serde_json::json!({
            "block_hash": self.block_hash, "block_height": self.block_height,
            "public_key": self.public_key, "r_target": self.r_target,
            "params": self.params.to_json(),
        });
        if !self.devices.is_empty() {
            input["devices"] = self.devices.clone().into();
        }
        match &self.work {
            Work::Nonces(nonces) => input["nonces"] = nonces.clone().into(),
            Work::Stream {
                start_nonce,
                batch_size,
                max_batches,
            } => {
                input["streaming"] = true.into();
                input["start_nonce"] = (*start_nonce).into();
                input["batch_size"] = (*batch_size).into();
                if let Some(max) = max_batches {
                    input["max_batches"] = (*max).into();
                }
            }
        }
        serde_json::json!({ "input": input }).to_string()
    }
}

/// Parse and check one request.
pub fn parse(text: &str) -> Result<Request, RequestError> {
    // Fields stay raw until checked one by one, so a 10-million-nonce list is decoded once,
    // straight into integers, and every message can name its field.
    let envelope = object(text, "{\"input\": {...}}")?;
    reject_unknown("the request", envelope.keys(), ENVELOPE_FIELDS)?;
    let input = envelope.get("input").ok_or_else(|| {
        RequestError::new(
            "KeyError",
            "missing field `input`: a request is `{\"input\": {...}}`",
        )
    })?;
    let input = object_field(input, "input")?;
    reject_unknown("input", input.keys(), INPUT_FIELDS)?;

    let block_hash = text_field(
        &input,
        "block_hash",
        "the block hash the model is seeded from",
    )?;
    let public_key = text_field(
        &input,
        "public_key",
        "the public key the nonces are seeded with",
    )?;
    let block_height = integer_field(&input, "block_height", "the block height, echoed back")?;
    if block_height < 0 {
        return Err(RequestError::value(format!(
            "`block_height` must be 0 or more, got {block_height}"
        )));
    }
    let r_target = r_target(&input)?;
    let work = work(&input)?;
    let params = match optional(&input, "params") {
        None => PartialParams::default(),
        Some(raw) => params(raw)?,
    };
    let devices = match optional(&input, "devices") {
        None => Vec::new(),
        Some(raw) => devices(raw)?,
    };
    Ok(Request {
        block_hash,
        block_height,
        public_key,
        r_target,
        work,
        params,
        devices,
    })
}

fn r_target(input: &Fields) -> Result<f64, RequestError> {
    let raw = required(
        input,
        "r_target",
        "the distance below which a nonce is valid (the network uses 1.4013564660458173)",
    )?;
    positive_number(raw, "r_target")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(input: &str) -> Result<Request, RequestError> {
        parse(&format!("{{\"input\": {input}}}"))
    }
    const OK: &str =
        r#""block_hash": "ab", "block_height": 7, "public_key": "pk", "r_target": 1.4"#;

    #[test]
    fn a_plain_request_parses() {
        let r = req(&format!(r#"{{{OK}, "nonces": [5, -3, 0]}}"#)).unwrap();
        assert_eq!(r.work, Work::Nonces(vec![5, -3, 0]));
        assert_eq!(r.block_height, 7);
        assert_eq!(r.params, PartialParams::default());
        assert!(r.devices.is_empty());
    }

    #[test]
    fn streaming_and_params_parse() {
        let r = req(&format!(
            r#"{{{OK}, "start_nonce": 10, "batch_size": 4, "params": {{"dim": 64, "rope_theta": 500000, "use_scaled_rope": true}}, "devices": ["cpu"]}}"#
        ))
        .unwrap();
        assert_eq!(
            r.work,
            Work::Stream {
                start_nonce: 10,
                batch_size: 4,
                max_batches: None
            }
        );
        assert_eq!(r.params.dim, Some(64));
        assert_eq!(r.params.rope_theta, Some(500000.0));
        assert_eq!(r.params.use_scaled_rope, Some(true));
        assert_eq!(r.devices, vec!["cpu"]);
    }

    #[test]
    fn the_first_streaming_versions_request_parses() {
        // The seed handler v1.1.0's request (docs/spec/PROTOCOLS.md §B4.5).
        let r = req(&format!(
            r#"{{{OK}, "streaming": true, "batch_size": 4, "start_nonce": 5, "max_batches": 3}}"#
        ))
        .unwrap();
        assert_eq!(
            r.work,
            Work::Stream {
                start_nonce: 5,
                batch_size: 4,
                max_batches: Some(3)
            }
        );
        // Its defaults: from nonce 0, 16 at a time, until the time limit.
        let r = req(&format!(
            r#"{{{OK}, "streaming": true, "max_batches": null}}"#
        ))
        .unwrap();
        assert_eq!(
            r.work,
            Work::Stream {
                start_nonce: 0,
                batch_size: 16,
                max_batches: None
            }
        );
        let r = req(&format!(r#"{{{OK}, "streaming": false, "nonces": [2]}}"#)).unwrap();
        assert_eq!(r.work, Work::Nonces(vec![2]));
        let r = req(&format!(
            r#"{{{OK}, "start_nonce": 1, "batch_size": 2, "max_batches": 0}}"#
        ))
        .unwrap();
        assert_eq!(
            r.work,
            Work::Stream {
                start_nonce: 1,
                batch_size: 2,
                max_batches: Some(0)
            }
        );
    }

    #[test]
    fn streaming_flags_that_contradict_the_request() {
        let e = err(&format!(r#"{{{OK}, "streaming": true, "nonces": [1]}}"#));
        assert!(e.message.contains("leave `nonces` out"), "{e:?}");
        let e = err(&format!(
            r#"{{{OK}, "streaming": false, "start_nonce": 1, "batch_size": 2}}"#
        ));
        assert!(e.message.contains("`streaming` is false"), "{e:?}");
        let e = err(&format!(r#"{{{OK}, "streaming": "yes"}}"#));
        assert_eq!(e.error_type, "TypeError");
        assert!(e.message.contains("streaming"), "{e:?}");
        let e = err(&format!(
            r#"{{{OK}, "streaming": true, "max_batches": -1}}"#
        ));
        assert_eq!(e.error_type, "ValueError");
        let e = err(&format!(
            r#"{{{OK}, "streaming": true, "max_batches": 1.5}}"#
        ));
        assert_eq!(e.error_type, "TypeError");
        let e = err(&format!(r#"{{{OK}, "nonces": [1], "max_batches": 2}}"#));
        assert!(e.message.contains("only applies to a stream"), "{e:?}");
        let e = err(&format!(r#"{{{OK}, "streaming": true, "batch_size": 0}}"#));
        assert_eq!(e.error_type, "ValueError");
        // Still refused: fields of no version.
        let e = err(&format!(r#"{{{OK}, "streaming": true, "max_batch": 2}}"#));
        assert!(e.message.contains("unknown field `max_batch`"), "{e:?}");
    }

    fn err(input: &str) -> RequestError {
        req(input).unwrap_err()
    }

    #[test]
    fn bad_nonces_name_the_problem() {
        let e = err(&format!(r#"{{{OK}, "nonces": [1, 2.5]}}"#));
        assert_eq!(
            e.message,
            "`nonces[1]` must be an integer, got the number 2.5"
        );
        let e = err(&format!(r#"{{{OK}, "nonces": [1, 4, "2"]}}"#));
        assert_eq!(
            e.message,
            "`nonces[2]` must be an integer, got the string \"2\""
        );
        let e = err(&format!(r#"{{{OK}, "nonces": [[1], 2]}}"#));
        assert_eq!(e.message, "`nonces[0]` must be an integer, got an array");
        // Past the range: named as sent (2^64 is not the float it rounds to), with the range.
        for big in ["18446744073709551615", "18446744073709551616"] {
            let e = err(&format!(r#"{{{OK}, "nonces": [{big}]}}"#));
            assert!(e.message.contains("out of range for a nonce"), "{e:?}");
            assert!(e.message.contains(big), "{e:?}");
            assert!(e.message.contains("9223372036854775807"), "{e:?}");
        }
        let e = err(&format!(r#"{{{OK}, "nonces": []}}"#));
        assert!(e.message.contains("empty"), "{e:?}");
        let e = err(&format!(r#"{{{OK}, "nonces": 5}}"#));
        assert_eq!(e.error_type, "TypeError");
    }

    #[test]
    fn missing_extra_and_mistyped_fields() {
        let e = err(r#"{"block_hash": "ab", "nonces": [1]}"#);
        assert_eq!(e.error_type, "KeyError");
        let e = err(&format!(r#"{{{OK}, "nonces": [1], "colour": 1}}"#));
        assert!(e.message.contains("unknown field `colour`"), "{e:?}");
        // An unknown params field is ignored, as by the reference handler's `Params`.
        let r = req(&format!(
            r#"{{{OK}, "nonces": [1], "params": {{"depth": 3, "dim": 64}}}}"#
        ))
        .unwrap();
        assert_eq!(r.params.dim, Some(64));
        let e = err(&format!(
            r#"{{{OK}, "nonces": [1], "params": {{"dim": -4}}}}"#
        ));
        assert_eq!(e.error_type, "ValueError");
        let e = err(&format!(
            r#"{{{OK}, "nonces": [1], "params": {{"dim": "64"}}}}"#
        ));
        assert_eq!(e.error_type, "TypeError");
        let e = err(
            r#"{"block_hash": 5, "block_height": 1, "public_key": "p", "r_target": 1, "nonces": [1]}"#,
        );
        assert_eq!(e.error_type, "TypeError");
        let e = err(&format!(
            r#"{{{OK}, "nonces": [1], "start_nonce": 3, "batch_size": 2}}"#
        ));
        assert!(e.message.contains("not both"), "{e:?}");
        let e = err(&format!(r#"{{{OK}, "start_nonce": 3}}"#));
        assert!(e.message.contains("batch_size"), "{e:?}");
        let e = err(&format!(r#"{{{OK}, "start_nonce": 3, "batch_size": 0}}"#));
        assert_eq!(e.error_type, "ValueError");
        let e = err(&format!(r#"{{{OK}, "nonces": [1], "devices": "cuda:0"}}"#));
        assert_eq!(e.error_type, "TypeError");
    }

    #[test]
    fn bad_r_target() {
        for r in ["-1", "0", "1e999", "\"1.4\"", "null"] {
            let e = req(&format!(
                r#"{{"block_hash": "ab", "block_height": 7, "public_key": "pk", "r_target": {r}, "nonces": [1]}}"#
            ))
            .unwrap_err();
            assert!(e.message.contains("r_target"), "{r}: {e:?}");
        }
    }

    #[test]
    fn not_json_or_not_an_object() {
        assert_eq!(parse("{nope").unwrap_err().error_type, "JSONDecodeError");
        assert_eq!(parse("[1, 2]").unwrap_err().error_type, "TypeError");
        assert_eq!(parse("{}").unwrap_err().error_type, "KeyError");
        assert_eq!(
            parse(r#"{"input": 3}"#).unwrap_err().error_type,
            "TypeError"
        );
        assert!(
            parse(r#"{"input": {}, "extra": 1}"#)
                .unwrap_err()
                .message
                .contains("extra")
        );
    }

    /// The fuzz target `runpod_request`'s check on its seeds and past findings: a request
    /// that parses, written back, parses to the same request.
    #[test]
    fn fuzz_inputs_round_trip() {
        powhost_plugin_kit::replay_round_trip("runpod_request", parse, Request::to_json);
    }
}
