//! `powhost serve` over real HTTP on loopback: the node PoC API driven as the node software
//! drives it (no Content-Type), generation delivering every batch to a callback receiver
//! that fails its first posts, validation catching a tampered batch, the serverless-style
//! endpoints against the golden response, bad bodies, a load test, and SIGTERM flushing
//! pending callbacks.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{HASH, KEY, MAX_DIST_DIFF, golden};

fn tiny_params() -> Value {
    golden("runpod_tiny_r2.json")["request"]["input"]["params"].clone()
}

/// A running `powhost serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
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
        Self { child, addr }
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        request(self.addr, "POST", path, Some(body))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        request(self.addr, "GET", path, None)
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

/// One HTTP/1.1 request without a Content-Type header (as the node software sends them);
/// the status and the body as JSON (or as a string when it is not JSON).
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, text) = request_text(addr, method, path, body.map(str::as_bytes));
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn request_text(addr: SocketAddr, method: &str, path: &str, body: Option<&[u8]>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split(' ').nth(1).unwrap_or("0").parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A callback receiver standing in for the node software: answers 500 to its first
/// `fail_first` posts, then 200, and records what it accepted.
struct Receiver {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<(String, String, Value)>>>,
    refused: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (acc, refs) = (accepted.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some((path, batch_id, body)) = read_request(&mut stream) else {
                    continue;
                };
                let fail = refs.load(Ordering::SeqCst) < fail_first;
                if fail {
                    refs.fetch_add(1, Ordering::SeqCst);
                } else {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    acc.lock().unwrap().push((path, batch_id, v));
                }
                let status = if fail {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Self {
            addr,
            accepted,
            refused,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/v1/poc-batches", self.addr)
    }

    fn accepted(&self) -> Vec<(String, String, Value)> {
        self.accepted.lock().unwrap().clone()
    }

    /// Wait until `done` holds for what was accepted.
    fn wait_for(&self, what: &str, done: impl Fn(&[(String, String, Value)]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done(&self.accepted()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// (path, X-Powhost-Batch-Id, body) of one request.
fn read_request(stream: &mut TcpStream) -> Option<(String, String, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_string();
    let (mut length, mut batch_id) = (0, String::new());
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "x-powhost-batch-id" => batch_id = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, batch_id, String::from_utf8(body).ok()?))
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
        "params": tiny_params(),
        "url": url,
    })
}

/// `powhost distances --json` on the CPU for the tiny model.
fn direct_distances(nonces: &str) -> Vec<f64> {
    common::direct_distances(&tiny_params(), nonces)["dist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_f64().unwrap())
        .collect()
}

/// Asserts that `nonces`, in any order, are exactly `first, first + step, …`: this node's
/// sequence with no gaps or repeats.
fn assert_sequence(mut nonces: Vec<i64>, first: i64, step: i64) {
    nonces.sort();
    let expected: Vec<i64> = (0..nonces.len() as i64).map(|m| first + step * m).collect();
    assert_eq!(
        nonces, expected,
        "not this node's sequence (gaps or repeats)"
    );
}

/// After a stop: wait until every callback the server holds has been delivered.
fn wait_until_delivered(server: &Server) {
    std::thread::sleep(Duration::from_millis(500));
    while server.get("/health").1["callbacks"]["pending"] != json!(0) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every generated nonce of every accepted ProofBatch, checking each batch's shape.
fn generated_nonces(accepted: &[(String, String, Value)]) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for (path, _, batch) in accepted {
        assert_eq!(path, "/v1/poc-batches/generated");
        let keys: Vec<&str> = batch
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([
                "public_key",
                "block_hash",
                "block_height",
                "nonces",
                "dist",
                "node_id"
            ])
        );
        assert_eq!(batch["block_height"], json!(7));
        assert_eq!(batch["public_key"], json!(KEY));
        let nonces = batch["nonces"].as_array().unwrap();
        let dist = batch["dist"].as_array().unwrap();
        assert_eq!(nonces.len(), dist.len());
        assert!(!nonces.is_empty(), "an empty ProofBatch was sent");
        for (n, d) in nonces.iter().zip(dist) {
            out.push((n.as_i64().unwrap(), d.as_f64().unwrap()));
        }
    }
    out
}

#[test]
fn generation_delivers_this_nodes_sequence_despite_failing_callbacks() {
    let receiver = Receiver::start(3);
    let server = Server::start(&[]);
    assert_eq!(
        server.get("/api/v1/pow/status"),
        (200, json!({"status": "NOT_LOADED"}))
    );
    assert_eq!(
        server.get("/api/v1/state"),
        (200, json!({"state": "STOPPED"}))
    );

    // Unset node ids are refused as by the reference.
    let (code, body) = server.post(
        "/api/v1/pow/init/generate",
        &init_request(&receiver.url(), -1, -1, 10.0).to_string(),
    );
    assert_eq!(
        (code, body),
        (400, json!({"detail": "Node ID and node count must be set"}))
    );

    // Node 2 of 3; r_target 10 keeps every nonce, so the delivered nonces are everything
    // this node computed.
    let (code, body) = server.post(
        "/api/v1/pow/init/generate",
        &init_request(&receiver.url(), 2, 3, 10.0).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], json!("OK"));
    assert_eq!(body["pow_status"]["status"], json!("GENERATING"));
    assert_eq!(server.get("/api/v1/state").1, json!({"state": "POW"}));

    receiver.wait_for("500 generated nonces", |a| generated_nonces(a).len() >= 500);
    let (_, text) = request_text(server.addr, "GET", "/api/v1/pow/status", None);
    assert!(
        text.starts_with("{\"status\":\"GENERATING\",\"is_model_initialized\":true"),
        "{text}"
    );
    let (_, status) = server.get("/api/v1/pow/status");
    assert_eq!(status["status"], json!("GENERATING"));
    assert_eq!(status["is_model_initialized"], json!(true));

    // Stop: what was computed is still delivered.
    let (code, body) = server.post("/api/v1/pow/stop", "");
    assert_eq!((code, &body["status"]), (200, &json!("OK")));
    assert_eq!(server.get("/api/v1/state").1, json!({"state": "STOPPED"}));
    wait_until_delivered(&server);

    assert_eq!(
        receiver.refused.load(Ordering::SeqCst),
        3,
        "the first posts were refused"
    );
    let got = generated_nonces(&receiver.accepted());
    assert_sequence(got.iter().map(|g| g.0).collect(), 2, 3);
    // Each batch was delivered once, under its own id.
    let ids: BTreeSet<String> = receiver.accepted().iter().map(|a| a.1.clone()).collect();
    assert_eq!(ids.len(), receiver.accepted().len());
    // And the distances are the backend's.
    let sample: Vec<(i64, f64)> = got.iter().copied().filter(|g| g.0 < 60).collect();
    let list: Vec<String> = sample.iter().map(|g| g.0.to_string()).collect();
    let direct = direct_distances(&list.join(","));
    for ((n, d), want) in sample.iter().zip(direct) {
        assert_eq!(*d, want, "nonce {n}");
    }
    // Stopping again says so.
    assert_eq!(
        server.post("/api/v1/pow/stop", "").1,
        json!({"status": "OK", "pow_status": "PoW is not running"})
    );
}

/// 200 nonces of the tiny model with their true distances, and an r_target that splits
/// them, so that some are valid and some are not.
fn batch_material() -> (Vec<i64>, Vec<f64>, f64) {
    let dist = direct_distances("0..400");
    let mut sorted = dist.clone();
    sorted.sort_by(f64::total_cmp);
    let r_target = (sorted[200] + sorted[201]) / 2.0;
    ((0..400).collect(), dist, r_target)
}

fn proof_batch(nonces: &[i64], dist: &[f64]) -> Value {
    json!({
        "public_key": KEY,
        "block_hash": HASH,
        "block_height": 7,
        "nonces": nonces,
        "dist": dist,
        "node_id": 0,
    })
}

#[test]
fn validation_flags_a_tampered_batch_and_passes_an_honest_one() {
    let (all, dist, r_target) = batch_material();
    let valid: Vec<usize> = (0..all.len()).filter(|&i| dist[i] < r_target).collect();
    let invalid: Vec<usize> = (0..all.len()).filter(|&i| dist[i] > r_target).collect();
    assert!(valid.len() >= 200 && invalid.len() >= 6);

    let honest: Vec<usize> = valid[..200].to_vec();
    // 194 real, 6 whose true distance is above r_target, claimed below it.
    let tampered: Vec<usize> = valid[..194].iter().chain(&invalid[..6]).copied().collect();
    let claim = |idx: &[usize]| -> (Vec<i64>, Vec<f64>) {
        let nonces = idx.iter().map(|&i| all[i]).collect();
        let claimed = idx
            .iter()
            .map(|&i| {
                if dist[i] < r_target {
                    dist[i]
                } else {
                    r_target - 0.01
                }
            })
            .collect();
        (nonces, claimed)
    };

    let receiver = Receiver::start(1);
    let server = Server::start(&[]);
    let (h_nonces, h_dist) = claim(&honest);
    let (t_nonces, t_dist) = claim(&tampered);

    // Before any init there is nothing to validate against.
    let (code, body) = server.post(
        "/api/v1/pow/validate",
        &proof_batch(&h_nonces, &h_dist).to_string(),
    );
    assert_eq!((code, body), (400, json!({"detail": "PoW is not running"})));

    let (code, body) = server.post(
        "/api/v1/pow/init/validate",
        &init_request(&receiver.url(), 1, 1, r_target).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pow_status"]["status"], json!("VALIDATING"));

    // Refused at once, with the reason: another block, a malformed batch, not JSON.
    let mut other = proof_batch(&h_nonces, &h_dist);
    other["block_hash"] = json!("ff");
    let (code, body) = server.post("/api/v1/pow/validate", &other.to_string());
    assert_eq!(code, 400);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("block hash `ff`") && detail.contains(HASH),
        "{detail}"
    );
    let mut short = proof_batch(&h_nonces, &h_dist);
    short["dist"] = json!([1.0]);
    let (code, body) = server.post("/api/v1/pow/validate", &short.to_string());
    assert_eq!(code, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("one claimed distance per nonce"),
        "{body}"
    );
    let (code, body) = server.post("/api/v1/pow/validate", "{\"nonces\": [1,");
    assert_eq!(code, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));

    // The honest batch, then the tampered one: the reference answers null and posts later.
    let (code, body) = server.post(
        "/api/v1/pow/validate",
        &proof_batch(&h_nonces, &h_dist).to_string(),
    );
    assert_eq!((code, body), (200, Value::Null));
    // Keys beyond the ProofBatch's are ignored, as by the reference; a batch cannot bring
    // its own r_target.
    let mut tampered_batch = proof_batch(&t_nonces, &t_dist);
    tampered_batch["batch_id"] = json!("x");
    tampered_batch["r_target"] = json!(2.0);
    let (code, _) = server.post("/api/v1/pow/validate", &tampered_batch.to_string());
    assert_eq!(code, 200);

    receiver.wait_for("two ValidatedBatches", |a| a.len() >= 2);
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 2);
    let find = |nonces: &[i64]| {
        accepted
            .iter()
            .find(|a| a.2["nonces"] == json!(nonces))
            .unwrap_or_else(|| panic!("no ValidatedBatch for {nonces:?}"))
            .clone()
    };
    let (path, _, h) = find(&h_nonces);
    assert_eq!(path, "/v1/poc-batches/validated");
    assert_eq!(h["n_invalid"], json!(0));
    assert_eq!(h["fraud_detected"], json!(false));
    assert_eq!(h["probability_honest"], json!(1.0));
    assert_eq!(h["received_dist"], json!(h_dist));
    assert_eq!(h["r_target"], json!(r_target));
    assert_eq!(h["fraud_threshold"], json!(1e-7));
    let recomputed: Vec<f64> = honest.iter().map(|&i| dist[i]).collect();
    assert_eq!(h["dist"], json!(recomputed));

    let (_, _, t) = find(&t_nonces);
    assert_eq!(t["n_invalid"], json!(6));
    assert_eq!(t["fraud_detected"], json!(true));
    let p = t["probability_honest"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1e-7, "{p}");
    assert_eq!(receiver.refused.load(Ordering::SeqCst), 1);
}

