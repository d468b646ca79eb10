//! `powhost run` end to end: the default plugin against the reference handler's golden
//! responses, streaming and cancellation, every kind of bad request answered with an error
//! JSON and exit 1, and bad plugins contained while the host keeps answering.

use insta::assert_json_snapshot;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::golden_response::{MAX_DIST_DIFF, assert_matches_golden};
use common::{direct_distances, golden, powhost, powhost_with_stdin};

/// `powhost run ARGS` with `stdin` as the request.
fn run(args: &[&str], stdin: &str) -> Output {
    let args: Vec<&str> = std::iter::once("run").chain(args.iter().copied()).collect();
    powhost_with_stdin(&args, stdin)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn one_response(out: &Output) -> Value {
    let mut all = lines(out);
    assert_eq!(
        all.len(),
        1,
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    all.remove(0)
}

fn tiny_input() -> Value {
    golden("runpod_tiny_r2.json")["request"]["input"].clone()
}

/// The golden request for a preset and r_target, through the default plugin on the CPU.
fn check_golden(file: &str) -> Value {
    let g = golden(file);
    let out = run(&["--backend", "cpu"], &g["request"].to_string());
    assert!(
        out.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = one_response(&out);
    let max = assert_matches_golden(&got, &g["expected_response"], file);
    let valid = got["dist"].as_array().unwrap().len();
    println!("{file}: {valid} valid nonces, max |Δd| {max:.2e}");
    got
}

#[test]
fn golden_tiny_responses() {
    let r2 = check_golden("runpod_tiny_r2.json");
    assert_json_snapshot!("tiny_r2", r2, { ".dist" => "[redacted: compared to the golden above]" });
    let rd = check_golden("runpod_tiny_rdefault.json");
    assert_json_snapshot!("tiny_rdefault", rd, { ".dist" => "[redacted: compared to the golden above]" });
}

#[test]
fn golden_small_responses() {
    let r2 = check_golden("runpod_small_r2.json");
    assert_json_snapshot!("small_r2", r2, { ".dist" => "[redacted: compared to the golden above]" });
    let rd = check_golden("runpod_small_rdefault.json");
    assert_json_snapshot!("small_rdefault", rd, { ".dist" => "[redacted: compared to the golden above]" });
}

#[test]
fn request_from_a_file_and_devices_honoured() {
    let dir = tempdir();
    let mut input = tiny_input();
    input["nonces"] = json!([3, 1, 2]);
    input["devices"] = json!(["cpu"]);
    let path = dir.join("request.json");
    std::fs::write(&path, json!({ "input": input }).to_string()).unwrap();
    let out = run(&["--backend", "cpu", path.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = one_response(&out);
    assert_eq!(got["nonces"], json!([3, 1, 2]));
    // The same distances as `powhost distances` for those nonces.
    let direct = direct_distances(&tiny_input()["params"], "3,1,2");
    assert_eq!(got["dist"], direct["dist"]);
}

#[test]
fn partial_params_are_filled_from_reference_default() {
    // Only seq_len and sizes given; the rest (norm_eps, rope_theta, ...) come from
    // reference-default. Checked against `powhost distances` with the same partial params.
    let params = json!({"dim": 64, "n_layers": 1, "n_heads": 4, "n_kv_heads": 4, "vocab_size": 96, "seq_len": 4, "multiple_of": 32});
    let mut input = tiny_input();
    input["params"] = params.clone();
    input["nonces"] = json!([0, 1]);
    let out = run(
        &["--backend", "cpu"],
        &json!({ "input": input }).to_string(),
    );
    let got = one_response(&out);
    let direct = direct_distances(&params, "0,1");
    assert_eq!(got["dist"], direct["dist"]);
}

#[test]
fn streaming_emits_consecutive_batches_until_the_time_limit() {
    let mut input = tiny_input();
    input.as_object_mut().unwrap().remove("nonces");
    input["start_nonce"] = json!(5);
    input["batch_size"] = json!(8);
    let start = Instant::now();
    let out = run(
        &["--backend", "cpu", "--time-limit", "0.5"],
        &json!({ "input": input }).to_string(),
    );
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let batches = lines(&out);
    assert!(batches.len() >= 2, "only {} batches", batches.len());
    assert!(took < Duration::from_secs(30), "stream ran {took:?}");
    let (mut total, mut valid) = (0, 0);
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b["batch_number"], json!(i + 1));
        assert_eq!(b["batch_computed"], json!(8));
        total += 8;
        valid += b["batch_valid"].as_u64().unwrap();
        assert_eq!(b["total_computed"], json!(total));
        assert_eq!(b["total_valid"], json!(valid));
        assert_eq!(b["next_nonce"], json!(5 + total));
        assert_eq!(
            b["nonces"].as_array().unwrap().len() as u64,
            b["batch_valid"].as_u64().unwrap()
        );
        assert_eq!(b["node_id"], json!(0));
    }
    // r_target 2.0: every nonce is valid, so batch 1 holds nonces 5..13 in order.
    assert_eq!(batches[0]["nonces"], json!([5, 6, 7, 8, 9, 10, 11, 12]));
    let first = golden("runpod_tiny_r2.json")["expected_response"]["dist"].clone();
    let got = batches[0]["dist"].as_array().unwrap();
    for (i, d) in got.iter().enumerate() {
        let want = first[5 + i].as_f64().unwrap();
        assert!((d.as_f64().unwrap() - want).abs() <= MAX_DIST_DIFF);
    }
    assert_json_snapshot!("stream_first_batch", batches[0], { ".dist" => "[redacted]" });
}

/// A batch that outlasts `--time-limit` is interrupted (it once ran a whole batch over, 18 s
/// on a 2 s limit): the stream ends on time with only whole batches delivered, and a list of
/// nonces it cuts short is a TimeoutError.
#[test]
fn the_time_limit_interrupts_a_long_batch() {
    let mut input = tiny_input();
    input.as_object_mut().unwrap().remove("nonces");
    input["start_nonce"] = json!(0);
    input["batch_size"] = json!(1_000_000);
    let start = Instant::now();
    let out = run(
        &["--backend", "cpu", "--time-limit", "1"],
        &json!({ "input": input }).to_string(),
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "the stream ran {took:?}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lines(&out).is_empty(), "no whole batch was computed");

    let mut input = tiny_input();
    input["nonces"] = json!((0..1_000_000).collect::<Vec<i64>>());
    let start = Instant::now();
    let out = run(
        &["--backend", "cpu", "--time-limit", "1"],
        &json!({ "input": input }).to_string(),
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let v = one_response(&out);
    assert_eq!(v["error_type"], json!("TimeoutError"), "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("time limit passed after"),
        "{v}"
    );
}

/// A large request within the plugin memory cap is answered (a 200 MB one once failed with a
/// raw Wasm error about host-call fuel); an overlong field is refused by name.
#[test]
fn large_requests_are_answered_or_refused_by_name() {
    let mut input = tiny_input();
    input["block_hash"] = json!("a".repeat(150_000_000));
    let out = run(
        &["--backend", "cpu"],
        &json!({ "input": input }).to_string(),
    );
    assert_eq!(out.status.code(), Some(1));
    let v = one_response(&out);
    assert_eq!(v["error_type"], json!("ValueError"), "{v:.300}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("`block_hash` is 150000000 bytes long"),
        "{v:.300}"
    );
    // 150 MB of padding around a good request: more than wasmtime's default 128 MiB per host
    // call, within --plugin-memory.
    let request = json!({ "input": tiny_input() }).to_string();
    let padded = format!(
        "{}{}}}",
        &request[..request.len() - 1],
        " ".repeat(150_000_000)
    );
    let out = run(&["--backend", "cpu"], &padded);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(one_response(&out)["nonces"].as_array().unwrap().len(), 64);
}

/// `powhost run ARGS` running on `{"input": input}`, its stdin closed and its output piped.
fn spawn_run(args: &[&str], input: &Value) -> std::process::Child {
    let mut child = powhost()
        .arg("run")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(json!({ "input": input }).to_string().as_bytes())
        .unwrap();
    drop(stdin);
    child
}

#[test]
fn ctrl_c_stops_a_stream_and_keeps_what_was_computed() {
    let mut input = golden("runpod_small_r2.json")["request"]["input"].clone();
    input.as_object_mut().unwrap().remove("nonces");
    input["start_nonce"] = json!(0);
    input["batch_size"] = json!(4);
    let mut child = spawn_run(&["--backend", "cpu"], &input);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first: Value = serde_json::from_str(&first).expect("a first batch");
    assert_eq!(first["batch_number"], json!(1));
    let interrupted = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(status.success(), "exit {status:?}");
    assert!(interrupted.elapsed() < Duration::from_secs(20));
    // Every batch that was emitted is whole and in sequence.
    for (i, line) in rest.lines().enumerate() {
        let b: Value = serde_json::from_str(line).unwrap();
        assert_eq!(b["batch_number"], json!(i + 2));
    }
}

/// Ctrl-C during a long batch: the batch in flight is finished and printed, as the message
/// says, and nothing is reported as the plugin's failure (the batch was once dropped, and past
/// `--plugin-time-limit` the request ended as PluginError).
#[test]
fn ctrl_c_during_a_long_batch_finishes_and_prints_it() {
    let mut input = tiny_input();
    input.as_object_mut().unwrap().remove("nonces");
    input["start_nonce"] = json!(0);
    // A few seconds of work in one batch.
    input["batch_size"] = json!(100_000);
    let child = spawn_run(&["--backend", "cpu", "--plugin-time-limit", "0.3"], &input);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("PluginError"), "{stdout}");
    assert!(out.status.success(), "exit {:?}: {stdout}", out.status);
    let batches = lines(&out);
    assert!(!batches.is_empty(), "the batch in flight was dropped");
    let last = batches.last().unwrap();
    assert_eq!(last["batch_computed"], json!(100_000), "{last}");
    assert_eq!(last["batch_number"], json!(batches.len()));
}

#[test]
fn ndjson_answers_every_line_and_reuses_the_model() {
    let mut a = tiny_input();
    a["nonces"] = json!([0, 1]);
    let mut b = tiny_input();
    b["nonces"] = json!([2]);
    let requests = format!(
        "{}\n\n{}\nnot json\n{}\n",
        json!({ "input": a }),
        json!({ "input": b }),
        json!({ "input": a })
    );
    let out = powhost_with_log(&["run", "--backend", "cpu", "--ndjson"], &requests, "debug");
    assert_eq!(out.status.code(), Some(1), "one line was bad");
    let responses = lines(&out);
    assert_eq!(responses.len(), 4);
    assert_eq!(responses[0]["nonces"], json!([0, 1]));
    assert_eq!(responses[1]["nonces"], json!([2]));
    assert_eq!(responses[2]["error_type"], json!("JSONDecodeError"));
    assert_eq!(responses[3], responses[0]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("built the model").count(), 1, "{log}");
    assert!(log.matches("reusing the model").count() >= 2, "{log}");
}

#[test]
fn another_block_hash_or_params_rebuild_the_model() {
    let a = tiny_input();
    let mut other_hash = tiny_input();
    other_hash["block_hash"] = json!("ff");
    let mut other_params = tiny_input();
    other_params["params"]["n_layers"] = json!(1);
    let requests: String = [&a, &other_hash, &other_hash, &other_params, &a]
        .iter()
        .map(|i| format!("{}\n", json!({ "input": i })))
        .collect();
    let out = powhost_with_log(&["run", "--backend", "cpu", "--ndjson"], &requests, "debug");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let responses = lines(&out);
    assert_eq!(responses.len(), 5);
    assert_eq!(
        responses[0], responses[4],
        "rebuilding gives the same answer"
    );
    assert_ne!(responses[0]["dist"], responses[1]["dist"]);
    assert_ne!(responses[0]["dist"], responses[3]["dist"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("built the model").count(), 4, "{log}");
    assert_eq!(log.matches("reusing the model").count(), 1, "{log}");
}

fn powhost_with_log(args: &[&str], stdin: &str, level: &str) -> Output {
    let mut child = powhost()
        .args(args)
        .env("RUST_LOG", level)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every kind of bad request: an error JSON on stdout, exit 1, no panic. The snapshots
/// hold the exact responses.
#[test]
fn bad_requests_get_error_responses() {
    let base = tiny_input();
    let with = |key: &str, value: Value| {
        let mut i = base.clone();
        i[key] = value;
        json!({ "input": i }).to_string()
    };
    let without = |key: &str| {
        let mut i = base.clone();
        i.as_object_mut().unwrap().remove(key);
        json!({ "input": i }).to_string()
    };
    let params_with = |key: &str, value: Value| {
        let mut i = base.clone();
        i["params"][key] = value;
        json!({ "input": i }).to_string()
    };
    let cases: Vec<(&str, String)> = vec![
        ("malformed_json", r#"{"input": {"block_hash": "#.into()),
        ("not_an_object", "[1, 2, 3]".into()),
        ("input_not_an_object", r#"{"input": "tiny"}"#.into()),
        ("empty_request", "".into()),
        ("missing_input", "{}".into()),
        ("missing_block_hash", without("block_hash")),
        ("missing_nonces", without("nonces")),
        ("missing_r_target", without("r_target")),
        ("extra_field", with("colour", json!("blue"))),
        ("block_hash_not_a_string", with("block_hash", json!(12))),
        ("empty_public_key", with("public_key", json!(""))),
        ("block_height_float", with("block_height", json!(1.5))),
        ("block_height_negative", with("block_height", json!(-1))),
        ("nonces_not_a_list", with("nonces", json!("0..64"))),
        ("nonce_float", with("nonces", json!([1, 2.5]))),
        ("nonce_string", with("nonces", json!([1, "2"]))),
        ("nonce_out_of_range", r#"{"input": {"block_hash": "a", "block_height": 1, "public_key": "k", "r_target": 1.4, "nonces": [9223372036854775808]}}"#.into()),
        ("nonces_empty", with("nonces", json!([]))),
        ("r_target_nan", r#"{"input": {"block_hash": "a", "block_height": 1, "public_key": "k", "r_target": NaN, "nonces": [1]}}"#.into()),
        ("r_target_negative", with("r_target", json!(-1.4))),
        ("r_target_string", with("r_target", json!("1.4"))),
        ("params_unknown_key", params_with("depth", json!(3))),
        ("params_wrong_type", params_with("dim", json!("64"))),
        ("params_zero", params_with("n_layers", json!(0))),
        ("params_inconsistent", params_with("n_heads", json!(5))),
        ("params_odd_head_dim", params_with("n_heads", json!(64))),
        ("params_too_large", params_with("dim", json!(4194304))),
        ("device_unavailable", with("devices", json!(["cuda:0"]))),
        ("devices_not_strings", with("devices", json!([0]))),
        ("stream_and_nonces", with("start_nonce", json!(0))),
        ("stream_batch_zero", {
            let mut i = base.clone();
            i.as_object_mut().unwrap().remove("nonces");
            i["start_nonce"] = json!(0);
            i["batch_size"] = json!(0);
            json!({ "input": i }).to_string()
        }),
    ];
    for (name, request) in cases {
        let start = Instant::now();
        let out = run(&["--backend", "cpu"], &request);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} took too long"
        );
        let response = one_response(&out);
        assert!(
            response["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}"
        );
        assert!(response["error_type"].is_string(), "{name}");
        // The machine's free memory is not part of the answer.
        insta::with_settings!({
            snapshot_suffix => name,
            filters => vec![(r"only \d+\.\d+ GiB", "only [free] GiB")],
        }, {
            assert_json_snapshot!("bad_request", response);
        });
    }
}

#[test]
fn bad_flags_and_unknown_plugins() {
    let request = json!({ "input": tiny_input() }).to_string();
    let out = run(&["--plugin", "/no/such/plugin.wasm"], &request);
    assert_eq!(out.status.code(), Some(1));
    let response = one_response(&out);
    assert_eq!(response["error_type"], json!("HostError"));
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .contains("/no/such/plugin.wasm")
    );

    let out = run(&["--backend", "quantum"], &request);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_response(&out)["error"]
            .as_str()
            .unwrap()
            .contains("quantum")
    );

    // A bad flag value is a usage error, named by clap before anything loads: exit 2.
    for bad in [
        ["--time-limit", "0"],
        ["--batch", "0"],
        ["--plugin-memory", "0"],
    ] {
        let out = run(&bad, &request);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(bad[0]),
            "{bad:?}"
        );
    }

    let out = run(&["--backend", "cpu", "/no/such/request.json"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_response(&out)["error"]
            .as_str()
            .unwrap()
            .contains("/no/such/request.json")
    );

    // Usage errors are clap's: exit 2.
    let out = run(&["--no-such-flag"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn plugins_lists_the_builtin() {
    let out = powhost().args(["plugins", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["wit"], json!("gonka:pow@0.1.0"));
    assert_eq!(v["plugins"][0]["name"], json!("runpod"));
    let text = powhost().arg("plugins").output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("runpod"));
}

// ---- sandbox: deliberately bad plugins ------------------------------------------------

const MISBEHAVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm"));

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "powhost-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plugin_file(name: &str, bytes: &[u8]) -> String {
    let path = tempdir().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_trapping_looping_or_hungry_plugin_is_contained_and_the_host_answers_the_next() {
    let plugin = plugin_file("misbehave.wasm", MISBEHAVE);
    let start = Instant::now();
    let out = run(
        &[
            "--plugin",
            &plugin,
            "--ndjson",
            "--plugin-time-limit",
            "0.5",
            "--plugin-memory",
            "64",
        ],
        "trap\nloop\nmemory\nhost-loop\nok\n",
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let responses = lines(&out);
    assert_eq!(responses.len(), 5, "{responses:?}");
    let error = |i: usize| responses[i]["error"].as_str().unwrap().to_string();
    for (i, response) in responses.iter().take(4).enumerate() {
        assert_eq!(response["error_type"], json!("PluginError"));
        assert!(error(i).contains("misbehave.wasm"), "{}", error(i));
    }
    assert!(
        error(0).contains("trapped") && error(0).contains("misbehaving on purpose"),
        "{}",
        error(0)
    );
    assert!(error(1).contains("time limit"), "{}", error(1));
    assert!(error(2).contains("memory limit (64 MiB)"), "{}", error(2));
    assert!(error(3).contains("time limit"), "{}", error(3));
    assert_eq!(responses[4], json!({ "echo": "ok" }));
}

#[test]
fn a_plugin_that_floods_emits_stops_at_the_time_limit() {
    let plugin = plugin_file("flood.wasm", MISBEHAVE);
    let out = run(&["--plugin", &plugin, "--time-limit", "0.3"], "emit-flood");
    assert!(out.status.success());
    assert!(lines(&out).len() > 1);
}

#[test]
fn components_of_another_world_and_non_components_are_refused() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "empty-component.wasm",
            wat::parse_str("(component)").unwrap(),
            "does not match",
        ),
        (
            "other-world.wasm",
            wat::parse_str(
                r#"(component
                     (import "example:other/thing" (instance (export "f" (func))))
                   )"#,
            )
            .unwrap(),
            "does not grant",
        ),
        (
            "core-module.wasm",
            wat::parse_str("(module)").unwrap(),
            "not a WebAssembly component",
        ),
        (
            "garbage.wasm",
            b"this is not wasm".to_vec(),
            "not a WebAssembly component",
        ),
    ];
    for (name, bytes, expect) in cases {
        let plugin = plugin_file(name, &bytes);
        let out = run(&["--plugin", &plugin], "{}");
        assert_eq!(out.status.code(), Some(1), "{name}");
        let response = one_response(&out);
        let error = response["error"].as_str().unwrap();
        assert!(
            error.contains(expect) && error.contains(name),
            "{name}: {error}"
        );
    }
}

#[test]
fn compiled_plugins_are_cached_and_a_bad_cache_file_is_recompiled() {
    let dir = tempdir().join("plugin-cache");
    let _ = std::fs::remove_dir_all(&dir);
    let list = || {
        let out = powhost()
            .env("POWHOST_CACHE_DIR", &dir)
            .args(["plugins", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        // One per built-in plugin (runpod, validator).
        assert_eq!(files.len(), 2, "{files:?}");
        files
    };
    let cached = list();
    assert!(std::fs::metadata(&cached[0]).unwrap().len() > 1000);
    assert_eq!(list(), cached, "the second run reuses the same files");
    std::fs::write(&cached[0], b"not machine code").unwrap();
    assert_eq!(list(), cached);
    assert_ne!(
        std::fs::read(&cached[0]).unwrap(),
        b"not machine code",
        "rewritten"
    );
}
