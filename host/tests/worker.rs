//! `powhost worker` against a stand-in for the serverless platform on loopback that records
//! every request: the URLs, query parameters, headers and bodies of docs/spec/PROTOCOLS.md §B4,
//! single-shot jobs against the golden responses, the bad-input battery as jobs, streams
//! (max_batches, job-stop, SIGTERM), the heartbeat, 429s, refused result POSTs, two jobs at
//! once, a trapping plugin, an unreachable platform, and the self-test refusing a bad device.

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::golden;
use common::golden_response::assert_matches_golden;

const API_KEY: &str = "test-api-key";
const POD: &str = "pod-s";

/// One request the platform received.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    method: String,
    /// Path and query, as sent.
    target: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn is(&self, what: &str) -> bool {
        self.target.contains(&format!("/{what}/"))
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// What the stand-in answers.
#[derive(Default)]
struct Script {
    jobs: VecDeque<Value>,
    /// The next job-takes answer 429.
    take_429: usize,
    /// The next result POSTs (job-done) answer 500.
    refuse_output: usize,
    /// Answered once on job-stop.
    stop: Vec<String>,
    /// The next job-takes answer with this many bytes of body (a broken platform).
    huge_take: Option<usize>,
}

struct Platform {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
}

impl Platform {
    fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script::default()));
        let (s, sc) = (seen.clone(), script.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (s, sc) = (s.clone(), sc.clone());
                std::thread::spawn(move || serve_connection(stream, &s, &sc));
            }
        });
        Self { addr, seen, script }
    }

    fn env(&self) -> Vec<(String, String)> {
        platform_env(self.addr)
    }

    fn add_job(&self, id: &str, input: Value) {
        self.script
            .lock()
            .unwrap()
            .jobs
            .push_back(json!({"id": id, "input": input}));
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Accepted POSTs to the output URL (job-done) for `job`.
    fn results(&self, job: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.method == "POST" && s.is("job-done") && s.target.contains(&format!("/{job}?"))
            })
            .filter(|s| s.headers.get("x-test-answer").map(String::as_str) == Some("200"))
            .collect()
    }

    /// POSTs to the stream URL for `job`.
    fn chunks(&self, job: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.method == "POST" && s.is("job-stream") && s.target.contains(&format!("/{job}?"))
            })
            .collect()
    }

    fn wait_for(&self, what: &str, secs: u64, done: impl Fn(&Platform) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The environment the platform gives a worker, pointing at a stand-in on `addr`.
fn platform_env(addr: SocketAddr) -> Vec<(String, String)> {
    let base = format!("http://{addr}/v2/ep");
    vec![
        (
            "RUNPOD_WEBHOOK_GET_JOB".into(),
            format!("{base}/job-take/$ID?gpu=test"),
        ),
        (
            "RUNPOD_WEBHOOK_POST_OUTPUT".into(),
            format!("{base}/job-done/$RUNPOD_POD_ID/$ID?gpu=test"),
        ),
        (
            "RUNPOD_WEBHOOK_POST_STREAM".into(),
            format!("{base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=test"),
        ),
        (
            "RUNPOD_WEBHOOK_PING".into(),
            format!("{base}/ping/$RUNPOD_POD_ID?gpu=test"),
        ),
        ("RUNPOD_AI_API_KEY".into(), API_KEY.into()),
        ("RUNPOD_POD_ID".into(), POD.into()),
        ("RUNPOD_PING_INTERVAL".into(), "200".into()),
    ]
}

fn serve_connection(stream: TcpStream, seen: &Mutex<Vec<Seen>>, script: &Mutex<Script>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    // reqwest keeps connections alive: answer requests until the worker closes it.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).to_string();
        let (status, answer) = {
            let mut sc = script.lock().unwrap();
            if target.contains("/job-take") {
                if sc.take_429 > 0 {
                    sc.take_429 -= 1;
                    (429, String::new())
                } else if let Some(bytes) = sc.huge_take.take() {
                    (200, " ".repeat(bytes))
                } else if target.contains("/job-take-batch/") {
                    let n: usize = query(&target, "batch_size").parse().unwrap_or(1);
                    let jobs: Vec<Value> = (0..n).filter_map(|_| sc.jobs.pop_front()).collect();
                    if jobs.is_empty() {
                        (204, String::new())
                    } else {
                        (200, Value::Array(jobs).to_string())
                    }
                } else {
                    match sc.jobs.pop_front() {
                        Some(job) => (200, job.to_string()),
                        None => (204, String::new()),
                    }
                }
            } else if target.contains("/job-stop/") {
                if sc.stop.is_empty() {
                    (204, String::new())
                } else {
                    let ids = std::mem::take(&mut sc.stop);
                    (200, json!({ "jobsToStop": ids }).to_string())
                }
            } else if target.contains("/job-done/") && sc.refuse_output > 0 {
                sc.refuse_output -= 1;
                (500, String::new())
            } else {
                (200, String::new())
            }
        };
        headers.insert("x-test-answer".into(), status.to_string());
        seen.lock().unwrap().push(Seen {
            at: Instant::now(),
            method,
            target: target.clone(),
            headers,
            body,
        });
        // A platform with nothing to hand out holds the long-poll a little.
        if status == 204 {
            std::thread::sleep(Duration::from_millis(50));
        }
        let reason = match status {
            200 => "OK",
            204 => "No Content",
            429 => "Too Many Requests",
            _ => "Internal Server Error",
        };
        let head = if status == 204 {
            format!("HTTP/1.1 204 {reason}\r\n\r\n")
        } else {
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            )
        };
        // One write: a head and body sent apart meet the client's delayed ACK (40 ms).
        if stream
            .write_all(format!("{head}{answer}").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

fn query<'a>(target: &'a str, key: &str) -> &'a str {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

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
fn assert_sdk_post_headers(post: &Seen, job: &str) {
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
            post.target,
            format!("/v2/ep/job-done/{POD}/{id}?gpu=test&isStream=false")
        );
        assert_sdk_post_headers(post, id);
        let body = post.json();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert_matches_golden(&body["output"], &golden(file)["expected_response"], id);
    }
    // Job-take as the SDK asks: the worker id, job_in_progress, the raw key.
    let takes: Vec<Seen> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-take"))
        .collect();
    assert!(
        takes[0]
            .target
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
        assert!(posts[0].target.ends_with("isStream=false"));
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
            c.target,
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
        fin.target,
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
            .any(|s| s.is("ping") && s.target.contains("job_id=job-x"))
    });
    let ping = platform.seen().into_iter().find(|s| s.is("ping")).unwrap();
    assert!(
        ping.target
            .starts_with(&format!("/v2/ep/ping/{POD}?gpu=test&")),
        "{}",
        ping.target
    );
    assert!(
        ping.target.ends_with("runpod_version=1.12.0"),
        "{}",
        ping.target
    );
    assert_eq!(ping.header("authorization"), API_KEY);

    platform.script().stop.push("job-x".into());
    platform.wait_for("the stop to be fetched", 10, |p| {
        p.seen()
            .iter()
            .any(|s| s.is("job-stop") && s.headers["x-test-answer"] == "200")
    });
    let fetched_at = platform
        .seen()
        .into_iter()
        .find(|s| s.is("job-stop") && s.headers["x-test-answer"] == "200")
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
    assert!(!latest.target.contains("job_id"), "{}", latest.target);
}

