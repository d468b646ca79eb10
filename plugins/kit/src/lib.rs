//! What powhost's plugins share: the WIT bindings of wit/pow.wit (generated once, here), the
//! handler wrapper every plugin exports through, and request fields checked one by one, each
//! failure a Python-style error type (as the network's reference handlers report them) and a
//! sentence that names the field and says what to fix. The field checks make no host calls, so
//! they are unit-tested natively.
//!
//! A plugin states only its own logic:
//!
//! ```ignore
//! struct Mine;
//! impl powhost_plugin_kit::Handler for Mine {
//!     fn info() -> PluginInfo { … }
//!     fn handle(request: &str) -> Result<String, RequestError> { … }
//! }
//! powhost_plugin_kit::export_handler!(Mine);
//! ```
//!
//! The bindings (feature `bindings`, on by default) are left out where only the checks and
//! limits are wanted, as in the host, which takes [`MAX_NONCES`] from here.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A JSON object's fields, kept raw until each is checked.
pub type Fields<'a> = BTreeMap<String, &'a RawValue>;

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

/// Most nonces one request may list (a nonce list, a batch to validate, one compute call):
/// beyond this the request is almost certainly a mistake, and its distances would not fit a
/// reply. The host refuses longer lists too (its `--nonces` and its compute calls).
pub const MAX_NONCES: usize = 10_000_000;

/// The fields of a ProofBatch (docs/spec/PROTOCOLS.md §A3): what the validator takes beside
/// its settings, and what `serve`'s `/api/v1/pow/validate` keeps of a body.
pub const PROOF_BATCH_FIELDS: &[&str] = &[
    "public_key",
    "block_hash",
    "block_height",
    "nonces",
    "dist",
    "node_id",
];

/// The model params, once: their names in wit/pow.wit's order (with `_` for the WIT's `-`)
/// and each one's type in the WIT record `model-params`. [`PARAMS_FIELDS`], [`PartialParams`],
/// its JSON form, the `params` parser and [`fill_params`] all follow from this list, and
/// `fill_params` builds the generated WIT record from it, so a field added to or dropped from
/// the WIT without this list fails to compile (a test checks the order and the names).
macro_rules! model_params {
    ($($field:ident: $ty:ty,)*) => {
        /// The model params' field names (docs/spec/COMPUTATION.md §2.1), in the WIT's order.
        pub const PARAMS_FIELDS: &[&str] = &[$(stringify!($field)),*];
        /// Their types, for the test that checks them against the WIT.
        #[cfg(test)]
        const PARAMS_TYPES: &[&str] = &[$(stringify!($ty)),*];

        /// The model params as the request gives them: any subset of the fields.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct PartialParams {
            $(pub $field: Option<$ty>,)*
        }

        impl PartialParams {
            /// The fields given, as a JSON object that `params` reads back to the same value.
            pub fn to_json(&self) -> Value {
                let mut m = Map::new();
                $(
                    if let Some(value) = self.$field {
                        m.insert(stringify!($field).into(), Value::from(value));
                    }
                )*
                Value::Object(m)
            }

            /// Set the field named `key` from `value` (`field` names it in errors); `None` when
            /// no field has that name.
            fn set(&mut self, key: &str, value: &Value, field: &str) -> Option<Result<(), RequestError>> {
                match key {
                    $(stringify!($field) => Some(ParamValue::read(value, field).map(|v| self.$field = Some(v))),)*
                    _ => None,
                }
            }
        }

        /// Fill the params a request left out from a full set (`defaults`, usually a preset
        /// from `compute::preset`).
        #[cfg(feature = "bindings")]
        pub fn fill_params(partial: &PartialParams, defaults: ModelParams) -> ModelParams {
            ModelParams {
                $($field: partial.$field.unwrap_or(defaults.$field),)*
            }
        }
    };
}

model_params! {
    dim: u32,
    n_layers: u32,
    n_heads: u32,
    n_kv_heads: u32,
    vocab_size: u32,
    ffn_dim_multiplier: f64,
    multiple_of: u32,
    norm_eps: f64,
    rope_theta: f64,
    use_scaled_rope: bool,
    seq_len: u32,
}

/// How one params value is read, by its type: sizes are positive integers that fit in 32 bits,
/// the real-valued fields positive finite numbers, flags `true` or `false`.
trait ParamValue: Sized {
    fn read(value: &Value, field: &str) -> Result<Self, RequestError>;
}

