//! `powhost fingerprint`: the parameter table and per-parameter hashes of the f16 weights.

use super::model_args::{check_seed_text, params_from_args};
use crate::cli::FingerprintArgs;
use crate::model::build_weights;
use crate::progress::Bars;
use crate::usage::usage_error;
use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;

#[derive(Serialize)]
struct ParameterFingerprint {
    name: String,
    shape: Vec<usize>,
    numel: usize,
    branch: &'static str,
    sha256_f16le: String,
}

#[derive(Serialize)]
struct Fingerprint {
    block_hash: String,
    params: powhost_core::ModelParams,
    total_params: u64,
    pool_size: usize,
    pool_seconds: f64,
    parameters: Vec<ParameterFingerprint>,
}

pub fn run(args: FingerprintArgs) -> Result<()> {
    let params = params_from_args(&args.model)?;
    check_seed_text("--block-hash", &args.block_hash)?;
    let weights = build_weights(&params, &args.block_hash, 0, &Bars)?;
    let selected: Vec<_> = match &args.only {
        None => weights.table.parameters.iter().collect(),
        Some(names) => {
            let mut out = Vec::new();
            for name in names {
                match weights.table.get(name) {
                    Some(p) => out.push(p),
                    None => usage_error!(
                        "this model has no parameter named `{name}`; names look like `layers.0.attention.wq.weight` or `output.weight` (see `powhost fingerprint` without --only)"
                    ),
                }
            }
            out
        }
    };
    let parameters: Vec<ParameterFingerprint> = selected
        .par_iter()
        .map(|p| ParameterFingerprint {
            name: p.name.clone(),
            shape: p.shape.clone(),
            numel: p.numel,
            branch: p.branch(),
            sha256_f16le: weights.pool.sha256_f16le(p),
        })
        .collect();
    let report = Fingerprint {
        block_hash: args.block_hash.clone(),
        params,
        total_params: weights.table.total_params,
        pool_size: weights.table.pool_size,
        pool_seconds: weights.pool_seconds,
        parameters,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("total_params {}", report.total_params);
        println!(
            "pool_size    {} (drawn in {:.2} s)",
            report.pool_size, report.pool_seconds
        );
        for p in &report.parameters {
            let shape: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
            println!(
                "{:<40} {:>14} {:<5} {}",
                p.name,
                shape.join("x"),
                p.branch,
                p.sha256_f16le
            );
        }
    }
    Ok(())
}
