//! What could not be delivered by the end: kept in a file, one JSON line each
//! (`{"url", "batch_id", "body"}`), to be re-sent later, or written to the log in full. The
//! file keeps the URL whole, credentials included (it is the operator's own record, to replay
//! the POSTs); the log shows it redacted, as every log line does.

use std::io::Write;
use std::path::Path;

/// One result still undelivered.
pub struct Left<'a> {
    pub url: &'a str,
    pub batch_id: &'a str,
    pub body: &'a str,
    pub what: &'a str,
    pub attempts: u32,
}

impl Left<'_> {
    /// The body inline when it is JSON, else as a string; the URL whole.
    fn line(&self) -> String {
        self.line_with_url(self.url)
    }

    fn line_with_url(&self, url: &str) -> String {
        let id = self.batch_id;
        match serde_json::value::RawValue::from_string(self.body.to_string()) {
            Ok(body) => serde_json::json!({"url": url, "batch_id": id, "body": body}),
            Err(_) => serde_json::json!({"url": url, "batch_id": id, "body": self.body}),
        }
        .to_string()
    }
}

/// Append every left result to `file`, or log it whole when there is no file or it cannot
/// be written.
pub fn keep<'a>(left: impl Iterator<Item = Left<'a>>, file: Option<&Path>) {
    let left: Vec<Left> = left.collect();
    if left.is_empty() {
        return;
    }
    let lines: Vec<String> = left.iter().map(Left::line).collect();
    let kept = file.map(|path| append_lines(path, &lines));
    for l in &left {
        let url = super::redacted(l.url);
        let line = l.line_with_url(&url);
        match (&kept, file) {
            (Some(Ok(())), Some(path)) => log::error!(
                "undelivered after {} attempts: {} for {url}; kept in {}",
                l.attempts,
                l.what,
                path.display()
            ),
            (Some(Err(e)), _) => {
                log::error!("could not keep it in a file ({e}); undelivered: {line}")
            }
            _ => log::error!("undelivered after {} attempts: {line}", l.attempts),
        }
    }
}

fn append_lines(path: &Path, lines: &[String]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_results_are_appended_as_json_lines() {
        let dir = crate::test_support::tempdir();
        let path = dir.path().join("left.jsonl");
        let left = |body| Left {
            url: "http://x/generated",
            batch_id: "b1",
            body,
            what: "ProofBatch",
            attempts: 3,
        };
        keep([left(r#"{"nonces":[1]}"#)].into_iter(), Some(&path));
        keep([left("not json")].into_iter(), Some(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"batch_id\":\"b1\",\"body\":{\"nonces\":[1]},\"url\":\"http://x/generated\"}\n\
             {\"batch_id\":\"b1\",\"body\":\"not json\",\"url\":\"http://x/generated\"}\n"
        );
    }
}
