//! The init request (`/api/v1/pow/init*`), checked: 422 for a body of the wrong shape, 400 for
//! values that cannot work. Unknown keys inside `params` are ignored, as by the reference
//! (a newer node software may send a field this version does not know).

use super::super::http::ApiError;
use crate::compute_service::ComputeService;
use powhost_core::ModelParams;
use powhost_core::params::PartialParams;
use powhost_plugin_kit::PARAMS_FIELDS;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// The init request (`PowInitRequestUrl`), checked. Two inits are the same when every
/// field is, `url` included (the reference's restart rule).
#[derive(Clone, Debug, PartialEq)]
pub struct InitRequest {
    pub node_id: i64,
    pub node_count: i64,
    pub block_hash: String,
    pub block_height: i64,
    pub public_key: String,
    /// Accepted and ignored, as by the reference: the batch size is the backend's.
    pub batch_size: i64,
    pub r_target: f64,
    pub fraud_threshold: f64,
    pub params: ModelParams,
    pub url: String,
}

#[derive(Deserialize)]
struct InitBody {
    #[serde(default = "unset")]
    node_id: i64,
    #[serde(default = "unset")]
    node_count: i64,
    block_hash: String,
    block_height: i64,
    public_key: String,
    batch_size: i64,
    r_target: f64,
    fraud_threshold: f64,
    /// Missing fields take the reference's Python defaults (`reference-default`).
    #[serde(default)]
    params: Option<PartialParams>,
    url: String,
}

fn unset() -> i64 {
    -1
}

impl InitRequest {
    /// 422 for a body of the wrong shape (as FastAPI answers), 400 for values that cannot work.
    pub fn parse(
        mut body: serde_json::Map<String, Value>,
        compute: &ComputeService,
    ) -> Result<Self, ApiError> {
        if let Some(Value::Object(params)) = body.get_mut("params") {
            params.retain(|key, _| known_param(key));
        }
        let b: InitBody = serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::unprocessable(format!("the init request is malformed: {e}")))?;
        let params = ModelParams::from_partial(&b.params.unwrap_or_default());
        compute.check_params(&params).map_err(|e| {
            ApiError::bad_request(format!("the init request's params cannot be used: {e}"))
        })?;
        let bad = |m: String| Err(ApiError::bad_request(m));
        if b.block_hash.is_empty() || b.public_key.is_empty() {
            return bad("`block_hash` and `public_key` must not be empty".into());
        }
        // The validator plugin's own checks and words (validation.rs then asks the plugin
        // itself about everything it will be given).
        for (field, x) in [
            ("r_target", b.r_target),
            ("fraud_threshold", b.fraud_threshold),
        ] {
            if !(x.is_finite() && x > 0.0) {
                return bad(format!(
                    "`{field}` must be a positive finite number, got {x}"
                ));
            }
        }
        if b.fraud_threshold > 1.0 {
            return bad(format!(
                "`fraud_threshold` is a probability and must be at most 1, got {}",
                b.fraud_threshold
            ));
        }
        if let Err(why) = crate::delivery::check_url(&b.url) {
            return bad(format!("`url` {why}"));
        }
        Ok(Self {
            node_id: b.node_id,
            node_count: b.node_count,
            block_hash: b.block_hash,
            block_height: b.block_height,
            public_key: b.public_key,
            batch_size: b.batch_size,
            r_target: b.r_target,
            fraud_threshold: b.fraud_threshold,
            params,
            url: b.url,
        })
    }

    /// Generation needs this node's place among the nodes.
    pub(super) fn check_assignment(&self) -> Result<(), ApiError> {
        if self.node_id == -1 || self.node_count == -1 {
            return Err(ApiError::bad_request("Node ID and node count must be set"));
        }
        if self.node_id < 0 || self.node_count < 1 {
            return Err(ApiError::bad_request(format!(
                "`node_id` must be 0 or more and `node_count` at least 1, got {} and {}",
                self.node_id, self.node_count
            )));
        }
        if self.node_id >= self.node_count {
            // Not refused: the node software sends its 1-based registration number as
            // `node_id` and counts only the nodes dispatched to as `node_count`, so this is
            // how the network runs (docs/spec/PROTOCOLS.md §A3, §A5).
            log::warn!(
                "node_id {} is not below node_count {}: this node computes nonces {} + m·{}, which node {} of {} computes too",
                self.node_id,
                self.node_count,
                self.node_id,
                self.node_count,
                self.node_id % self.node_count,
                self.node_count
            );
        }
        Ok(())
    }
}

/// Keys of `params` this version knows; an unknown one is ignored, as the reference's pydantic
/// model ignores it, and logged at warn once per process.
fn known_param(key: &str) -> bool {
    if PARAMS_FIELDS.contains(&key) {
        return true;
    }
    // Bounded, so that a client sending ever new keys cannot grow it.
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.len() < 64 && warned.insert(key.to_string()) {
        log::warn!(
            "ignoring the unknown field `{key}` in the init request's params (the fields this powhost knows: {}); a newer node software may send fields this version does not use",
            PARAMS_FIELDS.join(", ")
        );
    }
    false
}
