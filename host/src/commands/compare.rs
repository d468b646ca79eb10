//! `powhost compare`: the same nonces on several backends (and a golden file), and how
//! closely every pair agrees against the budget of docs/spec/COMPUTATION.md §9.

use super::model_args::{check_seed_text, params_from};
use crate::backends::backend_with_cpu_gemm;
use crate::cli::CompareArgs;
use crate::compute_service::{ComputeService, Task};
use crate::model::{build_weights, choose_batch};
use crate::nonce_list::parse_nonce_list;
use crate::progress::Bars;
use crate::runtime::stop::Stop;
use crate::usage::{usage, usage_error};
use anyhow::{Context, Result};
use powhost_core::ModelParams;
use powhost_core::agreement::Agreement;
use serde::Serialize;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Instant;

const DEFAULT_BLOCK_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const DEFAULT_PUBLIC_KEY: &str = "test_public_key_12345678901234567890";

#[derive(Serialize)]
struct Report {
    params: ModelParams,
    block_hash: String,
    public_key: String,
    nonces: usize,
    r_target: f64,
    budget_median: f64,
    budget_max: f64,
    backends: Vec<BackendRun>,
    pairs: Vec<Pair>,
    within_budget: bool,
}

#[derive(Serialize)]
struct BackendRun {
    name: String,
    device: String,
    seconds: f64,
    nonces_per_s: f64,
}

#[derive(Serialize)]
struct Pair {
    a: String,
    b: String,
    median_abs_diff: f64,
    max_abs_diff: f64,
    bit_identical: usize,
    verdict_flips: usize,
    within_budget: bool,
}

/// What a golden file fixes: model, seeds, nonces and the reference's distances.
struct Golden {
    path: String,
    params: Value,
    block_hash: String,
    public_key: String,
    nonces: Vec<i64>,
    dist: Vec<f64>,
}