#[test]
fn runsync_returns_the_golden_response() {
    let server = Server::start(&[]);
    for file in ["runpod_tiny_r2.json", "runpod_tiny_rdefault.json"] {
        let g = golden(file);
        let (code, text) = request_text(
            server.addr,
            "POST",
            "/runsync",
            Some(g["request"].to_string().as_bytes()),
        );
        assert_eq!(code, 200, "{text}");
        // Keys in the serverless API's order, and the output's in the reference handler's.
        let position = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
        assert!(position("id") < position("status") && position("status") < position("output"));
        let order = [
            "public_key",
            "block_hash",
            "block_height",
            "nonces",
            "dist",
            "node_id",
            "total_computed",
            "total_valid",
        ];
        assert!(
            order.windows(2).all(|w| position(w[0]) < position(w[1])),
            "{text}"
        );

        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], json!("COMPLETED"));
        assert!(v["id"].as_str().unwrap().starts_with("sync-"));
        let (got, want) = (&v["output"], &g["expected_response"]);
        for key in [
            "public_key",
            "block_hash",
            "block_height",
            "nonces",
            "node_id",
            "total_computed",
            "total_valid",
        ] {
            assert_eq!(got[key], want[key], "{file}: {key}");
        }
        let pairs = got["dist"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["dist"].as_array().unwrap());
        for (a, b) in pairs {
            assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= MAX_DIST_DIFF);
        }
        // The same job, by id.
        let (code, again) = server.get(&format!("/status/{}", v["id"].as_str().unwrap()));
        assert_eq!((code, &again["output"]), (200, got));
    }
}

