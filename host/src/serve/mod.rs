//! `powhost serve`: an HTTP server with the network node's PoC API (`/api/v1/…`, node/)
//! and serverless-style endpoints (serverless.rs). Plugins own the request semantics; the
//! server owns transport (axum on its own accept loop, listener.rs; "starting" answers while
//! the self-test runs, starting.rs), limits (body size, compute slots, a bounded queue:
//! app.rs), the background generation loop and the sealing of ProofBatches; the runtime's
//! outbox delivers them.

mod app;
mod auth;
mod gpu;
mod health;
pub(crate) mod http;
mod jobs;
pub(crate) mod listener;
mod memory_budget;
pub(crate) mod node;
mod own_address;
mod router;
mod serverless;
mod signature;
mod starting;
#[cfg(test)]
mod tests;

pub use app::{App, PluginKind};
pub use auth::{Access, ApiKey};
pub use memory_budget::default_budget as default_memory_budget;
pub use router::router;
pub use signature::SignerKey;
pub use starting::Starting;

use crate::runtime::Runtime;
use crate::runtime::shutdown::ShutdownBudget;
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How the server runs, beside the runtime's own configuration.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// `HOST:PORT`; port 0 picks a free one.
    pub listen: String,
    /// Plugin calls computing at once.
    pub concurrency: usize,
    /// Requests that may wait for a compute slot.
    pub queue: usize,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Bytes the requests in flight and queued may hold, counted as their bodies
    /// `memory_budget::BODY_COPIES` times over; finished jobs' results are kept within a
    /// quarter of it.
    pub memory_budget: u64,
    /// What one request may compute for.
    pub time_limit: Duration,
    /// For headers, idle connections and stalled bodies.
    pub idle_timeout: Duration,
    /// How often generated nonces are sealed into ProofBatches.
    pub callback_interval: Duration,
    /// Everything after a stop signal, all told: requests and jobs finishing, then delivery.
    pub flush_timeout: Duration,
    /// Where results still undelivered at the end are appended.
    pub undelivered: Option<PathBuf>,
    /// The signer key and API key requests must show.
    pub access: Access,
    /// Serve `/metrics` (else 404).
    pub metrics: bool,
}

/// Serve with the `serverless` and `validator` plugins until a signal, then stop: no new
/// requests, jobs finish their batch in flight, callbacks are delivered. `starting` answers
/// the listener until the plugins are loaded.
pub fn run(
    runtime: Runtime,
    starting: Starting,
    serverless: &str,
    validator: &str,
    config: ServeConfig,
) -> Result<ExitCode> {
    let host = runtime.host.clone();
    let (serverless, validator) = (host.load(serverless)?, host.load(validator)?);
    log::info!(
        "serving with plugins `{}` and `{}` on backend {} ({})",
        serverless.info.name,
        validator.info.name,
        host.compute.backend().name(),
        host.compute.backend().device_description()
    );
    let app = App::new(host, serverless, validator, config);
    let (budget, largest) = (app.memory.limit(), app.config.max_body as u64);
    log::info!(
        "admitting requests within a memory budget of {} MiB (--memory-budget)",
        budget >> 20
    );
    if largest.saturating_mul(memory_budget::BODY_COPIES) > budget {
        log::warn!(
            "bodies over {} MiB will be refused (413): --memory-budget ({} MiB) holds a body {} times over, and --max-body allows {} MiB",
            (budget / memory_budget::BODY_COPIES) >> 20,
            budget >> 20,
            memory_budget::BODY_COPIES,
            largest >> 20
        );
    }
    runtime.stop_on_signals(format!(
        "powhost: stopping: no new requests; jobs finish the batch in flight; delivering callbacks for up to {:.0} s (interrupt again to quit now)",
        app.config.flush_timeout.as_secs_f64()
    ))?;
    let listener = starting.hand_over()?;
    runtime.block_on(serve(app, listener))
}

