//! The nonce list: up to ten million integers, decoded element by element straight into
//! `i64`s (never a `Value` per element), so a long list is read once and an error names the
//! first bad element by its index.

use crate::errors::{RequestError, kind_of_text};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

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
    }
}
