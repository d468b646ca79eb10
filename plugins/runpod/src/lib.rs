//! The serverless handler contract (docs/spec/REQUESTS.md §1) as a powhost plugin: the default
//! plugin.
//!
//! A request lists nonces (one response with the valid ones) or asks for a stream — by
//! `start_nonce` and `batch_size`, or by the seed handler's first streaming form,
//! `"streaming": true` with optional `max_batches` — one result per batch until `max_batches`,
//! the time limit or a cancellation.
//! The response has the reference handler's shape and key order; errors are
//! `{"error": …, "error_type": …}` with Python-style error types, as the reference gives them.

pub mod request;
pub mod response;
mod work;

use powhost_plugin_kit::{
    ComputeErrorKind, Handler, Level, ModelParams, PluginInfo, StopReason, Task, compute,
    compute_failed, log::log, session,
};
use request::{PartialParams, RequestError, Work};

struct Runpod;

impl Handler for Runpod {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "runpod".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "serverless handler contract: {\"input\": {...}} with nonces (valid ones back) or start_nonce + batch_size / \"streaming\": true (+ max_batches) (streamed batches)".into(),
        }
    }

    fn handle(text: &str) -> Result<String, RequestError> {
        handle(text)
    }
}

powhost_plugin_kit::export_handler!(Runpod);

fn handle(text: &str) -> Result<String, RequestError> {
    let req = request::parse(text)?;
    let params = fill_params(&req.params)?;
    compute::check_params(params).map_err(compute_failed)?;
    let task = Task {
        block_hash: req.block_hash.clone(),
        public_key: req.public_key.clone(),
        params,
        devices: req.devices.clone(),
    };
    let header = response::Header {
        public_key: &req.public_key,
        block_hash: &req.block_hash,
        block_height: req.block_height,
    };
    match req.work {
        Work::Nonces(nonces) => {
            let dist = compute::distances(&task, &nonces).map_err(compute_failed)?;
            Ok(response::batch(&header, &nonces, &dist, req.r_target))
        }
        Work::Stream {
            start_nonce,
            batch_size,
            max_batches,
        } => {
            stream(
                &task,
                &header,
                start_nonce,
                batch_size,
                max_batches,
                req.r_target,
            )?;
            Ok(String::new())
        }
    }
}

/// Consecutive batches from `start_nonce`, each emitted as soon as it is computed, until
/// `max_batches` batches or the host says stop; what was computed before the stop has been
/// delivered.
fn stream(
    task: &Task,
    header: &response::Header,
    start_nonce: i64,
    batch_size: u64,
    max_batches: Option<u64>,
    r_target: f64,
) -> Result<(), RequestError> {
    let mut totals = response::StreamTotals::default();
    let mut next = start_nonce;
    loop {
        if max_batches.is_some_and(|max| totals.batches >= max) {
            log(
                Level::Info,
                &format!(
                    "stream done: max_batches reached after {} batches, {} nonces, {} valid; next nonce {next}",
                    totals.batches, totals.computed, totals.valid
                ),
            );
            return Ok(());
        }
        if let Some(reason) = session::stop_requested() {
            let why = match reason {
                StopReason::Cancelled => "cancelled",
                StopReason::Deadline => "time limit reached",
            };
            log(
                Level::Info,
                &format!(
                    "stream stopped ({why}) after {} batches, {} nonces, {} valid; next nonce {next}",
                    totals.batches, totals.computed, totals.valid
                ),
            );
            return Ok(());
        }
        let end = next.checked_add(batch_size as i64).ok_or_else(|| {
            RequestError::new(
                "OverflowError",
                format!("the nonce range passed the largest 64-bit integer at {next}"),
            )
        })?;
        let nonces: Vec<i64> = (next..end).collect();
        let dist = match compute::distances(task, &nonces) {
            Ok(d) => d,
            // A stop that lands during a batch loses only that unfinished batch.
            Err(e) if e.kind == ComputeErrorKind::Stopped => continue,
            Err(e) => return Err(compute_failed(e)),
        };
        next = end;
        session::emit(&response::stream_batch(
            header,
            &nonces,
            &dist,
            r_target,
            &mut totals,
            next,
        ));
    }
}

/// Fill the params the request left out from `reference-default`, as the reference does.
fn fill_params(p: &PartialParams) -> Result<ModelParams, RequestError> {
    let defaults = compute::preset("reference-default").ok_or_else(|| {
        RequestError::new(
            "RuntimeError",
            "the host has no `reference-default` preset to fill params from",
        )
    })?;
    Ok(powhost_plugin_kit::fill_params(p, defaults))
}