#[test]
fn run_status_stream_and_cancel() {
    let server = Server::start(&[]);
    let (code, job) = server.post("/run", &stream_job(100, None));
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["status"], json!("IN_QUEUE"));
    let id = job["id"].as_str().unwrap().to_string();

    // Batches arrive on /stream as they are computed; each call gives the new ones.
    let mut batches: Vec<Value> = Vec::new();
    while batches.len() < 3 {
        let (code, s) = server.get(&format!("/stream/{id}"));
        assert_eq!(code, 200);
        assert_eq!(s["id"], json!(id));
        batches.extend(
            s["stream"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["output"].clone()),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        server.post(&format!("/cancel/{id}"), "").1,
        json!({"id": id, "status": "CANCELLED"})
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let (_, s) = server.get(&format!("/status/{id}"));
        if s["status"] == json!("CANCELLED") {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let (_, rest) = server.get(&format!("/stream/{id}"));
    batches.extend(
        rest["stream"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["output"].clone()),
    );
    // Consecutive batches from 100, none lost or repeated; the output has them all.
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b["batch_number"], json!(i + 1));
        assert_eq!(b["next_nonce"], json!(100 + 16 * (i + 1)));
    }
    assert_eq!(last["output"].as_array().unwrap().len(), batches.len());

    // Unknown ids, and a /run body of the wrong shape.
    let (code, body) = server.get("/status/nope");
    assert_eq!(
        (code, body),
        (
            404,
            json!({"id": "nope", "status": "FAILED", "error": "Job ID not found"})
        )
    );
    assert_eq!(server.post("/cancel/nope", "").0, 404);
    let (code, body) = server.post("/run", "{\"input\": [1]}");
    assert_eq!(code, 422);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("`input` must be a JSON object")
    );
    let (_, health) = server.get("/health");
    assert_eq!(health["jobs"]["cancelled"], json!(1), "{health}");
}

