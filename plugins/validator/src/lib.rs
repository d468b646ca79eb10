//! Validation as a powhost plugin (docs/spec/REQUESTS.md §2): a ProofBatch in
//! (docs/spec/PROTOCOLS.md §A3), every nonce's distance recomputed, and a ValidatedBatch out
//! with the network's fraud test (docs/spec/COMPUTATION.md §7): `n_invalid`,
//! `probability_honest` (the binomial upper tail, as scipy's `binomtest`) and `fraud_detected`.
//! Optionally a seeded random sample of the nonces is checked instead, for cheap spot checks;
//! the reply then says which.
//!
//! Request: the ProofBatch fields (`public_key`, `block_hash`, `block_height`, `nonces`,
//! `dist`, optional `node_id`) plus optional `r_target` (default 1.4013564660458173),
//! `fraud_threshold` (1e-7), `params` (missing fields from `mainnet`), `devices`,
//! `sample: {"k", "seed"}`, `expected_block_hash` (refuse other blocks) and `dry_run`
//! (check the request only). Errors are `{"error", "error_type"}` as in the runpod plugin.

pub mod binomial;
pub mod request;
pub mod verdict;

use powhost_plugin_kit::{
    Handler, Level, ModelParams, PluginInfo, RequestError, Task, compute, compute_failed, log::log,
};
use request::Request;
use serde::Serialize;

struct Validator;

impl Handler for Validator {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "validator".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "validate a ProofBatch: recompute its distances and answer a ValidatedBatch with the binomial fraud test (optionally on a seeded sample)".into(),
        }
    }

    fn handle(text: &str) -> Result<String, RequestError> {
        handle(text)
    }
}

powhost_plugin_kit::export_handler!(Validator);

/// The ValidatedBatch, with the reference's keys in its order, and the sample when one was
/// drawn.
#[derive(Serialize)]
struct ValidatedBatch<'a> {
    public_key: &'a str,
    block_hash: &'a str,
    block_height: i64,
    nonces: Vec<i64>,
    dist: Vec<f64>,
    node_id: i64,
    received_dist: Vec<f64>,
    r_target: f64,
    fraud_threshold: f64,
    n_invalid: usize,
    probability_honest: f64,
    fraud_detected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<SampleReport>,
}

/// Which nonces a spot check recomputed: `k` of `of`, drawn with `seed`; `nonces` holds them.
#[derive(Serialize)]
struct SampleReport {
    seed: u64,
    k: usize,
    of: usize,
}

fn handle(text: &str) -> Result<String, RequestError> {
    let req = request::parse(text)?;
    let params = fill_params(&req)?;
    compute::check_params(params).map_err(compute_failed)?;
    let chosen = req
        .sample
        .map(|s| verdict::sample_indices(req.nonces.len(), s.k, s.seed));
    let nonces = pick(&req.nonces, chosen.as_deref());
    let received = pick(&req.received_dist, chosen.as_deref());
    if req.dry_run {
        return Ok(serde_json::json!({"ok": true, "nonces": nonces.len()}).to_string());
    }
    let dist = if nonces.is_empty() {
        Vec::new()
    } else {
        let task = Task {
            block_hash: req.block_hash.clone(),
            public_key: req.public_key.clone(),
            params,
            devices: req.devices.clone(),
        };
        compute::distances(&task, &nonces).map_err(compute_failed)?
    };
    let v = verdict::score(&received, &dist, req.r_target, req.fraud_threshold);
    log(
        Level::Info,
        &format!(
            "validated {} nonces of {} for block {}: {} invalid, p(honest) = {:e}{}",
            nonces.len(),
            req.public_key,
            req.block_hash,
            v.n_invalid,
            v.probability_honest,
            if v.fraud_detected { ", FRAUD" } else { "" }
        ),
    );
    let report = ValidatedBatch {
        public_key: &req.public_key,
        block_hash: &req.block_hash,
        block_height: req.block_height,
        nonces,
        dist,
        node_id: req.node_id,
        received_dist: received,
        r_target: req.r_target,
        fraud_threshold: req.fraud_threshold,
        n_invalid: v.n_invalid,
        probability_honest: v.probability_honest,
        fraud_detected: v.fraud_detected,
        sample: req.sample.map(|s| SampleReport {
            seed: s.seed,
            k: chosen.as_ref().map_or(0, Vec::len),
            of: req.nonces.len(),
        }),
    };
    serde_json::to_string(&report)
        .map_err(|e| RequestError::new("RuntimeError", format!("writing the reply: {e}")))
}

/// The sampled entries of `all`, or all of them.
fn pick<T: Copy>(all: &[T], chosen: Option<&[usize]>) -> Vec<T> {
    match chosen {
        Some(indices) => indices.iter().map(|&i| all[i]).collect(),
        None => all.to_vec(),
    }
}

/// The network validates with `mainnet`; a request may name other params, or some of them.
fn fill_params(req: &Request) -> Result<ModelParams, RequestError> {
    let defaults = compute::preset("mainnet").ok_or_else(|| {
        RequestError::new(
            "RuntimeError",
            "the host has no `mainnet` preset to fill params from",
        )
    })?;
    Ok(powhost_plugin_kit::fill_params(&req.params, defaults))
}
