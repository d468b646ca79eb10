//! `powhost`: compute host for Gonka's Proof-of-Compute. The binary (main.rs) only calls
//! [`main`]; the library exists so that the fuzz targets (`fuzz/`) reach the parsers the
//! commands use, through [`fuzzing`]. Each command lives in `commands/`.

mod backends;
mod backoff;
mod cli;
mod commands;
mod compute_service;
mod delivery;
mod error_reply;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod input;
mod metrics;
mod model;
mod nonce_list;
mod plugin_host;
mod progress;
mod runtime;
mod selftest;
mod serve;
#[cfg(test)]
mod test_support;
mod usage;
mod worker;

use clap::Parser;
use std::process::ExitCode;

/// Parse the command line, set up logging, run the command and report its error.
pub fn main() -> ExitCode {
    quiet_vulkan_loader();
    let cli = cli::Cli::parse();
    init_logging();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if usage::is_usage(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr; the level comes from `RUST_LOG`, else `LOG_LEVEL`, else `warn`.
fn init_logging() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("LOG_LEVEL"))
        .unwrap_or_else(|_| "warn".to_string());
    env_logger::Builder::new()
        .parse_filters(&filter.to_lowercase())
        .init();
}

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" on stderr when it is unset,
/// every time `--backend auto` probes for a GPU; give them the temporary directory.
fn quiet_vulkan_loader() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
}
