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

mod checker;
mod files;
mod labels;

use checker::Checker;
use files::{repo_root, text_files};
use labels::{chain, label_at};
use std::fs;

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
/// Not scanned, relative to the root: build output, the prebuilt components, and this test's
/// own files (which name what they forbid).
const SKIP: &[&str] = &["target", "plugins/prebuilt", "host/tests/doc_citations"];

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
