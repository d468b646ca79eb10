//! Every citation of the specification points inside the repository (`docs/spec/README.md`).
//!
//! The repository's text files (source, manifests, WIT, shaders, scripts, docs; not `target/`
//! nor `plugins/prebuilt/`) are scanned, and the test fails when one
//! - cites a document kept outside the repository (`../shared`, `shared/spec/`, the build
//!   notes, the ziggurat tables' JSON) or a spec file by a name or path that is not a file
//!   under `docs/spec/` (a bare `PROTOCOLS.md` in a source file, `docs/PROTOCOLS.md`, …);
//! - says "spec §N" without naming the file;
//! - cites `docs/spec/X.md §N` (also `§A2–A7`, `§1, §4`) where X.md has no heading `§N`;
//! - uses a `§N` that names no file outside markdown (in a markdown file a bare `§N` is one
//!   of its own headings, and must exist).
//!
//! Std only, and fast: it reads a few hundred small files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Where the specification lives, relative to the repository root.
const SPEC_DIR: &str = "docs/spec";
/// File names that only ever mean a specification document: wherever they appear they must
/// resolve to a file under `docs/spec/`. (The first four were the names of documents outside
/// the repository; the others are the files of `docs/spec/`.)
const SPEC_NAMES: &[&str] = &[
    "POC.md",
    "API.md",
    "RUNPOD_WIRE.md",
    "NUMPY_RANDOM.md",
    "PROTOCOLS.md",
    "COMPUTATION.md",
    "REQUESTS.md",
];
/// Text that only ever cites something outside the repository.
const OUTSIDE: &[&str] = &[
    "../shared",
    "shared/spec/",
    "shared/notes/",
    "STACK.md",
    "ziggurat_tables.json",
];
/// Scanned: files with these extensions, files with these names, and everything in `.ci/`.
const EXTENSIONS: &[&str] = &[
    "rs", "md", "wit", "toml", "sh", "wgsl", "cu", "py", "yml", "yaml", "txt",
];
const NAMES: &[&str] = &["Dockerfile"];
/// Not scanned, relative to the root: build output, the prebuilt components, and this file
/// (which names what it forbids).
const SKIP: &[&str] = &["target", "plugins/prebuilt", "host/tests/doc_citations.rs"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The repository's text files, as paths relative to the root with `/` separators.
fn text_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = relative(root, &path);
            let name = entry.file_name().to_string_lossy().into_owned();
            if SKIP.contains(&rel.as_str()) || name == "target" || name == "node_modules" {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if name.starts_with('.') && name != ".ci" {
                    continue; // .git and the like
                }
                walk(root, &path, out);
            } else if kind.is_file() {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if EXTENSIONS.contains(&ext)
                    || NAMES.contains(&name.as_str())
                    || rel.starts_with(".ci/")
                {
                    out.push(rel);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// `a/b/../c` → `a/c`, without touching the file system; None if it climbs above the root.
fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

/// A `§` label at the start of `s`: `5`, `6.3`, `A7`, `B4.1` or a lone `A`, followed by
/// something that cannot continue a label. Returns the label and its length in bytes.
fn label_at(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && b[i].is_ascii_uppercase() {
        i += 1;
    }
    let letter = i;
    let digits = |i: usize| {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let j = digits(i);
    if j == i && letter == 0 {
        return None;
    }
    i = j;
    if j > letter {
        // .N sub-sections
        while i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i = digits(i + 1);
        }
    }
    if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        return None;
    }
    Some((s[..i].to_string(), i))
}

/// The labels of a markdown file's headings (`## §6.3 The target` → `6.3`).
fn headings(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with('#')) {
        for (at, _) in line.match_indices('§') {
            if let Some((label, _)) = label_at(&line[at + '§'.len_utf8()..]) {
                out.insert(label);
            }
        }
    }
    out
}

/// A chain of labels starting at the `§` at byte `at`: `§A2–A7`, `§1, §4, §6.3`, `§B1 and §B3`.
/// Returns the labels and the byte offsets of every `§` it consumed.
fn chain(text: &str, at: usize) -> (Vec<String>, Vec<usize>) {
    let sect = '§'.len_utf8();
    let (mut labels, mut consumed) = (Vec::new(), vec![at]);
    let Some((first, len)) = label_at(&text[at + sect..]) else {
        return (labels, consumed);
    };
    labels.push(first);
    let mut pos = at + sect + len;
    loop {
        let rest = &text[pos..];
        // A range: `–A7`, `-7`, `–§A9`.
        let dash = ["–", "-"].iter().find(|d| rest.starts_with(**d));
        if let Some(d) = dash {
            let mut p = pos + d.len();
            let with_sect = text[p..].starts_with('§');
            if with_sect {
                p += sect;
            }
            if let Some((label, len)) = label_at(&text[p..]) {
                if with_sect {
                    consumed.push(p - sect);
                }
                labels.push(label);
                pos = p + len;
                continue;
            }
            break;
        }
        // A list: `, §4`, ` and §B3`, `, and §2`, also across a line break (and the next
        // line's comment marker).
        if let Some(p) = list_separator(rest).map(|n| pos + n)
            && let Some((label, len)) = label_at(&text[p..])
        {
            consumed.push(p - sect);
            labels.push(label);
            pos = p + len;
            continue;
        }
        break;
    }
    (labels, consumed)
}

/// The length of a list separator before the next `§` label (`, §`, ` and §`, `,\n//! §`),
/// up to and including the `§`.
fn list_separator(rest: &str) -> Option<usize> {
    let mut s = rest;
    for word in [",", " and", " or"] {
        if let Some(after) = s.strip_prefix(word) {
            s = after;
            break;
        }
    }
    if s.len() == rest.len() {
        return None;
    }
    loop {
        let before = s.len();
        s = s.trim_start();
        for marker in ["//!", "///", "//", "#", "*"] {
            if let Some(after) = s.strip_prefix(marker) {
                s = after;
                break;
            }
        }
        for word in ["and ", "or "] {
            if let Some(after) = s.strip_prefix(word) {
                s = after;
            }
        }
        if s.len() == before {
            break;
        }
    }
    s.strip_prefix('§').map(|after| rest.len() - after.len())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

struct Checker {
    root: PathBuf,
    problems: Vec<String>,
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

    fn check_file(&mut self, file: &str, text: &str) {
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

fn relative_str(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_spec_citation_points_at_a_heading_in_docs_spec() {
    let root = repo_root();
    assert!(
        root.join(SPEC_DIR).join("COMPUTATION.md").is_file(),
        "{SPEC_DIR}/ is missing from {}",
        root.display()
    );
    let files = text_files(&root);
    assert!(
        files.len() > 50,
        "only {} text files found under {}",
        files.len(),
        root.display()
    );
    let mut checker = Checker {
        root: root.clone(),
        problems: Vec::new(),
    };
    for file in &files {
        // Not UTF-8 (a binary file with a text extension): nothing to cite.
        if let Ok(text) = fs::read_to_string(root.join(file)) {
            checker.check_file(file, &text);
        }
    }
    assert!(
        checker.problems.is_empty(),
        "{} citation problem(s) in {} files scanned:\n  {}",
        checker.problems.len(),
        files.len(),
        checker.problems.join("\n  ")
    );
}

#[test]
fn the_checker_catches_what_it_should() {
    let mut c = Checker {
        root: repo_root(),
        problems: Vec::new(),
    };
    let src = "// spec §5\n// (PROTOCOLS.md A3)\n// ../shared/spec/POC.md\n\
               // docs/spec/COMPUTATION.md §5.2, §42\n// docs/spec/PROTOCOLS.md §A2–A99\n\
               // docs/PROTOCOLS.md §B1\n// a bare §3\n";
    c.check_file("x.rs", src);
    let all = c.problems.join("\n");
    for want in [
        "x.rs:1: \"spec §…\" names no file",
        "x.rs:2: `PROTOCOLS.md` is not a file",
        "x.rs:3: `../shared` cites a document outside",
        "x.rs:4: docs/spec/COMPUTATION.md has no heading §42",
        "x.rs:5: docs/spec/PROTOCOLS.md has no heading §A99",
        "x.rs:6: `docs/PROTOCOLS.md` is not a file",
        "x.rs:7: `§3` names no file",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(
        !all.contains("§5.2") && !all.contains("§A2 "),
        "a valid citation was flagged:\n{all}"
    );

    let mut c = Checker {
        root: repo_root(),
        problems: Vec::new(),
    };
    c.check_file(
        "docs/spec/README.md",
        "[COMPUTATION.md](COMPUTATION.md) §6.3 and `docs/spec/NUMPY_RANDOM.md §7`; a `§` sign",
    );
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(label_at("9's budget"), Some(("9".into(), 1)));
    assert_eq!(label_at("5.2."), Some(("5.2".into(), 3)));
    assert_eq!(label_at("B4.1)"), Some(("B4.1".into(), 4)));
    assert_eq!(label_at("Foo"), None);
    assert_eq!(chain("§A5–A6 x", 0).0, vec!["A5", "A6"]);
    assert_eq!(chain("§1, §4, §6.3.", 0).0, vec!["1", "4", "6.3"]);
    assert_eq!(chain("§A3,\n//! §A5 and §B1", 0).0, vec!["A3", "A5", "B1"]);
    assert_eq!(chain("§2, 4 nonces", 0).0, vec!["2"]);
}
