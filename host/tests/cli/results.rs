//! What the commands compute, through the CLI: fingerprints against the reference hashes,
//! distances against the reference (in the given order, with params as JSON or a preset, any
//! batch size), and bench's figures.

use crate::{HASH, KEY, golden, powhost, stdout_json};

#[test]
fn fingerprint_matches_reference_hashes() {
    let g = golden("model_small.json");
    let out = stdout_json(&powhost(&[
        "fingerprint",
        "--preset",
        "small",
        "--block-hash",
        g["block_hash"].as_str().unwrap(),
        "--json",
    ]));
    assert_eq!(out["total_params"], g["total_params"]);
    assert_eq!(out["pool_size"], g["pool_size"]);
    let got = out["parameters"].as_array().unwrap();
    let want = g["parameters"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(want) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(a["shape"], b["shape"]);
        assert_eq!(a["sha256_f16le"], b["sha256_f16le"], "{}", a["name"]);
    }
}

#[test]
fn fingerprint_only_selects_parameters_in_given_order() {
    let out = stdout_json(&powhost(&[
        "fingerprint",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--only",
        "output.weight,norm.weight",
        "--json",
    ]));
    let names: Vec<&str> = out["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["output.weight", "norm.weight"]);
}

#[test]
fn distances_agree_with_reference_through_the_cli() {
    let g = golden("forward_tiny.json");
    let out = stdout_json(&powhost(&[
        "distances",
        "--backend",
        "cpu",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "0..64",
        "--json",
    ]));
    let nonces: Vec<i64> = out["nonces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(nonces, (0..64).collect::<Vec<_>>());
    let dist = out["dist"].as_array().unwrap();
    for (d, w) in dist.iter().zip(g["distances"].as_array().unwrap()) {
        let (d, w) = (d.as_f64().unwrap(), w["distance"].as_f64().unwrap());
        // The tiny preset's measured max |Δd| is 8.8e-8 (see the conformance tests).
        assert!((d - w).abs() <= 5e-6, "{d} vs {w}");
    }
}

#[test]
fn distances_keep_the_given_order_and_params_json_equals_preset() {
    let list = "5,-3,0..2,9223372036854775807";
    let a = stdout_json(&powhost(&[
        "distances",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        list,
        "--json",
    ]));
    assert_eq!(a["nonces"], serde_json::json!([5, -3, 0, 1, i64::MAX]));
    let params = serde_json::to_string(&golden("forward_tiny.json")["params"]).unwrap();
    let b = stdout_json(&powhost(&[
        "distances",
        "--params",
        &params,
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        list,
        "--json",
    ]));
    assert_eq!(a, b);
    // The same nonces computed alone and in a batch give the same bits.
    let c = stdout_json(&powhost(&[
        "distances",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "-3",
        "--json",
    ]));
    assert_eq!(c["dist"][0], a["dist"][1]);
}

#[test]
fn a_batch_larger_than_the_nonce_list_is_fine() {
    let out = stdout_json(&powhost(&[
        "distances",
        "--preset",
        "tiny",
        "--block-hash",
        HASH,
        "--public-key",
        KEY,
        "--nonces",
        "0..3",
        "--batch",
        "1000000000",
        "--json",
    ]));
    assert_eq!(out["dist"].as_array().unwrap().len(), 3);
}

#[test]
fn bench_reports_its_figures() {
    let out = stdout_json(&powhost(&[
        "bench", "--preset", "tiny", "--nonces", "8", "--json",
    ]));
    for key in [
        "nonces_per_s",
        "model_build_seconds",
        "peak_memory_bytes",
        "gflop_per_s",
    ] {
        assert!(out[key].as_f64().unwrap() > 0.0, "{key}: {}", out[key]);
    }
    assert_eq!(out["nonces"], 8);
    assert_eq!(out["rounds"], 1);

    // Several rounds on one model: every round's rate, and their median as the rate.
    let out = stdout_json(&powhost(&[
        "bench", "--preset", "tiny", "--nonces", "8", "--rounds", "3", "--json",
    ]));
    let mut rates: Vec<f64> = out["round_nonces_per_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!((out["rounds"].as_u64(), rates.len()), (Some(3), 3));
    assert!(rates.iter().all(|&r| r > 0.0));
    rates.sort_by(f64::total_cmp);
    assert_eq!(out["nonces_per_s"].as_f64().unwrap(), rates[1]);
}
