//! Requests large, many and bad: a large request answered and an overlong field refused,
//! `--ndjson` answering every line and reusing the model, every kind of bad request answered
//! with an error JSON and exit 1, and bad flags.

use crate::common::powhost;
use crate::{lines, one_response, run, tiny_input};
use insta::assert_json_snapshot;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

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

/// An unknown field in `params` (a newer client's) is ignored, as the reference handler's
/// pydantic `Params` ignores it, and logged at warn: the answer is the one without it.
#[test]
fn unknown_params_fields_are_ignored_with_a_warning() {
    let mut with_new_field = tiny_input();
    with_new_field["params"]["a_newer_field"] = json!(3);
    let out = powhost_with_log(
        &["run", "--backend", "cpu"],
        &json!({ "input": with_new_field }).to_string(),
        "warn",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("unknown field `a_newer_field` in params"),
        "{log}"
    );
    let plain = run(
        &["--backend", "cpu"],
        &json!({ "input": tiny_input() }).to_string(),
    );
    assert_eq!(one_response(&out), one_response(&plain));
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
        ("nonce_2_pow_64", r#"{"input": {"block_hash": "a", "block_height": 1, "public_key": "k", "r_target": 1.4, "nonces": [18446744073709551616]}}"#.into()),
        ("r_target_beyond_float", r#"{"input": {"block_hash": "a", "block_height": 1, "public_key": "k", "r_target": 1e999, "nonces": [1]}}"#.into()),
        ("nonces_empty", with("nonces", json!([]))),
        ("r_target_nan", r#"{"input": {"block_hash": "a", "block_height": 1, "public_key": "k", "r_target": NaN, "nonces": [1]}}"#.into()),
        ("r_target_negative", with("r_target", json!(-1.4))),
        ("r_target_string", with("r_target", json!("1.4"))),
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
        // The machine's free memory is not part of the answer, nor is the need's exact figure:
        // it counts a widened weight panel per core.
        if let Some(need) = response["error"]
            .as_str()
            .and_then(|e| e.split("needs about ").nth(1))
        {
            let gib: f64 = need.split(' ').next().unwrap().parse().unwrap();
            assert!(gib > 45_000.0, "{name}: {gib} GiB needed");
        }
        insta::with_settings!({
            snapshot_suffix => name,
            filters => vec![
                (r"only \d+\.\d+ GiB", "only [free] GiB"),
                (r"needs about \d+\.\d+ GiB", "needs about [need] GiB"),
            ],
        }, {
            assert_json_snapshot!("bad_request", response);
        });
    }
}

#[test]
fn bad_flags_and_unknown_plugins() {
    let request = json!({ "input": tiny_input() }).to_string();
    // A plugin or backend that names nothing is a usage error too: exit 2, saying which.
    for (bad, says) in [
        (
            ["--plugin", "/no/such/plugin.wasm"],
            "unknown plugin `/no/such/plugin.wasm`",
        ),
        (["--backend", "quantum"], "unknown backend `quantum`"),
    ] {
        let out = run(&bad, &request);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says) && stderr.contains(bad[0]), "{stderr}");
        assert!(out.stdout.is_empty(), "{bad:?}");
    }

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
