//! The `powhost` binary end to end: golden results through the CLI, and every kind of bad
//! input answered with one clear error line and a non-zero exit — never a panic.

use serde_json::Value;
use std::process::{Command, Output};

const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const KEY: &str = "test_public_key_12345678901234567890";

fn powhost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powhost"))
        .args(args)
        .output()
        .expect("run powhost")
}

fn golden(name: &str) -> Value {
    let path = format!("{}/../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "powhost failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn fingerprint_matches_reference_hashes() {
    let g = golden("model_small.json");
    let out = stdout_json(&powhost(&[
        "fingerprint",
        "--preset",
        "small",
        "--block-hash",
        g["block_hash"].as_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["total_params"], g["total_params"]);
    assert_eq!(out["pool_size"], g["pool_size"]);
    let got = out["parameters"].as_array().unwrap();
    let want = g["parameters"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(want) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["shape"], b["shape"]);
        assert_eq!(a["sha256_f16le"], b["sha256_f16le"], "{}", a["name"]);
    }
}

#[test]
fn fingerprint_only_selects_parameters_in_given_order() {
    let out = stdout_json(&powhost(&[
        "fingerprint",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--only",
        "output.weight,norm.weight",
        "--json",
    ]));
    let names: Vec<&str> = out["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["output.weight", "norm.weight"]);
}

#[test]
fn distances_agree_with_reference_through_the_cli() {
    let g = golden("forward_tiny.json");
    let out = stdout_json(&powhost(&[
        "distances",
        "--backend",
        "cpu",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "0..64",
        "--json",
    ]));
    let nonces: Vec<i64> = out["nonces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(nonces, (0..64).collect::<Vec<_>>());
    let dist = out["dist"].as_array().unwrap();
    for (d, w) in dist.iter().zip(g["distances"].as_array().unwrap()) {
        let (d, w) = (d.as_f64().unwrap(), w["distance"].as_f64().unwrap());
        // The tiny preset's measured max |Δd| is 8.8e-8 (see the conformance tests).
        assert!((d - w).abs() <= 5e-6, "{d} vs {w}");
    }
}

#[test]
fn distances_keep_the_given_order_and_params_json_equals_preset() {
    let list = "5,-3,0..2,9223372036854775807";
    let a = stdout_json(&powhost(&[
        "distances",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        list,
        "--json",
    ]));
    assert_eq!(a["nonces"], serde_json::json!([5, -3, 0, 1, i64::MAX]));
    let params = serde_json::to_string(&golden("forward_tiny.json")["params"]).unwrap();
    let b = stdout_json(&powhost(&[
        "distances",
        "--params",
        &params,
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        list,
        "--json",
    ]));
    assert_eq!(a, b);
    // The same nonces computed alone and in a batch give the same bits.
    let c = stdout_json(&powhost(&[
        "distances",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "-3",
        "--json",
    ]));
    assert_eq!(c["dist"][0], a["dist"][1]);
}

#[test]
fn a_batch_larger_than_the_nonce_list_is_fine() {
    let out = stdout_json(&powhost(&[
        "distances",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "0..3",
        "--batch",
        "1000000000",
        "--json",
    ]));
    assert_eq!(out["dist"].as_array().unwrap().len(), 3);
}

#[test]
fn bench_reports_its_figures() {
    let out = stdout_json(&powhost(&[
        "bench", "--preset", "tiny", "--nonces", "8", "--json",
    ]));
    for key in [
        "nonces_per_s",
        "model_build_seconds",
        "peak_memory_bytes",
        "gflop_per_s",
    ] {
        assert!(out[key].as_f64().unwrap() > 0.0, "{key}: {}", out[key]);
    }
    assert_eq!(out["nonces"], 8);
}

/// Bad input: exit code 1, one `error:` line on stderr that contains `want`, nothing on
/// stdout, no panic.
fn assert_clear_error(args: &[&str], want: &str) {
    let out = powhost(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: exit code; stderr: {stderr}"
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(want),
        "{args:?}: stderr `{stderr}` lacks `{want}`"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line expected: {stderr}"
    );
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
        assert_clear_error(&args, want);
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
    let misbehave = std::env::temp_dir().join(format!("bench-echo-{}.wasm", std::process::id()));
    std::fs::write(
        &misbehave,
        include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm")),
    )
    .unwrap();
    let echo = misbehave.to_str().unwrap();
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
        // A zero count is a usage error (clap, exit 2); the others are the command's (exit 1).
        let usage = args.contains(&"0");
        assert_eq!(
            out.status.code(),
            Some(if usage { 2 } else { 1 }),
            "{args:?}"
        );
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}

/// What a hostile newcomer tried: every input a user names is bounded, a named pipe
/// with no writer does not hang, an ndjson line that is not UTF-8 does not stop the others,
/// counts that cannot be allocated are usage errors, NaN distances are never valid, and a
/// comparison of nothing is refused.
#[test]
fn hostile_inputs_get_one_sentence_each() {
    use std::time::{Duration, Instant};
    let request = format!(
        "{}/../examples/request-tiny.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let timed = |args: &[&str]| {
        let start = Instant::now();
        let out = powhost(args);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{args:?} took {:?}",
            start.elapsed()
        );
        out
    };
    // Unbounded inputs are refused before they are read whole.
    let out = timed(&["run", "--backend", "cpu", "--plugin", "/dev/zero", &request]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than 256 MiB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = timed(&[
        "distances",
        "--params",
        "/dev/zero",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than 1 MiB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A named pipe with no writer reads as empty, at once.
    let dir = std::env::temp_dir().join(format!("powhost-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("f");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = timed(&[
        "run",
        "--backend",
        "cpu",
        "--time-limit",
        "2",
        fifo.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = timed(&[
        "run",
        "--backend",
        "cpu",
        "--ndjson",
        fifo.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "no lines: nothing failed");

    // A line of invalid UTF-8 gets its error, and the lines after it their answers.
    let good = std::fs::read_to_string(&request)
        .unwrap()
        .replace('\n', " ");
    let lines = [good.as_bytes(), b"{\"input\":\"\xff\"}", good.as_bytes()].join(&b'\n');
    let file = dir.join("lines.ndjson");
    std::fs::write(&file, lines).unwrap();
    let out = timed(&[
        "run",
        "--backend",
        "cpu",
        "--ndjson",
        file.to_str().unwrap(),
    ]);
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[1]["error_type"], "JSONDecodeError");
    assert!(answers[2]["nonces"].is_array());
    assert_eq!(out.status.code(), Some(1));

    // Counts that could not be allocated are usage errors.
    for args in [
        &["bench", "--preset", "tiny", "--nonces", "99999999999"][..],
        &[
            "bench",
            "--preset",
            "tiny",
            "--plugin",
            "runpod",
            "--requests",
            "99999999999999",
        ],
    ] {
        let out = timed(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("must be at most") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }

    // One backend and no golden compares nothing.
    let out = timed(&["compare", "--backends", "cpu", "--preset", "tiny"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("compares nothing"));

    // Params whose arithmetic overflows: every distance NaN, said so, and never valid.
    let params = r#"{"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 128, "multiple_of": 32, "seq_len": 8, "ffn_dim_multiplier": 1.3, "use_scaled_rope": false, "rope_theta": 500000, "norm_eps": 1e308}"#;
    let out = timed(&[
        "distances",
        "--backend",
        "cpu",
        "--params",
        params,
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "0..4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a number"), "{stderr}");
        let mut batch: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../examples/proof-batch-tiny.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        batch["params"] = serde_json::from_str(params).unwrap();
        let file = dir.join("nan-batch.json");
        std::fs::write(&file, batch.to_string()).unwrap();
        let out = timed(&[
            "run",
            "--backend",
            "cpu",
            "--plugin",
            "validator",
            file.to_str().unwrap(),
        ]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["n_invalid"],
            batch["nonces"].as_array().unwrap().len(),
            "{v}"
        );
        assert_eq!(v["fraud_detected"], true, "{v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
