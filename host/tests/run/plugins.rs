//! Plugins: the built-in one listed, deliberately bad ones contained while the host keeps
//! answering, components of another world refused, compiled plugins cached.

use crate::common::{TempFile, powhost, tempdir};
use crate::{lines, one_response, run};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn plugins_lists_the_builtin() {
    let out = powhost().args(["plugins", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["wit"], json!("gonka:pow@0.1.0"));
    assert_eq!(v["plugins"][0]["name"], json!("runpod"));
    let text = powhost().arg("plugins").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("runpod"));
}

const MISBEHAVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm"));

#[test]
fn a_trapping_looping_or_hungry_plugin_is_contained_and_the_host_answers_the_next() {
    let plugin = TempFile::new("misbehave.wasm", MISBEHAVE);
    let start = Instant::now();
    let out = run(
        &[
            "--plugin",
            plugin.path(),
            "--ndjson",
            "--plugin-time-limit",
            "0.5",
            "--plugin-memory",
            "64",
        ],
        "trap\nloop\nmemory\nhost-loop\nok\n",
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let responses = lines(&out);
    assert_eq!(responses.len(), 5, "{responses:?}");
    let error = |i: usize| responses[i]["error"].as_str().unwrap().to_string();
    for (i, response) in responses.iter().take(4).enumerate() {
        assert_eq!(response["error_type"], json!("PluginError"));
        assert!(error(i).contains("misbehave.wasm"), "{}", error(i));
    }
    assert!(
        error(0).contains("trapped") && error(0).contains("misbehaving on purpose"),
        "{}",
        error(0)
    );
    assert!(error(1).contains("time limit"), "{}", error(1));
    assert!(error(2).contains("memory limit (64 MiB)"), "{}", error(2));
    assert!(error(3).contains("time limit"), "{}", error(3));
    assert_eq!(responses[4], json!({ "echo": "ok" }));
}

#[test]
fn a_plugin_that_floods_emits_stops_at_the_time_limit() {
    let plugin = TempFile::new("flood.wasm", MISBEHAVE);
    let out = run(
        &["--plugin", plugin.path(), "--time-limit", "0.3"],
        "emit-flood",
    );
    assert!(out.status.success());
    assert!(lines(&out).len() > 1);
}

#[test]
fn components_of_another_world_and_non_components_are_refused() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty-component.wasm",
            wat::parse_str("(component)").unwrap(),
            "does not match",
        ),
        (
            "other-world.wasm",
            wat::parse_str(
                r#"(component
                     (import "example:other/thing" (instance (export "f" (func))))
                   )"#,
            )
            .unwrap(),
            "does not grant",
        ),
        (
            "core-module.wasm",
            wat::parse_str("(module)").unwrap(),
            "not a WebAssembly component",
        ),
        (
            "garbage.wasm",
            b"this is not wasm".to_vec(),
            "not a WebAssembly component",
        ),
    ];
    for (name, bytes, expect) in cases {
        let plugin = TempFile::new(name, &bytes);
        let out = run(&["--plugin", plugin.path()], "{}");
        assert_eq!(out.status.code(), Some(1), "{name}");
        let response = one_response(&out);
        let error = response["error"].as_str().unwrap();
        assert!(
            error.contains(expect) && error.contains(name),
            "{name}: {error}"
        );
    }
}

#[test]
fn compiled_plugins_are_cached_and_a_bad_cache_file_is_recompiled() {
    let scratch = tempdir();
    let dir = scratch.path().join("plugin-cache");
    let list = || {
        let out = powhost()
            .env("POWHOST_CACHE_DIR", &dir)
            .args(["plugins", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        // One per built-in plugin (runpod, validator).
        assert_eq!(files.len(), 2, "{files:?}");
        files
    };
    let cached = list();
    assert!(std::fs::metadata(&cached[0]).unwrap().len() > 1000);
    assert_eq!(list(), cached, "the second run reuses the same files");
    std::fs::write(&cached[0], b"not machine code").unwrap();
    assert_eq!(list(), cached);
    assert_ne!(
        std::fs::read(&cached[0]).unwrap(),
        b"not machine code",
        "rewritten"
    );
}
