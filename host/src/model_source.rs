//! Turning `--preset` / `--params` into validated model params.

use crate::cli::ModelArgs;
use anyhow::{Context, Result};
use powhost_core::ModelParams;

pub fn params_from_args(args: &ModelArgs) -> Result<ModelParams> {
    match (&args.preset, &args.params) {
        (Some(name), _) => ModelParams::preset(name),
        (None, Some(text)) => {
            let json = if text.trim_start().starts_with('{') {
                text.clone()
            } else {
                std::fs::read_to_string(text).with_context(|| {
                    format!("--params is neither a JSON object nor a readable file: {text}")
                })?
            };
            ModelParams::from_json(&json)
        }
        (None, None) => anyhow::bail!("give --preset NAME or --params JSON"),
    }
}

pub fn check_seed_text(name: &str, value: &str) -> Result<()> {
    anyhow::ensure!(!value.is_empty(), "{name} must not be empty");
    Ok(())
}
