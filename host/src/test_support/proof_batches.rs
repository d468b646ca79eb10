//! What generation delivered to a stand-in receiver (receiver.rs), as the node software
//! receives it: every nonce of the ProofBatches it accepted, each batch's shape checked, and
//! the check that they are one node's whole sequence. It depends only on serde_json and the
//! receiver, so the integration tests include this same file beside it.

use super::receiver::Received;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every (nonce, distance) of the ProofBatches accepted for `init` (the init request sent),
/// checking that each went to `{url}/generated` with exactly a ProofBatch's keys, the init's
/// public key and block height, and at least one nonce.
pub fn generated_nonces(received: &[Received], init: &Value) -> Vec<(i64, f64)> {
    let url = init["url"].as_str().expect("the init request's url");
    // The receiver records the path alone: the url past its scheme and host.
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = &after_scheme[after_scheme.find('/').unwrap_or(after_scheme.len())..];
    let mut out = Vec::new();
    for post in received.iter().filter(|r| r.accepted()) {
        assert_eq!(post.path, format!("{path}/generated"));
        let batch: Value = serde_json::from_str(&post.body).expect("a ProofBatch is JSON");
        let keys: BTreeSet<&str> = batch
            .as_object()
            .expect("a ProofBatch is an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "public_key",
                "block_hash",
                "block_height",
                "nonces",
                "dist",
                "node_id"
            ])
        );
        assert_eq!(batch["block_height"], init["block_height"]);
        assert_eq!(batch["public_key"], init["public_key"]);
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

/// Asserts that `nonces`, in any order, are exactly `first, first + step, …`: this node's
/// sequence with no gaps or repeats.
pub fn assert_sequence(mut nonces: Vec<i64>, first: i64, step: i64) {
    nonces.sort();
    let expected: Vec<i64> = (0..nonces.len() as i64).map(|m| first + step * m).collect();
    assert_eq!(
        nonces, expected,
        "not this node's sequence (gaps or repeats)"
    );
}
