//! Turning `--preset` / `--params` into validated model params.

use crate::cli::ModelArgs;
use crate::usage::{usage, usage_error};
use anyhow::{Context, Result};
use powhost_core::ModelParams;

pub fn params_from_args(args: &ModelArgs) -> Result<ModelParams> {
    params_from(args.preset.as_deref(), args.params.as_deref())
}

/// A named preset, else a params JSON object given inline or as a file; what is wrong with
/// either is a usage error.
pub fn params_from(preset: Option<&str>, params: Option<&str>) -> Result<ModelParams> {
    read_params(preset, params).map_err(usage)
}

fn read_params(preset: Option<&str>, params: Option<&str>) -> Result<ModelParams> {
    match (preset, params) {
        (Some(name), _) => ModelParams::preset(name),
        (None, Some(text)) => {
            let json = if text.trim_start().starts_with('{') {
                text.to_string()
            } else {
                let bytes = crate::input::read_file_bounded(
                    std::path::Path::new(text),
                    crate::input::MAX_PARAMS_BYTES,
                    "--params file",
                )
                .with_context(|| {
                    format!("--params is neither a JSON object nor a readable file: {text}")
                })?;
                String::from_utf8(bytes)
                    .with_context(|| format!("--params file {text} is not UTF-8 text"))?
            };
            ModelParams::from_json(&json)
        }
        (None, None) => anyhow::bail!("give --preset NAME or --params JSON"),
    }
}

pub fn check_seed_text(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        usage_error!("{name} must not be empty");
    }
    Ok(())
}
