//! One module per command, and the one place where the command line meets the libraries:
//! flags become the runtime's, the server's and the worker's own configuration here, and
//! nothing below `commands/` knows a flag.

mod bench;
mod bench_plugin;
mod compare;
mod distances;
mod fingerprint;
mod model_args;
mod plugins;
mod presets;
mod run;
mod selftest;

use crate::cli::{Cli, Command, DeliveryArgs, PluginLimitArgs, ServeArgs, WorkerArgs};
use crate::delivery::DeliveryConfig;
use crate::plugin_host::PluginLimits;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::serve::ServeConfig;
use crate::worker::{Platform, WorkerConfig};
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
        Command::Serve(args) => serve(args),
        Command::Worker(args) => worker(args),
        Command::Selftest(args) => selftest::run(args),
        Command::Plugins { json } => done(plugins::run(json)),
        Command::Presets { json } => done(presets::run(json)),
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let runtime = Runtime::start(runtime_config(
        &args.backend.name,
        args.batch,
        &args.limits,
        Some(&args.delivery),
        "serve",
    ))?;
    let serve = ServeConfig {
        listen: args.listen,
        concurrency: args.concurrency,
        queue: args.queue,
        max_body: args.max_body.saturating_mul(1 << 20),
        memory_budget: args
            .memory_budget
            .map_or_else(crate::serve::default_memory_budget, |mib| {
                (mib as u64).saturating_mul(1 << 20)
            }),
        time_limit: args.time_limit,
        idle_timeout: args.idle_timeout,
        callback_interval: args.callback_interval,
        flush_timeout: args.delivery.flush_timeout,
        undelivered: args.delivery.undelivered,
    };
    crate::serve::run(runtime, &args.plugin, &args.validator, serve)
}

fn worker(args: WorkerArgs) -> Result<ExitCode> {
    // The platform's environment first: without it there is nothing to start.
    let platform = Platform::from_env(|name| std::env::var(name).ok())?;
    let runtime = Runtime::start(runtime_config(
        &args.backend.name,
        args.batch,
        &args.limits,
        Some(&args.delivery),
        "worker",
    ))?;
    let worker = WorkerConfig {
        concurrency: args.concurrency,
        time_limit: args.time_limit,
        aggregate_stream: args.aggregate_stream,
        flush_timeout: args.delivery.flush_timeout,
        undelivered: args.delivery.undelivered,
    };
    crate::worker::run(runtime, platform, &args.plugin, worker)
}

/// The runtime a transport starts from. A server or worker (`serving`: its delivery flags) is
/// checked by the self-test first and draws no progress bars, as its calls overlap; `run`
/// answers one request at a time on a terminal, with bars, and posts nothing.
fn runtime_config(
    backend: &str,
    batch: Option<usize>,
    limits: &PluginLimitArgs,
    serving: Option<&DeliveryArgs>,
    thread_name: &'static str,
) -> RuntimeConfig {
    RuntimeConfig {
        backend: backend.to_string(),
        batch,
        plugin_limits: plugin_limits(limits),
        self_test: serving.is_some(),
        progress: serving.is_none(),
        delivery: serving.map_or(DeliveryConfig::NOTHING_POSTED, delivery_config),
        thread_name,
    }
}

fn plugin_limits(args: &PluginLimitArgs) -> PluginLimits {
    PluginLimits {
        memory_bytes: args.plugin_memory.saturating_mul(1 << 20),
        guest_time: args.plugin_time_limit,
    }
}

fn delivery_config(args: &DeliveryArgs) -> DeliveryConfig {
    DeliveryConfig {
        timeout: args.callback_timeout,
        backoff_max: args.callback_backoff_max,
    }
}
