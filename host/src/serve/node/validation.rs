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
/// and validated in the background; the ValidatedBatch goes to `{url}/validated`.
pub async fn validate(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    let batch = read_object(body, app.config.max_body, app.config.idle_timeout).await?;
    let init = app
        .node
        .lock()
        .as_ref()
        .map(|c| c.init.clone())
        .ok_or_else(not_running)?;
    let (request, check) = validation_requests(batch, &init);

    match app.call_unqueued(PluginKind::Validator, check).await {
        Ok(PluginReply::Ok(_)) => {}
        Ok(PluginReply::Error(body)) => return Err(plugin_refusal(&body)),
        Err(failure) => {
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                failure.to_string(),
            ));
        }
    }
    let ticket = app.slots.reserve()?;
    let task_app = app.clone();
    let background = app.background_task();
    tokio::spawn(async move {
        let _background = background;
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

/// A plugin's refusal as a 400 with the plugin's sentence.
fn plugin_refusal(body: &str) -> ApiError {
    let (message, kind) = crate::error_reply::read(body);
    ApiError::bad_request(format!("{kind}: {message}"))
}
