//! What a hostile newcomer tried, one sentence each.

use crate::{HASH, KEY, powhost, tempdir};
use serde_json::Value;
use std::process::Command;

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
    // A --params file no model fits in is the command line's fault: a usage error.
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than 1 MiB"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A named pipe with no writer reads as empty, at once.
    let dir = tempdir();
    let fifo = dir.path().join("f");
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
    let file = dir.path().join("lines.ndjson");
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

    // One backend and no golden compares nothing: a usage error.
    let out = timed(&["compare", "--backends", "cpu", "--preset", "tiny"]);
    assert_eq!(out.status.code(), Some(2));
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
        let file = dir.path().join("nan-batch.json");
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
}
