//! One module per command.

mod bench;
mod bench_plugin;
mod compare;
mod distances;
mod fingerprint;
mod plugins;
mod presets;
mod run;
mod selftest;

use crate::cli::{Cli, Command};
use anyhow::Result;
use std::process::ExitCode;

/// Run a command; `Ok` carries the exit code of a command that reported its own failure
/// (`powhost run` prints error responses and exits 1).
pub fn run(cli: Cli) -> Result<ExitCode> {
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Fingerprint(args) => done(fingerprint::run(args)),
        Command::Distances(args) => done(distances::run(args)),
        Command::Bench(args) if args.plugin.is_some() => done(bench_plugin::run(args)),
        Command::Bench(args) => done(bench::run(args)),
        Command::Compare(args) => compare::run(args),
        Command::Run(args) => run::run(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Worker(args) => crate::worker::run(args),
        Command::Selftest(args) => selftest::run(args),
        Command::Plugins { json } => done(plugins::run(json)),
        Command::Presets { json } => done(presets::run(json)),
    }
}
