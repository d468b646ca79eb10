//! The default plugin against the reference handler's golden responses (compared within the
//! distance tolerance, the rest snapshotted), a request read from a file, partial params.

use crate::common::golden_response::assert_matches_golden;
use crate::common::{direct_distances, tempdir};
use crate::{golden, one_response, run, tiny_input};
use insta::assert_json_snapshot;
use serde_json::{Value, json};

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
    let path = dir.path().join("request.json");
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
