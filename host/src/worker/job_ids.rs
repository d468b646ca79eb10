//! Job ids as the platform hands them out, checked once when a job is taken: the id goes back
//! in every result's URL (`$ID`) and in its `X-Request-ID` header, so an id that cannot go
//! there would make every POST of the job fail to build, retried until shutdown.

/// Longest id taken: the platform's are uuids with a prefix or suffix; an id this long is
/// not one, and would make URLs no server takes.
pub const MAX_ID_BYTES: usize = 512;

/// What can be done with a job's id.
#[derive(Debug, PartialEq)]
pub enum IdCheck {
    /// Fit for the URL (percent-encoded) and the header.
    Fits,
    /// Fit for the URL (percent-encoded) but not for a header (control characters,
    /// non-ASCII): the job is not run, and answered with this error, without the header.
    AnswerOnly(String),
    /// Fit for nothing (empty, too long): the job cannot be answered; this says why.
    Unanswerable(String),
}

pub fn check(id: &str) -> IdCheck {
    if id.is_empty() {
        return IdCheck::Unanswerable("its id is empty".into());
    }
    if id.len() > MAX_ID_BYTES {
        return IdCheck::Unanswerable(format!(
            "its id is {} bytes long, over the {MAX_ID_BYTES} a result URL can carry",
            id.len()
        ));
    }
    if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return IdCheck::AnswerOnly(format!(
            "job id {} holds {:?}: ids must be printable ASCII without spaces (they are sent back in the X-Request-ID header); the job was not run",
            quoted(id),
            c
        ));
    }
    IdCheck::Fits
}

/// The id as it goes into a URL: every byte but the unreserved characters percent-encoded, so
/// that `/`, `?`, `#`, `&` in an id stay part of it wherever `$ID` stands (path or query).
pub fn in_url(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether the id may go in the `X-Request-ID` header.
pub fn fits_header(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_graphic())
}

/// An id for a log line: escaped (a newline stays `\n`), cut short past 80 characters.
pub fn quoted(id: &str) -> String {
    let escaped = format!("{id:?}");
    match escaped.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sorted_by_what_can_carry_them() {
        assert_eq!(check("sync-2d5a-e1"), IdCheck::Fits);
        assert_eq!(check("a/b?c#d"), IdCheck::Fits);
        assert!(matches!(check("job\n1"), IdCheck::AnswerOnly(why) if why.contains(r#""job\n1""#)));
        assert!(matches!(check("job 1"), IdCheck::AnswerOnly(_)));
        assert!(matches!(check("jöb"), IdCheck::AnswerOnly(_)));
        assert!(matches!(check(""), IdCheck::Unanswerable(_)));
        assert!(matches!(check(&"x".repeat(513)), IdCheck::Unanswerable(_)));
        assert!(fits_header("a/b") && !fits_header("a\nb") && !fits_header(""));
    }

    #[test]
    fn ids_keep_their_characters_in_a_url() {
        assert_eq!(in_url("sync-2d5a_e1.x~"), "sync-2d5a_e1.x~");
        assert_eq!(in_url("a/b?c#d&e"), "a%2Fb%3Fc%23d%26e");
        assert_eq!(in_url("job\n1"), "job%0A1");
        assert_eq!(in_url("é"), "%C3%A9");
        assert!(quoted(&"y".repeat(500)).ends_with('…'));
    }
}
