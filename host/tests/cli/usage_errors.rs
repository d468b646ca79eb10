//! Usage errors exit 2 for every command (as the README says), before anything slow runs,
//! naming what is wrong: a backend, plugin or preset that names nothing, a nonce list or
//! address no one can use, flags that contradict each other.

use crate::{HASH, KEY, powhost};
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// `args` exit 2 with `says` on stderr, nothing on stdout, no panic, within `secs`.
fn assert_usage_error(args: &[&str], says: &str) {
    let start = Instant::now();
    let out = powhost(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: `{stderr}` lacks `{says}`");
    assert!(!stderr.contains("panicked"), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
    // Nothing was computed first (a self-test or a model build takes far longer).
    assert!(
        !stderr.contains("self-test"),
        "{args:?}: the self-test ran first"
    );
    assert!(start.elapsed() < Duration::from_secs(20), "{args:?}");
}

#[test]
fn run_names_an_unknown_backend_or_plugin() {
    assert_usage_error(&["run", "--backend", "nosuch"], "unknown backend `nosuch`");
    assert_usage_error(&["run", "--backend", "cuda:x"], "cuda:0");
    assert_usage_error(&["run", "--plugin", "nosuch"], "unknown plugin `nosuch`");
}

#[test]
fn distances_names_a_bad_nonce_list_preset_or_backend() {
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["distances", "--block-hash", HASH, "--public-key", KEY];
        args.extend_from_slice(extra);
        args
    }
    assert_usage_error(
        &with(&["--preset", "tiny", "--nonces", "5..1", "--backend", "cpu"]),
        "--nonces: range `5..1` is backwards",
    );
    assert_usage_error(
        &with(&["--preset", "nosuch", "--nonces", "1", "--backend", "cpu"]),
        "unknown preset `nosuch`",
    );
    assert_usage_error(
        &with(&["--preset", "tiny", "--nonces", "1", "--backend", "abacus"]),
        "unknown backend `abacus`",
    );
}

#[test]
fn compare_names_a_repeated_backend() {
    assert_usage_error(
        &["compare", "--preset", "tiny", "--backends", "cpu,cpu"],
        "--backends lists `cpu` twice",
    );
    assert_usage_error(
        &["compare", "--preset", "tiny", "--backends", "cpu,tpu"],
        "unknown backend `tpu`",
    );
    assert_usage_error(
        &[
            "compare",
            "--preset",
            "tiny",
            "--backends",
            "cpu,wgpu",
            "--nonces",
            "3..1",
        ],
        "--nonces",
    );
}

#[test]
fn bench_fingerprint_and_selftest_name_what_names_nothing() {
    assert_usage_error(&["bench", "--preset", "nosuch"], "unknown preset");
    assert_usage_error(&["bench", "--plugin", "nosuch"], "unknown plugin");
    assert_usage_error(
        &["bench", "--block-hash", "", "--backend", "cpu"],
        "--block-hash must not be empty",
    );
    assert_usage_error(
        &["bench", "--plugin", "runpod", "--block-hash", ""],
        "--block-hash must not be empty",
    );
    assert_usage_error(&["selftest", "--backend", "nosuch"], "unknown backend");
    assert_usage_error(
        &["fingerprint", "--preset", "nosuch", "--block-hash", HASH],
        "unknown preset",
    );
}

#[test]
fn worker_names_an_unknown_plugin_or_backend_before_its_self_test() {
    // The platform's environment is there: only the flag is wrong.
    let env = [
        ("RUNPOD_WEBHOOK_GET_JOB", "http://127.0.0.1:9/job-take/$ID"),
        (
            "RUNPOD_WEBHOOK_POST_OUTPUT",
            "http://127.0.0.1:9/job-done/$ID",
        ),
    ];
    for (args, says) in [
        (
            &["worker", "--plugin", "nosuch"][..],
            "unknown plugin `nosuch`",
        ),
        (&["worker", "--backend", "nosuch"][..], "unknown backend"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_powhost"))
            .args(args)
            .envs(env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("self-test"), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_refuses_its_address_before_the_self_test() {
    assert_usage_error(&["serve", "--listen", "127.0.0.1:99999"], "65535");
    assert_usage_error(&["serve", "--listen", "nonsense"], "--listen");
    assert_usage_error(&["serve", "--plugin", "nosuch"], "unknown plugin");
    assert_usage_error(&["serve", "--validator", "nosuch"], "unknown plugin");
    assert_usage_error(&["serve", "--memory-budget", "0"], "--memory-budget");
    assert_usage_error(&["serve", "--memory-budget", "lots"], "--memory-budget");
    assert_usage_error(&["serve", "--metrics", "maybe"], "--metrics");
    // An address taken: the work's failure (exit 1), found before the self-test, which would
    // fail here (a faulty device), so the sentence shows which came first.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_powhost"))
        .args(["serve", "--backend", "cpu", "--listen", &addr])
        .env("POWHOST_INJECT_FAULT", "logits")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("self-test"), "{stderr}");
    assert!(out.stdout.is_empty());
}
