//! `powhost serve`: an HTTP server with the network node's PoC API (`/api/v1/…`, node.rs)
//! and serverless-style endpoints (serverless.rs). Plugins own the request semantics; the
//! host owns transport (axum), limits (body size, compute slots, a bounded queue), the
//! background generation loop and the callbacks (crate::delivery).

pub(crate) mod http;
pub(crate) mod node;
mod serverless;

use crate::backends::backend_by_name;
use crate::cli::ServeArgs;
use crate::compute_service::{ComputeService, StopReason, StopSignal};
use crate::delivery::{CallbackConfig, Outbox};
use crate::plugin_host::{
    CallContext, Plugin, PluginFailure, PluginHost, PluginLimits, PluginReply,
};
use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use http::ApiError;
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Which of the two loaded plugins a call goes to (both are `handler`-world components).
#[derive(Clone, Copy, Debug)]
pub enum PluginKind {
    /// The serverless job contract (`--plugin`): `/runsync`, `/run`.
    Serverless,
    /// ProofBatch validation (`--validator`): `/api/v1/pow/validate`.
    Validator,
}

/// Everything the handlers share.
pub struct App {
    plugin_host: PluginHost,
    serverless: Plugin,
    validator: Plugin,
    compute: Arc<ComputeService>,
    slots: Slots,
    max_body: usize,
    /// `--idle-timeout`: for headers, idle connections and stalled bodies.
    idle_timeout: Duration,
    time_limit: Duration,
    jobs: serverless::Jobs,
    node: node::Node,
    outbox: Arc<Outbox>,
    /// Set at shutdown: jobs stop after the batch in flight (delivering it), and jobs still
    /// waiting for a slot do not start.
    shutting_down: Arc<AtomicBool>,
    /// Work that outlives its request (`/run` jobs, validations): shutdown waits for it.
    background: Background,
}

/// A count of background tasks, each holding a guard, and a way to wait for none.
#[derive(Default)]
pub struct Background {
    running: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One background task; dropping it (however the task ends) counts it out.
pub struct BackgroundTask(Arc<App>);

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        let background = &self.0.background;
        if background.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            background.idle.notify_waiters();
        }
    }
}

impl Background {
    /// Resolves once no background task is running.
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Compute slots (`--concurrency`) and the queue in front of them (`--queue`).
pub struct Slots {
    semaphore: Arc<Semaphore>,
    size: usize,
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

/// A place in the queue; `acquire` turns it into a compute slot.
pub struct Ticket {
    semaphore: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticket {
    /// Wait for a compute slot.
    pub async fn acquire(self) -> OwnedSemaphorePermit {
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the compute semaphore is never closed")
    }
}

impl Slots {
    fn new(size: usize, queue: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
            waiting: Arc::new(AtomicUsize::new(0)),
            queue,
        }
    }

    /// A place in the queue, or 503 when it is full.
    pub fn reserve(&self) -> Result<Ticket, ApiError> {
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket {
            semaphore: self.semaphore.clone(),
            waiting: self.waiting.clone(),
        };
        // Idle slots take requests at once; beyond them, `queue` may wait.
        if before >= self.queue + self.semaphore.available_permits() {
            drop(ticket);
            return Err(ApiError::busy(&format!(
                "{} requests are already waiting for {} compute slots",
                before, self.size
            )));
        }
        Ok(ticket)
    }

    /// (running, idle) compute slots.
    pub fn usage(&self) -> (usize, usize) {
        let idle = self.semaphore.available_permits();
        (self.size - idle, idle)
    }
}

impl App {
    fn plugin(&self, kind: PluginKind) -> &Plugin {
        match kind {
            PluginKind::Serverless => &self.serverless,
            PluginKind::Validator => &self.validator,
        }
    }

    /// Count a task as background work until the guard is dropped.
    pub fn background_task(self: &Arc<Self>) -> BackgroundTask {
        self.background.running.fetch_add(1, Ordering::SeqCst);
        BackgroundTask(self.clone())
    }

