//! `powhost distances`: every nonce's distance, unfiltered, in order.

use super::model_args::{check_seed_text, params_from_args};
use crate::backends::backend_by_name;
use crate::cli::DistancesArgs;
use crate::compute_service::{ComputeService, Task};
use crate::model::choose_batch;
use crate::nonce_list::parse_nonce_list;
use crate::progress::Bars;
use crate::runtime::stop::Stop;
use crate::usage::usage;
use anyhow::{Context, Result};

pub fn run(args: DistancesArgs) -> Result<()> {
    // The command line first (usage errors), then the device.
    let params = params_from_args(&args.model)?;
    check_seed_text("--block-hash", &args.block_hash)?;
    check_seed_text("--public-key", &args.public_key)?;
    let nonces = parse_nonce_list(&args.nonces)
        .context("--nonces")
        .map_err(usage)?;
    let backend = backend_by_name(&args.backend.name)?;
    // Never more per forward pass than there are nonces (the memory check counts a batch).
    let batch = choose_batch(args.batch, &*backend, &params, nonces.len());
    let compute = ComputeService::new(backend, Some(batch)).with_progress(Box::new(Bars));
    let task = Task {
        block_hash: args.block_hash.clone(),
        public_key: args.public_key.clone(),
        params,
        devices: Vec::new(),
    };
    let dist = compute.distances(&task, &nonces, &Stop::new())?;
    let not_numbers = dist.iter().filter(|d| d.is_nan()).count();
    if not_numbers > 0 {
        eprintln!(
            "warning: {not_numbers} of {} distances are not a number (NaN): these params overflow the float16 arithmetic, so no nonce is valid with them",
            dist.len()
        );
    }
    if args.json {
        println!("{}", serde_json::json!({ "nonces": nonces, "dist": dist }));
    } else {
        for (n, d) in nonces.iter().zip(&dist) {
            println!("{n}\t{d:.17}");
        }
    }
    Ok(())
}
