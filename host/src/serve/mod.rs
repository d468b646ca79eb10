//! `powhost serve`: an HTTP server with the network node's PoC API (`/api/v1/…`, node/)
//! and serverless-style endpoints (serverless.rs). Plugins own the request semantics; the
//! server owns transport (axum on its own accept loop, listener.rs), limits (body size,
//! compute slots, a bounded queue: app.rs), the background generation loop and the sealing
//! of ProofBatches; the runtime's outbox delivers them.

mod app;
pub(crate) mod http;
mod jobs;
mod listener;
mod memory_budget;
pub(crate) mod node;
mod own_address;
mod router;
mod serverless;
#[cfg(test)]
mod tests;

pub use app::{App, PluginKind};
pub use memory_budget::default_budget as default_memory_budget;
pub use router::router;

use crate::runtime::Runtime;
use anyhow::{Context, Result};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

/// Serve with the `serverless` and `validator` plugins until a signal, then stop: no new
/// requests, jobs finish their batch in flight, callbacks are delivered.
pub fn run(
    runtime: Runtime,
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
    runtime.block_on(serve(app))
}

async fn serve(app: Arc<App>) -> Result<ExitCode> {
    let listen = &app.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; is the address free and valid (HOST:PORT)?")
        })?;
    let addr = listener.local_addr()?;
    let _ = app.listening.set(addr);
    {
        // Programs starting powhost read the address (port 0 picks one) from this line.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", json!({ "listening": addr.to_string() }))?;
        out.flush()?;
    }
    eprintln!(
        "powhost: serving on http://{addr} (Ctrl-C or SIGTERM stops, delivering pending callbacks first)"
    );
    let (sender, sealer) = start_delivery(&app);
    let connections = listener::serve_connections(
        listener,
        router(app.clone()),
        app.config.idle_timeout,
        app.stop.clone(),
    )
    .await;
    // Everything after the signal shares one budget: requests in flight, jobs and
    // validations finishing, then the callbacks.
    let deadline = Instant::now() + app.config.flush_timeout;
    let in_flight = async {
        let _ = connections.join_all().await;
        app.background.idle().await;
    };
    if tokio::time::timeout_at(deadline.into(), in_flight)
        .await
        .is_err()
    {
        log::warn!(
            "requests or jobs still running after the flush timeout ({:.0} s); closing them",
            app.config.flush_timeout.as_secs_f64()
        );
    }
    // Generation ends within one forward pass; its last batch is sealed with the rest.
    if let Some(worker) = app.node.stop() {
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    let _ = sealer.await;
    app.proof_batches.seal_into(&app.host.outbox);
    let _ = sender.await;
    Ok(app
        .host
        .deliver_rest(
            deadline.saturating_duration_since(Instant::now()),
            app.config.undelivered.as_deref(),
            "callbacks",
        )
        .await)
}

/// The outbox's sender and the ProofBatch sealer, both until the server stops.
fn start_delivery(app: &Arc<App>) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let sender = {
        let (outbox, stop) = (app.host.outbox.clone(), app.stop.clone());
        tokio::spawn(async move { outbox.run(stop.stopping()).await })
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
