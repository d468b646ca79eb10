//! Streams and their ends: consecutive batches until `--time-limit`, the time limit cutting a
//! long batch short, Ctrl-C stopping a stream and finishing the batch in flight.

use crate::common::golden_response::MAX_DIST_DIFF;
use crate::common::powhost;
use crate::{golden, lines, one_response, run, tiny_input};
use insta::assert_json_snapshot;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