/// Serve on `listener`, bound before the self-test so that a bad address fails at once.
async fn serve(app: Arc<App>, listener: std::net::TcpListener) -> Result<ExitCode> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .with_context(|| format!("listening on {}", app.config.listen))?;
    let addr = listener.local_addr()?;
    warn_if_open(&app.config.access, addr);
    let _ = app.listening.set(addr);
    {
        // Programs starting powhost read the address (port 0 picks one) from this line, and
        // it means ready: printed only once the self-test passed and the plugins loaded (a
        // start that fails prints nothing here), though probes were answered before.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", json!({ "listening": addr.to_string() }))?;
        out.flush()?;
    }
    eprintln!(
        "powhost: serving on http://{addr} (Ctrl-C or SIGTERM stops, delivering pending callbacks first)"
    );
    let flushing = tokio_util::sync::CancellationToken::new();
    let (sender, sealer) = start_delivery(&app, &flushing);
    let connections = listener::serve_connections(
        &listener,
        router(app.clone()),
        app.config.idle_timeout,
        app.stop.clone(),
    )
    .await;
    // No new connections once stopping: they are refused rather than left in the backlog.
    drop(listener);
    // Everything after the signal shares one budget: requests in flight, jobs and
    // validations finishing (aborted when they take too long), then the callbacks, which are
    // delivered all along.
    let budget = ShutdownBudget::starting_now(app.config.flush_timeout);
    let in_flight = async {
        let _ = connections.join_all().await;
        app.background.idle().await;
    };
    tokio::pin!(in_flight);
    if tokio::time::timeout_at(budget.abort_at.into(), &mut in_flight)
        .await
        .is_err()
    {
        log::warn!(
            "requests or jobs still running near the flush timeout ({:.1} s); aborting them at their next forward pass",
            app.config.flush_timeout.as_secs_f64()
        );
        app.stop.abort();
        if tokio::time::timeout_at(budget.deadline.into(), &mut in_flight)
            .await
            .is_err()
        {
            log::warn!("requests or jobs still running at the flush timeout; closing them");
        }
    }
    // Generation ends within one forward pass (aborted near the deadline: at once); its last
    // batch is sealed with the rest, and what it generated is sealed even if it has not ended.
    if let Some(worker) = app.node.stop() {
        let joined = tokio::task::spawn_blocking(move || worker.join());
        tokio::pin!(joined);
        if tokio::time::timeout_at(budget.abort_at.into(), &mut joined)
            .await
            .is_err()
        {
            app.stop.abort();
            if tokio::time::timeout_at(budget.deadline.into(), &mut joined)
                .await
                .is_err()
            {
                log::warn!(
                    "generation still running at the flush timeout; sealing what it generated"
                );
            }
        }
    }
    let _ = sealer.await;
    app.proof_batches.seal_into(&app.host.outbox);
    flushing.cancel();
    let _ = sender.await;
    Ok(app
        .host
        .deliver_rest(
            budget.left(),
            app.config.undelivered.as_deref(),
            "callbacks",
        )
        .await)
}

/// Beyond loopback, anyone who reaches the port may drive what is left unguarded: say so.
fn warn_if_open(access: &Access, addr: std::net::SocketAddr) {
    if addr.ip().is_loopback() {
        return;
    }
    if access.signer.is_none() {
        log::warn!(
            "listening on {addr} without a signer key: anyone who reaches it may start, stop and redirect PoC work (/api/v1/pow/*); set SIGNER_PUBKEY or --signer-pubkey to the node's key"
        );
    }
    if access.api_key.is_none() {
        log::warn!(
            "listening on {addr} without an API key: anyone who reaches it may run jobs (/run, /runsync); set POWHOST_API_KEY or --api-key"
        );
    }
}

/// The outbox's sender, until the final flush takes over, and the ProofBatch sealer, until
/// the server stops.
fn start_delivery(
    app: &Arc<App>,
    flushing: &tokio_util::sync::CancellationToken,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let sender = {
        let (outbox, flushing) = (app.host.outbox.clone(), flushing.clone());
        tokio::spawn(async move { outbox.run(flushing.cancelled()).await })
    };
    let sealer = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(app.config.callback_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => app.proof_batches.seal_into(&app.host.outbox),
                    _ = app.stop.stopping() => return,
                }
            }
        })
    };
    (sender, sealer)
}
