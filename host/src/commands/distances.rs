//! `powhost distances`: every nonce's distance, unfiltered, in order.

use crate::backends::backend_by_name;
use crate::cli::DistancesArgs;
use crate::model::{LoadedModel, choose_batch};
use crate::model_source::{check_seed_text, params_from_args};
use crate::nonce_list::parse_nonce_list;
use anyhow::Result;

pub fn run(args: DistancesArgs) -> Result<()> {
    let backend = backend_by_name(&args.backend)?;
    let params = params_from_args(&args.model)?;
    check_seed_text("--block-hash", &args.block_hash)?;
    check_seed_text("--public-key", &args.public_key)?;
    let nonces = parse_nonce_list(&args.nonces)?;
    let batch = choose_batch(args.batch, &*backend, &params, nonces.len());
    let model = LoadedModel::new(&*backend, &params, &args.block_hash, batch)?;
    let dist = model.distances(&args.public_key, &nonces, batch)?;
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
