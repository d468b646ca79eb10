//! The backend conformance suite, written once against [`Backend`]: every backend runs the
//! same golden comparisons with the same budget (docs/spec/COMPUTATION.md §9). Tests of each
//! backend call [`check_forward_golden`] with the text of a `forward_<preset>.json` golden
//! file.

use crate::agreement::{AGREEMENT_R_TARGETS, Agreement, BUDGET_MAX, BUDGET_MEDIAN};
use crate::backend::Backend;
use crate::model::ModelWeights;
use crate::params::ModelParams;
use crate::poc::{batch_inputs, compute_distances};
use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::sync::Arc;

/// What a golden forward comparison found.
#[derive(Debug)]
pub struct ForwardReport {
    pub preset: String,
    pub distances: Agreement,
    /// Last-position logits of the golden nonces: how many are bit-identical, of how many,
    /// and the largest |Δ|.
    pub logits_identical: usize,
    pub logits_total: usize,
    pub logits_max_abs_diff: f32,
}

/// Run `backend` on a `forward_*.json` golden and check the budget of docs/spec/COMPUTATION.md §9.
pub fn check_forward_golden(
    backend: &dyn Backend,
    golden_json: &str,
    batch: usize,
) -> Result<ForwardReport> {
    let g: Value = serde_json::from_str(golden_json)?;
    let params = ModelParams::from_json(&g["params"].to_string())?;
    let block_hash = g["block_hash"].as_str().context("block_hash")?;
    let public_key = g["public_key"].as_str().context("public_key")?;
    let weights = Arc::new(ModelWeights::build(&params, block_hash, 0, &|_, _| {})?);
    let forward = backend.load(weights.clone())?;

    let mut logits_identical = 0;
    let mut logits_total = 0;
    let mut logits_max_abs_diff = 0f32;
    for case in g["last_token_logits"]
        .as_array()
        .context("last_token_logits")?
    {
        let nonce = case["nonce"].as_i64().context("nonce")?;
        let inputs = batch_inputs(&weights, public_key, &[nonce]);
        let z = forward.last_position_logits(&inputs, 1)?;
        for (got, want) in z
            .iter()
            .zip(case["logits_f32_bits"].as_array().context("logits")?)
        {
            let want = f32::from_bits(u32::from_str_radix(want.as_str().context("hex")?, 16)?);
            logits_total += 1;
            logits_identical += (got.to_bits() == want.to_bits()) as usize;
            logits_max_abs_diff = logits_max_abs_diff.max((got - want).abs());
        }
    }

    let cases = g["distances"].as_array().context("distances")?;
    let nonces: Vec<i64> = cases.iter().map(|c| c["nonce"].as_i64().unwrap()).collect();
    let want: Vec<f64> = cases
        .iter()
        .map(|c| {
            f64::from_bits(
                u64::from_str_radix(c["distance_f64_bits"].as_str().unwrap(), 16).unwrap(),
            )
        })
        .collect();
    let got = compute_distances(&*forward, &weights, public_key, &nonces, batch, &|_| {})?;
    let distances = Agreement::between(&got, &want, &AGREEMENT_R_TARGETS);
    let report = ForwardReport {
        preset: g["preset"].as_str().unwrap_or("?").to_string(),
        distances,
        logits_identical,
        logits_total,
        logits_max_abs_diff,
    };
    eprintln!(
        "[{} on {}] distances: {}; logits: {}/{} bit-identical, max |Δ| {:.3e}",
        backend.name(),
        report.preset,
        report.distances,
        report.logits_identical,
        report.logits_total,
        report.logits_max_abs_diff
    );
    ensure!(
        report.distances.within(BUDGET_MEDIAN, BUDGET_MAX),
        "{} on {}: outside the agreement budget (median ≤ {BUDGET_MEDIAN:e}, max ≤ {BUDGET_MAX:e}, no verdict flips): {}",
        backend.name(),
        report.preset,
        report.distances
    );
    Ok(report)
}
