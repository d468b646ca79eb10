//! The serverless request (`{"input": {...}}`, API.md §1), checked field by field. Pure Rust
//! with no host calls, so it is unit-tested natively.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Most nonces one request may list, and most one streaming batch may hold: beyond this the
/// request is almost certainly a mistake, and its distances would not fit a reply.
pub const MAX_NONCES: usize = 10_000_000;
pub const MAX_BATCH_SIZE: u64 = 1_000_000;

/// A refused request: the `error_type` and the sentence of the error response.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    pub error_type: &'static str,
    pub message: String,
}

impl RequestError {
    pub fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }
    fn missing(field: &str, what: &str) -> Self {
        Self::new(
            "KeyError",
            format!("missing field `{field}` in input: {what}"),
        )
    }
    fn wrong_type(field: &str, expected: &str, got: &str) -> Self {
        Self::new(
            "TypeError",
            format!("`{field}` must be {expected}, got {got}"),
        )
    }
    fn value(message: impl Into<String>) -> Self {
        Self::new("ValueError", message)
    }
}

/// The model params as the request gives them: any subset of the fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartialParams {
    pub dim: Option<u32>,
    pub n_layers: Option<u32>,
    pub n_heads: Option<u32>,
    pub n_kv_heads: Option<u32>,
    pub vocab_size: Option<u32>,
    pub ffn_dim_multiplier: Option<f64>,
    pub multiple_of: Option<u32>,
    pub norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub use_scaled_rope: Option<bool>,
    pub seq_len: Option<u32>,
}

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
const PARAMS_FIELDS: &[&str] = &[
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "vocab_size",
    "ffn_dim_multiplier",
    "multiple_of",
    "norm_eps",
    "rope_theta",
    "use_scaled_rope",
    "seq_len",
];

/// Parse and check one request.
pub fn parse(text: &str) -> Result<Request, RequestError> {
    // Fields stay raw until checked one by one, so a 10-million-nonce list is decoded once,
    // straight into integers, and every message can name its field.
    let envelope: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            RequestError::new(
                "TypeError",
                format!(
                    "the request must be a JSON object {{\"input\": {{...}}}}, got {}",
                    kind_of_text(text)
                ),
            )
        } else if text.contains("NaN") || text.contains("Infinity") {
            RequestError::new(
                "JSONDecodeError",
                format!("the request is not valid JSON ({e}): JSON has no NaN or Infinity; give finite numbers"),
            )
        } else {
            RequestError::new("JSONDecodeError", format!("the request is not valid JSON: {e}"))
        }
    })?;
    reject_unknown("the request", envelope.keys(), ENVELOPE_FIELDS)?;
    let input = envelope.get("input").ok_or_else(|| {
        RequestError::new(
            "KeyError",
            "missing field `input`: a request is `{\"input\": {...}}`",
        )
    })?;
    let input: BTreeMap<String, &RawValue> = serde_json::from_str(input.get())
        .map_err(|_| RequestError::wrong_type("input", "an object", &kind_of_text(input.get())))?;
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

fn reject_unknown<'a>(
    place: &str,
    keys: impl Iterator<Item = &'a String>,
    known: &[&str],
) -> Result<(), RequestError> {
    for key in keys {
        if !known.contains(&key.as_str()) {
            return Err(RequestError::value(format!(
                "unknown field `{key}` in {place}; the fields are: {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn required<'a>(
    input: &BTreeMap<String, &'a RawValue>,
    field: &str,
    what: &str,
) -> Result<&'a RawValue, RequestError> {
    input
        .get(field)
        .copied()
        .ok_or_else(|| RequestError::missing(field, what))
}

fn text_field(
    input: &BTreeMap<String, &RawValue>,
    field: &str,
    what: &str,
) -> Result<String, RequestError> {
    let raw = required(input, field, what)?;
    let value: String = serde_json::from_str(raw.get())
        .map_err(|_| RequestError::wrong_type(field, "a string", &kind_of_text(raw.get())))?;
    if value.is_empty() {
        return Err(RequestError::value(format!("`{field}` must not be empty")));
    }
    Ok(value)
}

fn integer_field(
    input: &BTreeMap<String, &RawValue>,
    field: &str,
    what: &str,
) -> Result<i64, RequestError> {
    let raw = required(input, field, what)?;
    integer(raw.get(), field)
}

/// An integer that fits in 64 bits; `1.0`, `"1"` and `1e3` are refused.
fn integer(text: &str, field: &str) -> Result<i64, RequestError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            if n.is_f64() {
                RequestError::wrong_type(field, "an integer", &format!("the number {n}"))
            } else {
                RequestError::value(format!(
                    "`{field}` is out of range: {n} does not fit in a signed 64-bit integer"
                ))
            }
        }),
        _ => Err(RequestError::wrong_type(
            field,
            "an integer",
            &kind_of_text(text),
        )),
    }
}

fn r_target(input: &BTreeMap<String, &RawValue>) -> Result<f64, RequestError> {
    let raw = required(
        input,
        "r_target",
        "the distance below which a nonce is valid (the network uses 1.4013564660458173)",
    )?;
    let r = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        _ => {
            return Err(RequestError::wrong_type(
                "r_target",
                "a number",
                &kind_of_text(raw.get()),
            ));
        }
    };
    if !(r.is_finite() && r > 0.0) {
        return Err(RequestError::value(format!(
            "`r_target` must be a positive finite number, got {r}"
        )));
    }
    Ok(r)
}