    /// A job's stop signal: `cancel` (`/cancel`, a caller that hung up) interrupts it, so
    /// does its deadline; the server's shutdown stops it after the batch in flight.
    pub fn job_stop(&self, cancel: Arc<AtomicBool>, deadline: Option<Instant>) -> StopSignal {
        StopSignal::new(cancel, deadline).and_finishing_on(self.shutting_down.clone())
    }

    /// Run a plugin call in the compute slot it was given, off the async threads. A call
    /// stopped while it waited for the slot does not start.
    pub async fn call(
        self: &Arc<Self>,
        kind: PluginKind,
        request: String,
        slot: OwnedSemaphorePermit,
        stop: StopSignal,
        emit: Box<dyn FnMut(&str) + Send>,
    ) -> Result<PluginReply, PluginFailure> {
        if stop.reason() == Some(StopReason::Cancelled) {
            return Ok(PluginReply::Error(crate::error_reply::build(
                "cancelled before it started",
                "Cancelled",
            )));
        }
        let call = CallContext {
            compute: Some(self.compute.clone()),
            stop,
            emit,
        };
        self.run_blocking(kind, request, call, Some(slot)).await
    }

    /// A call that computes nothing (a dry run), outside the compute slots.
    pub async fn call_unqueued(
        self: &Arc<Self>,
        kind: PluginKind,
        request: String,
    ) -> Result<PluginReply, PluginFailure> {
        let call = CallContext {
            compute: Some(self.compute.clone()),
            stop: StopSignal::default(),
            emit: Box::new(|_| {}),
        };
        self.run_blocking(kind, request, call, None).await
    }

    /// The plugin call on a blocking thread (wasmtime calls are synchronous), holding its
    /// compute slot, if any, until done.
    async fn run_blocking(
        self: &Arc<Self>,
        kind: PluginKind,
        request: String,
        call: CallContext,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<PluginReply, PluginFailure> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            app.plugin_host.handle(app.plugin(kind), &request, call)
        })
        .await
        .unwrap_or_else(|e| {
            Err(PluginFailure {
                message: format!("the plugin call failed in the host: {e}"),
            })
        })
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/pow/init", post(node::init))
        .route("/api/v1/pow/init/generate", post(node::init_generate))
        .route("/api/v1/pow/init/validate", post(node::init_validate))
        .route("/api/v1/pow/phase/generate", post(node::phase_generate))
        .route("/api/v1/pow/phase/validate", post(node::phase_validate))
        .route("/api/v1/pow/validate", post(node::validate))
        .route("/api/v1/pow/status", get(node::status))
        .route("/api/v1/pow/stop", post(node::stop_pow))
        .route("/api/v1/state", get(node::state))
        .route("/api/v1/stop", post(node::stop_all))
        .route("/runsync", post(serverless::runsync))
        .route("/run", post(serverless::run))
        .route(
            "/status/{id}",
            get(serverless::status).post(serverless::status),
        )
        .route(
            "/stream/{id}",
            get(serverless::stream).post(serverless::stream),
        )
        .route("/cancel/{id}", post(serverless::cancel))
        .route("/health", get(serverless::health))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found: no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed: see `powhost serve --help` for each endpoint's method",
            )
        })
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app)
}