pub fn run(args: CompareArgs) -> Result<ExitCode> {
    // The command line first (usage errors, exit 2), then the devices.
    if args.backends.is_empty() {
        usage_error!("--backends names no backend");
    }
    if !(args.r_target.is_finite() && args.r_target > 0.0) {
        usage_error!("--r-target must be a positive number");
    }
    if !(args.budget_max >= 0.0 && args.budget_median >= 0.0) {
        usage_error!("--budget-max and --budget-median must be 0 or more");
    }
    for (i, name) in args.backends.iter().enumerate() {
        if args.backends[..i].contains(name) {
            usage_error!(
                "--backends lists `{name}` twice: a backend agrees with itself; name two different ones (e.g. cpu,wgpu)"
            );
        }
    }
    let golden = args.golden.as_deref().map(read_golden).transpose()?;

    let params = match (&args.preset, &args.params, &golden) {
        (None, None, Some(g)) => ModelParams::from_json(&g.params.to_string())
            .with_context(|| format!("the params of --golden {}", g.path))?,
        (None, None, None) => usage_error!("give --preset NAME, --params JSON or --golden FILE"),
        _ => params_from(args.preset.as_deref(), args.params.as_deref())?,
    };
    if args.backends.len() < 2 && args.golden.is_none() {
        usage_error!(
            "--backends names one backend and there is no --golden file: that compares nothing; name two backends (e.g. cpu,wgpu) or give --golden tests/golden/forward_<preset>.json"
        );
    }
    let block_hash = args
        .block_hash
        .clone()
        .or_else(|| golden.as_ref().map(|g| g.block_hash.clone()))
        .unwrap_or_else(|| DEFAULT_BLOCK_HASH.into());
    let public_key = args
        .public_key
        .clone()
        .or_else(|| golden.as_ref().map(|g| g.public_key.clone()))
        .unwrap_or_else(|| DEFAULT_PUBLIC_KEY.into());
    check_seed_text("--block-hash", &block_hash)?;
    check_seed_text("--public-key", &public_key)?;
    let nonces = match (&args.nonces, &golden) {
        (Some(list), _) => parse_nonce_list(list).context("--nonces").map_err(usage)?,
        (None, Some(g)) => g.nonces.clone(),
        (None, None) => (0..64).collect(),
    };
    if let Some(g) = &golden {
        check_matches_golden(g, &args, &params, &block_hash, &public_key, &nonces)?;
    }

    let mut backends = Vec::new();
    for name in &args.backends {
        let backend = backend_with_cpu_gemm(name, args.cpu_gemm.cpu_gemm.as_deref())?;
        backends.push((name.clone(), backend));
    }
    // One batch size for all, so that every backend sees the same groups of nonces.
    let mut batch = nonces.len().max(1);
    for (_, backend) in &backends {
        batch = batch.min(choose_batch(args.batch, &**backend, &params, nonces.len()));
    }
    let extra = backends
        .iter()
        .map(|(_, b)| b.working_memory_bytes(&params, batch))
        .max()
        .unwrap_or(0);
    // One build of the weights, shared by every backend.
    let weights = build_weights(&params, &block_hash, extra, &Bars)?;
    let task = Task {
        block_hash: block_hash.clone(),
        public_key: public_key.clone(),
        params: params.clone(),
        devices: Vec::new(),
    };

    let mut runs = Vec::new();
    let mut results: Vec<(String, Vec<f64>)> = Vec::new();
    for (name, backend) in backends {
        let start = Instant::now();
        let device = backend.device_description();
        let compute = ComputeService::new(backend, Some(batch));
        compute
            .adopt(&task, weights.clone())
            .with_context(|| format!("loading the model on {name}"))?;
        let dist = compute
            .distances(&task, &nonces, &Stop::new())
            .with_context(|| format!("computing on {name}"))?;
        let seconds = start.elapsed().as_secs_f64();
        runs.push(BackendRun {
            name: name.clone(),
            device,
            seconds,
            nonces_per_s: nonces.len() as f64 / seconds,
        });
        results.push((name.clone(), dist));
    }
    if let Some(g) = &golden {
        results.push(("golden".into(), g.dist.clone()));
    }

    let mut pairs = Vec::new();
    for i in 0..results.len() {
        for j in i + 1..results.len() {
            let agreement = Agreement::between(&results[i].1, &results[j].1, &[args.r_target]);
            pairs.push(Pair {
                a: results[i].0.clone(),
                b: results[j].0.clone(),
                median_abs_diff: agreement.median_abs_diff,
                max_abs_diff: agreement.max_abs_diff,
                bit_identical: agreement.bit_identical,
                verdict_flips: agreement.verdict_flips[0].1,
                within_budget: agreement.within(args.budget_median, args.budget_max),
            });
        }
    }
    let report = Report {
        within_budget: pairs.iter().all(|p| p.within_budget),
        params,
        block_hash,
        public_key,
        nonces: nonces.len(),
        r_target: args.r_target,
        budget_median: args.budget_median,
        budget_max: args.budget_max,
        backends: runs,
        pairs,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(if report.within_budget {
        ExitCode::SUCCESS
    } else {
        if !args.json {
            eprintln!("error: a pair breaks the agreement budget");
        }
        ExitCode::FAILURE
    })
}

fn print_table(r: &Report) {
    println!(
        "{} nonces, block hash {}, verdicts at r_target {}",
        r.nonces, r.block_hash, r.r_target
    );
    println!();
    println!(
        "{:<8} {:>10} {:>12}  device",
        "backend", "seconds", "nonces/s"
    );
    for b in &r.backends {
        println!(
            "{:<8} {:>10.3} {:>12.1}  {}",
            b.name, b.seconds, b.nonces_per_s, b.device
        );
    }
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>14} {:>13}  budget (median ≤ {:e}, max ≤ {:e})",
        "pair",
        "median |Δd|",
        "max |Δd|",
        "bit-identical",
        "verdict flips",
        r.budget_median,
        r.budget_max
    );
    for p in &r.pairs {
        println!(
            "{:<16} {:>12.3e} {:>12.3e} {:>8}/{:<5} {:>13}  {}",
            format!("{} / {}", p.a, p.b),
            p.median_abs_diff,
            p.max_abs_diff,
            p.bit_identical,
            r.nonces,
            p.verdict_flips,
            if p.within_budget { "ok" } else { "BROKEN" }
        );
    }
}

