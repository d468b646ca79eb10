//! `powhost serve` as a process, for what needs the binary itself: the `{"listening": …}` line
//! on stdout, SIGTERM finishing the work in flight and delivering the pending callbacks, the
//! exit code and the `--undelivered` file when callbacks cannot be delivered, the listener's
//! timeouts for idle connections and stalled bodies, receivers that redirect, hang or dawdle,
//! bad flags or a device failing its self-test refused before serving, callbacks to the
//! address it bound refused, the server answering while a model builds (its async threads are
//! the real ones), probes answered while it starts (startup.rs). Everything else the server does is tested in-process
//! (src/serve/tests/).

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
mod receivers;
mod startup;
use common::proof_batches::{assert_sequence, generated_nonces};
use common::receiver::{Received, Receiver};
use common::{HASH, KEY, golden};

/// A running `powhost serve`, killed when dropped, with the async runtime that the test's
/// requests and its stand-in receiver run on.
struct Server {
    child: Child,
    addr: SocketAddr,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_powhost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--backend", "cpu"])
            .args([
                "--callback-interval",
                "0.2",
                "--callback-backoff-max",
                "0.5",
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .env("LOG_LEVEL", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start powhost serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("serve did not print its address ({e}): {line:?}"));
        let addr = v["listening"].as_str().unwrap().parse().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // A connection per request, so that none is reused after the server closed it.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        Self {
            child,
            addr,
            client,
            runtime,
        }
    }

    /// Run `future` on the test's async runtime.
    fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    /// A stand-in receiver on the test's async runtime.
    fn receiver(&self) -> Receiver {
        self.block_on(Receiver::start())
    }

    /// POST without a Content-Type, as the node software sends its requests.
    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send(self.client.post(self.url(path)).body(body.to_string()))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(self.url(path)))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status and the body as JSON.
    fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        self.block_on(async {
            let response = request.send().await.expect("serve answers");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
            (status, v)
        })
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The init request the node software sends, for the tiny model.
fn init_request(url: &str, node_id: i64, node_count: i64, r_target: f64) -> Value {
    json!({
        "node_id": node_id,
        "node_count": node_count,
        "block_hash": HASH,
        "block_height": 7,
        "public_key": KEY,
        "batch_size": 100,
        "r_target": r_target,
        "fraud_threshold": 1e-7,
        "params": golden("runpod_tiny_r2.json")["request"]["input"]["params"],
        "url": url,
    })
}

#[test]
fn sigterm_delivers_pending_callbacks_before_exiting() {
    let mut server = Server::start(&[]);
    // The receiver refuses the first 4 posts, so batches are pending when SIGTERM comes.
    let receiver = server.receiver();
    receiver.answer_next(&[500; 4]);
    let init = init_request(&format!("{}/v1/poc-batches", receiver.url), 0, 1, 10.0);
    let (code, _) = server.post("/api/v1/pow/init/generate", &init.to_string());
    assert_eq!(code, 200);
    server.block_on(receiver.wait_until(
        "two refused posts",
        Duration::from_secs(60),
        |r: &[Received]| r.iter().filter(|p| !p.accepted()).count() >= 2,
    ));
    let status = server.terminate();
    assert!(
        status.success(),
        "serve exited with {status}: undelivered callbacks?"
    );
    let nonces: Vec<i64> = generated_nonces(&receiver.received(), &init)
        .iter()
        .map(|g| g.0)
        .collect();
    assert!(!nonces.is_empty());
    assert_sequence(nonces, 0, 1);
}

