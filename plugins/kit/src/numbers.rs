//! JSON number literals read as sent: a number no integer or float of the request holds is
//! named by its own digits and what it exceeds, never as the float it rounds to (`2^64` is not
//! "18446744073709552000") nor as "something else" (`1e999`).

/// The range of a signed 64-bit integer (nonces, start_nonce, …), for messages.
pub const I64_RANGE: &str = "from -9223372036854775808 to 9223372036854775807";

/// What a finite float can hold, for messages.
pub const FLOAT_LIMIT: &str = "the largest finite number is about 1.8e308";

/// Longest literal echoed back whole in a message.
const ECHO_MAX: usize = 40;

/// Whether `text` is a JSON integer literal: `-?digits`.
pub fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `text` is a JSON number literal beyond every finite float (`1e999`, 400 digits).
pub fn is_beyond_float(text: &str) -> bool {
    let text = text.trim();
    let syntax = text
        .strip_prefix('-')
        .unwrap_or(text)
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit());
    syntax && text.parse::<f64>().is_ok_and(|x| x.is_infinite())
}

/// The literal as sent, cut short past [`ECHO_MAX`] characters (with its length).
pub fn as_sent(text: &str) -> String {
    let text = text.trim();
    if text.len() <= ECHO_MAX {
        text.to_string()
    } else {
        format!("{}… ({} digits)", &text[..ECHO_MAX], text.len())
    }
}

/// `field`'s integer literal that no signed 64-bit integer holds.
pub fn integer_out_of_range(field: &str, text: &str, what: &str) -> crate::RequestError {
    crate::RequestError::value(format!(
        "`{field}` is out of range for {what}: {} does not fit; {what} is an integer {I64_RANGE}",
        as_sent(text)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_classified_by_their_text() {
        assert!(is_integer_literal("18446744073709551616"));
        assert!(is_integer_literal("-5"));
        assert!(!is_integer_literal("1.0") && !is_integer_literal("-") && !is_integer_literal(""));
        assert!(is_beyond_float("1e999") && is_beyond_float("-1e999"));
        assert!(is_beyond_float(&"9".repeat(400)));
        assert!(
            !is_beyond_float("1e308") && !is_beyond_float("inf") && !is_beyond_float("\"1e999\"")
        );
        assert_eq!(as_sent("18446744073709551616"), "18446744073709551616");
        assert!(as_sent(&"9".repeat(400)).ends_with("(400 digits)"));
    }
}
