//! What the worker holds at once: `--concurrency` jobs computing whatever one job-take
//! answers, one job per id, ids that cannot be sent back refused once, and jobs still
//! waiting when it stops answered rather than lost.

use crate::common::receiver::Received;
use crate::platform::{Endpoint, Platform};
use crate::{Worker, stream_input, tiny_input};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn job(id: &str, input: Value) -> Value {
    json!({"id": id, "input": input})
}

/// A short stream: two batches.
fn short_stream() -> Value {
    stream_input(json!({"start_nonce": 0, "batch_size": 1024, "max_batches": 2}))
}

/// When each job's chunks came: (first, last).
fn span(chunks: &[Received]) -> (Instant, Instant) {
    (chunks.first().unwrap().at, chunks.last().unwrap().at)
}

#[test]
fn concurrency_1_computes_one_job_at_a_time_when_one_answer_holds_several() {
    let platform = Platform::start();
    let ids = ["job-q1", "job-q2", "job-q3", "job-q4"];
    let jobs: Vec<Value> = ids.iter().map(|id| job(id, short_stream())).collect();
    platform.script().answers.push_back(Value::Array(jobs));
    let _worker = Worker::start(&platform, &["--concurrency", "1"]);
    platform.wait_for("every result", 90, |p| {
        ids.iter().all(|id| !p.results(id).is_empty())
    });
    // In the order given, each after the one before ended: its first batch is computed
    // after the previous job's last chunk was handed over.
    let spans: Vec<(Instant, Instant)> = ids
        .iter()
        .map(|id| {
            let chunks = platform.chunks(id);
            assert_eq!(chunks.len(), 2, "{id}");
            span(&chunks)
        })
        .collect();
    for (i, pair) in spans.windows(2).enumerate() {
        assert!(
            pair[1].0 > pair[0].1,
            "{} began before {} ended: more than one job computing at once",
            ids[i + 1],
            ids[i]
        );
    }
    for id in ids {
        assert_eq!(platform.results(id).len(), 1, "{id}");
    }
    // Nothing more was asked while taken jobs were waiting.
    let takes: Vec<Received> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-take") || s.is("job-take-batch"))
        .collect();
    assert!(takes.len() >= 2);
    assert!(takes[1].at > spans[2].1, "a job-take while jobs waited");
}

#[test]
fn a_second_job_under_a_running_id_is_dropped_and_the_id_answered_once() {
    let platform = Platform::start();
    // The long one first (about 0.1 s a batch), then a short one under the same id.
    let long = stream_input(json!({"start_nonce": 0, "batch_size": 4096, "max_batches": 6}));
    platform
        .script()
        .answers
        .push_back(json!([job("job-dup", long), job("job-dup", tiny_input())]));
    let _worker = Worker::start(&platform, &["--concurrency", "2"]);
    platform.wait_for("the result", 90, |p| !p.results("job-dup").is_empty());
    // The heartbeat named the id while the long job computed.
    let first_chunk = platform.chunks("job-dup")[0].at;
    std::thread::sleep(Duration::from_millis(1000));
    let results = platform.results("job-dup");
    assert_eq!(results.len(), 1, "one result for one id");
    assert!(
        results[0].path.ends_with("isStream=true"),
        "the job computing answers: {}",
        results[0].path
    );
    assert_eq!(platform.chunks("job-dup").len(), 6);
    let pings: Vec<Received> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("ping") && s.at > first_chunk && s.at < results[0].at)
        .collect();
    assert!(!pings.is_empty(), "no heartbeat while the job computed");
    for ping in pings {
        assert!(
            ping.path.contains("job_id=job-dup"),
            "a heartbeat while the job computed did not name it: {}",
            ping.path
        );
    }
}

#[test]
fn ids_that_cannot_be_sent_back_are_refused_once() {
    let platform = Platform::start();
    platform.script().answers.push_back(json!([
        job("bad\nid", tiny_input()),
        job("", tiny_input()),
        job("a/b?c", tiny_input()),
        job("job-ok", tiny_input()),
    ]));
    let _worker = Worker::start(&platform, &["--concurrency", "4"]);
    platform.wait_for("the good jobs' results", 60, |p| {
        !p.results("job-ok").is_empty() && !p.results("a%2Fb%3Fc").is_empty()
    });
    platform.wait_for("the refusal", 10, |p| !p.results("bad%0Aid").is_empty());
    std::thread::sleep(Duration::from_millis(800));
    // The id with a newline: answered with an error, once, without the header it cannot go in.
    let refused = platform.results("bad%0Aid");
    assert_eq!(refused.len(), 1);
    assert!(refused[0].headers.get("x-request-id").is_none());
    let error = refused[0].json()["error"].as_str().unwrap().to_string();
    assert!(error.contains(r#""bad\nid""#), "{error}");
    assert!(error.contains("X-Request-ID"), "{error}");
    // Every POST the worker made reached the platform: nothing failed to build and retried.
    let posts: Vec<Received> = platform
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(
        posts.len(),
        3,
        "{:?}",
        posts.iter().map(|p| &p.path).collect::<Vec<_>>()
    );
    // An id with URL characters keeps them, percent-encoded, and is computed.
    let slashed = &platform.results("a%2Fb%3Fc")[0];
    assert_eq!(slashed.header("x-request-id"), "a/b?c");
    assert!(
        slashed.json()["output"]["nonces"].is_array(),
        "{}",
        slashed.body
    );
}

#[test]
fn jobs_still_waiting_at_shutdown_are_answered_with_an_error() {
    let platform = Platform::start();
    let endless = stream_input(json!({"start_nonce": 0, "batch_size": 4096}));
    platform.script().answers.push_back(json!([
        job("job-long", endless),
        job("job-later", tiny_input())
    ]));
    let mut worker = Worker::start(&platform, &["--concurrency", "1"]);
    platform.wait_for("a chunk", 60, |p| !p.chunks("job-long").is_empty());
    assert_eq!(worker.terminate().code(), Some(0));
    let later = platform.results("job-later");
    assert_eq!(later.len(), 1, "the waiting job was answered");
    assert_eq!(
        later[0].json()["output"]["error_type"],
        json!("WorkerStopping")
    );
    assert!(platform.chunks("job-later").is_empty());
    assert_eq!(platform.results("job-long").len(), 1);
}

#[test]
fn a_waiting_job_the_platform_stops_is_never_run() {
    let platform = Platform::start();
    let endless = stream_input(json!({"start_nonce": 0, "batch_size": 4096}));
    platform.script().answers.push_back(json!([
        job("job-run", endless),
        job("job-wait", tiny_input())
    ]));
    let _worker = Worker::start(&platform, &["--concurrency", "1"]);
    platform.wait_for("a chunk", 60, |p| !p.chunks("job-run").is_empty());
    let stops_answered = |p: &Platform| {
        p.seen()
            .iter()
            .filter(|s| s.is("job-stop") && s.answered == 200)
            .count()
    };
    platform.script().stop.push("job-wait".into());
    platform.wait_for("the first stop", 10, |p| stops_answered(p) == 1);
    platform.script().stop.push("job-run".into());
    platform.wait_for("the second stop", 10, |p| stops_answered(p) == 2);
    // The worker is free again: the next job taken is answered, the stopped one never.
    platform.add_job("job-next", tiny_input());
    platform.wait_for("the next job's result", 60, |p| {
        !p.results("job-next").is_empty()
    });
    assert!(platform.results("job-wait").is_empty());
    assert!(platform.results("job-run").is_empty());
}
