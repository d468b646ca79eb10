//! The serverless request (`{"input": {...}}`, API.md §1), checked field by field. Pure Rust
//! with no host calls, so it is unit-tested natively.

use powhost_plugin_kit::{
    Fields, devices, integer, integer_field, nonce_list, object, object_field, params,
    positive_number, reject_unknown, required, text_field,
};
pub use powhost_plugin_kit::{PartialParams, RequestError};

/// Most nonces one request may list, and most one streaming batch may hold: beyond this the
/// request is almost certainly a mistake, and its distances would not fit a reply.
pub const MAX_NONCES: usize = 10_000_000;
pub const MAX_BATCH_SIZE: u64 = 1_000_000;

/// Which nonces to compute.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// These nonces, in this order; one response.
    Nonces(Vec<i64>),
    /// Consecutive nonces from `start_nonce`, `batch_size` at a time, one emitted result per
    /// batch, until the time limit or a cancellation.
    Stream { start_nonce: i64, batch_size: u64 },
}

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
];
/// Keys the serverless platform itself puts beside `input`; ignored.
const ENVELOPE_FIELDS: &[&str] = &["input", "id", "webhook", "policy", "s3Config"];

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
    let params = match input.get("params") {
        None => PartialParams::default(),
        Some(raw) if raw.get() == "null" => PartialParams::default(),
        Some(raw) => params(raw)?,
    };
    let devices = match input.get("devices") {
        None => Vec::new(),
        Some(raw) if raw.get() == "null" => Vec::new(),
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

fn work(input: &Fields) -> Result<Work, RequestError> {
    let nonces = input.get("nonces");
    let start = input.get("start_nonce");
    let batch = input.get("batch_size");
    match (nonces, start, batch) {
        (Some(raw), None, None) => {
            let list = nonce_list(raw.get(), "nonces", MAX_NONCES)?;
            if list.is_empty() {
                return Err(RequestError::value(
                    "`nonces` is empty: list at least one nonce (or use start_nonce + batch_size to stream)",
                ));
            }
            Ok(Work::Nonces(list))
        }
        (None, Some(start), Some(batch)) => {
            let start_nonce = integer(start.get(), "start_nonce")?;
            let batch_size = integer(batch.get(), "batch_size")?;
            if batch_size < 1 || batch_size as u64 > MAX_BATCH_SIZE {
                return Err(RequestError::value(format!(
                    "`batch_size` must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}"
                )));
            }
            Ok(Work::Stream {
                start_nonce,
                batch_size: batch_size as u64,
            })
        }
        (Some(_), _, _) => Err(RequestError::value(
            "give either `nonces` or `start_nonce` + `batch_size` (streaming), not both",
        )),
        (None, Some(_), None) => Err(RequestError::missing(
            "batch_size",
            "streaming needs `batch_size` beside `start_nonce`",
        )),
        (None, None, Some(_)) => Err(RequestError::missing(
            "start_nonce",
            "streaming needs `start_nonce` beside `batch_size`",
        )),
        (None, None, None) => Err(RequestError::missing(
            "nonces",
            "the nonces to compute (or `start_nonce` + `batch_size` to stream)",
        )),
    }
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
                batch_size: 4
            }
        );
        assert_eq!(r.params.dim, Some(64));
        assert_eq!(r.params.rope_theta, Some(500000.0));
        assert_eq!(r.params.use_scaled_rope, Some(true));
        assert_eq!(r.devices, vec!["cpu"]);
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
        let e = err(&format!(r#"{{{OK}, "nonces": [18446744073709551615]}}"#));
        assert!(e.message.contains("64-bit"), "{e:?}");
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
        let e = err(&format!(
            r#"{{{OK}, "nonces": [1], "params": {{"depth": 3}}}}"#
        ));
        assert!(
            e.message.contains("unknown field `depth` in params"),
            "{e:?}"
        );
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
}
