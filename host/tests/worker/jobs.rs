//! Single-shot jobs: the golden outputs posted with the SDK's headers, bad inputs posted as
//! errors in the SDK's shape, a trapping plugin failing only its own job; and the worker's
//! throughput, measured on demand.

use crate::common::golden_response::assert_matches_golden;
use crate::common::receiver::Received;
use crate::common::{self, golden};
use crate::platform::{Endpoint, Platform};
use crate::{API_KEY, POD, Worker, assert_sdk_post_headers, tiny_input};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn single_shot_jobs_post_the_golden_output_with_the_sdks_headers() {
    let platform = Platform::start();
    for (id, file) in [
        ("job-1", "runpod_tiny_r2.json"),
        ("job-2", "runpod_tiny_rdefault.json"),
    ] {
        platform.add_job(id, golden(file)["request"]["input"].clone());
    }
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("two results", 60, |p| {
        !p.results("job-1").is_empty() && !p.results("job-2").is_empty()
    });
    for (id, file) in [
        ("job-1", "runpod_tiny_r2.json"),
        ("job-2", "runpod_tiny_rdefault.json"),
    ] {
        let posts = platform.results(id);
        assert_eq!(posts.len(), 1, "{id}: posted once");
        let post = &posts[0];
        assert_eq!(
            post.path,
            format!("/v2/ep/job-done/{POD}/{id}?gpu=test&isStream=false")
        );
        assert_sdk_post_headers(post, id);
        let body = post.json();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert_matches_golden(&body["output"], &golden(file)["expected_response"], id);
    }
    // Job-take as the SDK asks: the worker id, job_in_progress, the raw key.
    let takes: Vec<Received> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-take"))
        .collect();
    assert!(
        takes[0]
            .path
            .starts_with(&format!("/v2/ep/job-take/{POD}?gpu=test&job_in_progress="))
    );
    assert_eq!(takes[0].header("authorization"), API_KEY);
    assert!(takes[0].header("user-agent").starts_with("powhost/"));
    // Quick 204s are not a busy loop.
    let idle = takes
        .windows(2)
        .filter(|w| w[1].at - w[0].at < Duration::from_millis(400))
        .count();
    assert!(idle <= 3, "{idle} job-takes less than 400 ms apart");
}

#[test]
fn bad_inputs_are_posted_as_errors_in_the_sdks_shape() {
    let platform = Platform::start();
    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let without = |field: &str| {
        let mut i = tiny_input();
        i.as_object_mut().unwrap().remove(field);
        i
    };
    cases.push(("no-nonces", without("nonces"), "KeyError"));
    cases.push(("no-hash", without("block_hash"), "KeyError"));
    let mut i = tiny_input();
    i["nonces"] = json!([1, "2"]);
    cases.push(("bad-nonce", i, "TypeError"));
    let mut i = tiny_input();
    i["r_target"] = json!(-1);
    cases.push(("bad-r", i, "ValueError"));
    let mut i = tiny_input();
    i["params"] = json!({"dim": -3});
    cases.push(("bad-params", i, "ValueError"));
    let mut i = tiny_input();
    i["colour"] = json!("blue");
    cases.push(("unknown-field", i, "ValueError"));
    cases.push(("not-object", json!([1, 2]), "TypeError"));
    let mut i = tiny_input();
    i["max_batches"] = json!(2);
    cases.push(("max-batches-without-stream", i, "ValueError"));
    for (id, input, _) in &cases {
        platform.add_job(id, input.clone());
    }
    // And a job without an input at all.
    platform.script().jobs.push_back(json!({"id": "no-input"}));
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("every error posted", 60, |p| {
        cases.iter().all(|(id, _, _)| !p.results(id).is_empty())
            && !p.results("no-input").is_empty()
    });
    for (id, _, error_type) in cases.iter().chain([&("no-input", json!(null), "KeyError")]) {
        let posts = platform.results(id);
        assert_eq!(posts.len(), 1);
        assert!(posts[0].path.ends_with("isStream=false"));
        let body = posts[0].json();
        assert_eq!(body.as_object().unwrap().len(), 2, "{id}: {body}");
        assert_eq!(
            body["output"],
            json!({ "error_type": error_type }),
            "{id}: {body}"
        );
        assert!(!body["error"].as_str().unwrap().is_empty(), "{id}");
    }
    // Key order on the wire: output first, as the SDK builds it.
    assert!(
        platform.results("no-nonces")[0]
            .body
            .starts_with("{\"output\":")
    );
}

#[test]
fn a_trapping_plugin_fails_its_job_and_the_worker_carries_on() {
    let plugin = common::misbehave_plugin();
    let platform = Platform::start();
    platform.add_job("job-trap", json!({"action": "trap"}));
    platform.add_job("job-echo", json!({"action": "hello"}));
    let _worker = Worker::start(&platform, &["--plugin", plugin.path()]);
    platform.wait_for("both results", 60, |p| {
        !p.results("job-trap").is_empty() && !p.results("job-echo").is_empty()
    });
    let trap = platform.results("job-trap")[0].json();
    assert_eq!(
        trap["output"],
        json!({"error_type": "PluginError"}),
        "{trap}"
    );
    assert!(
        trap["error"].as_str().unwrap().contains("trap")
            || !trap["error"].as_str().unwrap().is_empty()
    );
    assert_eq!(
        platform.results("job-echo")[0].json(),
        json!({"output": {"echo": "hello"}})
    );
}

/// Not a test: the worker path's throughput for docs/BENCHMARKS.md. `cargo test --release -p
/// powhost --test worker throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    for (nonces, jobs) in [(1usize, 400usize), (64, 400)] {
        let platform = Platform::start();
        let mut input = tiny_input();
        input["nonces"] = json!((0..nonces as i64).collect::<Vec<_>>());
        // One warm-up job builds the model.
        platform.add_job("warm", input.clone());
        let _worker = Worker::start(&platform, &[]);
        platform.wait_for("the warm-up", 60, |p| !p.results("warm").is_empty());
        let start = Instant::now();
        for i in 0..jobs {
            platform.add_job(&format!("b{i}"), input.clone());
        }
        let last = format!("b{}", jobs - 1);
        platform.wait_for("every result", 300, |p| !p.results(&last).is_empty());
        let seconds = start.elapsed().as_secs_f64();
        let delivered = (0..jobs)
            .filter(|i| !platform.results(&format!("b{i}")).is_empty())
            .count();
        assert_eq!(delivered, jobs);
        println!(
            "tiny, {nonces} nonces per job: {jobs} jobs in {seconds:.2} s: {:.0} jobs/s, {:.2} ms per job",
            jobs as f64 / seconds,
            seconds * 1e3 / jobs as f64
        );
    }
}
