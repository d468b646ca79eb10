//! Streams: chunks posted as they are computed and the aggregate at the end, without
//! aggregation an empty list, job-stop ending one after its batch in flight (the heartbeat
//! naming it meanwhile), and two at once.

use crate::platform::{Endpoint, Platform};
use crate::{API_KEY, POD, Worker, assert_sdk_post_headers, stream_input, tiny_input};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn a_stream_with_max_batches_posts_each_chunk_then_the_aggregate() {
    let platform = Platform::start();
    // The seed handler's first streaming version's request.
    let input = stream_input(
        json!({"streaming": true, "batch_size": 4, "start_nonce": 5, "max_batches": 3}),
    );
    platform.add_job("job-s", input.clone());
    let mut input_defaults = stream_input(json!({"streaming": true, "max_batches": 2}));
    input_defaults["r_target"] = json!(10.0);
    platform.add_job("job-d", input_defaults);
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("both final results", 60, |p| {
        !p.results("job-s").is_empty() && !p.results("job-d").is_empty()
    });
    let chunks = platform.chunks("job-s");
    assert_eq!(chunks.len(), 3);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(
            c.path,
            format!("/v2/ep/job-stream/{POD}/job-s?gpu=test&isStream=false")
        );
        assert_sdk_post_headers(c, "job-s");
        let out = &c.json()["output"];
        assert_eq!(out["batch_number"], json!(i + 1));
        assert_eq!(out["batch_computed"], json!(4));
        assert_eq!(out["next_nonce"], json!(5 + 4 * (i + 1)));
        // The seed's chunk fields, in its order (serde_json's Value sorts keys: read the text).
        let fields = [
            "public_key",
            "block_hash",
            "block_height",
            "nonces",
            "dist",
            "node_id",
            "batch_number",
            "batch_computed",
            "batch_valid",
            "total_computed",
            "total_valid",
            "next_nonce",
        ];
        assert_eq!(out.as_object().unwrap().len(), fields.len());
        let at: Vec<usize> = fields
            .iter()
            .map(|f| c.body.find(&format!("\"{f}\"")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{}", c.body);
    }
    let fin = &platform.results("job-s")[0];
    assert_eq!(
        fin.path,
        format!("/v2/ep/job-done/{POD}/job-s?gpu=test&isStream=true")
    );
    let all = fin.json()["output"].clone();
    let posted: Vec<Value> = chunks.iter().map(|c| c.json()["output"].clone()).collect();
    assert_eq!(all, Value::Array(posted), "the aggregate is every chunk");
    assert!(
        fin.at >= chunks[2].at,
        "the final POST comes after the chunks"
    );
    // The defaults: from 0, 16 at a time.
    let d = platform.chunks("job-d");
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[0].json()["output"]["nonces"],
        json!((0..16).collect::<Vec<_>>())
    );
    assert_eq!(d[1].json()["output"]["next_nonce"], json!(32));
}

#[test]
fn without_aggregation_a_stream_ends_with_an_empty_list() {
    let platform = Platform::start();
    platform.add_job(
        "job-e",
        stream_input(json!({"start_nonce": 0, "batch_size": 2, "max_batches": 1})),
    );
    let _worker = Worker::start(&platform, &["--aggregate-stream", "false"]);
    platform.wait_for("the final result", 60, |p| !p.results("job-e").is_empty());
    assert_eq!(platform.chunks("job-e").len(), 1);
    assert_eq!(platform.results("job-e")[0].json(), json!({"output": []}));
}

#[test]
fn job_stop_ends_a_stream_after_its_batch_in_flight_and_the_heartbeat_names_it() {
    let platform = Platform::start();
    // Batches of about 0.1 s on the CPU.
    platform.add_job(
        "job-x",
        stream_input(json!({"start_nonce": 0, "batch_size": 4096})),
    );
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("two chunks", 60, |p| p.chunks("job-x").len() >= 2);
    // The heartbeat names the job while it runs.
    platform.wait_for("a heartbeat naming job-x", 10, |p| {
        p.seen()
            .iter()
            .any(|s| s.is("ping") && s.path.contains("job_id=job-x"))
    });
    let ping = platform.seen().into_iter().find(|s| s.is("ping")).unwrap();
    assert!(
        ping.path
            .starts_with(&format!("/v2/ep/ping/{POD}?gpu=test&")),
        "{}",
        ping.path
    );
    assert!(
        ping.path.ends_with("runpod_version=1.12.0"),
        "{}",
        ping.path
    );
    assert_eq!(ping.header("authorization"), API_KEY);

    platform.script().stop.push("job-x".into());
    platform.wait_for("the stop to be fetched", 10, |p| {
        p.seen()
            .iter()
            .any(|s| s.is("job-stop") && s.answered == 200)
    });
    let fetched_at = platform
        .seen()
        .into_iter()
        .find(|s| s.is("job-stop") && s.answered == 200)
        .unwrap()
        .at;
    // Then another job is taken and answered: the worker carries on.
    platform.add_job("job-after", tiny_input());
    platform.wait_for("the next job's result", 60, |p| {
        !p.results("job-after").is_empty()
    });
    // The stream has ended: no more chunks come.
    let count = platform.chunks("job-x").len();
    std::thread::sleep(Duration::from_millis(1500));
    let chunks = platform.chunks("job-x");
    assert_eq!(chunks.len(), count, "the stopped stream goes on");
    let last = chunks.last().unwrap();
    // After the stop reached the worker, only the batch in flight came (and was posted; a
    // chunk computed just before may still have been on its way).
    let after = chunks.iter().filter(|c| c.at > fetched_at).count();
    assert!(after <= 2, "{after} chunks after the stop was fetched");
    assert!(
        platform.results("job-x").is_empty(),
        "a stopped job gets no final result"
    );
    let numbers: Vec<i64> = chunks
        .iter()
        .map(|c| c.json()["output"]["batch_number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=chunks.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        last.json()["output"]["next_nonce"].as_i64().unwrap(),
        4096 * chunks.len() as i64
    );
    // Idle again: heartbeats without a job id.
    std::thread::sleep(Duration::from_millis(600));
    let latest = platform
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.is("ping"))
        .unwrap();
    assert!(!latest.path.contains("job_id"), "{}", latest.path);
}

#[test]
fn two_jobs_at_once_with_concurrency_2() {
    let platform = Platform::start();
    for id in ["job-a", "job-b"] {
        // About 0.2 s a batch on the CPU.
        platform.add_job(
            id,
            stream_input(json!({"start_nonce": 0, "batch_size": 8192, "max_batches": 6})),
        );
    }
    let _worker = Worker::start(&platform, &["--concurrency", "2"]);
    platform.wait_for("both results", 90, |p| {
        !p.results("job-a").is_empty() && !p.results("job-b").is_empty()
    });
    let take = platform
        .seen()
        .into_iter()
        .find(|s| s.is("job-take-batch"))
        .expect("job-take-batch");
    assert!(take.path.contains("batch_size=2"), "{}", take.path);
    // They overlapped: each one's chunks began before the other's ended.
    let (a, b) = (platform.chunks("job-a"), platform.chunks("job-b"));
    assert_eq!((a.len(), b.len()), (6, 6));
    assert!(
        a[0].at < b[5].at && b[0].at < a[5].at,
        "the jobs ran one after the other"
    );
}
