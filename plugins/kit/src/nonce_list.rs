//! The nonce list: up to ten million integers, decoded element by element straight into
//! `i64`s (never a `Value` per element), so a long list is read once and an error names the
//! first bad element by its index.

use crate::errors::{RequestError, kind_of_text};
use crate::numbers;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// A list of nonces (`field`, at most `max`): decoded element by element into integers, so
/// that an error names the first bad element by its index.
pub fn nonce_list(text: &str, field: &'static str, max: usize) -> Result<Vec<i64>, RequestError> {
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
            // Each element borrowed as its text: read as sent, never as the float a number
            // past the range rounds to.
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                let i = out.len();
                let element = match nonce(element.get(), self.field, i) {
                    Ok(_) if i == self.max => Err(RequestError::value(format!(
                        "`{}` lists more than {} nonces; split the request",
                        self.field, self.max
                    ))),
                    other => other,
                };
                match element {
                    Ok(n) => out.push(n),
                    Err(e) => {
                        problem = Some(e);
                        break;
                    }
                }
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

/// Element `i` of the list `field`, from its JSON text.
fn nonce(text: &str, field: &str, i: usize) -> Result<i64, RequestError> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let name = format!("{field}[{i}]");
    if numbers::is_integer_literal(text) {
        return Err(numbers::integer_out_of_range(&name, text, "a nonce"));
    }
    // serde_json reads `-0.0` as the float -0.0; taken as 0 as the integer `-0` (Python: 0).
    if text
        .parse::<f64>()
        .is_ok_and(|x| x == 0.0 && x.is_sign_negative())
    {
        return Ok(0);
    }
    Err(RequestError::new(
        "TypeError",
        format!("`{name}` must be an integer, got {}", kind_of_text(text)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-0` is the nonce 0, as Python's json reads it.
    #[test]
    fn minus_zero_is_nonce_zero() {
        assert_eq!(nonce_list("[-0, 1]", "nonces", 10).unwrap(), vec![0, 1]);
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
        for (text, want) in [
            ("[1, true]", "`nonces[1]` must be an integer, got true"),
            (
                "[1.5]",
                "`nonces[0]` must be an integer, got the number 1.5",
            ),
            ("[[1]]", "`nonces[0]` must be an integer, got an array"),
            ("[null]", "`nonces[0]` must be an integer, got null"),
        ] {
            assert_eq!(nonce_list(text, "nonces", 10).unwrap_err().message, want);
        }
    }

    /// 2^64 is named as sent, with the range a nonce has: not as the float it rounds to.
    #[test]
    fn a_nonce_past_the_range_is_named_as_sent() {
        for text in [
            "18446744073709551616",
            "9223372036854775808",
            "-9223372036854775809",
        ] {
            let e = nonce_list(&format!("[0, {text}]"), "nonces", 10).unwrap_err();
            assert_eq!(e.error_type, "ValueError");
            assert_eq!(
                e.message,
                format!(
                    "`nonces[1]` is out of range for a nonce: {text} does not fit; a nonce is an integer {}",
                    numbers::I64_RANGE
                )
            );
        }
        let e = nonce_list("[1e999]", "nonces", 10).unwrap_err();
        assert!(e.message.contains("1e999, beyond any float"), "{e:?}");
        assert_eq!(
            nonce_list(
                "[9223372036854775807, -9223372036854775808, -0]",
                "nonces",
                10
            )
            .unwrap(),
            vec![i64::MAX, i64::MIN, 0]
        );
    }
}
