//! The host runtime that `run`, `serve` and `worker` stand on, built from plain
//! configuration (the commands turn their flags into [`RuntimeConfig`]; nothing here knows a
//! flag). It owns what every transport needs: the plugin host, the backend and its
//! self-test, the compute service, the outbox, the root of the stop tree, the async runtime,
//! the signal handling (signals.rs) and the time a shutdown has (shutdown.rs).

pub mod shutdown;
pub mod signals;
pub mod stop;

use crate::backends::backend_by_name;
use crate::compute_service::ComputeService;
use crate::delivery::{DeliveryConfig, Outbox};
use crate::health::DeviceHealth;
use crate::metrics::{Metrics, PluginOutcome};
use crate::plugin_host::{
    CallContext, Plugin, PluginFailure, PluginHost, PluginLimits, PluginReply,
};
use crate::progress::{Bars, Silent};
use anyhow::{Context, Result};
use powhost_core::Backend;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use stop::Stop;
use tokio::sync::OwnedSemaphorePermit;

/// What a transport asks of the runtime.
pub struct RuntimeConfig {
    /// A backend name as [`backend_by_name`] takes it.
    pub backend: String,
    /// Nonces per forward pass; None: chosen per model.
    pub batch: Option<usize>,
    pub plugin_limits: PluginLimits,
    /// Check the device against the reference before any work (servers and workers: a
    /// device that computes wrong answers serves nothing).
    pub self_test: bool,
    /// Draw progress bars (one request at a time, on a terminal) or not (servers).
    pub progress: bool,
    pub delivery: DeliveryConfig,
    /// The async threads' name, for the logs and debuggers.
    pub thread_name: &'static str,
}

/// The shared services, handed to every task.
pub struct Host {
    pub plugins: PluginHost,
    pub compute: Arc<ComputeService>,
    pub outbox: Arc<Outbox>,
    /// The root of the stop tree: the process.
    pub stop: Stop,
    pub metrics: Arc<Metrics>,
    /// Whether the device still passes its self-test (`/health`).
    pub health: Arc<DeviceHealth>,
}

/// The services and the async runtime they run on.
pub struct Runtime {
    pub host: Arc<Host>,
    /// Taken by the drop.
    tokio: Option<tokio::runtime::Runtime>,
}

impl Drop for Runtime {
    /// Without waiting for a compute call that an abort has not yet stopped (a forward pass
    /// runs to its end): the transport's shutdown already kept everything undelivered, and
    /// its deadline must hold.
    fn drop(&mut self) {
        if let Some(tokio) = self.tokio.take() {
            tokio.shutdown_background();
        }
    }
}

impl Runtime {
    /// Open the backend, run the self-test if asked, start the plugin host and the async
    /// runtime. Plugins are loaded by the transport ([`Host::load`]).
    pub fn start(config: RuntimeConfig) -> Result<Self> {
        let host = Host::start(&config)?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(config.thread_name)
            .build()
            .context("starting the async runtime")?;
        Ok(Self {
            host,
            tokio: Some(tokio),
        })
    }

    /// Signals from now on: the first finishes the work in flight (saying `first` on stderr),
    /// a second quits at once.
    pub fn stop_on_signals(&self, first: impl Into<String>) -> Result<()> {
        let _entered = self.tokio().enter();
        signals::install(self.host.stop.clone(), first.into())
    }

    /// Run a transport's async main to its end.
    pub fn block_on<T>(&self, main: impl std::future::Future<Output = T>) -> T {
        self.tokio().block_on(main)
    }

    fn tokio(&self) -> &tokio::runtime::Runtime {
        self.tokio.as_ref().expect("taken only by the drop")
    }
}

impl Host {
    /// The services alone, without an async runtime of their own (the tests run them on
    /// theirs).
    pub fn start(config: &RuntimeConfig) -> Result<Arc<Self>> {
        Self::start_on(config, backend_by_name(&config.backend)?)
    }

    /// The services on a backend already opened (`config.backend` is not read).
    pub fn start_on(config: &RuntimeConfig, backend: Box<dyn Backend>) -> Result<Arc<Self>> {
        let plugins = PluginHost::new(config.plugin_limits)?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_build_info(backend.name(), &backend.device_description());
        let compute = ComputeService::new(backend, config.batch).with_metrics(metrics.clone());
        let compute = Arc::new(if config.progress {
            compute.with_progress(Box::new(Bars))
        } else {
            compute.with_progress(Box::new(Silent))
        });
        let first_check = if config.self_test {
            let report = crate::selftest::require(&compute)?;
            eprintln!("powhost: {}", report.summary());
            Some(report)
        } else {
            None
        };
        let probe = {
            let compute = compute.clone();
            Box::new(move || crate::selftest::run(&compute))
        };
        Ok(Arc::new(Host {
            plugins,
            compute,
            outbox: Arc::new(Outbox::new(config.delivery.clone())?),
            stop: Stop::new(),
            health: DeviceHealth::new(probe, metrics.clone(), first_check.as_ref()),
            metrics,
        }))
    }

    /// A built-in plugin by name, or a component file by path.
    pub fn load(&self, name_or_path: &str) -> Result<Arc<Plugin>> {
        self.plugins.load(name_or_path).map(Arc::new)
    }

    /// A plugin call, off the async threads (wasmtime calls are synchronous), holding its
    /// compute slot, if any, until done.
    pub async fn call(
        self: &Arc<Self>,
        plugin: &Arc<Plugin>,
        request: String,
        call: CallContext,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<PluginReply, PluginFailure> {
        let (host, plugin) = (self.clone(), plugin.clone());
        let name = plugin.info.name.clone();
        let reply = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            host.plugins.handle(&plugin, &request, call)
        })
        .await
        .unwrap_or_else(|e| {
            Err(PluginFailure {
                message: format!("the plugin call failed in the host: {e}"),
            })
        });
        self.metrics.plugin_call(&name, plugin_outcome(&reply));
        reply
    }

    /// Deliver what the outbox holds for at most `within` (posts still in flight then are
    /// cut), keep what is left in `keep` (or the log) and say so; `what` names the results ("callbacks", "results"). Exit 1 when
    /// something was left.
    pub async fn deliver_rest(
        &self,
        within: Duration,
        keep: Option<&Path>,
        what: &str,
    ) -> ExitCode {
        let left = self.outbox.flush(within, keep).await;
        if left > 0 {
            eprintln!(
                "powhost: {left} {what} could not be delivered; {}",
                match keep {
                    Some(path) => format!("they are kept in {}", path.display()),
                    None => "their bodies are in the log above".to_string(),
                }
            );
            return ExitCode::FAILURE;
        }
        eprintln!("powhost: stopped; every one of the {what} was delivered");
        ExitCode::SUCCESS
    }
}

/// How a plugin call ended, as `powhost_plugin_*` counts it.
fn plugin_outcome(reply: &Result<PluginReply, PluginFailure>) -> PluginOutcome {
    match reply {
        Ok(PluginReply::Ok(_)) => PluginOutcome::Answered,
        Ok(PluginReply::Error(_)) => PluginOutcome::ErrorReply,
        Err(failure) => PluginOutcome::Failed(failure.kind()),
    }
}
