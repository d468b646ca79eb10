//! URLs as logs and error messages show them: a callback or webhook URL may carry its
//! receiver's credentials (`https://user:pass@node/…`, `?token=…`), which have no place in a
//! log that is shipped and kept elsewhere. The `--undelivered` file keeps the full URL.

/// Query parameter names (lowercase substrings) whose values are taken for secrets.
const SECRET_PARAMETERS: &[&str] = &[
    "token",
    "key",
    "secret",
    "sig",
    "password",
    "passwd",
    "pwd",
    "auth",
    "credential",
    "session",
    "jwt",
];

const REDACTED: &str = "REDACTED";

/// `url` with its userinfo and the values of secret-looking query parameters replaced by
/// `REDACTED`; a text that is no http(s) URL is not echoed.
pub fn redacted(url: &str) -> String {
    // Anything else may hide a secret anywhere: only its scheme is shown.
    let parsed = reqwest::Url::parse(url);
    let mut parsed = match parsed {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => u,
        Ok(u) => return format!("<a {}: URL without a host, not shown>", u.scheme()),
        Err(_) => return format!("<not a URL, {} characters>", url.chars().count()),
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username(REDACTED);
        let _ = parsed.set_password(None);
    }
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        SECRET_PARAMETERS.iter().any(|s| name.contains(s))
    };
    if parsed.query_pairs().any(|(name, _)| secret(&name)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if secret(&name) {
                    REDACTED.to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_secret_parameters_are_redacted() {
        assert_eq!(
            redacted("http://alice:s3cret@node:9100/v1/poc-batches/generated"),
            "http://REDACTED@node:9100/v1/poc-batches/generated"
        );
        assert_eq!(redacted("http://bob@node/x"), "http://REDACTED@node/x");
        assert_eq!(
            redacted("https://hook/x?id=7&token=abc&X-Amz-Signature=f00&api_key=k&Auth=z"),
            "https://hook/x?id=7&token=REDACTED&X-Amz-Signature=REDACTED&api_key=REDACTED&Auth=REDACTED"
        );
        // Nothing secret: unchanged, query and all.
        assert_eq!(
            redacted("http://node:9100/job-done/pod/j?gpu=H100&isStream=true"),
            "http://node:9100/job-done/pod/j?gpu=H100&isStream=true"
        );
        assert!(!redacted("node:s3cret@x y").contains("s3cret"));
    }
}
