//! Request fields checked one by one: the request as an object of raw fields, and each field
//! read by what it must be, every refusal naming the field and saying what to fix.

use crate::errors::{RequestError, kind_of, kind_of_text};
use crate::limits::MAX_TEXT_BYTES;
use crate::numbers;
use serde::de;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// A JSON object's fields, kept raw until each is checked.
pub type Fields<'a> = BTreeMap<String, &'a RawValue>;

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

/// Refuse the first key of `keys` that is not one of `known`, naming `place` and the known keys.
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

/// A field the request must give; `what` says what it is, for the error when it is missing.
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

/// A field the request may leave out: its value, or `None` when it is missing or `null` (both
/// mean the default).
pub fn optional<'a>(input: &Fields<'a>, field: &str) -> Option<&'a RawValue> {
    input.get(field).copied().filter(|raw| raw.get() != "null")
}

/// A non-empty string of at most [`MAX_TEXT_BYTES`].
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

/// An integer field the request must give (see [`integer`]).
pub fn integer_field(input: &Fields, field: &str, what: &str) -> Result<i64, RequestError> {
    let raw = required(input, field, what)?;
    integer(raw.get(), field)
}

/// An integer that fits in 64 bits; `1.0`, `"1"` and `1e3` are refused, `-0` is 0 (as
/// Python's json reads it).
pub fn integer(text: &str, field: &str) -> Result<i64, RequestError> {
    let text = text.trim();
    if text == "-0" {
        return Ok(0);
    }
    // An integer literal is read as sent: one past the range is named by its digits.
    if numbers::is_integer_literal(text) {
        return text
            .parse::<i64>()
            .map_err(|_| numbers::integer_out_of_range(field, text, "a 64-bit integer"));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) => Err(RequestError::wrong_type(
            field,
            "an integer",
            &format!("the number {n}"),
        )),
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

/// A positive finite number (`r_target`, thresholds); `1` and `1.0` both count.
pub fn positive_number(raw: &RawValue, field: &str) -> Result<f64, RequestError> {
    let x = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        _ if numbers::is_beyond_float(raw.get()) => return Err(beyond_float(field, raw.get())),
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

/// A number beyond every float, as a field's value: what is wrong with it.
fn beyond_float(field: &str, text: &str) -> RequestError {
    RequestError::value(format!(
        "`{field}` is out of range: {} is not a finite number ({}); give finite numbers",
        numbers::as_sent(text),
        numbers::FLOAT_LIMIT
    ))
}

/// A list of finite numbers (claimed distances), at most `max`.
pub fn number_list(raw: &RawValue, field: &str, max: usize) -> Result<Vec<f64>, RequestError> {
    // Each element kept raw until read: one past every float is named, not the whole list.
    let list: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|_| {
        RequestError::wrong_type(field, "an array of numbers", &kind_of_text(raw.get()))
    })?;
    if list.len() > max {
        return Err(RequestError::value(format!(
            "`{field}` lists more than {max} numbers; split the request"
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, element)| {
            let text = element.get();
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => {
                    Ok(n.as_f64().unwrap_or_default())
                }
                _ if numbers::is_beyond_float(text) => {
                    Err(beyond_float(&format!("{field}[{i}]"), text))
                }
                _ => Err(RequestError::wrong_type(
                    &format!("{field}[{i}]"),
                    "a finite number",
                    &kind_of_text(text),
                )),
            }
        })
        .collect()
}

/// The devices a request asks for: non-empty names (`"cuda:0"`, `"cpu"`).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

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
    }

    /// A 200 MB block hash once reached the host and failed there as a raw Wasm fuel error:
    /// text fields are refused by their length, by name, before they travel.
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

    /// Missing and `null` both leave an optional field out; any other value is given.
    #[test]
    fn optional_fields_may_be_missing_or_null() {
        let fields: Fields =
            serde_json::from_str(r#"{"a": null, "b": 0, "c": false, "d": "null"}"#).unwrap();
        assert!(optional(&fields, "a").is_none());
        assert!(optional(&fields, "missing").is_none());
        assert_eq!(optional(&fields, "b").unwrap().get(), "0");
        assert_eq!(optional(&fields, "c").unwrap().get(), "false");
        assert_eq!(optional(&fields, "d").unwrap().get(), "\"null\"");
    }

    /// Numbers no field holds are named as sent, with what they exceed.
    #[test]
    fn out_of_range_numbers_say_so() {
        let e = number_list(&raw("[1.0, 1e999]"), "dist", 10).unwrap_err();
        assert_eq!(e.error_type, "ValueError");
        assert!(
            e.message.contains("`dist[1]` is out of range: 1e999"),
            "{e:?}"
        );
        assert!(e.message.contains("1.8e308"), "{e:?}");
        let e = positive_number(&raw("1e999"), "r_target").unwrap_err();
        assert!(
            e.message.contains("`r_target` is out of range: 1e999"),
            "{e:?}"
        );
        for (text, field) in [
            ("18446744073709551616", "start_nonce"),
            ("-9223372036854775809", "x"),
        ] {
            let e = integer(text, field).unwrap_err();
            assert_eq!(e.error_type, "ValueError");
            assert!(
                e.message.contains(&format!("`{field}` is out of range")),
                "{e:?}"
            );
            assert!(e.message.contains(text), "printed as sent: {e:?}");
            assert!(e.message.contains(numbers::I64_RANGE), "{e:?}");
        }
        assert_eq!(integer("9223372036854775807", "x").unwrap(), i64::MAX);
        let e = integer("1.5", "x").unwrap_err();
        assert_eq!(e.message, "`x` must be an integer, got the number 1.5");
    }

    #[test]
    fn lists_name_their_bad_element() {
        let e = number_list(&raw("[1.0, null]"), "dist", 10).unwrap_err();
        assert!(e.message.contains("dist[1]"), "{e:?}");
        let e = positive_number(&raw("0"), "r_target").unwrap_err();
        assert_eq!(e.error_type, "ValueError");
    }
}
