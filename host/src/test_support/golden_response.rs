//! The one comparison of a runpod-contract response with the reference's (a golden file's
//! `expected_response`): the same keys in the reference handler's order, the same values,
//! distances within the agreement budget. It depends only on serde_json, so the integration
//! tests include this same file.

use serde_json::Value;

/// The agreement budget of docs/spec/COMPUTATION.md §9 for one distance (the forward-pass
/// tests measure max 2.9e-7 on `small` and 8.8e-8 on `tiny` against the goldens).
pub const MAX_DIST_DIFF: f64 = 5e-6;

/// Panics, naming `what`, unless `got` is the reference's response; returns the largest
/// |Δd| seen.
pub fn assert_matches_golden(got: &Value, want: &Value, what: &str) -> f64 {
    let keys = |v: &Value| {
        v.as_object()
            .unwrap_or_else(|| panic!("{what}: not an object: {v}"))
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(got), keys(want), "{what}: keys");
    for key in [
        "public_key",
        "block_hash",
        "block_height",
        "nonces",
        "node_id",
        "total_computed",
        "total_valid",
    ] {
        assert_eq!(got[key], want[key], "{what}: {key}");
    }
    let (got_d, want_d) = (
        got["dist"].as_array().expect("dist"),
        want["dist"].as_array().expect("dist"),
    );
    assert_eq!(got_d.len(), want_d.len(), "{what}: dist");
    let max = got_d
        .iter()
        .zip(want_d)
        .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
        .fold(0.0, f64::max);
    assert!(max <= MAX_DIST_DIFF, "{what}: max |Δd| {max:e}");
    max
}
