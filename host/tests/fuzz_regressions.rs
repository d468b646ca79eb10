//! The fuzz targets' checks (`powhost::fuzzing`, run by cargo-fuzz from `fuzz/`) on their
//! seeds and on every input the fuzzer once failed on (`fuzz/regressions/TARGET/`), in the
//! normal test suite: a finding that is fixed stays fixed.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn check(target: &str, run: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for {target}");
    for (name, data) in inputs {
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target} fails on {name}");
    }
}

#[test]
fn nonce_list() {
    check("nonce_list", powhost::fuzzing::nonce_list);
}

#[test]
fn params() {
    check("params", powhost::fuzzing::params);
}

#[test]
fn node_body() {
    check("node_body", powhost::fuzzing::node_body);
}

#[test]
fn plugin_host() {
    check("plugin_host", powhost::fuzzing::plugin_request);
}