impl ParamValue for u32 {
    fn read(value: &Value, field: &str) -> Result<u32, RequestError> {
        match value.as_u64() {
            Some(0) => Err(RequestError::value(format!("`{field}` must be at least 1"))),
            Some(n) => u32::try_from(n)
                .map_err(|_| RequestError::value(format!("`{field}` is too large: {n}"))),
            None if value.as_i64().is_some() => Err(RequestError::value(format!(
                "`{field}` must be at least 1, got {value}"
            ))),
            None => Err(RequestError::wrong_type(
                field,
                "a positive integer",
                &kind_of(value),
            )),
        }
    }
}

impl ParamValue for f64 {
    fn read(value: &Value, field: &str) -> Result<f64, RequestError> {
        match value.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x),
            Some(x) => Err(RequestError::value(format!(
                "`{field}` must be a positive number, got {x}"
            ))),
            None => Err(RequestError::wrong_type(field, "a number", &kind_of(value))),
        }
    }
}

impl ParamValue for bool {
    fn read(value: &Value, field: &str) -> Result<bool, RequestError> {
        value
            .as_bool()
            .ok_or_else(|| RequestError::wrong_type(field, "true or false", &kind_of(value)))
    }
}

/// The bindings of wit/pow.wit's `handler` world, generated for every plugin here: the host's
/// imports (`compute`, `session`, `log`), the shared types, and the `Guest` trait the kit
/// implements for every [`Handler`]. A plugin exports with [`export_handler!`].
#[cfg(feature = "bindings")]
pub mod bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "powhost_plugin_kit::bindings",
    });
}

#[cfg(feature = "bindings")]
pub use bindings::gonka::pow::types::{
    BackendInfo, ComputeError, ComputeErrorKind, Level, ModelParams, PluginInfo, Reply,
    ReplyStatus, StopReason, Task,
};
#[cfg(feature = "bindings")]
pub use bindings::gonka::pow::{compute, log, session};

/// A request-handling plugin: its own logic, and nothing of the WIT plumbing.
#[cfg(feature = "bindings")]
pub trait Handler {
    /// Name, version and a one-line summary, for `powhost plugins` and the logs.
    fn info() -> PluginInfo;
    /// Handle one request: the response body, or the error it is refused with.
    fn handle(request: &str) -> Result<String, RequestError>;
}

/// Every [`Handler`] is the world's `Guest`: an `Ok` body is an `ok` reply, an error is logged
/// (at info, as `TYPE: message`) and answered as `{"error": …, "error_type": …}`.
#[cfg(feature = "bindings")]
impl<H: Handler> bindings::Guest for H {
    fn handle(request: String) -> Reply {
        reply(H::handle(&request))
    }

    fn info() -> PluginInfo {
        H::info()
    }
}

/// The reply for a handler's result (see [`Handler`]).
#[cfg(feature = "bindings")]
pub fn reply(result: Result<String, RequestError>) -> Reply {
    match result {
        Ok(body) => Reply {
            status: ReplyStatus::Ok,
            body,
        },
        Err(e) => {
            log::log(Level::Info, &format!("{}: {}", e.error_type, e.message));
            Reply {
                status: ReplyStatus::Error,
                body: e.to_json(),
            }
        }
    }
}

/// Export a [`Handler`] as the plugin's component: `export_handler!(MyPlugin);` in its lib.rs.
#[cfg(feature = "bindings")]
#[macro_export]
macro_rules! export_handler {
    ($handler:ident) => {
        $crate::bindings::export!($handler with_types_in $crate::bindings);
    };
}

/// A failed host compute call as a RequestError with the Python-style type the reference
/// would raise; `timed_out` (read only for `stopped`) says whether the request's time limit,
/// rather than the caller, stopped the work.
#[cfg(feature = "bindings")]
pub fn compute_error(e: ComputeError, timed_out: bool) -> RequestError {
    let error_type = match e.kind {
        ComputeErrorKind::InvalidParams | ComputeErrorKind::InvalidTask => "ValueError",
        ComputeErrorKind::TooLarge => "MemoryError",
        ComputeErrorKind::DeviceUnavailable => "DeviceError",
        ComputeErrorKind::BackendFailed => "RuntimeError",
        // Stopped by the request's time limit rather than by the caller.
        ComputeErrorKind::Stopped if timed_out => "TimeoutError",
        ComputeErrorKind::Stopped => "Cancelled",
    };
    RequestError::new(error_type, e.message)
}

