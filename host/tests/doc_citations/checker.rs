//! The check of one file's text: citations of documents outside the repository, spec files
//! named by a name or path that is no file under `docs/spec/`, "spec §N" without a file, and
//! `§` labels that name no heading of the file they cite.

use crate::files::{normalise, relative_str};
use crate::labels::{chain, headings};
use crate::{OUTSIDE, SPEC_DIR, SPEC_NAMES};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

pub struct Checker {
    pub root: PathBuf,
    pub problems: Vec<String>,
}

impl Checker {
    fn problem(&mut self, file: &str, text: &str, at: usize, what: String) {
        let line = text[..at].matches('\n').count() + 1;
        self.problems.push(format!("{file}:{line}: {what}"));
    }

    /// The spec file a path token names, relative to the root, if it is one under
    /// `docs/spec/`: tokens are read from the root, or (in a markdown file) from the file's
    /// own directory.
    fn resolve(&self, file: &str, token: &str) -> Option<String> {
        let dir = Path::new(file).parent().map_or(String::new(), relative_str);
        let mut candidates = vec![normalise(token)];
        if file.ends_with(".md") && !dir.is_empty() {
            candidates.push(normalise(&format!("{dir}/{token}")));
        }
        candidates
            .into_iter()
            .flatten()
            .find(|c| c.starts_with(&format!("{SPEC_DIR}/")) && self.root.join(c).is_file())
    }

    pub fn check_file(&mut self, file: &str, text: &str) {
        for bad in OUTSIDE {
            for (at, _) in text.match_indices(bad) {
                self.problem(
                    file,
                    text,
                    at,
                    format!("`{bad}` cites a document outside the repository; cite docs/spec/ (or put the fact in the comment)"),
                );
            }
        }
        let lower = text.to_ascii_lowercase(); // same byte offsets as `text`
        for (at, _) in lower.match_indices("spec §") {
            let before = lower[..at].chars().next_back();
            if !before.is_some_and(|c| c == '/' || c.is_alphanumeric()) {
                self.problem(
                    file,
                    text,
                    at,
                    "\"spec §…\" names no file; cite docs/spec/<FILE>.md §…".into(),
                );
            }
        }

        // Spec files named by path or name, and the `§` chains that follow them.
        let mut consumed: BTreeSet<usize> = BTreeSet::new();
        let mut cited: Vec<(usize, String, Vec<String>)> = Vec::new();
        for (at, _) in text.match_indices(".md") {
            let end = at + 3;
            if text[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let start = text[..at]
                .char_indices()
                .rev()
                .take_while(|&(_, c)| is_path_char(c))
                .last()
                .map_or(at, |(i, _)| i);
            let token = text[start..end].trim_start_matches('-');
            let name = token.rsplit('/').next().unwrap_or(token);
            let names_spec = SPEC_NAMES.contains(&name) || token.contains("docs/spec/");
            if !names_spec {
                continue;
            }
            let Some(target) = self.resolve(file, token) else {
                self.problem(
                    file,
                    text,
                    start,
                    format!("`{token}` is not a file under {SPEC_DIR}/; cite docs/spec/<FILE>.md"),
                );
                continue;
            };
            // Any of `) ] \`` * and spaces may stand between the name and its `§`.
            let gap = text[end..]
                .char_indices()
                .find(|&(_, c)| !matches!(c, ' ' | ')' | ']' | '`' | '*'))
                .map_or(text.len(), |(i, _)| end + i);
            if text[gap..].starts_with('§') {
                let (labels, used) = chain(text, gap);
                consumed.extend(used);
                cited.push((gap, target, labels));
            }
        }

        // `§` that follow no file: in markdown, the file's own headings; elsewhere, an error.
        let is_markdown = file.ends_with(".md");
        let mut local_consumed: BTreeSet<usize> = BTreeSet::new();
        for (at, _) in text.match_indices('§') {
            if consumed.contains(&at) || local_consumed.contains(&at) {
                continue;
            }
            let (labels, used) = chain(text, at);
            if labels.is_empty() {
                continue; // a lone `§`, not a citation
            }
            local_consumed.extend(used);
            if is_markdown {
                cited.push((at, file.to_string(), labels));
            } else {
                self.problem(
                    file,
                    text,
                    at,
                    format!(
                        "`§{}` names no file; write docs/spec/<FILE>.md §{}",
                        labels[0], labels[0]
                    ),
                );
            }
        }

        for (at, target, labels) in cited {
            let Ok(spec) = fs::read_to_string(self.root.join(&target)) else {
                self.problem(file, text, at, format!("cannot read {target}"));
                continue;
            };
            let have = headings(&spec);
            for label in labels {
                if !have.contains(&label) {
                    self.problem(file, text, at, format!("{target} has no heading §{label}"));
                }
            }
        }
    }
}
