//! Bad input, one clear error each: bad nonces, params, presets, backends and parameter
//! names are usage errors (exit 2, one `error:` sentence naming what is wrong), as are clap's
//! own (naming the flag); a model too large for the machine is the work's failure (exit 1);
//! and `bench --plugin` with a plugin that is missing or computes nothing.

use crate::{HASH, KEY, powhost};
use std::process::Command;

/// Bad input: exit `code`, one `error:` sentence on stderr that contains `want` (clap's hint
/// to try --help aside), nothing on stdout, no panic.
fn assert_clear_error(args: &[&str], want: &str, code: i32) {
    let out = powhost(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: exit code; stderr: {stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(want),
        "{args:?}: stderr `{stderr}` lacks `{want}`"
    );
    let sentences = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .count();
    assert_eq!(sentences, 1, "{args:?}: one sentence expected: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: panicked");
    assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
}

fn distances(model: &[&str], nonces: &str) -> Vec<String> {
    let mut v: Vec<String> = vec!["distances".into()];
    v.extend(model.iter().map(|s| s.to_string()));
    v.extend(
        [
            "--block-hash",
            HASH,
            "--public-key",
            KEY,
            "--nonces",
            nonces,
        ]
        .map(String::from),
    );
    v
}

#[test]
fn bad_inputs_get_clear_errors() {
    let tiny = ["--preset", "tiny"];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (distances(&tiny, "1.5"), "not a nonce"),
        (distances(&tiny, "abc"), "not a nonce"),
        (distances(&tiny, "9223372036854775808"), "not a nonce"),
        (distances(&tiny, ""), "empty item"),
        (distances(&tiny, "5..2"), "backwards"),
        (distances(&tiny, "0..99999999999"), "more than"),
        (distances(&["--preset", "huge"], "0"), "unknown preset"),
        (
            distances(&["--params", r#"{"dim": 65}"#], "0"),
            "divisible by params.n_heads",
        ),
        (
            distances(&["--params", r#"{"dim": 64, "bogus": 1}"#], "0"),
            "unknown field `bogus`",
        ),
        (
            distances(&["--params", r#"{"dim": "64"}"#], "0"),
            "invalid params JSON",
        ),
        (
            distances(&["--params", r#"{"dim": 64"#], "0"),
            "invalid params JSON",
        ),
        (
            distances(&["--params", r#"{"seq_len": 0}"#], "0"),
            "at least 1",
        ),
        (
            distances(
                &[
                    "--params",
                    r#"{"dim": 48, "n_heads": 16, "n_kv_heads": 16}"#,
                ],
                "0",
            ),
            "must be even",
        ),
        (
            distances(&["--params", r#"{"norm_eps": -1}"#], "0"),
            "norm_eps",
        ),
        (
            distances(&["--params", "no/such/file.json"], "0"),
            "neither a JSON object nor a readable file",
        ),
        // 100 T parameters: refused by the memory check before anything is allocated.
        (
            distances(
                &[
                    "--params",
                    r#"{"dim": 1048576, "n_heads": 1024, "n_kv_heads": 1024, "n_layers": 64}"#,
                ],
                "0",
            ),
            "memory",
        ),
        (
            [
                "distances",
                "--preset",
                "tiny",
                "--block-hash",
                "",
                "--public-key",
                KEY,
                "--nonces",
                "0",
            ]
            .map(String::from)
            .to_vec(),
            "--block-hash must not be empty",
        ),
        (
            [
                "distances",
                "--backend",
                "tpu",
                "--preset",
                "tiny",
                "--block-hash",
                HASH,
                "--public-key",
                KEY,
                "--nonces",
                "0",
            ]
            .map(String::from)
            .to_vec(),
            "unknown backend",
        ),
        (
            [
                "fingerprint",
                "--preset",
                "tiny",
                "--block-hash",
                HASH,
                "--only",
                "no.such.weight",
            ]
            .map(String::from)
            .to_vec(),
            "no parameter named `no.such.weight`",
        ),
        (
            ["bench", "--preset", "nope"].map(String::from).to_vec(),
            "unknown preset",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Only the model too large for this machine is not the command line's fault.
        let code = if want == "memory" { 1 } else { 2 };
        assert_clear_error(&args, want, code);
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["distances", "--preset", "tiny"][..],
        &[
            "fingerprint",
            "--preset",
            "tiny",
            "--params",
            "{}",
            "--block-hash",
            "x",
        ],
        &["frobnicate"],
        // Flag values are checked as the command line is parsed, naming the flag.
        &[
            "distances",
            "--preset",
            "tiny",
            "--block-hash",
            HASH,
            "--public-key",
            KEY,
            "--nonces",
            "0",
            "--batch",
            "0",
        ],
        &["bench", "--preset", "tiny", "--nonces", "0"],
        &["bench", "--preset", "tiny", "--rounds", "0"],
        &["bench", "--preset", "tiny", "--rounds", "1001"],
        &["bench", "--plugin", "runpod", "--rounds", "2"],
        &["serve", "--time-limit", "-1"],
        &["worker", "--concurrency", "0"],
        &["worker", "--flush-timeout", "nan"],
    ] {
        let out = powhost(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"));
        if stderr.contains("invalid value") {
            assert!(
                args.iter()
                    .any(|a| a.starts_with("--") && stderr.contains(&format!("'{a} "))),
                "{args:?}: the message names the flag: {stderr}"
            );
        }
    }
}

/// `bench --plugin`: a plugin that is not there, or one that does not compute, and
/// request or nonce counts of zero — each one clear error, no panic.
#[test]
fn bench_plugin_bad_inputs() {
    let misbehave = crate::common::misbehave_plugin();
    let echo = misbehave.path();
    for (args, expect) in [
        (vec!["--plugin", "/no/such/plugin.wasm"], "unknown plugin"),
        (vec!["--plugin", "runpod", "--requests", "0"], "--requests"),
        (vec!["--plugin", "runpod", "--nonces", "0"], "--nonces"),
        // The echo fixture answers, but computes nothing: timing it would measure nothing.
        (
            vec!["--plugin", echo, "--requests", "2"],
            "does not answer the serverless contract",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_powhost"))
            .args(["bench", "--preset", "tiny", "--backend", "cpu"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // A zero count and a missing plugin are usage errors (exit 2); a plugin that does not
        // compute is the command's failure (exit 1).
        let usage = args.contains(&"0") || args.contains(&"/no/such/plugin.wasm");
        assert_eq!(
            out.status.code(),
            Some(if usage { 2 } else { 1 }),
            "{args:?}"
        );
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}