/// [`compute_error`] for a call that just failed: for `stopped`, the host is asked whether the
/// request's time limit passed (TimeoutError) or the caller cancelled (Cancelled).
#[cfg(feature = "bindings")]
pub fn compute_failed(e: ComputeError) -> RequestError {
    let timed_out = e.kind == ComputeErrorKind::Stopped
        && matches!(session::stop_requested(), Some(StopReason::Deadline));
    compute_error(e, timed_out)
}

/// Every input a fuzz target once failed on, and its seeds (`fuzz/regressions/TARGET/`,
/// `fuzz/seeds/TARGET/`), for a plugin's tests to replay: (file name, contents).
#[doc(hidden)]
pub fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(data) = std::fs::read(entry.path()) {
                out.push((entry.path().display().to_string(), data));
            }
        }
    }
    out
}

/// The fuzz targets' check on a request parser: text that parses, written back, parses to the
/// same value. Panics, naming `what`, when it does not.
#[doc(hidden)]
pub fn check_round_trip<T: PartialEq + std::fmt::Debug>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, RequestError>,
    write: impl Fn(&T) -> String,
    what: &str,
) {
    if let Ok(value) = parse(text) {
        let again = parse(&write(&value))
            .unwrap_or_else(|e| panic!("{what}: {value:?} written back is refused: {e:?}"));
        assert_eq!(again, value, "{what}");
    }
}

/// `check_round_trip` on every seed and past finding of fuzz target `target` (for tests).
#[doc(hidden)]
pub fn replay_round_trip<T: PartialEq + std::fmt::Debug>(
    target: &str,
    parse: impl Fn(&str) -> Result<T, RequestError>,
    write: impl Fn(&T) -> String,
) {
    let inputs = fuzz_inputs(target);
    assert!(!inputs.is_empty(), "no seeds for fuzz target {target}");
    for (name, data) in inputs {
        if let Ok(text) = std::str::from_utf8(&data) {
            check_round_trip(text, &parse, &write, &name);
        }
    }
}

pub fn reject_unknown<'a>(
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

pub fn required<'a>(
    input: &Fields<'a>,
    field: &str,
    what: &str,
) -> Result<&'a RawValue, RequestError> {
    input
        .get(field)
        .copied()
        .ok_or_else(|| RequestError::missing(field, what))
}

/// Longest text field (a block hash is 64 hex digits, a public key under 100 characters): a
/// longer one is a mistake, refused before it travels into seeds and logs.
pub const MAX_TEXT_BYTES: usize = 4096;

pub fn text_field(input: &Fields, field: &str, what: &str) -> Result<String, RequestError> {
    let raw = required(input, field, what)?;
    let value: String = serde_json::from_str(raw.get())
        .map_err(|_| RequestError::wrong_type(field, "a string", &kind_of_text(raw.get())))?;
    if value.is_empty() {
        return Err(RequestError::value(format!("`{field}` must not be empty")));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(RequestError::value(format!(
            "`{field}` is {} bytes long; at most {MAX_TEXT_BYTES} are accepted (a block hash is 64 hex digits)",
            value.len()
        )));
    }
    Ok(value)
}

pub fn integer_field(input: &Fields, field: &str, what: &str) -> Result<i64, RequestError> {
    let raw = required(input, field, what)?;
    integer(raw.get(), field)
}

/// An integer that fits in 64 bits; `1.0`, `"1"` and `1e3` are refused, `-0` is 0 (as
/// Python's json reads it).
pub fn integer(text: &str, field: &str) -> Result<i64, RequestError> {
    if text.trim() == "-0" {
        return Ok(0);
    }
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

/// `true` or `false`; `1`, `"true"` and `null` are refused.
pub fn boolean(text: &str, field: &str) -> Result<bool, RequestError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Bool(b)) => Ok(b),
        _ => Err(RequestError::wrong_type(
            field,
            "true or false",
            &kind_of_text(text),
        )),
    }
}

