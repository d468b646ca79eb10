//! SIGTERM: a stream ends at its next batch and is delivered; results that cannot be
//! delivered within the flush timeout are kept in the `--undelivered` file.

use crate::common::golden;
use crate::platform::{Endpoint, Platform};
use crate::{Worker, stream_input, tiny_input};
use serde_json::{Value, json};

#[test]
fn sigterm_mid_stream_ends_it_at_the_next_batch_and_delivers() {
    let platform = Platform::start();
    platform.add_job(
        "job-t",
        stream_input(json!({"start_nonce": 100, "batch_size": 4096})),
    );
    let mut worker = Worker::start(&platform, &[]);
    platform.wait_for("a chunk", 60, |p| !p.chunks("job-t").is_empty());
    let status = worker.terminate();
    assert_eq!(status.code(), Some(0));
    let chunks = platform.chunks("job-t");
    let finals = platform.results("job-t");
    assert_eq!(finals.len(), 1, "the stream's end was posted");
    assert!(finals[0].path.ends_with("isStream=true"));
    let all = finals[0].json()["output"].as_array().unwrap().clone();
    assert_eq!(
        all.len(),
        chunks.len(),
        "every computed batch is in the aggregate"
    );
    let next: Vec<i64> = chunks
        .iter()
        .map(|c| c.json()["output"]["next_nonce"].as_i64().unwrap())
        .collect();
    assert_eq!(
        next,
        (1..=chunks.len() as i64)
            .map(|b| 100 + 4096 * b)
            .collect::<Vec<_>>()
    );
    // Nothing taken after the signal.
    let last_take = platform
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.is("job-take"))
        .unwrap();
    assert!(last_take.at <= finals[0].at);
}

#[test]
fn sigterm_keeps_undeliverable_results_in_the_undelivered_file() {
    let platform = Platform::start();
    platform.script().refuse_output = 1_000_000;
    platform.add_job("job-u", tiny_input());
    let dir = crate::common::tempdir();
    let file = dir.path().join("undelivered.ndjson");
    let mut worker = Worker::start(
        &platform,
        &[
            "--flush-timeout",
            "1",
            "--undelivered",
            file.to_str().unwrap(),
        ],
    );
    platform.wait_for("a refused result", 60, |p| {
        p.seen().iter().any(|s| s.is("job-done"))
    });
    assert_eq!(worker.terminate().code(), Some(1));
    let kept = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = kept
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0]["url"]
            .as_str()
            .unwrap()
            .contains("/job-done/pod-s/job-u?")
    );
    assert_eq!(
        lines[0]["body"]["output"]["nonces"],
        golden("runpod_tiny_r2.json")["expected_response"]["nonces"]
    );
}

/// SIGTERM while a long list of nonces computes: the worker stops within --flush-timeout
/// (the job aborted near the deadline rather than computed to its end), and the job's result
/// is delivered rather than lost.
#[test]
fn sigterm_during_a_long_nonces_job_returns_within_the_flush_timeout() {
    let platform = Platform::start();
    let mut input = tiny_input();
    // Far more than is computed before the signal.
    input["nonces"] = json!((0..2_000_000).collect::<Vec<i64>>());
    platform.add_job("job-long", input);
    let mut worker = Worker::start(&platform, &["--flush-timeout", "2", "--time-limit", "600"]);
    platform.wait_for("the job taken", 60, |p| {
        p.seen()
            .iter()
            .any(|s| s.is("job-take") && s.answered == 200)
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        platform.results("job-long").is_empty(),
        "the job ended before the signal"
    );
    let signalled = std::time::Instant::now();
    let status = worker.terminate();
    let took = signalled.elapsed();
    assert!(
        took < std::time::Duration::from_secs(4),
        "SIGTERM took {took:?} with --flush-timeout 2"
    );
    assert_eq!(status.code(), Some(0), "the result was delivered");
    let results = platform.results("job-long");
    assert_eq!(results.len(), 1, "the aborted job's result");
    assert_eq!(
        results[0].json()["output"]["error_type"],
        json!("Cancelled")
    );
}
