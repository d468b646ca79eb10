//! Round trips for the fuzz targets and the plugins' tests: a request parser's output,
//! written back, parses to the same value; and the fuzz corpus (seeds and past findings),
//! replayed through that check.

use crate::errors::RequestError;

/// Every input a fuzz target once failed on, and its seeds (`fuzz/regressions/TARGET/`,
/// `fuzz/seeds/TARGET/`), for a plugin's tests to replay: (file name, contents).
#[doc(hidden)]
pub fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(data) = std::fs::read(entry.path()) {
                out.push((entry.path().display().to_string(), data));
            }
        }
    }
    out
}

/// The fuzz targets' check on a request parser: text that parses, written back, parses to the
/// same value. Panics, naming `what`, when it does not.
#[doc(hidden)]
pub fn check_round_trip<T: PartialEq + std::fmt::Debug>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, RequestError>,
    write: impl Fn(&T) -> String,
    what: &str,
) {
    if let Ok(value) = parse(text) {
        let again = parse(&write(&value))
            .unwrap_or_else(|e| panic!("{what}: {value:?} written back is refused: {e:?}"));
        assert_eq!(again, value, "{what}");
    }
}

/// `check_round_trip` on every seed and past finding of fuzz target `target` (for tests).
#[doc(hidden)]
pub fn replay_round_trip<T: PartialEq + std::fmt::Debug>(
    target: &str,
    parse: impl Fn(&str) -> Result<T, RequestError>,
    write: impl Fn(&T) -> String,
) {
    let inputs = fuzz_inputs(target);
    assert!(!inputs.is_empty(), "no seeds for fuzz target {target}");
    for (name, data) in inputs {
        if let Ok(text) = std::str::from_utf8(&data) {
            check_round_trip(text, &parse, &write, &name);
        }
    }
}
