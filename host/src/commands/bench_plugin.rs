//! `powhost bench --plugin NAME`: what the plugin layer adds to a request. The same
//! requests are timed through the plugin (fresh sandbox, JSON parsing and checks, the host
//! calls, the response) and straight to the compute service, with the model built once.

use crate::backends::backend_by_name;
use crate::cli::BenchArgs;
use crate::compute_service::{ComputeService, Task};
use crate::plugin_host::{CallContext, PluginHost, PluginLimits, PluginReply};
use crate::runtime::stop::Stop;
use anyhow::{Result, bail, ensure};
use powhost_core::ModelParams;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

#[derive(Serialize)]
struct OverheadReport {
    plugin: String,
    preset: String,
    backend: String,
    nonces_per_request: usize,
    requests: usize,
    plugin_load_ms: f64,
    direct_median_us: f64,
    plugin_median_us: f64,
    overhead_median_us: f64,
    direct_p90_us: f64,
    plugin_p90_us: f64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    super::model_args::check_seed_text("--block-hash", &args.block_hash)?;
    let plugin_name = args.plugin.clone().unwrap_or_default();
    let nonces = args.nonces.unwrap_or(1);
    let params = ModelParams::preset(&args.preset)?;
    let backend = backend_by_name(&args.backend.name)?;
    let backend_name = backend.name().to_string();
    let compute = Arc::new(ComputeService::new(backend, args.batch));
    let host = PluginHost::new(PluginLimits::default())?;
    let start = Instant::now();
    let plugin = host.load(&plugin_name)?;
    let plugin_load_ms = start.elapsed().as_secs_f64() * 1e3;

    let list: Vec<i64> = (0..nonces as i64).collect();
    let task = Task {
        block_hash: args.block_hash.clone(),
        public_key: "powhost-bench".into(),
        params: params.clone(),
        devices: Vec::new(),
    };
    let request = serde_json::json!({ "input": {
        "block_hash": task.block_hash, "block_height": 1, "public_key": task.public_key,
        "nonces": list, "r_target": 1.4013564660458173, "params": params,
    }})
    .to_string();

    // Build the model once (and check that plugin and direct agree) before timing.
    let direct_dist = compute.distances(&task, &list, &Stop::new())?;
    let call = || CallContext {
        compute: Some(compute.clone()),
        stop: Stop::new(),
        emit: Box::new(|_| {}),
    };
    match host.handle(&plugin, &request, call())? {
        PluginReply::Ok(body) => {
            // Timing a plugin that does not compute would measure nothing.
            let total = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["total_computed"].as_u64());
            ensure!(
                total == Some(nonces as u64),
                "plugin `{}` does not answer the serverless contract (no total_computed of {nonces} in its reply: {body:.200}); bench --plugin times runpod-contract plugins",
                plugin.info.name
            );
        }
        PluginReply::Error(body) => bail!("the plugin refused the benchmark request: {body}"),
    }

    let mut direct = Vec::with_capacity(args.requests);
    let mut via_plugin = Vec::with_capacity(args.requests);
    // Interleaved, so that both see the same machine state.
    for _ in 0..args.requests {
        let t = Instant::now();
        let d = compute.distances(&task, &list, &Stop::new())?;
        direct.push(t.elapsed().as_secs_f64() * 1e6);
        ensure!(
            d == direct_dist,
            "the backend is not deterministic across calls"
        );
        let t = Instant::now();
        host.handle(&plugin, &request, call())?;
        via_plugin.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (direct_median_us, direct_p90_us) = quantiles(&mut direct);
    let (plugin_median_us, plugin_p90_us) = quantiles(&mut via_plugin);
    let report = OverheadReport {
        plugin: plugin.info.name.clone(),
        preset: args.preset.clone(),
        backend: backend_name,
        nonces_per_request: nonces,
        requests: args.requests,
        plugin_load_ms,
        direct_median_us,
        plugin_median_us,
        overhead_median_us: plugin_median_us - direct_median_us,
        direct_p90_us,
        plugin_p90_us,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "plugin `{}` on {} / {}: {} requests of {} nonces",
            report.plugin, report.backend, report.preset, report.requests, nonces
        );
        println!(
            "plugin load      {:.1} ms (compile + check against the world)",
            report.plugin_load_ms
        );
        println!(
            "direct           median {:.1} µs, p90 {:.1} µs",
            direct_median_us, direct_p90_us
        );
        println!(
            "through plugin   median {:.1} µs, p90 {:.1} µs",
            plugin_median_us, plugin_p90_us
        );
        println!(
            "overhead         {:.1} µs per request (median)",
            report.overhead_median_us
        );
    }
    Ok(())
}

fn quantiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}
