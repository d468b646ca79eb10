//! `POST /api/v1/pow/validate`: a ProofBatch checked at once and validated in the background
//! by the validator plugin.

use super::super::http::{ApiError, ok, read_object};
use super::super::{App, PluginKind};
use super::init::InitRequest;
use super::not_running;
use crate::delivery::join;
use crate::plugin_host::PluginReply;
use crate::runtime::stop::Stop;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use powhost_plugin_kit::PROOF_BATCH_FIELDS;
use serde_json::{Value, json};
use std::sync::Arc;

/// `POST /api/v1/pow/validate`: the batch is checked now (a malformed batch or one for
/// another block hash is refused with the reason), answered `null` as by the reference,
/// and validated in the background; the ValidatedBatch goes to `{url}/validated`. A busy
/// server (no place in the queue, or no room in the memory budget) refuses it before
/// reading it.
pub async fn validate(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    let ticket = app.slots.reserve()?;
    let (batch, memory) = read_object(body, app.body_limits()).await?;
    require_proof_batch_fields(&batch)?;
    let init = app
        .node
        .lock()
        .as_ref()
        .map(|c| c.init.clone())
        .ok_or_else(not_running)?;
    let (request, check) = validation_requests(batch, &init);
    dry_run(&app, check).await?;
    let task_app = app.clone();
    let background = app.background_task();
    tokio::spawn(async move {
        let _background = background;
        // Held until the validation ends: the request is in memory until then.
        let _memory = memory;
        let slot = ticket.acquire().await;
        let reply = task_app
            .call(
                PluginKind::Validator,
                request,
                slot,
                // Detached from the server's stop: a validation accepted runs to its end
                // (shutdown waits for it within the flush timeout), as it always has.
                Stop::new(),
                Box::new(|_| {}),
            )
            .await;
        match reply {
            Ok(PluginReply::Ok(body)) => {
                task_app.host.outbox.add(
                    join(&init.url, "validated"),
                    body,
                    "ValidatedBatch".into(),
                );
            }
            Ok(PluginReply::Error(body)) => log::error!("validation failed: {body}"),
            Err(failure) => log::error!("validation failed: {failure}"),
        }
    });
    Ok(ok(Value::Null))
}

/// The validator's request for a ProofBatch body under this init, and the same as a dry run
/// (the check made before answering).
pub fn validation_requests(
    mut batch: serde_json::Map<String, Value>,
    init: &InitRequest,
) -> (String, String) {
    // A ProofBatch; other keys are ignored, as the reference's pydantic model ignores them
    // (the settings below come from the init, never from the batch).
    batch.retain(|key, _| PROOF_BATCH_FIELDS.contains(&key.as_str()));
    // The node's settings; the plugin refuses a batch for another block hash.
    batch.insert("r_target".into(), json!(init.r_target));
    batch.insert("fraud_threshold".into(), json!(init.fraud_threshold));
    batch.insert("params".into(), json!(init.params));
    batch.insert("expected_block_hash".into(), json!(init.block_hash));
    let request = Value::Object(batch.clone()).to_string();
    batch.insert("dry_run".into(), json!(true));
    (request, Value::Object(batch).to_string())
}

/// Refuse (400, in the validator's words) an init whose values the validator plugin would
/// refuse later, at every `/pow/validate` or in the ProofBatches this node sends: a dry run
/// of the ProofBatch generation would send, under the init's settings.
pub(super) async fn check_init(app: &Arc<App>, init: &InitRequest) -> Result<(), ApiError> {
    let generated = json!({
        "public_key": init.public_key,
        "block_hash": init.block_hash,
        "block_height": init.block_height,
        "nonces": [init.node_id.max(0)],
        "dist": [0.0],
        "node_id": init.node_id,
    });
    let Value::Object(batch) = generated else {
        unreachable!("an object")
    };
    let (_, check) = validation_requests(batch, init);
    dry_run(app, check).await.map_err(|refusal| {
        ApiError::bad_request(format!(
            "the init request cannot be used: the validator refuses it: {}",
            refusal.detail
        ))
    })
}

/// The validator's answer to a dry run: nothing, or its refusal as a 400.
pub(super) async fn dry_run(app: &Arc<App>, check: String) -> Result<(), ApiError> {
    match app.call_unqueued(PluginKind::Validator, check).await {
        Ok(PluginReply::Ok(_)) => Ok(()),
        Ok(PluginReply::Error(body)) => Err(plugin_refusal(&body)),
        Err(failure) => Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            failure.to_string(),
        )),
    }
}

/// Every ProofBatch field is required, as in the reference's pydantic model, which answers
/// 422 without one (a batch without `node_id` is not node 0's).
fn require_proof_batch_fields(batch: &serde_json::Map<String, Value>) -> Result<(), ApiError> {
    match PROOF_BATCH_FIELDS.iter().find(|f| !batch.contains_key(**f)) {
        None => Ok(()),
        Some(missing) => Err(ApiError::unprocessable(format!(
            "missing field `{missing}`: a ProofBatch has every one of {}",
            PROOF_BATCH_FIELDS.join(", ")
        ))),
    }
}

/// A plugin's refusal as a 400 with the plugin's sentence.
fn plugin_refusal(body: &str) -> ApiError {
    let (message, kind) = crate::error_reply::read(body);
    ApiError::bad_request(format!("{kind}: {message}"))
}