#[test]
fn job_take_429s_are_waited_out() {
    let platform = Platform::start();
    platform.script().take_429 = 1;
    platform.add_job("job-1", tiny_input());
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("the result", 60, |p| !p.results("job-1").is_empty());
    let takes: Vec<Seen> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-take"))
        .collect();
    assert_eq!(takes[0].headers["x-test-answer"], "429");
    let gap = takes[1].at - takes[0].at;
    assert!(
        gap >= Duration::from_millis(4900),
        "asked again after {gap:?}, the SDK waits 5 s"
    );
}

#[test]
fn refused_result_posts_are_retried_and_delivered_exactly_once() {
    let platform = Platform::start();
    platform.script().refuse_output = 5;
    platform.add_job("job-r", tiny_input());
    let _worker = Worker::start(&platform, &[]);
    platform.wait_for("the result", 60, |p| !p.results("job-r").is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let posts: Vec<Seen> = platform
        .seen()
        .into_iter()
        .filter(|s| s.is("job-done"))
        .collect();
    let answers: Vec<&str> = posts
        .iter()
        .map(|p| p.headers["x-test-answer"].as_str())
        .collect();
    assert_eq!(answers, ["500", "500", "500", "500", "500", "200"]);
    // Every attempt is the same result, with the same id for a receiver to drop repeats.
    assert!(posts.iter().all(|p| p.body == posts[0].body));
    assert!(
        posts
            .iter()
            .all(|p| p.headers["x-powhost-batch-id"] == posts[0].headers["x-powhost-batch-id"])
    );
}

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
    assert!(finals[0].target.ends_with("isStream=true"));
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
    let file =
        std::env::temp_dir().join(format!("powhost-undelivered-{}.ndjson", std::process::id()));
    let _ = std::fs::remove_file(&file);
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
    let _ = std::fs::remove_file(&file);
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
    assert!(take.target.contains("batch_size=2"), "{}", take.target);
    // They overlapped: each one's chunks began before the other's ended.
    let (a, b) = (platform.chunks("job-a"), platform.chunks("job-b"));
    assert_eq!((a.len(), b.len()), (6, 6));
    assert!(
        a[0].at < b[5].at && b[0].at < a[5].at,
        "the jobs ran one after the other"
    );
}

#[test]
fn a_trapping_plugin_fails_its_job_and_the_worker_carries_on() {
    let plugin = common::misbehave_plugin("worker");
    let platform = Platform::start();
    platform.add_job("job-trap", json!({"action": "trap"}));
    platform.add_job("job-echo", json!({"action": "hello"}));
    let _worker = Worker::start(&platform, &["--plugin", &plugin]);
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

#[test]
fn an_unreachable_platform_is_retried_until_it_answers() {
    // A port with nobody on it, for now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = platform_env(addr);
    let mut worker = Worker::start_with(env, &[], &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker gave up"
    );
    let platform = Platform::on(TcpListener::bind(addr).unwrap());
    platform.add_job("job-late", tiny_input());
    platform.wait_for("the result", 60, |p| !p.results("job-late").is_empty());
}

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
    assert!(platform.seen().is_empty(), "a refused device takes no job");

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

/// A platform answer beyond the worker's bound (256 MiB) is refused unread (it used to be read
/// whole, without limit); the worker backs off and takes the next job.
#[test]
fn an_oversized_platform_answer_is_refused_and_the_worker_goes_on() {
    let platform = Platform::start();
    platform.script().huge_take = Some(257 << 20);
    platform.add_job("job-after", tiny_input());
    let mut worker = worker_command(platform.env(), &[], &[("LOG_LEVEL", "warn")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    platform.wait_for("the next job's result", 60, |p| {
        !p.results("job-after").is_empty()
    });
    let _ = worker.kill();
    let out = worker.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("larger than 256 MiB"), "{log}");
}
