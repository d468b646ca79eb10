//! `powhost compare`: the report's deterministic fields for `tiny` (cpu vs wgpu, and the
//! golden), and exit 1 when a pair breaks the budget. Where no wgpu adapter exists at all
//! the wgpu case says so and passes without running (CI installs lavapipe).

use insta::assert_json_snapshot;
use serde_json::Value;
use std::process::{Command, Output};

fn compare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powhost"))
        .arg("compare")
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run powhost")
}

fn golden(name: &str) -> String {
    format!("{}/../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn tiny_cpu_wgpu_and_golden_agree() {
    let out = compare(&[
        "--backends",
        "cpu,wgpu",
        "--golden",
        &golden("forward_tiny.json"),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("no wgpu adapter") {
        eprintln!("SKIPPED: {stderr}");
        return;
    }
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Timings, the device and the last bits of the distances depend on the machine.
    assert_json_snapshot!("tiny_cpu_wgpu_golden", report, {
        ".backends[].seconds" => "[seconds]",
        ".backends[].nonces_per_s" => "[nonces/s]",
        ".backends[].device" => "[device]",
        ".pairs[].median_abs_diff" => "[|Δd|]",
        ".pairs[].max_abs_diff" => "[|Δd|]",
        ".pairs[].bit_identical" => "[count]",
        // insta reads floats back from the snapshot file an ulp off; checked exactly below.
        ".r_target" => "[r_target]",
    });
    assert_eq!(report["r_target"].as_f64(), Some(1.4013564660458173));
    for pair in report["pairs"].as_array().unwrap() {
        assert!(pair["max_abs_diff"].as_f64().unwrap() <= 5e-6, "{pair}");
    }
}

#[test]
fn a_broken_budget_exits_1_and_says_which_pair() {
    let out = compare(&[
        "--backends",
        "cpu",
        "--golden",
        &golden("forward_tiny.json"),
        "--budget-max",
        "0",
        "--budget-median",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("cpu / golden") && table.contains("BROKEN"),
        "{table}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("breaks the agreement budget"));
}

#[test]
fn bad_compare_arguments() {
    for (args, expect) in [
        (vec!["--backends", "cpu"], "give --preset"),
        (
            vec!["--preset", "tiny", "--backends", "cpu"],
            "compares nothing",
        ),
        (vec!["--preset", "tiny", "--backends", "cpu,cpu"], "twice"),
        (
            vec!["--preset", "tiny", "--backends", "quantum"],
            "unknown backend",
        ),
        (
            vec!["--golden", "/no/such/golden.json"],
            "/no/such/golden.json",
        ),
        (
            vec![
                "--preset",
                "tiny",
                "--backends",
                "cpu,wgpu",
                "--r-target",
                "0",
            ],
            "--r-target",
        ),
    ] {
        let out = compare(&args);
        // A golden file that cannot be read is the work's failure; the rest are usage errors.
        let code = if expect.contains("golden.json") { 1 } else { 2 };
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

/// A golden file holds one model's distances: compared with another model's, a healthy
/// device would look broken. Refused before anything is computed, saying what differs.
#[test]
fn a_golden_file_is_compared_only_with_its_own_model() {
    let tiny = golden("forward_tiny.json");
    for (args, says) in [
        (
            vec!["--preset", "devtest"],
            vec![
                "--preset devtest is not the model of --golden",
                "dim 512, the golden's 64",
                "leave --preset out",
            ],
        ),
        (
            vec!["--params", r#"{"dim": 64, "n_layers": 3}"#],
            vec!["--params is not the model of --golden", "n_layers 3"],
        ),
        (
            vec!["--nonces", "0..3"],
            vec!["--nonces (the file has 64 nonces, 0 to 63) differs"],
        ),
        (
            vec!["--block-hash", "ab", "--public-key", "k"],
            vec![
                "--block-hash (the file's is",
                "--public-key (the file's is",
                "differ;",
            ],
        ),
    ] {
        let mut all = vec!["--backends", "cpu", "--golden", tiny.as_str()];
        all.extend(&args);
        let out = compare(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for s in says {
            assert!(stderr.contains(s), "{args:?}: `{stderr}` lacks `{s}`");
        }
        assert!(out.stdout.is_empty(), "{args:?}: nothing was compared");
    }
    // The golden's own preset, named, is the same model: compared, and within the budget.
    let out = compare(&[
        "--backends",
        "cpu",
        "--golden",
        &tiny,
        "--preset",
        "tiny",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