/// One debug line per request (`RUST_LOG=powhost=debug`): method, path, status, time.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    log::debug!(
        "{method} {path} -> {} in {:.1} ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1e3
    );
    response
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let time_limit = args.time_limit;
    let callbacks = CallbackConfig {
        interval: args.callback_interval,
        timeout: args.delivery.callback_timeout,
        backoff_max: args.delivery.callback_backoff_max,
    };
    let flush_timeout = args.delivery.flush_timeout;

    let plugin_host = PluginHost::new(PluginLimits::from_args(&args.limits))?;
    let serverless = plugin_host.load(&args.plugin)?;
    let validator = plugin_host.load(&args.validator)?;
    let backend = backend_by_name(&args.backend)?;
    log::info!(
        "serving with plugins `{}` and `{}` on backend {} ({})",
        serverless.info.name,
        validator.info.name,
        backend.name(),
        backend.device_description()
    );
    let compute = Arc::new(ComputeService::new(backend, args.batch).without_progress());
    // Before the first request: a device that computes wrong answers serves none.
    let report = crate::selftest::require(&compute)?;
    eprintln!("powhost: {}", report.summary());
    let app = Arc::new(App {
        plugin_host,
        serverless,
        validator,
        compute,
        slots: Slots::new(args.concurrency, args.queue),
        max_body: args.max_body.saturating_mul(1 << 20),
        idle_timeout: args.idle_timeout,
        time_limit,
        jobs: serverless::Jobs::default(),
        node: node::Node::default(),
        outbox: Arc::new(Outbox::new(callbacks)?),
        shutting_down: Arc::default(),
        background: Background::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(
        app,
        &args.listen,
        flush_timeout,
        args.delivery.undelivered.as_deref(),
    ))
}

async fn serve(
    app: Arc<App>,
    listen: &str,
    flush_timeout: Duration,
    undelivered: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen}; is the address free and valid (HOST:PORT)?")
        })?;
    let addr = listener.local_addr()?;
    {
        // Programs starting powhost read the address (port 0 picks one) from this line.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", json!({ "listening": addr.to_string() }))?;
        out.flush()?;
    }
    eprintln!(
        "powhost: serving on http://{addr} (Ctrl-C or SIGTERM stops, delivering pending callbacks first)"
    );

    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|&s| s).await;
    };
    {
        let app = app.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!(
                "powhost: stopping: no new requests; jobs finish the batch in flight; delivering callbacks for up to {:.0} s (interrupt again to quit now)",
                flush_timeout.as_secs_f64()
            );
            app.shutting_down.store(true, Ordering::SeqCst);
            let _ = stopping_tx.send(true);
            shutdown_signal().await;
            eprintln!("powhost: interrupted again, quitting");
            std::process::exit(130);
        });
    }
    let sender = {
        let (outbox, stop) = (app.outbox.clone(), stopped(stopping.clone()));
        tokio::spawn(async move { outbox.run(stop).await })
    };

    let connections = serve_connections(
        listener,
        router(app.clone()),
        app.idle_timeout,
        stopped(stopping),
    )
    .await;
    // Everything after the signal shares one budget, --flush-timeout: requests in flight,
    // jobs and validations finishing, then the callbacks.
    let deadline = Instant::now() + flush_timeout;
    let in_flight = async {
        let _ = connections.join_all().await;
        app.background.idle().await;
    };
    if tokio::time::timeout_at(deadline.into(), in_flight)
        .await
        .is_err()
    {
        log::warn!(
            "requests or jobs still running after --flush-timeout ({:.0} s); closing them",
            flush_timeout.as_secs_f64()
        );
    }
    // Generation ends within one forward pass; its last batch goes to the outbox.
    if let Some(worker) = app.node.stop() {
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    let _ = sender.await;
    let left = app
        .outbox
        .flush(
            deadline.saturating_duration_since(Instant::now()),
            undelivered,
        )
        .await;
    if left > 0 {
        eprintln!(
            "powhost: {left} callbacks could not be delivered; their bodies are in the log above"
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("powhost: stopped; every callback was delivered");
    Ok(ExitCode::SUCCESS)
}

/// Accept connections until `stop`, then tell each open one to finish its request in flight
/// and close. Each has `idle_timeout` to send a request's headers, which also closes a
/// keep-alive connection idle that long. Returns the connections still open; dropping the
/// set closes them.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: Router,
    idle_timeout: Duration,
    stop: impl std::future::Future<Output = ()>,
) -> tokio::task::JoinSet<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then accept again.
                    log::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        while connections.try_join_next().is_some() {}
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut closing = closing.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(idle_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { drop(closing.wait_for(|&c| c).await) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                log::debug!("connection from {peer}: {e}");
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    connections
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
