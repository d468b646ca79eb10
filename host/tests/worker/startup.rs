//! What the worker refuses to start with: a device that fails the self-test, and no
//! platform environment.

use crate::platform::Platform;
use crate::{tiny_input, worker_command};
use serde_json::{Value, json};
use std::process::{Command, Output};

#[test]
fn the_self_test_refuses_a_device_whose_answers_are_off() {
    let platform = Platform::start();
    platform.add_job("job-1", tiny_input());
    let out: Output = worker_command(platform.env(), &[], &[("POWHOST_INJECT_FAULT", "logits")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed the self-test"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    // One request: the heartbeat saying the worker is unhealthy, as the SDK's after a failed
    // fitness check; no job taken.
    let seen = platform.seen();
    assert_eq!(seen.len(), 1, "a refused device takes no job");
    let report = &seen[0];
    assert_eq!(report.method, "GET");
    assert_eq!(report.header("authorization"), crate::API_KEY);
    let url = reqwest::Url::parse(&format!("http://h{}", report.path)).unwrap();
    assert_eq!(url.path(), format!("/v2/ep/ping/{}", crate::POD));
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["status"], "unhealthy");
    assert_eq!(query["check"], "selftest");
    assert!(
        query["reason"].contains("failed the self-test"),
        "{query:?}"
    );
    assert!(query["reason"].chars().count() <= 256);
    assert_eq!(query["runpod_version"], "1.12.0");
    assert!(!query.contains_key("job_id"));

    // `powhost selftest` alone: what it compared, and the verdict.
    let run = |fault: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_powhost"));
        cmd.args(["selftest", "--backend", "cpu", "--json"])
            .env_remove("POWHOST_INJECT_FAULT");
        if let Some(f) = fault {
            cmd.env("POWHOST_INJECT_FAULT", f);
        }
        cmd.output().unwrap()
    };
    let good = run(None);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let report: Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(report["passed"], json!(true));
    assert_eq!(report["nonces"].as_array().unwrap().len(), 8);
    assert!(report["max_abs_diff"].as_f64().unwrap() <= 5e-6);
    let bad = run(Some("logits"));
    assert_eq!(bad.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["passed"], json!(false));
    assert!(report["max_abs_diff"].as_f64().unwrap() > 5e-6);
}

#[test]
fn without_the_platforms_environment_one_sentence_says_what_to_do() {
    let out = worker_command(Vec::new(), &[], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("RUNPOD_WEBHOOK_GET_JOB"), "{stderr}");
    assert!(stderr.contains("powhost run"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"));
}
