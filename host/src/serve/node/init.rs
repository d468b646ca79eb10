//! The init request (`/api/v1/pow/init*`), checked: 422 for a body of the wrong shape, 400 for
//! values that cannot work.

use super::super::http::ApiError;
use crate::compute_service::ComputeService;
use powhost_core::ModelParams;
use powhost_core::params::PartialParams;
use serde::Deserialize;
use serde_json::Value;

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
        body: serde_json::Map<String, Value>,
        compute: &ComputeService,
    ) -> Result<Self, ApiError> {
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
        if !(b.r_target.is_finite() && b.r_target > 0.0) {
            return bad(format!(
                "`r_target` must be a positive number, got {}",
                b.r_target
            ));
        }
        if !(b.fraud_threshold.is_finite() && (0.0..=1.0).contains(&b.fraud_threshold)) {
            return bad(format!(
                "`fraud_threshold` must be a probability between 0 and 1, got {}",
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
        Ok(())
    }
}