#[test]
fn bad_bodies_get_clear_errors() {
    let server = Server::start(&["--max-body", "1"]);
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        ("POST", "/runsync", "", 422, "empty"),
        ("POST", "/runsync", "{nope", 422, "not valid JSON"),
        ("POST", "/runsync", "[1, 2]", 422, "must be a JSON object"),
        ("POST", "/runsync", "{}", 422, "missing field `input`"),
        (
            "POST",
            "/runsync",
            "{\"input\": {}, \"webhook\": 5}",
            422,
            "webhook",
        ),
        (
            "POST",
            "/api/v1/pow/init/generate",
            "{\"node_id\": 1}",
            422,
            "missing field",
        ),
        (
            "POST",
            "/api/v1/pow/init/generate",
            "{\"node_id\": \"x\"}",
            422,
            "invalid type",
        ),
        (
            "POST",
            "/api/v1/pow/phase/generate",
            "",
            400,
            "PoW is not running",
        ),
        ("GET", "/api/v1/pow/init", "", 405, "Method Not Allowed"),
        ("GET", "/nowhere", "", 404, "Not Found"),
    ];
    for (method, path, body, code, says) in cases {
        let (got, v) = request(server.addr, method, path, Some(body));
        assert_eq!(got, *code, "{method} {path} {body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(says),
            "{method} {path} {body}: {v}"
        );
    }
    // Values that cannot work are refused by name.
    let mut init = init_request("http://127.0.0.1:1/x", 0, 1, 1.4);
    init["params"]["n_heads"] = json!(3);
    let (code, v) = server.post("/api/v1/pow/init/generate", &init.to_string());
    assert_eq!(code, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("params"), "{v}");
    let mut init = init_request("ftp://x", 0, 1, 1.4);
    let (code, v) = server.post("/api/v1/pow/init/generate", &init.to_string());
    assert_eq!(code, 400);
    assert!(v["detail"].as_str().unwrap().contains("url"), "{v}");
    init["url"] = json!("https://");
    let (code, v) = server.post("/api/v1/pow/init/generate", &init.to_string());
    assert_eq!(code, 400);
    assert!(v["detail"].as_str().unwrap().contains("with a host"), "{v}");
    init["url"] = json!("http://127.0.0.1:1/x");
    init["r_target"] = json!(-1.0);
    assert_eq!(
        server
            .post("/api/v1/pow/init/generate", &init.to_string())
            .0,
        400
    );
    // A plugin's refusal is a FAILED job with the plugin's error.
    let (code, v) = server.post("/runsync", "{\"input\": {\"block_hash\": \"ab\"}}");
    assert_eq!(code, 200);
    assert_eq!(v["status"], json!("FAILED"));
    assert_eq!(v["error_type"], json!("KeyError"));
    // Larger than --max-body 1 (MiB).
    let big = format!("{{\"input\": {{\"pad\": \"{}\"}}}}", "x".repeat(2 << 20));
    let (code, text) = request_text(server.addr, "POST", "/runsync", Some(big.as_bytes()));
    assert_eq!(code, 413, "{text}");
    assert!(text.contains("--max-body"), "{text}");
    // Still serving.
    assert_eq!(server.get("/health").0, 200);
}