/// A golden file's distances are one model's, for one block hash, key and nonce list:
/// compared with anything else they would call a healthy device broken. Which flag differs,
/// and how to fix it, is a usage error.
fn check_matches_golden(
    g: &Golden,
    args: &CompareArgs,
    params: &ModelParams,
    block_hash: &str,
    public_key: &str,
    nonces: &[i64],
) -> Result<()> {
    let path = &g.path;
    if args.preset.is_some() || args.params.is_some() {
        let golden_params = ModelParams::from_json(&g.params.to_string())
            .with_context(|| format!("the params of --golden {path}"))?;
        if *params != golden_params {
            let flag = match &args.preset {
                Some(name) => format!("--preset {name}"),
                None => "--params".to_string(),
            };
            usage_error!(
                "{flag} is not the model of --golden {path} ({}): its distances are that model's; leave {} out to use the golden file's model, or give the golden file of this model",
                params_differences(params, &golden_params),
                flag.split(' ').next().unwrap_or_default()
            );
        }
    }
    let mut differ = Vec::new();
    if block_hash != g.block_hash {
        differ.push(format!("--block-hash (the file's is {})", g.block_hash));
    }
    if public_key != g.public_key {
        differ.push(format!("--public-key (the file's is {})", g.public_key));
    }
    if nonces != g.nonces {
        differ.push(format!(
            "--nonces (the file has {} nonces{})",
            g.nonces.len(),
            match (g.nonces.first(), g.nonces.last()) {
                (Some(a), Some(b)) => format!(", {a} to {b}"),
                _ => String::new(),
            }
        ));
    }
    if !differ.is_empty() {
        usage_error!(
            "--golden {path} fixes the block hash, public key and nonces, and {} differ{}; leave those flags out or match the file",
            differ.join(", "),
            if differ.len() == 1 { "s" } else { "" }
        );
    }
    Ok(())
}

/// The fields two models differ in: `dim 512 (the golden's 64), …`.
fn params_differences(ours: &ModelParams, golden: &ModelParams) -> String {
    let (a, b) = (
        serde_json::to_value(ours).unwrap_or_default(),
        serde_json::to_value(golden).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return "the params differ".into();
    };
    let fields: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} {v}, the golden's {}", b.get(k).unwrap_or(&Value::Null)))
        .collect();
    fields.join("; ")
}

fn read_golden(path: &str) -> Result<Golden> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading --golden {path}"))?;
    let g: Value =
        serde_json::from_str(&text).with_context(|| format!("--golden {path} is not JSON"))?;
    let shape = || {
        format!(
            "--golden {path} is not a forward_<preset>.json golden (params, block_hash, public_key, distances)"
        )
    };
    let cases = g["distances"].as_array().with_context(shape)?;
    let mut nonces = Vec::with_capacity(cases.len());
    let mut dist = Vec::with_capacity(cases.len());
    for c in cases {
        nonces.push(c["nonce"].as_i64().with_context(shape)?);
        // The exact bits when given, else the decimal.
        let d = match c["distance_f64_bits"].as_str() {
            Some(hex) => f64::from_bits(u64::from_str_radix(hex, 16).with_context(shape)?),
            None => c["distance"].as_f64().with_context(shape)?,
        };
        dist.push(d);
    }
    Ok(Golden {
        path: path.to_string(),
        params: g["params"].clone(),
        block_hash: g["block_hash"].as_str().with_context(shape)?.to_string(),
        public_key: g["public_key"].as_str().with_context(shape)?.to_string(),
        nonces,
        dist,
    })
}