fn work(input: &BTreeMap<String, &RawValue>) -> Result<Work, RequestError> {
    let nonces = input.get("nonces");
    let start = input.get("start_nonce");
    let batch = input.get("batch_size");
    match (nonces, start, batch) {
        (Some(raw), None, None) => {
            let list = nonce_list(raw.get())?;
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

/// `nonces`: decoded element by element into integers, so that an error names the first
/// bad element by its index.
fn nonce_list(text: &str) -> Result<Vec<i64>, RequestError> {
    /// One element: an integer, or what it was instead.
    enum Element {
        Nonce(i64),
        Bad(String),
    }
    impl<'de> serde::Deserialize<'de> for Element {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Element;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an integer")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                    Ok(Element::Nonce(v))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                    Ok(i64::try_from(v).map(Element::Nonce).unwrap_or_else(|_| {
                        Element::Bad(format!(
                            "{v}, which does not fit in a signed 64-bit integer"
                        ))
                    }))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                    Ok(Element::Bad(format!("the number {v}")))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                    Ok(Element::Bad(format!("the string {v:?}")))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
                    Ok(Element::Bad(v.to_string()))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
                    Ok(Element::Bad("null".into()))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                    Ok(Element::Bad("an array".into()))
                }
                fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
                    while map
                        .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                        .is_some()
                    {}
                    Ok(Element::Bad("an object".into()))
                }
            }
            d.deserialize_any(V)
        }
    }
    /// The list, or the first problem found in it.
    struct Nonces;
    impl<'de> Visitor<'de> for Nonces {
        type Value = Result<Vec<i64>, RequestError>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of integers")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_NONCES));
            let mut problem = None;
            while let Some(element) = seq.next_element::<Element>()? {
                let i = out.len();
                problem = match element {
                    Element::Nonce(_) if i == MAX_NONCES => Some(RequestError::value(format!(
                        "`nonces` lists more than {MAX_NONCES} nonces; split the request"
                    ))),
                    Element::Nonce(n) => {
                        out.push(n);
                        continue;
                    }
                    Element::Bad(what) => Some(RequestError::new(
                        "TypeError",
                        format!("`nonces[{i}]` must be an integer, got {what}"),
                    )),
                };
                break;
            }
            // The rest of the array is skipped, not decoded: the parser must still reach its end.
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(problem.map_or(Ok(out), Err))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match de.deserialize_seq(Nonces) {
        Ok(result) => result,
        Err(_) => Err(RequestError::wrong_type(
            "nonces",
            "an array of integers",
            &kind_of_text(text),
        )),
    }
}

fn params(raw: &RawValue) -> Result<PartialParams, RequestError> {
    let map: Map<String, Value> = serde_json::from_str(raw.get())
        .map_err(|_| RequestError::wrong_type("params", "an object", &kind_of_text(raw.get())))?;
    let mut p = PartialParams::default();
    for (key, value) in &map {
        let field = format!("params.{key}");
        let size = || -> Result<u32, RequestError> {
            match value.as_u64() {
                Some(0) => Err(RequestError::value(format!("`{field}` must be at least 1"))),
                Some(n) => u32::try_from(n)
                    .map_err(|_| RequestError::value(format!("`{field}` is too large: {n}"))),
                None if value.as_i64().is_some() => Err(RequestError::value(format!(
                    "`{field}` must be at least 1, got {value}"
                ))),
                None => Err(RequestError::wrong_type(
                    &field,
                    "a positive integer",
                    &kind_of(value),
                )),
            }
        };
        let number = || -> Result<f64, RequestError> {
            match value.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(x),
                Some(x) => Err(RequestError::value(format!(
                    "`{field}` must be a positive number, got {x}"
                ))),
                None => Err(RequestError::wrong_type(
                    &field,
                    "a number",
                    &kind_of(value),
                )),
            }
        };
        match key.as_str() {
            "dim" => p.dim = Some(size()?),
            "n_layers" => p.n_layers = Some(size()?),
            "n_heads" => p.n_heads = Some(size()?),
            "n_kv_heads" => p.n_kv_heads = Some(size()?),
            "vocab_size" => p.vocab_size = Some(size()?),
            "multiple_of" => p.multiple_of = Some(size()?),
            "seq_len" => p.seq_len = Some(size()?),
            "ffn_dim_multiplier" => p.ffn_dim_multiplier = Some(number()?),
            "norm_eps" => p.norm_eps = Some(number()?),
            "rope_theta" => p.rope_theta = Some(number()?),
            "use_scaled_rope" => {
                p.use_scaled_rope = Some(value.as_bool().ok_or_else(|| {
                    RequestError::wrong_type(&field, "true or false", &kind_of(value))
                })?)
            }
            other => {
                return Err(RequestError::value(format!(
                    "unknown field `{other}` in params; the fields are: {}",
                    PARAMS_FIELDS.join(", ")
                )));
            }
        }
    }
    Ok(p)
}

fn devices(raw: &RawValue) -> Result<Vec<String>, RequestError> {
    let list: Vec<Value> = serde_json::from_str(raw.get()).map_err(|_| {
        RequestError::wrong_type(
            "devices",
            "an array of device names",
            &kind_of_text(raw.get()),
        )
    })?;
    list.iter()
        .enumerate()
        .map(|(i, v)| match v.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            Some(_) => Err(RequestError::value(format!("`devices[{i}]` is empty"))),
            None => Err(RequestError::wrong_type(
                &format!("devices[{i}]"),
                "a device name such as \"cuda:0\" or \"cpu\"",
                &kind_of(v),
            )),
        })
        .collect()
}

/// "a string", "the number 1.5", … for error messages.
fn kind_of(v: &Value) -> String {
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

fn kind_of_text(text: &str) -> String {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => "an array".into(),
        Some(b'{') => "an object".into(),
        _ => serde_json::from_str::<Value>(text)
            .map(|v| kind_of(&v))
            .unwrap_or_else(|_| "something else".into()),
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