/// A bounded load test: 200 concurrent /runsync requests for the 64-nonce tiny golden
/// request; every one is answered with the golden nonces. Prints requests/s (run with
/// --nocapture); the figure belongs in docs/BENCHMARKS.md, not in an assertion.
#[test]
fn load_200_concurrent_runsync() {
    const CLIENTS: usize = 200;
    let server = Server::start(&["--concurrency", "2", "--queue", "256"]);
    let g = golden("runpod_tiny_r2.json");
    let body = Arc::new(g["request"].to_string());
    let want = g["expected_response"]["nonces"].clone();
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, body) = (server.addr, body.clone());
            std::thread::spawn(move || request(addr, "POST", "/runsync", Some(&body)))
        })
        .collect();
    let answers: Vec<(u16, Value)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = start.elapsed().as_secs_f64();
    for (code, v) in &answers {
        assert_eq!(*code, 200, "{v}");
        assert_eq!(v["status"], json!("COMPLETED"), "{v}");
        assert_eq!(v["output"]["nonces"], want);
    }
    eprintln!(
        "load: {CLIENTS} concurrent /runsync (tiny, 64 nonces each) answered in {elapsed:.2} s: {:.0} requests/s, {:.0} nonces/s",
        CLIENTS as f64 / elapsed,
        (CLIENTS * 64) as f64 / elapsed
    );
}

