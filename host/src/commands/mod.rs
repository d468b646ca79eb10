//! One module per command, and the one place where the command line meets the libraries:
//! flags become the runtime's, the server's and the worker's own configuration here, and
//! nothing below `commands/` knows a flag.

mod access;
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
use crate::delivery::{DeliveryConfig, Mtls, MtlsFiles};
use crate::plugin_host::PluginLimits;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::serve::ServeConfig;
use crate::worker::{Platform, WorkerConfig};
use anyhow::{Context, Result};
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
    let delivery = match delivery_config(&args.delivery) {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    // A key that cannot be used is a usage error, found before anything starts.
    let access = match access::from_args(&args) {
        Ok(access) => access,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // The address first: one taken or not ours fails at once, not after the self-test.
    let listener = std::net::TcpListener::bind(&args.listen).with_context(|| {
        format!(
            "cannot listen on {}; is the address free and this machine's?",
            args.listen
        )
    })?;
    // Probes hear "starting" (not a silent backlog) during the self-test and the plugins' load.
    let starting = crate::serve::Starting::answer(listener, args.idle_timeout)?;
    let runtime = Runtime::start(runtime_config(
        &args.backend.name,
        args.batch,
        &args.limits,
        Some(delivery),
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
        access,
        metrics: args.metrics == "on",
    };
    crate::serve::run(runtime, starting, &args.plugin, &args.validator, serve)
}

fn worker(args: WorkerArgs) -> Result<ExitCode> {
    // The platform's environment first: without it there is nothing to start.
    let platform = Platform::from_env(|name| std::env::var(name).ok())?;
    let delivery = match delivery_config(&args.delivery) {
        Ok(d) => d,
        Err(code) => return Ok(code),
    };
    let runtime = Runtime::start(runtime_config(
        &args.backend.name,
        args.batch,
        &args.limits,
        Some(delivery),
        "worker",
    ))
    .inspect_err(|e| {
        // A device that failed (to open, or the self-test) is reported before the exit, so
        // that the platform replaces the worker instead of sending it jobs.
        let failed = e.downcast_ref::<crate::selftest::SelfTestFailed>();
        let check = if failed.is_some() {
            "selftest"
        } else {
            "device"
        };
        crate::worker::report_unhealthy(&platform, check, &format!("{e:#}"));
    })?;
    let worker = WorkerConfig {
        concurrency: args.concurrency,
        time_limit: args.time_limit,
        aggregate_stream: args.aggregate_stream,
        flush_timeout: args.delivery.flush_timeout,
        undelivered: args.delivery.undelivered,
        metrics_listen: args.metrics_listen,
        metrics: args.metrics == "on",
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
    serving: Option<DeliveryConfig>,
    thread_name: &'static str,
) -> RuntimeConfig {
    RuntimeConfig {
        backend: backend.to_string(),
        batch,
        plugin_limits: plugin_limits(limits),
        self_test: serving.is_some(),
        progress: serving.is_none(),
        delivery: serving.unwrap_or(DeliveryConfig::NOTHING_POSTED),
        thread_name,
    }
}

fn plugin_limits(args: &PluginLimitArgs) -> PluginLimits {
    PluginLimits {
        memory_bytes: args.plugin_memory.saturating_mul(1 << 20),
        guest_time: args.plugin_time_limit,
    }
}

/// The delivery flags, with the mutual-TLS files read and checked; a start-up error (exit 2,
/// as for any bad flag) names what is missing or wrong.
fn delivery_config(args: &DeliveryArgs) -> Result<DeliveryConfig, ExitCode> {
    let mtls = mtls_files(args)
        .and_then(|files| files.map(Mtls::load).transpose())
        .map_err(|why| {
            eprintln!("error: mutual TLS: {why}");
            ExitCode::from(2)
        })?;
    Ok(DeliveryConfig {
        timeout: args.callback_timeout,
        backoff_max: args.callback_backoff_max,
        mtls,
    })
}

/// The three mutual-TLS files, all or none, each from its flag or else from the network's ML
/// node variable (empty counts as unset, as there).
fn mtls_files(args: &DeliveryArgs) -> Result<Option<MtlsFiles>, String> {
    let from = |flag: &Option<std::path::PathBuf>, var: &str| {
        flag.clone().or_else(|| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(Into::into)
        })
    };
    match (
        from(&args.mtls_client_cert, "MLNODE_MTLS_CLIENT_CERT"),
        from(&args.mtls_client_key, "MLNODE_MTLS_CLIENT_KEY"),
        from(&args.mtls_server_ca, "MLNODE_MTLS_SERVER_CA"),
    ) {
        (None, None, None) => Ok(None),
        (Some(client_cert), Some(client_key), Some(server_ca)) => Ok(Some(MtlsFiles {
            client_cert,
            client_key,
            server_ca,
        })),
        (cert, key, ca) => {
            let missing: Vec<&str> = [
                (
                    cert.is_none(),
                    "--mtls-client-cert (MLNODE_MTLS_CLIENT_CERT)",
                ),
                (key.is_none(), "--mtls-client-key (MLNODE_MTLS_CLIENT_KEY)"),
                (ca.is_none(), "--mtls-server-ca (MLNODE_MTLS_SERVER_CA)"),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect();
            Err(format!(
                "all three files or none are needed; missing {}",
                missing.join(" and ")
            ))
        }
    }
}
