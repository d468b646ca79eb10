//! The status object of `/api/v1/pow/status` and the phase endpoints' replies.

use super::super::http::ok_text;
use axum::response::Response;
use serde::Serialize;

/// The reference's status object (keys in its order), with how far generation got and what
/// went wrong, if anything, after them. `status` is `STOPPED` (a value the reference
/// declares) while the phase is GENERATE but generation has ended, failed or out of nonces.
#[derive(Serialize)]
pub(super) struct PowStatus {
    pub(super) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) is_model_initialized: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) computed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) valid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    /// Why generation ended without failing (this node's nonces are all computed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ended: Option<String>,
}

impl PowStatus {
    pub(super) fn not_loaded() -> Self {
        Self {
            status: "NOT_LOADED",
            is_model_initialized: None,
            computed: None,
            valid: None,
            error: None,
            ended: None,
        }
    }
}

/// `{"status": "OK", "pow_status": …}`.
pub(super) fn pow_status_response(pow_status: impl Serialize) -> Response {
    #[derive(Serialize)]
    struct Ps<T> {
        status: &'static str,
        pow_status: T,
    }
    ok_text(
        serde_json::to_string(&Ps {
            status: "OK",
            pow_status,
        })
        .expect("serialises"),
    )
}
