//! The backend conformance suite, written once against [`Backend`]: every backend runs the
//! same golden comparisons with the same budget (docs/spec/COMPUTATION.md §9). Behind the
//! `conformance` feature, which only the backends' `[dev-dependencies]` enable: it is for their
//! tests, not part of the library. Each backend instantiates it in one line of a test file:
//!
//! ```ignore
//! powhost_core::conformance::suite!("wgpu", powhost_wgpu::WgpuBackend::new());
//! ```
//!
//! The expression gives an `anyhow::Result<impl Backend>` and is evaluated in each test; an
//! error (no Vulkan driver, no CUDA device) makes the test print `SKIPPED: <the error>` and pass
//! without running (`scripts/gpu-check.sh` reports such a step as skipped), unless
//! `POWHOST_REQUIRE_BACKENDS` names the backend: then the test fails, saying why the backend did
//! not open ([`skip_or_fail`], which every backend test that can skip goes through).
//!
//! The budget is `BUDGET_MEDIAN`, `BUDGET_MAX` and `AGREEMENT_R_TARGETS` of
//! [`crate::agreement`] (median |Δd| ≤ 5e-7, max ≤ 5e-6, no verdict flips at r_target 2.0 and
//! 1.4013564660458173), the same constants `powhost compare` and `powhost selftest` apply. What
//! the backends achieve against it is printed (`--nocapture`); measured on a 2-vCPU AMD EPYC
//! machine:
//!
//! | preset | CPU backend | wgpu on lavapipe (f16 activations) |
//! |---|---|---|
//! | `tiny` | median 0, max 8.8e-8 | median 0, max 8.8e-8 |
//! | `small` | median 3.3e-8, max 2.9e-7 | median 3.4e-8, max 8.1e-7 |
//! | `devtest` | median 3.4e-7, max 2.7e-6 | median 3.9e-7, max 3.5e-6 |
//!
//! CUDA has not run on a GPU yet (docs/CUDA.md).

use crate::agreement::{AGREEMENT_R_TARGETS, Agreement, BUDGET_MAX, BUDGET_MEDIAN};
use crate::backend::Backend;
use crate::model::ModelWeights;
use crate::params::ModelParams;
use crate::poc::{batch_inputs, compute_distances};
use anyhow::{Context, Result, ensure};
use serde_json::Value;
use std::sync::Arc;

mod required_backends;
pub use required_backends::{BACKEND_NAMES, REQUIRE_BACKENDS, skip_or_fail};

/// The suite's `#[test]` functions, one per golden, for the backend named `$name` (as in
/// `POWHOST_REQUIRE_BACKENDS`) that `$backend` (an `anyhow::Result<impl Backend>`, evaluated
/// in each test) opens.
pub use crate::__conformance_suite as suite;

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_suite {
    (@cases $name:literal, $backend:expr; $($test:ident: $preset:literal at batch $batch:literal,)*) => {
        $(
            #[test]
            fn $test() {
                $crate::conformance::run_golden($name, $preset, $batch, $backend);
            }
        )*
    };
    ($name:literal, $backend:expr $(,)?) => {
        // Every golden holds the reference's distances of 64 nonces (and the logits of two).
        // Batch sizes: tiny and small run in four forward passes of 16, so the suite crosses
        // batch boundaries (where a GPU backend draws the next batch's inputs during the
        // current one); devtest runs its 64 in one forward pass (256 rows: its largest
        // buffers, the FFN's and the logits, hold at most 2 MiB, far under an adapter's binding
        // limit, 128 MiB on lavapipe). The CPU backend's suite chose these sizes (f68f35a), CUDA
        // copied them (795a94a). wgpu ran devtest at 32 from its first commit (0336114), with
        // no reason in its code, its message or the history since. On lavapipe 32 and 64 give
        // the same distances (median |Δd| 3.906e-7, max 3.478e-6 against the golden), the same
        // time (21.7 and 20.9 s) and the same memory (peak RSS 206 and 192 MB, the whole
        // process): `powhost compare --backends cpu,wgpu --golden
        // tests/golden/forward_devtest.json --batch 32` (and `--batch 64`). So every backend
        // runs devtest at 64.
        $crate::__conformance_suite!(@cases $name, $backend;
            tiny_agrees_with_reference: "tiny" at batch 16,
            small_agrees_with_reference: "small" at batch 16,
            devtest_agrees_with_reference: "devtest" at batch 64,
        );
    };
}

/// One case of [`suite!`](suite): `backend` (named `name`) on
/// `tests/golden/forward_<preset>.json`, `batch` nonces per forward pass; when the backend did
/// not open, skipped with a message or failed ([`skip_or_fail`]).
#[track_caller]
pub fn run_golden<B: Backend>(name: &str, preset: &str, batch: usize, backend: Result<B>) {
    let backend = match backend {
        Ok(b) => b,
        Err(e) => return skip_or_fail(name, e),
    };
    // The name is what POWHOST_REQUIRE_BACKENDS is matched against: it must be this backend's.
    assert_eq!(
        backend.name(),
        name,
        "suite! names the backend {name}, but it opened {}",
        backend.name()
    );
    let golden = golden(&format!("forward_{preset}.json"));
    if let Err(e) = check_forward_golden(&backend, &golden, batch) {
        panic!("{e:#}");
    }
}

/// The text of a golden file, from this checkout, or from `tests/golden/` under the current
/// directory when the test executable was carried to another machine (docs/CUDA.md).
pub fn golden(name: &str) -> String {
    let built_here = format!("{}/../../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&built_here)
        .or_else(|_| std::fs::read_to_string(format!("tests/golden/{name}")))
        .unwrap_or_else(|e| panic!("golden {name} not found here or under ./tests/golden: {e}"))
}

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
