//! Nonce lists: comma-separated integers and half-open ranges `A..B`.

use anyhow::{Context, Result, bail};

/// Most nonces in one list or one compute call: the plugins' limit for one request, defined
/// once in the kit. More than this in one command is almost certainly a typo in a range.
pub use powhost_plugin_kit::MAX_NONCES;

pub fn parse_nonce_list(text: &str) -> Result<Vec<i64>> {
    let quoted = Quoted(text);
    let mut nonces = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            bail!("empty item in nonce list {quoted} (use e.g. `5,-3,0..64`)");
        }
        if let Some((a, b)) = item.split_once("..") {
            let a = parse_nonce(a)?;
            let b = parse_nonce(b)?;
            if b < a {
                bail!(
                    "range {} is backwards: the end must not be below the start",
                    Quoted(item)
                );
            }
            let len = (b as i128 - a as i128) as u64;
            if len > (MAX_NONCES - nonces.len()) as u64 {
                bail!("nonce list {quoted} has more than {MAX_NONCES} nonces; split the work");
            }
            nonces.extend(a..b);
        } else {
            nonces.push(parse_nonce(item)?);
            if nonces.len() > MAX_NONCES {
                bail!("nonce list has more than {MAX_NONCES} nonces; split the work");
            }
        }
    }
    if nonces.is_empty() {
        bail!("the nonce list is empty");
    }
    Ok(nonces)
}

fn parse_nonce(s: &str) -> Result<i64> {
    s.trim().parse::<i64>().with_context(|| {
        format!(
            "{} is not a nonce: nonces are integers in the signed 64-bit range",
            Quoted(s)
        )
    })
}

/// Text quoted in a message, cut short past 60 characters: a list of a million nonces is not
/// echoed back whole.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(60) {
            Some((cut, _)) => write!(f, "`{}…` ({} bytes)", &self.0[..cut], self.0.len()),
            None => write!(f, "`{}`", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integers_and_ranges_in_order() {
        assert_eq!(
            parse_nonce_list("5,-3,0..4").unwrap(),
            vec![5, -3, 0, 1, 2, 3]
        );
        assert_eq!(parse_nonce_list("-2..1").unwrap(), vec![-2, -1, 0]);
        assert_eq!(parse_nonce_list(" 7 , 8 ").unwrap(), vec![7, 8]);
        assert_eq!(
            parse_nonce_list("9223372036854775807,-9223372036854775808").unwrap(),
            vec![i64::MAX, i64::MIN]
        );
    }

    #[test]
    fn rejects_bad_lists() {
        for (text, want) in [
            ("", "empty item"),
            ("1,,2", "empty item"),
            ("1.5", "not a nonce"),
            ("abc", "not a nonce"),
            ("9223372036854775808", "not a nonce"),
            ("5..2", "backwards"),
            ("3..3", "empty"),
            ("0..100000000000", "more than"),
            ("1..", "not a nonce"),
        ] {
            let err = parse_nonce_list(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got `{err}`");
        }
    }

    #[test]
    fn a_long_list_is_not_echoed_back_whole() {
        let long = format!("{},x", "1,".repeat(100_000));
        let err = format!("{:#}", parse_nonce_list(&long).unwrap_err());
        assert!(err.len() < 300, "{} bytes: {err:.300}", err.len());
        let err = format!(
            "{:#}",
            parse_nonce_list(&format!("{}..1", "9".repeat(5000))).unwrap_err()
        );
        assert!(
            err.contains("(5000 bytes)") && err.len() < 300,
            "{err:.300}"
        );
        let err = parse_nonce_list(&format!("{},", "1,".repeat(100_000)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty item") && err.len() < 300, "{err:.300}");
    }
}
