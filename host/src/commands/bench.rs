//! `powhost bench`: nonces per second, model build time, peak memory.

use crate::backends::backend_with_cpu_gemm;
use crate::cli::BenchArgs;
use crate::compute_service::{ComputeService, Task};
use crate::model::choose_batch;
use crate::progress::Bars;
use crate::runtime::stop::Stop;
use anyhow::Result;
use powhost_core::ModelParams;
use powhost_core::memory::{gib, peak_resident_bytes};
use serde::Serialize;
use std::time::Instant;

#[derive(Serialize)]
struct BenchReport {
    backend: String,
    device: String,
    preset: String,
    /// Nonces per round.
    nonces: usize,
    batch: usize,
    pool_seconds: f64,
    model_build_seconds: f64,
    rounds: usize,
    /// All rounds together.
    compute_seconds: f64,
    /// The median round's rate (of two middle rounds, their mean); the figures below are
    /// taken from it.
    nonces_per_s: f64,
    /// Each round's rate, in the order they ran.
    round_nonces_per_s: Vec<f64>,
    gflop_per_nonce: f64,
    gflop_per_s: f64,
    peak_memory_bytes: Option<u64>,
    /// The GEMM path that ran, where the backend has a choice (CPU: `f32` or `amx`).
    gemm_path: Option<&'static str>,
    /// The backend's GEMM speed on a feed-forward-shaped product, measured in the same run
    /// (for the CPU's AMX path: the split's ceiling, the tiles' bf16 peak ÷ 4).
    gemm_peak_gflop_per_s: Option<f64>,
    /// The forward pass's GFLOP/s as a fraction of that.
    fraction_of_gemm_peak: Option<f64>,
}

const BENCH_PUBLIC_KEY: &str = "powhost-bench";

pub fn run(args: BenchArgs) -> Result<()> {
    super::model_args::check_seed_text("--block-hash", &args.block_hash)?;
    let backend = backend_with_cpu_gemm(&args.backend.name, args.cpu_gemm.cpu_gemm.as_deref())?;
    let params = ModelParams::preset(&args.preset)?;
    // About 2 s of CPU work by default: one batch at least.
    let nonces = args.nonces.unwrap_or_else(|| {
        let per_nonce = params.forward_flops() as f64;
        ((200e9 * 2.0 / per_nonce) as usize).clamp(1, 4096)
    });
    let batch = choose_batch(args.batch, &*backend, &params, nonces);
    let compute = ComputeService::new(backend, Some(batch)).with_progress(Box::new(Bars));
    let task = Task {
        block_hash: args.block_hash.clone(),
        public_key: BENCH_PUBLIC_KEY.into(),
        params: params.clone(),
        devices: Vec::new(),
    };
    // The GEMM peak first: its operands (0.8 GB on mainnet's feed-forward shape) are freed
    // before the model is built, so the peak memory reported is the computation's.
    let gemm_peak = compute.backend().gemm_peak_gflops(&params)?;
    let build = compute.prepare(&task)?;

    let list: Vec<i64> = (0..nonces as i64).collect();
    let mut round_nonces_per_s = Vec::with_capacity(args.rounds);
    let mut compute_seconds = 0.0;
    for _ in 0..args.rounds {
        let start = Instant::now();
        compute.distances(&task, &list, &Stop::new())?;
        let seconds = start.elapsed().as_secs_f64();
        compute_seconds += seconds;
        round_nonces_per_s.push(nonces as f64 / seconds);
    }
    let backend = compute.backend();

    let gflop_per_nonce = params.forward_flops() as f64 / 1e9;
    let nonces_per_s = median(&round_nonces_per_s);
    let report = BenchReport {
        backend: backend.name().to_string(),
        device: backend.device_description(),
        preset: args.preset.clone(),
        nonces,
        batch,
        pool_seconds: build.pool_seconds,
        model_build_seconds: build.seconds,
        rounds: args.rounds,
        compute_seconds,
        nonces_per_s,
        round_nonces_per_s,
        gflop_per_nonce,
        gflop_per_s: nonces_per_s * gflop_per_nonce,
        peak_memory_bytes: peak_resident_bytes(),
        gemm_path: backend.gemm_path(),
        gemm_peak_gflop_per_s: gemm_peak,
        fraction_of_gemm_peak: gemm_peak.map(|g| nonces_per_s * gflop_per_nonce / g),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("backend        {} ({})", report.backend, report.device);
        println!(
            "preset         {} ({} nonces, batch {})",
            report.preset, report.nonces, report.batch
        );
        println!(
            "model build    {:.2} s (pool {:.2} s)",
            report.model_build_seconds, report.pool_seconds
        );
        println!("compute        {:.2} s", report.compute_seconds);
        if report.rounds > 1 {
            let rates = &report.round_nonces_per_s;
            let (low, high) = rates
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
            println!(
                "nonces/s       {:.2} (median of {} rounds; {low:.2} to {high:.2})",
                report.nonces_per_s, report.rounds
            );
        } else {
            println!("nonces/s       {:.2}", report.nonces_per_s);
        }
        println!(
            "GFLOP/s        {:.1} ({:.3} GFLOP per nonce)",
            report.gflop_per_s, report.gflop_per_nonce
        );
        if let Some(path) = report.gemm_path {
            println!("GEMM path      {path}");
        }
        if let (Some(g), Some(f)) = (report.gemm_peak_gflop_per_s, report.fraction_of_gemm_peak) {
            // On the AMX path the yardstick is the split's ceiling: four tile products per
            // float16 product.
            let what = if report.gemm_path == Some("amx") {
                " (the AMX tiles' bf16 peak ÷ 4)"
            } else {
                ""
            };
            println!(
                "GEMM peak      {g:.1} GFLOP/s{what} measured now: the forward pass runs at {:.0} % of it",
                f * 100.0
            );
        }
        if let Some(peak) = report.peak_memory_bytes {
            println!("peak memory    {:.2} GiB", gib(peak));
        }
    }
    Ok(())
}

/// The median of rates (of the two middle ones, their mean); `rates` is not empty.
fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_median_is_the_middle_rate_or_the_mean_of_the_two() {
        assert_eq!(super::median(&[5.0]), 5.0);
        assert_eq!(super::median(&[9.0, 1.0, 5.0]), 5.0);
        assert_eq!(super::median(&[4.0, 1.0, 9.0, 6.0]), 5.0);
    }
}