/// SIGTERM lets a streaming job finish the batch in flight: its webhook gets it, COMPLETED,
/// rather than the job being cancelled mid-batch.
#[test]
fn sigterm_lets_jobs_finish_their_batch() {
    let mut server = Server::start(&["--flush-timeout", "30"]);
    let receiver = server.receiver();
    let hook = format!("{}/hook", receiver.url);
    let mut input = golden("runpod_tiny_r2.json")["request"]["input"].clone();
    let fields = input.as_object_mut().unwrap();
    fields.remove("nonces");
    fields.insert("start_nonce".into(), json!(0));
    // Longer than the wait before SIGTERM below.
    fields.insert("batch_size".into(), json!(100_000));
    let job = json!({ "input": input, "webhook": hook }).to_string();
    let (code, v) = server.post("/run", &job);
    assert_eq!(code, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    while server.get(&format!("/status/{id}")).1["status"] != json!("IN_PROGRESS") {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let received = receiver.received();
    assert_eq!(received.len(), 1, "one webhook");
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["status"], json!("COMPLETED"), "{body}");
    let batches = body["output"].as_array().unwrap();
    assert!(
        !batches.is_empty(),
        "the batch in flight was delivered: {body}"
    );
    for batch in batches {
        assert_eq!(batch["batch_computed"], json!(100_000), "{batch}");
    }
}

/// A callback receiver that never answers: at shutdown, after --flush-timeout, every
/// undelivered batch is kept in the --undelivered file, and the exit code says so.
#[test]
fn undeliverable_callbacks_are_kept_in_a_file_at_shutdown() {
    let dir = common::tempdir();
    let kept = dir.path().join("undelivered.ndjson");
    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut server = Server::start(&[
        "--flush-timeout",
        "0.3",
        "--callback-timeout",
        "0.2",
        "--undelivered",
        kept.to_str().unwrap(),
    ]);
    let url = format!("http://{dead}/v1/poc-batches");
    assert_eq!(
        server
            .post(
                "/api/v1/pow/init/generate",
                &init_request(&url, 0, 1, 10.0).to_string()
            )
            .0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.get("/health").1["callbacks"]["pending"]
        .as_u64()
        .unwrap()
        < 2
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = server.terminate();
    assert_eq!(
        status.code(),
        Some(1),
        "undelivered callbacks must show in the exit code"
    );
    let text = std::fs::read_to_string(&kept).unwrap();
    let mut nonces = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["url"], json!(format!("{url}/generated")));
        assert!(!v["batch_id"].as_str().unwrap().is_empty());
        nonces.extend(
            v["body"]["nonces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_i64().unwrap()),
        );
    }
    assert!(!nonces.is_empty());
    assert_sequence(nonces, 0, 1);
}

/// A client that stops in the middle of its body, or sits idle, does not hold up shutdown
/// past the flush timeout.
#[test]
fn a_stalled_client_does_not_hold_up_shutdown() {
    let mut server = Server::start(&["--flush-timeout", "1"]);
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .write_all(b"POST /runsync HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"input\"")
        .unwrap();
    // And one idle keep-alive connection.
    let _idle = TcpStream::connect(server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

/// Idle connections are closed after --idle-timeout; a body that stops arriving for that long
/// is answered 408 with a sentence.
#[test]
fn idle_connections_and_stalled_bodies_time_out() {
    let server = Server::start(&["--idle-timeout", "0.5"]);
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);
    assert!(start.elapsed() < Duration::from_secs(5), "never closed");

    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stalled
        .write_all(b"POST /runsync HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"input\"")
        .unwrap();
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("stopped arriving"), "{answer}");
    // The server still answers.
    assert_eq!(server.get("/health").0, 200);
}

#[test]
fn bad_flags_fail_before_serving() {
    let cases: &[(&[&str], &str)] = &[
        (&["--concurrency", "0"], "--concurrency"),
        (&["--listen", "nonsense"], "--listen"),
        (&["--plugin", "nope"], "unknown plugin `nope`"),
        (&["--callback-interval", "0"], "--callback-interval"),
        (&["--flush-timeout=-1"], "--flush-timeout"),
        (&["--backend", "abacus"], "unknown backend"),
        (&["--metrics", "maybe"], "--metrics"),
    ];
    for (args, says) in cases {
        let listen: &[&str] = if args.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_powhost"))
            .arg("serve")
            .args(listen)
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_device_that_fails_the_self_test_serves_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_powhost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--backend", "cpu"])
        .env("POWHOST_INJECT_FAULT", "logits")
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed the self-test"), "{stderr}");
    assert!(out.stdout.is_empty(), "it never listened");
}
