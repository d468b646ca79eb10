//! The validator plugin from the command line (`powhost run --plugin validator`): a
//! ProofBatch in, a ValidatedBatch out, against the reference handler's golden distances.

mod common;
use common::golden_response::MAX_DIST_DIFF;
use common::{powhost, powhost_with_stdin};
use serde_json::{Value, json};
use std::process::Output;

fn validate(request: &Value) -> (Output, Value) {
    let out = powhost_with_stdin(
        &["run", "--plugin", "validator", "--backend", "cpu"],
        &request.to_string(),
    );
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, v)
}

/// The example batch: the golden response's valid tiny nonces with their distances.
fn example() -> Value {
    let path = format!(
        "{}/../examples/proof-batch-tiny.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn an_honest_batch_passes_from_a_file() {
    let path = format!(
        "{}/../examples/proof-batch-tiny.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = powhost()
        .args(["run", "--plugin", "validator", "--backend", "cpu", &path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let batch = example();
    assert_eq!(v["n_invalid"], json!(0));
    assert_eq!(v["probability_honest"], json!(1.0));
    assert_eq!(v["fraud_detected"], json!(false));
    assert_eq!(v["nonces"], batch["nonces"]);
    assert_eq!(v["received_dist"], batch["dist"]);
    assert_eq!(v["fraud_threshold"], json!(1e-7));
    // Recomputed within the budget of the reference's own distances.
    for (a, b) in floats(&v["dist"]).iter().zip(floats(&batch["dist"])) {
        assert!((a - b).abs() <= MAX_DIST_DIFF, "{a} vs {b}");
    }
    // The reference's keys, in its order.
    let text = String::from_utf8_lossy(&out.stdout);
    let keys = [
        "public_key",
        "block_hash",
        "block_height",
        "nonces",
        "dist",
        "node_id",
        "received_dist",
        "r_target",
        "fraud_threshold",
        "n_invalid",
        "probability_honest",
        "fraud_detected",
    ];
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
}

#[test]
fn invalid_nonces_and_impossible_claims_are_counted() {
    // Nonces 0, 3, 4, 5, 6 of tiny are above the default r_target (the golden response
    // leaves them out); claiming them valid is what a cheat does.
    let mut batch = example();
    let mut nonces = batch["nonces"].as_array().unwrap().clone();
    let mut dist = batch["dist"].as_array().unwrap().clone();
    for n in [0, 3, 4, 5, 6] {
        nonces.push(json!(n));
        dist.push(json!(1.39));
    }
    batch["nonces"] = json!(nonces);
    batch["dist"] = json!(dist);
    let (out, v) = validate(&batch);
    assert!(out.status.success());
    assert_eq!(v["n_invalid"], json!(5));
    assert_eq!(v["fraud_detected"], json!(true));
    assert!(v["probability_honest"].as_f64().unwrap() < 1e-7);

    // A claim at or above r_target is invalid whatever the recomputation says, not a crash.
    let mut batch = example();
    batch["dist"][0] = json!(1.5);
    let (out, v) = validate(&batch);
    assert!(out.status.success());
    assert_eq!(v["n_invalid"], json!(1));
    assert_eq!(
        v["fraud_detected"],
        json!(false),
        "1 of 23 is within honest noise"
    );
}

#[test]
fn an_empty_batch_is_honest() {
    let mut batch = example();
    batch["nonces"] = json!([]);
    batch["dist"] = json!([]);
    let (out, v) = validate(&batch);
    assert!(out.status.success());
    assert_eq!(
        (
            &v["n_invalid"],
            &v["probability_honest"],
            &v["fraud_detected"]
        ),
        (&json!(0), &json!(1.0), &json!(false))
    );
}

#[test]
fn a_seeded_sample_is_reported_and_reproducible() {
    let mut batch = example();
    batch["sample"] = json!({"k": 5, "seed": 42});
    let (_, a) = validate(&batch);
    let (_, b) = validate(&batch);
    assert_eq!(a, b);
    assert_eq!(a["sample"], json!({"seed": 42, "k": 5, "of": 23}));
    let picked = a["nonces"].as_array().unwrap();
    assert_eq!(picked.len(), 5);
    // In the batch's order, each with its own claim.
    let all = example();
    let position = |n: &Value| {
        all["nonces"]
            .as_array()
            .unwrap()
            .iter()
            .position(|m| m == n)
            .unwrap()
    };
    let positions: Vec<usize> = picked.iter().map(position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    for (p, claim) in positions.iter().zip(a["received_dist"].as_array().unwrap()) {
        assert_eq!(&all["dist"][*p], claim);
    }
    batch["sample"]["seed"] = json!(43);
    let (_, c) = validate(&batch);
    assert_ne!(c["nonces"], a["nonces"]);
}

#[test]
fn bad_batches_are_refused_with_the_reason() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"public_key": "p", "block_hash": "b", "block_height": 1, "nonces": [1]}),
            "KeyError",
            "dist",
        ),
        (
            json!({"public_key": "p", "block_hash": "b", "block_height": 1, "nonces": [1, 2], "dist": [1.0]}),
            "ValueError",
            "one claimed distance per nonce",
        ),
        (
            json!({"public_key": "p", "block_hash": "b", "block_height": 1, "nonces": [1], "dist": [1.0], "expected_block_hash": "c"}),
            "ValueError",
            "initialised for `c`",
        ),
        (
            json!({"public_key": "p", "block_hash": "b", "block_height": 1, "nonces": [1], "dist": [1.0], "params": {"n_heads": 3}}),
            "ValueError",
            "n_heads",
        ),
        (json!([1]), "TypeError", "JSON object"),
    ];
    for (request, kind, says) in cases {
        let (out, v) = validate(&request);
        assert_eq!(out.status.code(), Some(1), "{request}");
        assert_eq!(v["error_type"], json!(kind), "{request}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(says),
            "{request}: {v}"
        );
    }
    // Numbers no field holds are named as sent, with what they exceed: not "an array", nor
    // the float 2^64 rounds to.
    for (request, says) in [
        (
            r#"{"public_key": "p", "block_hash": "b", "block_height": 1, "nonces": [1], "dist": [1e999]}"#,
            "`dist[0]` is out of range: 1e999 is not a finite number",
        ),
        (
            r#"{"public_key": "p", "block_hash": "b", "block_height": 1, "nonces": [18446744073709551616], "dist": [1.0]}"#,
            "`nonces[0]` is out of range for a nonce: 18446744073709551616 does not fit; a nonce is an integer from -9223372036854775808 to 9223372036854775807",
        ),
    ] {
        let out = powhost_with_stdin(
            &["run", "--plugin", "validator", "--backend", "cpu"],
            request,
        );
        assert_eq!(out.status.code(), Some(1), "{request}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error_type"], json!("ValueError"), "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    }
}

#[test]
fn a_dry_run_checks_without_computing() {
    // No params: mainnet, which would take minutes per nonce on a CPU; a dry run only checks.
    let batch = json!({"public_key": "p", "block_hash": "b", "block_height": 1,
        "nonces": [1, 2, 3], "dist": [1.0, 1.1, 1.2], "dry_run": true});
    let (out, v) = validate(&batch);
    assert!(out.status.success());
    assert_eq!(v, json!({"ok": true, "nonces": 3}));
}