/// The request text as a JSON object; `shape` says what the object should be, for the error.
pub fn object<'a>(text: &'a str, shape: &str) -> Result<Fields<'a>, RequestError> {
    serde_json::from_str(text).map_err(|e| {
        // Not a map can also mean not JSON at all (`[1,` fails as "not a map" first).
        let is_json = serde_json::from_str::<de::IgnoredAny>(text).is_ok();
        if e.is_data() && is_json {
            RequestError::new(
                "TypeError",
                format!(
                    "the request must be a JSON object {shape}, got {}",
                    kind_of_text(text)
                ),
            )
        } else if text.contains("NaN") || text.contains("Infinity") {
            RequestError::new(
                "JSONDecodeError",
                format!("the request is not valid JSON ({e}): JSON has no NaN or Infinity; give finite numbers"),
            )
        } else {
            let e = serde_json::from_str::<de::IgnoredAny>(text)
                .err()
                .map_or(e.to_string(), |syntax| syntax.to_string());
            RequestError::new("JSONDecodeError", format!("the request is not valid JSON: {e}"))
        }
    })
}

/// A field that must be a JSON object.
pub fn object_field<'a>(raw: &'a RawValue, field: &str) -> Result<Fields<'a>, RequestError> {
    serde_json::from_str(raw.get())
        .map_err(|_| RequestError::wrong_type(field, "an object", &kind_of_text(raw.get())))
}

/// A positive finite number (`r_target`, thresholds); `1` and `1.0` both count.
pub fn positive_number(raw: &RawValue, field: &str) -> Result<f64, RequestError> {
    let x = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        _ => {
            return Err(RequestError::wrong_type(
                field,
                "a number",
                &kind_of_text(raw.get()),
            ));
        }
    };
    if !(x.is_finite() && x > 0.0) {
        return Err(RequestError::value(format!(
            "`{field}` must be a positive finite number, got {x}"
        )));
    }
    Ok(x)
}