#[test]
fn sigterm_delivers_pending_callbacks_before_exiting() {
    // The receiver refuses the first 4 posts, so batches are pending when SIGTERM comes.
    let receiver = Receiver::start(4);
    let mut server = Server::start(&[]);
    let (code, _) = server.post(
        "/api/v1/pow/init/generate",
        &init_request(&receiver.url(), 0, 1, 10.0).to_string(),
    );
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.refused.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = server.terminate();
    assert!(
        status.success(),
        "serve exited with {status}: undelivered callbacks?"
    );
    let nonces: Vec<i64> = generated_nonces(&receiver.accepted())
        .iter()
        .map(|g| g.0)
        .collect();
    assert!(!nonces.is_empty());
    assert_sequence(nonces, 0, 1);
}

/// A plugin that traps, loops or exhausts its memory fails that job; the server goes on.
#[test]
fn a_misbehaving_plugin_fails_its_job_and_the_server_goes_on() {
    let path = common::misbehave_plugin("serve-test");
    let server = Server::start(&[
        "--plugin",
        &path,
        "--plugin-time-limit",
        "0.5",
        "--plugin-memory",
        "64",
    ]);
    for (action, says) in [
        ("trap", "trapped"),
        ("loop", "time limit"),
        ("memory", "memory limit"),
    ] {
        let (code, v) = server.post(
            "/runsync",
            &json!({"input": {"action": action}}).to_string(),
        );
        assert_eq!(code, 200);
        assert_eq!(v["status"], json!("FAILED"), "{action}: {v}");
        assert_eq!(v["error_type"], json!("PluginError"), "{action}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{action}: {v}");
    }
    let (_, v) = server.post(
        "/runsync",
        &json!({"input": {"action": "hello"}}).to_string(),
    );
    assert_eq!(v["status"], json!("COMPLETED"), "{v}");
    assert_eq!(server.get("/health").1["jobs"]["failed"], json!(3));
}

