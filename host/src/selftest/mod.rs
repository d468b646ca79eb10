//! The device self-test: before a worker takes jobs (and when `serve` starts), the backend
//! computes a few nonces whose distances the network's reference computed, and a device that
//! disagrees beyond the agreement budget is refused. A silently faulty GPU (bad memory, a
//! broken driver, a miscompiled kernel) would otherwise submit nonces that validators flag as
//! fraud; a crash is easy to notice, a wrong answer is not.

use crate::compute_service::{ComputeService, Task};
use crate::model::{LoadedModel, choose_batch};
use crate::progress::Silent;
use anyhow::{Context, Result};
use powhost_core::params::{ModelParams, PartialParams};
use powhost_core::poc::compute_distances_until;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The agreement budget for one distance (docs/spec/COMPUTATION.md §9: the largest |Δd| a
/// backend may show against the reference; the CPU backend measures 2.9e-7 on `small`, wgpu on
/// lavapipe 8.1e-7).
pub const MAX_DIST_DIFF: f64 = 5e-6;

/// 8 nonces of `tests/golden/forward_small.json`, kept in the binary.
const REFERENCE: &str = include_str!("reference.json");

#[derive(Deserialize)]
struct Reference {
    preset: String,
    params: PartialParams,
    block_hash: String,
    public_key: String,
    nonces: Vec<i64>,
    distances: Vec<f64>,
}

/// What the self-test compared, for `powhost selftest` and the logs.
#[derive(Serialize, Debug, Clone)]
pub struct Report {
    pub backend: String,
    pub device: String,
    pub preset: String,
    pub nonces: Vec<i64>,
    pub reference: Vec<f64>,
    pub computed: Vec<f64>,
    pub max_abs_diff: f64,
    pub budget: f64,
    pub passed: bool,
    pub seconds: f64,
}

impl Report {
    /// One sentence: what was compared and the verdict.
    pub fn summary(&self) -> String {
        format!(
            "self-test on {} ({}): {} nonces of the `{}` reference, max |Δd| {:.2e} (budget {:.0e}), {} in {:.0} ms",
            self.backend,
            self.device,
            self.nonces.len(),
            self.preset,
            self.max_abs_diff,
            self.budget,
            if self.passed { "passed" } else { "FAILED" },
            self.seconds * 1e3
        )
    }
}

/// Compute the reference nonces on `compute`'s backend and compare. An error means the
/// backend could not compute at all; a disagreement is a report with `passed: false`.
pub fn run(compute: &ComputeService) -> Result<Report> {
    let reference: Reference =
        serde_json::from_str(REFERENCE).context("the embedded self-test reference")?;
    let start = Instant::now();
    let task = Task {
        block_hash: reference.block_hash.clone(),
        public_key: reference.public_key.clone(),
        params: ModelParams::from_partial(&reference.params),
        devices: Vec::new(),
    };
    // A model of its own, not the service's cached one: a health check run while serving
    // must not evict the model the work is using.
    let backend = compute.backend();
    let batch = choose_batch(None, backend, &task.params, reference.nonces.len());
    let computed = LoadedModel::new(backend, &task.params, &task.block_hash, batch, &Silent)
        .and_then(|model| {
            compute_distances_until(
                &*model.forward,
                &model.weights,
                &task.public_key,
                &reference.nonces,
                batch,
                &|_| {},
                &|| false,
            )
        })
        .context("the self-test could not compute its nonces")?;
    // A NaN compares as a failure (f64::max would skip it).
    let max_abs_diff = computed
        .iter()
        .zip(&reference.distances)
        .map(|(a, b)| (a - b).abs())
        .fold(
            0.0,
            |m: f64, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    let complete = computed.len() == reference.nonces.len();
    Ok(Report {
        backend: backend.name().to_string(),
        device: backend.device_description(),
        preset: reference.preset,
        nonces: reference.nonces,
        reference: reference.distances,
        passed: complete && max_abs_diff <= MAX_DIST_DIFF,
        computed,
        max_abs_diff,
        budget: MAX_DIST_DIFF,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A device that computes, but not what validators accept: the one sentence saying so.
#[derive(Debug)]
pub struct SelfTestFailed(pub String);

impl std::fmt::Display for SelfTestFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SelfTestFailed {}

/// Run the self-test and refuse a backend that fails it, in one sentence.
pub fn require(compute: &ComputeService) -> Result<Report> {
    hold_if_asked();
    let report = run(compute)?;
    if !report.passed {
        return Err(SelfTestFailed(format!(
            "the {} backend ({}) failed the self-test: its distances for the reference's nonces differ by up to {:.2e}, over the {:.0e} a validator accepts, so its proofs would be flagged as fraud; check the device (or run `powhost selftest --backend cpu` to compare)",
            report.backend,
            report.device,
            report.max_abs_diff,
            report.budget
        ))
        .into());
    }
    Ok(report)
}

/// Test hook (`POWHOST_TEST_HOLD_SELFTEST=1`, beside `POWHOST_INJECT_FAULT` in backends.rs):
/// the start's self-test first waits for a line (or the end) on stdin, so that a test sees a
/// server that is still starting for as long as it needs, and releases it when it chooses
/// (the wait of a large model or a slow device, made deterministic). Nothing else sets it.
fn hold_if_asked() {
    if std::env::var_os("POWHOST_TEST_HOLD_SELFTEST").is_some_and(|v| v == "1") {
        log::warn!(
            "POWHOST_TEST_HOLD_SELFTEST=1: the self-test waits for a line on stdin (a test hook)"
        );
        let _ = std::io::stdin().read_line(&mut String::new());
    }
}