/// A list of finite numbers (claimed distances), at most `max`.
pub fn number_list(raw: &RawValue, field: &str, max: usize) -> Result<Vec<f64>, RequestError> {
    let list: Vec<Value> = serde_json::from_str(raw.get()).map_err(|_| {
        RequestError::wrong_type(field, "an array of numbers", &kind_of_text(raw.get()))
    })?;
    if list.len() > max {
        return Err(RequestError::value(format!(
            "`{field}` lists more than {max} numbers; split the request"
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| match v.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(RequestError::wrong_type(
                &format!("{field}[{i}]"),
                "a finite number",
                &kind_of(v),
            )),
        })
        .collect()
}

/// A list of nonces (`field`, at most `max`): decoded element by element into integers, so
/// that an error names the first bad element by its index.
pub fn nonce_list(text: &str, field: &'static str, max: usize) -> Result<Vec<i64>, RequestError> {
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
                    // serde_json reads the integer `-0` as the float -0.0 (Python: 0); the
                    // literal `-0.0` cannot be told from it here and is taken as 0 too.
                    if v == 0.0 && v.is_sign_negative() {
                        return Ok(Element::Nonce(0));
                    }
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
    struct Nonces {
        field: &'static str,
        max: usize,
    }
    impl<'de> Visitor<'de> for Nonces {
        type Value = Result<Vec<i64>, RequestError>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of integers")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
            let mut problem = None;
            while let Some(element) = seq.next_element::<Element>()? {
                let i = out.len();
                problem = match element {
                    Element::Nonce(_) if i == self.max => Some(RequestError::value(format!(
                        "`{}` lists more than {} nonces; split the request",
                        self.field, self.max
                    ))),
                    Element::Nonce(n) => {
                        out.push(n);
                        continue;
                    }
                    Element::Bad(what) => Some(RequestError::new(
                        "TypeError",
                        format!("`{}[{i}]` must be an integer, got {what}", self.field),
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
    match de.deserialize_seq(Nonces { field, max }) {
        Ok(result) => result,
        Err(_) => Err(RequestError::wrong_type(
            field,
            "an array of integers",
            &kind_of_text(text),
        )),
    }
}

pub fn params(raw: &RawValue) -> Result<PartialParams, RequestError> {
    let map: Map<String, Value> = serde_json::from_str(raw.get()).map_err(|e| {
        if kind_of_text(raw.get()) == "an object" {
            // An object whose values cannot be read, e.g. a number beyond f64 (`1e400`).
            RequestError::value(format!("`params` has a value that cannot be read: {e}"))
        } else {
            RequestError::wrong_type("params", "an object", &kind_of_text(raw.get()))
        }
    })?;
    let mut p = PartialParams::default();
    for (key, value) in &map {
        let field = format!("params.{key}");
        match p.set(key, value, &field) {
            Some(result) => result?,
            None => {
                return Err(RequestError::value(format!(
                    "unknown field `{key}` in params; the fields are: {}",
                    PARAMS_FIELDS.join(", ")
                )));
            }
        }
    }
    Ok(p)
}

pub fn devices(raw: &RawValue) -> Result<Vec<String>, RequestError> {
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

pub fn kind_of_text(text: &str) -> String {
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

    #[test]
    fn what_a_hostile_newcomer_found() {
        // An unterminated array is not JSON: a JSONDecodeError, not a TypeError.
        let e = object("[1,", "{\"input\": {...}}").unwrap_err();
        assert_eq!(e.error_type, "JSONDecodeError", "{e:?}");
        assert!(e.message.contains("EOF"), "{e:?}");
        assert_eq!(object("[1]", "x").unwrap_err().error_type, "TypeError");
        // `-0` is the integer 0.
        assert_eq!(integer("-0", "start_nonce").unwrap(), 0);
        assert!(integer("-0.5", "start_nonce").is_err());
        assert_eq!(nonce_list("[-0, 1]", "nonces", 10).unwrap(), vec![0, 1]);
        // A number beyond f64 in params is named as such, not as a wrong type.
        let e = params(&raw(r#"{"ffn_dim_multiplier": 1e400}"#)).unwrap_err();
        assert_eq!(e.error_type, "ValueError");
        assert!(
            e.message.contains("cannot be read") && e.message.contains("out of range"),
            "{e:?}"
        );
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    /// Issue 14: a 200 MB block hash reached the host and failed as a raw Wasm fuel error.
    #[test]
    fn overlong_text_fields_are_refused_by_name() {
        let long = format!(r#"{{"block_hash": "{}"}}"#, "a".repeat(MAX_TEXT_BYTES + 1));
        let fields: Fields = serde_json::from_str(&long).unwrap();
        let e = text_field(&fields, "block_hash", "").unwrap_err();
        assert_eq!(e.error_type, "ValueError");
        assert!(
            e.message.contains("`block_hash` is 4097 bytes long"),
            "{e:?}"
        );
        let ok = format!(r#"{{"block_hash": "{}"}}"#, "a".repeat(MAX_TEXT_BYTES));
        let fields: Fields = serde_json::from_str(&ok).unwrap();
        assert!(text_field(&fields, "block_hash", "").is_ok());
    }

    /// Floats parse exactly, as Python's json does: the network's r_target is the f64 it
    /// names, not one an ulp away (serde_json's float_roundtrip, set for the workspace).
    #[test]
    fn floats_parse_exactly() {
        for (text, want) in [
            ("1.4013564660458173", 1.4013564660458173),
            ("1.3998052598497650", 1.399805259849765),
            ("1e-7", 1e-7),
        ] {
            assert_eq!(
                positive_number(&raw(text), "x").unwrap().to_bits(),
                f64::to_bits(want),
                "{text}"
            );
        }
        let list =
            number_list(&raw("[1.4001015947022062, 1.2844432941486390]"), "dist", 10).unwrap();
        assert_eq!(list, vec![1.4001015947022062, 1.284443294148639]);
    }

    /// The params' one list is the WIT's: the names (with `_` for `-`), their order and
    /// their types in wit/pow.wit's `record model-params`. (The host checks the core crate's
    /// `ModelParams` and `PartialParams` against `PARAMS_FIELDS`: host/tests/params_fields.rs.)
    #[test]
    fn params_fields_are_the_wit_records() {
        let wit = include_str!("../../../wit/pow.wit");
        let body = wit
            .split_once("record model-params {")
            .expect("wit/pow.wit has `record model-params`")
            .1
            .split_once('}')
            .unwrap()
            .0;
        let fields: Vec<(String, String)> = body
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("//"))
            .map(|line| {
                let (name, ty) = line.trim_end_matches(',').split_once(':').unwrap();
                (name.trim().replace('-', "_"), ty.trim().to_string())
            })
            .collect();
        let ours: Vec<(String, String)> = PARAMS_FIELDS
            .iter()
            .zip(PARAMS_TYPES)
            .map(|(name, ty)| (name.to_string(), ty.to_string()))
            .collect();
        assert_eq!(ours, fields);
    }

    /// Every field is parsed, written back by `to_json` and filled by `fill_params`.
    #[test]
    fn every_param_round_trips_and_fills() {
        let text = r#"{"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 128,
            "ffn_dim_multiplier": 1.3, "multiple_of": 32, "norm_eps": 1e-5, "rope_theta": 500000,
            "use_scaled_rope": true, "seq_len": 8}"#;
        let p = params(&raw(text)).unwrap();
        let json = p.to_json();
        assert_eq!(json.as_object().unwrap().len(), PARAMS_FIELDS.len());
        assert_eq!(params(&raw(&json.to_string())).unwrap(), p);
        assert_eq!(
            params(&raw("{}")).unwrap().to_json(),
            Value::Object(Map::new())
        );
        let defaults = ModelParams {
            dim: 2048,
            n_layers: 16,
            n_heads: 16,
            n_kv_heads: 16,
            vocab_size: 8192,
            ffn_dim_multiplier: 1.3,
            multiple_of: 1024,
            norm_eps: 1e-5,
            rope_theta: 500000.0,
            use_scaled_rope: false,
            seq_len: 16,
        };
        let full = fill_params(&p, defaults);
        assert_eq!(
            (
                full.dim,
                full.n_kv_heads,
                full.rope_theta,
                full.use_scaled_rope,
                full.seq_len
            ),
            (64, 2, 500000.0, true, 8)
        );
        let some = params(&raw(r#"{"dim": 64}"#)).unwrap();
        let filled = fill_params(&some, defaults);
        assert_eq!(filled.dim, 64);
        assert_eq!(filled.n_layers, 16);
        assert_eq!(
            format!("{:?}", fill_params(&PartialParams::default(), defaults)),
            format!("{defaults:?}")
        );
        // Each type's checks.
        let e = params(&raw(r#"{"dim": 0}"#)).unwrap_err();
        assert_eq!(e.message, "`params.dim` must be at least 1");
        let e = params(&raw(r#"{"seq_len": 4294967296}"#)).unwrap_err();
        assert_eq!(e.message, "`params.seq_len` is too large: 4294967296");
        let e = params(&raw(r#"{"norm_eps": -1}"#)).unwrap_err();
        assert_eq!(
            e.message,
            "`params.norm_eps` must be a positive number, got -1"
        );
        let e = params(&raw(r#"{"use_scaled_rope": 1}"#)).unwrap_err();
        assert_eq!(
            (e.error_type, e.message.as_str()),
            (
                "TypeError",
                "`params.use_scaled_rope` must be true or false, got the number 1"
            )
        );
        let e = params(&raw(r#"{"depth": 3}"#)).unwrap_err();
        assert_eq!(
            e.message,
            "unknown field `depth` in params; the fields are: dim, n_layers, n_heads, n_kv_heads, vocab_size, ffn_dim_multiplier, multiple_of, norm_eps, rope_theta, use_scaled_rope, seq_len"
        );
    }

    #[test]
    fn compute_errors_keep_their_python_types() {
        let e = |kind| ComputeError {
            kind,
            message: "why".into(),
        };
        for (kind, timed_out, want) in [
            (ComputeErrorKind::InvalidParams, false, "ValueError"),
            (ComputeErrorKind::InvalidTask, true, "ValueError"),
            (ComputeErrorKind::TooLarge, false, "MemoryError"),
            (ComputeErrorKind::DeviceUnavailable, false, "DeviceError"),
            (ComputeErrorKind::BackendFailed, true, "RuntimeError"),
            (ComputeErrorKind::Stopped, true, "TimeoutError"),
            (ComputeErrorKind::Stopped, false, "Cancelled"),
        ] {
            assert_eq!(
                compute_error(e(kind), timed_out),
                RequestError::new(want, "why"),
                "{kind:?}"
            );
        }
        // Only `stopped` asks the host (which a native test has not): the others never do.
        assert_eq!(
            compute_failed(e(ComputeErrorKind::TooLarge)).error_type,
            "MemoryError"
        );
    }

    #[test]
    fn lists_name_their_bad_element() {
        let e = nonce_list("[1, 2, \"3\"]", "nonces", 10).unwrap_err();
        assert_eq!(
            e.message,
            "`nonces[2]` must be an integer, got the string \"3\""
        );
        let e = nonce_list("[1, 2, 3]", "nonces", 2).unwrap_err();
        assert!(e.message.contains("more than 2"), "{e:?}");
        let e = number_list(&raw("[1.0, null]"), "dist", 10).unwrap_err();
        assert!(e.message.contains("dist[1]"), "{e:?}");
        let e = positive_number(&raw("0"), "r_target").unwrap_err();
        assert_eq!(e.error_type, "ValueError");
    }
}
