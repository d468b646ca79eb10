//! The node software's requests, shared by the node API's tests.

use super::*;

/// The init request the node software sends, for the tiny model.
pub(super) fn init_request(url: &str, node_id: i64, node_count: i64, r_target: f64) -> Value {
    json!({
        "node_id": node_id,
        "node_count": node_count,
        "block_hash": HASH,
        "block_height": 7,
        "public_key": KEY,
        "batch_size": 100,
        "r_target": r_target,
        "fraud_threshold": 1e-7,
        "params": tiny_input()["params"],
        "url": url,
    })
}
