//! The model params a request may give (docs/spec/COMPUTATION.md §2.1): one list of the
//! fields, in wit/pow.wit's order, from which their names, the partial set a request gives, its
//! JSON form, the `params` parser and the fill from defaults all follow.

#[cfg(feature = "bindings")]
use crate::ModelParams;
use crate::errors::{RequestError, kind_of, kind_of_text};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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

/// The `params` object: any subset of the fields, each checked by its type. An unknown field
/// is ignored (logged at warn), as the reference's pydantic `Params` ignores it: a newer
/// client adding a model field must not stop this plugin.
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
            None => ignored(key),
        }
    }
    Ok(p)
}

/// Say, once per plugin instance, that an unknown params field was ignored (natively, in
/// tests, there is no host to say it to).
fn ignored(key: &str) {
    #[cfg(all(feature = "bindings", target_arch = "wasm32"))]
    {
        use std::collections::BTreeSet;
        use std::sync::Mutex;
        // Bounded, so that ever new keys cannot grow it.
        static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
        let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
        if warned.len() < 64 && warned.insert(key.to_string()) {
            crate::log::log(
                crate::Level::Warn,
                &format!(
                    "ignoring the unknown field `{key}` in params (the fields are: {})",
                    PARAMS_FIELDS.join(", ")
                ),
            );
        }
    }
    #[cfg(not(all(feature = "bindings", target_arch = "wasm32")))]
    let _ = key;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    /// A number beyond f64 in params is named as such, not as a wrong type.
    #[test]
    fn an_unreadable_number_is_named_as_such() {
        let e = params(&raw(r#"{"ffn_dim_multiplier": 1e400}"#)).unwrap_err();
        assert_eq!(e.error_type, "ValueError");
        assert!(
            e.message.contains("cannot be read") && e.message.contains("out of range"),
            "{e:?}"
        );
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
    #[cfg(feature = "bindings")]
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
        // Unknown fields are ignored, as by the reference; the known ones still count.
        let p = params(&raw(r#"{"depth": 3, "dim": 64}"#)).unwrap();
        assert_eq!(
            p,
            PartialParams {
                dim: Some(64),
                ..PartialParams::default()
            }
        );
    }
}
