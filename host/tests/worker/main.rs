//! `powhost worker` against a stand-in for the serverless platform on loopback that records
//! every request: the URLs, query parameters, headers and bodies of docs/spec/PROTOCOLS.md §B4.
//! The stand-in (platform.rs) and the worker process are here; the tests, by concept:
//! - jobs.rs: single-shot jobs against the golden responses, the bad-input battery as jobs, a
//!   trapping plugin, and the throughput measurement;
//! - concurrency.rs: `--concurrency` held when a job-take answers more jobs than asked, a
//!   duplicate id, ids that cannot be sent back, jobs still waiting at shutdown;
//! - streams.rs: streams with max_batches, without aggregation, ended by job-stop (and the
//!   heartbeat naming them), and two at once;
//! - platform_faults.rs: 429s, refused result POSTs, an unreachable platform, an oversized
//!   answer;
//! - shutdown.rs: SIGTERM mid-stream, and undeliverable results kept on SIGTERM;
//! - startup.rs: the self-test refusing a bad device (and reporting it to the platform), the
//!   platform's environment missing.

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod jobs;
mod monitoring;
mod platform;
mod platform_faults;
mod shutdown;
mod startup;
mod streams;

use common::golden;
use common::receiver::Received;
use platform::Platform;

const API_KEY: &str = "test-api-key";
const POD: &str = "pod-s";

/// A running `powhost worker`, killed when dropped.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(platform: &Platform, extra: &[&str]) -> Self {
        Self::start_with(platform.env(), extra, &[])
    }

    fn start_with(env: Vec<(String, String)>, extra: &[&str], more_env: &[(&str, &str)]) -> Self {
        let child = worker_command(env, extra, more_env)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start powhost worker");
        Self { child }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.wait(60)
    }

    fn wait(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker_command(
    env: Vec<(String, String)>,
    extra: &[&str],
    more_env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_powhost"));
    cmd.args([
        "worker",
        "--backend",
        "cpu",
        "--callback-backoff-max",
        "0.5",
    ])
    .args(extra)
    .env_remove("RUST_LOG")
    .env("LOG_LEVEL", "error");
    for (k, _) in std::env::vars() {
        if k.starts_with("RUNPOD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env);
    for (k, v) in more_env {
        cmd.env(k, v);
    }
    cmd
}

fn tiny_input() -> Value {
    golden("runpod_tiny_r2.json")["request"]["input"].clone()
}

fn stream_input(extra: Value) -> Value {
    let mut input = tiny_input();
    let obj = input.as_object_mut().unwrap();
    obj.remove("nonces");
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    input
}

/// The headers the platform's SDK sends with a result POST.
fn assert_sdk_post_headers(post: &Received, job: &str) {
    assert_eq!(post.header("authorization"), API_KEY, "raw key, no Bearer");
    assert_eq!(post.header("x-request-id"), job);
    assert_eq!(
        post.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert!(
        post.header("user-agent").starts_with("powhost/"),
        "{:?}",
        post.headers
    );
}