#[test]
fn bad_flags_fail_before_serving() {
    let cases: &[(&[&str], &str)] = &[
        (&["--concurrency", "0"], "--concurrency"),
        (&["--listen", "nonsense"], "cannot listen on nonsense"),
        (&["--plugin", "nope"], "unknown plugin `nope`"),
        (&["--callback-interval", "0"], "--callback-interval"),
        (&["--flush-timeout=-1"], "--flush-timeout"),
        (&["--backend", "abacus"], "unknown backend"),
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

/// `/cancel` during a long compute call: the job ends CANCELLED, never FAILED as the plugin's
/// fault (issue 14: past `--plugin-time-limit` it turned FAILED, "ran past its time limit").
#[test]
fn a_job_cancelled_during_a_long_batch_stays_cancelled() {
    let server = Server::start(&["--plugin-time-limit", "0.3"]);
    let mut input = golden("runpod_tiny_r2.json")["request"]["input"].clone();
    let fields = input.as_object_mut().unwrap();
    fields.remove("nonces");
    fields.insert("start_nonce".into(), json!(0));
    // Seconds of work in one compute call.
    fields.insert("batch_size".into(), json!(400_000));
    let (code, v) = server.post("/run", &json!({ "input": input }).to_string());
    assert_eq!(code, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1000));
    server.post(&format!("/cancel/{id}"), "");
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let (_, s) = server.get(&format!("/status/{id}"));
        if !["IN_QUEUE", "IN_PROGRESS"].contains(&s["status"].as_str().unwrap_or("")) {
            // Give a late FAILED the chance to show.
            std::thread::sleep(Duration::from_millis(300));
            break server.get(&format!("/status/{id}")).1;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(finished["status"], json!("CANCELLED"), "{finished}");
}

/// A streaming job on the tiny model, started at `start`.
fn stream_job(start: i64, webhook: Option<&str>) -> String {
    let mut input = golden("runpod_tiny_r2.json")["request"]["input"].clone();
    let fields = input.as_object_mut().unwrap();
    fields.remove("nonces");
    fields.insert("start_nonce".into(), json!(start));
    fields.insert("batch_size".into(), json!(16));
    let mut job = json!({ "input": input });
    if let Some(url) = webhook {
        job["webhook"] = json!(url);
    }
    job.to_string()
}

#[test]
fn a_full_queue_is_answered_503_and_webhooks_get_the_result() {
    let receiver = Receiver::start(1);
    let server = Server::start(&["--concurrency", "1", "--queue", "0"]);
    let hook = format!("http://{}/hook", receiver.addr);
    let (code, first) = server.post("/run", &stream_job(0, Some(&hook)));
    assert_eq!(code, 200, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    // Wait until it computes: its slot is the only one, and nothing may wait.
    while server.get(&format!("/status/{id}")).1["status"] != json!("IN_PROGRESS") {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (code, busy) = server.post("/runsync", &stream_job(0, None));
    assert_eq!(code, 503, "{busy}");
    assert!(busy["detail"].as_str().unwrap().contains("busy"), "{busy}");
    assert_eq!(
        server.get("/health").1["workers"],
        json!({"running": 1, "idle": 0})
    );

    // Once it has a batch, cancelled: its result goes to its webhook (retried past one
    // refusal).
    while server.get(&format!("/stream/{id}")).1["stream"] == json!([]) {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.post(&format!("/cancel/{id}"), "");
    receiver.wait_for("the webhook", |a| !a.is_empty());
    let (path, _, body) = &receiver.accepted()[0];
    assert_eq!(path, "/hook");
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["status"], json!("CANCELLED"));
    assert!(!body["output"].as_array().unwrap().is_empty());
    // The slot is free again.
    let (code, v) = server.post(
        "/runsync",
        &golden("runpod_tiny_r2.json")["request"].to_string(),
    );
    assert_eq!((code, &v["status"]), (200, &json!("COMPLETED")));
}

/// Phase flips abandon the batch in flight; it is computed again when generation resumes, so
/// the node's sequence has no gaps, and re-sending the same init keeps the position.
#[test]
fn phase_flips_keep_the_sequence_whole() {
    let receiver = Receiver::start(0);
    let server = Server::start(&[]);
    let init = init_request(&receiver.url(), 0, 1, 10.0).to_string();
    assert_eq!(server.post("/api/v1/pow/init/generate", &init).0, 200);
    receiver.wait_for("some nonces", |a| generated_nonces(a).len() >= 200);

    let (code, v) = server.post("/api/v1/pow/init/validate", &init);
    assert_eq!(
        (code, &v["pow_status"]["status"]),
        (200, &json!("VALIDATING"))
    );
    std::thread::sleep(Duration::from_millis(300));
    let (_, paused) = server.get("/api/v1/pow/status");
    std::thread::sleep(Duration::from_millis(300));
    let (_, still) = server.get("/api/v1/pow/status");
    assert_eq!(
        paused["computed"], still["computed"],
        "generation went on while validating"
    );

    let (code, v) = server.post("/api/v1/pow/phase/generate", "");
    assert_eq!(
        (code, &v["pow_status"]["status"]),
        (200, &json!("GENERATING"))
    );
    let before = still["computed"].as_u64().unwrap() as usize;
    receiver.wait_for("more nonces", |a| generated_nonces(a).len() >= before + 200);
    server.post("/api/v1/pow/stop", "");
    wait_until_delivered(&server);
    let nonces = generated_nonces(&receiver.accepted())
        .iter()
        .map(|g| g.0)
        .collect();
    assert_sequence(nonces, 0, 1);
}

/// A callback receiver that never answers: at shutdown, after --flush-timeout, every
/// undelivered batch is kept in the --undelivered file, and the exit code says so.
#[test]
fn undeliverable_callbacks_are_kept_in_a_file_at_shutdown() {
    let dir = std::env::temp_dir().join(format!("powhost-undelivered-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kept = dir.join("undelivered.ndjson");
    let _ = std::fs::remove_file(&kept);
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

/// A long streaming job: seconds of work in each compute call.
fn long_stream_job() -> String {
    let mut input = golden("runpod_tiny_r2.json")["request"]["input"].clone();
    let fields = input.as_object_mut().unwrap();
    fields.remove("nonces");
    fields.insert("start_nonce".into(), json!(0));
    fields.insert("batch_size".into(), json!(400_000));
    json!({ "input": input }).to_string()
}

fn wait_for_health(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = server.get("/health");
        if done(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "{what}: {health}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 14: a client that stops in the middle of its body held the server 38 s past SIGTERM
/// with `--flush-timeout 3`. Now shutdown takes at most the flush timeout.
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

/// Issue 14: a `/runsync` caller that hung up left /health counting its job in progress for
/// good. Now hanging up cancels the job, which is counted cancelled.
#[test]
fn a_runsync_caller_that_hangs_up_cancels_its_job() {
    let server = Server::start(&[]);
    let body = long_stream_job();
    let mut client = TcpStream::connect(server.addr).unwrap();
    write!(
        client,
        "POST /runsync HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    wait_for_health(&server, "the job starts", |h| {
        h["jobs"]["inProgress"] == json!(1)
    });
    drop(client);
    let health = wait_for_health(&server, "the job ends", |h| {
        h["jobs"]["inProgress"] == json!(0)
    });
    assert_eq!(health["jobs"]["cancelled"], json!(1), "{health}");
    assert_eq!(health["workers"]["running"], json!(0), "{health}");
}

/// `/runsync?wait=MS` answers with the job's id once the wait is over, so it can be polled and
/// cancelled; a bad wait is refused.
#[test]
fn runsync_with_a_wait_hands_out_the_id() {
    let server = Server::start(&[]);
    let start = Instant::now();
    let (code, v) = server.post("/runsync?wait=300", &long_stream_job());
    assert_eq!(code, 200, "{v}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(v["status"], json!("IN_PROGRESS"), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sync-"), "{id}");
    let (_, cancelled) = server.post(&format!("/cancel/{id}"), "");
    assert_eq!(cancelled["status"], json!("CANCELLED"));
    wait_for_health(&server, "the job ends", |h| {
        h["jobs"]["cancelled"] == json!(1) && h["jobs"]["inProgress"] == json!(0)
    });
    // A short job within its wait: the whole answer.
    let golden_request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (code, v) = server.post("/runsync?wait=60000", &golden_request);
    assert_eq!((code, &v["status"]), (200, &json!("COMPLETED")), "{v}");
    for bad in ["0", "abc", "-5", "99999999999999"] {
        let (code, v) = server.post(&format!("/runsync?wait={bad}"), &golden_request);
        assert_eq!(code, 400, "{bad}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("`wait`"), "{v}");
    }
}

/// SIGTERM lets a streaming job finish the batch in flight: its webhook gets it, COMPLETED,
/// rather than the job being cancelled mid-batch.
#[test]
fn sigterm_lets_jobs_finish_their_batch() {
    let receiver = Receiver::start(0);
    let mut server = Server::start(&["--flush-timeout", "30"]);
    let hook = format!("http://{}/hook", receiver.addr);
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
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "one webhook");
    let body = &accepted[0].2;
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
