//! The plugin host: loads WebAssembly components of the `gonka:pow/handler` world
//! (`wit/pow.wit`) and runs each request in a fresh sandbox.
//!
//! A plugin gets only the imports the WIT grants (compute, session, log) plus what Rust's
//! standard library links: closed stdio, and clocks that reveal nothing (the Unix epoch, and a
//! time that moves only when the plugin sleeps, by what it slept; see `clocks`). No files,
//! network, environment or randomness. Every call runs under a memory cap and a limit on the time spent in plugin code (time computing
//! distances or writing emitted results does not count, until the caller cancels). A
//! plugin that traps, loops, runs out of memory or does not match the world fails that
//! call with an error naming it; the host throws the sandbox away and serves the next
//! request.

mod builtin;
mod cache;
mod clocks;
mod imports;

pub use builtin::BUILTIN;
use clocks::PluginClock;

use crate::compute_service::ComputeService;
use crate::runtime::stop::Stop;
use anyhow::{Context, Result, anyhow, bail};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ world: "handler", path: "../wit" });

use gonka::pow::types;

/// The WIT package this host speaks.
pub const WIT_PACKAGE: &str = "gonka:pow@0.1.0";

/// How often the epoch ticks: the granularity of the plugin time limit.
const TICK: Duration = Duration::from_millis(10);

/// Limits every plugin call runs under.
#[derive(Clone, Copy, Debug)]
pub struct PluginLimits {
    /// Linear memory a plugin instance may grow to.
    pub memory_bytes: usize,
    /// Time spent running plugin code in one call (host calls excluded).
    pub guest_time: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 1 << 30,
            guest_time: Duration::from_secs(10),
        }
    }
}

/// One engine and linker for all plugins, and the epoch ticker behind the time limits.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<State>,
    limits: PluginLimits,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A compiled plugin, checked against the world, ready to instantiate per call.
pub struct Plugin {
    /// The name it was loaded by (built-in name or path).
    pub source: String,
    pub info: PluginMeta,
    pre: HandlerPre<State>,
}

/// What a plugin says about itself.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub summary: String,
}

/// A plugin's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum PluginReply {
    Ok(String),
    Error(String),
}

/// A call that the plugin did not answer: it trapped, ran out of memory or time, or could
/// not be started. The message names the plugin.
#[derive(Debug)]
pub struct PluginFailure {
    pub message: String,
}

impl PluginFailure {
    /// What kind of failure, for the metrics: `time_limit`, `memory`, `trap`, `host` (the
    /// host could not run the call) or `failed`. Read from the sentence [`PluginHost`]
    /// writes for each (its `failure`), so that the two cannot disagree.
    pub fn kind(&self) -> &'static str {
        let m = &self.message;
        if m.contains("ran past its time limit") {
            "time_limit"
        } else if m.contains("ran out of its memory limit")
            || m.contains("passed more than its memory limit")
        {
            "memory"
        } else if m.contains(" trapped (") {
            "trap"
        } else if m.starts_with("the plugin call failed in the host") {
            "host"
        } else {
            "failed"
        }
    }
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginFailure {}

/// What a call may use of the host: compute, the stop signal, a sink for streamed results.
pub struct CallContext {
    /// None while the host only asks a plugin for its `info`.
    pub compute: Option<Arc<ComputeService>>,
    pub stop: Stop,
    pub emit: Box<dyn FnMut(&str) + Send>,
}

/// Per-call store data.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    /// What the WASI clocks read in this call.
    clock: PluginClock,
    limits: StoreLimits,
    plugin: String,
    call: CallContext,
    started: Instant,
    /// Time spent inside host imports in this call: not charged to the plugin.
    host_time: Duration,
    guest_limit: Duration,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl State {
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }
}

/// Interfaces a plugin may import: the WIT's own, and what of WASI Rust's standard library
/// links: stdio and exit (given closed: no environment, stdin empty, stdout dropped, stderr
/// captured) and the clocks (which tell nothing, see `clocks`). The linker holds all of WASI
/// p2 for simplicity, so anything else (random, filesystem, sockets) is refused here, before
/// instantiation.
const GRANTED_IMPORTS: &[&str] = &[
    "gonka:pow/",
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/wall-clock@",
    "wasi:clocks/monotonic-clock@",
];

fn check_imports(source: &str, component: &Component, engine: &Engine) -> Result<()> {
    let denied: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !GRANTED_IMPORTS.iter().any(|p| name.starts_with(p)))
        .collect();
    if !denied.is_empty() {
        bail!(
            "plugin `{source}` imports {}, which powhost does not grant (plugins get {WIT_PACKAGE}, stdio and clocks that tell no time: no randomness, files or network)",
            denied.join(", ")
        );
    }
    Ok(())
}

/// Whether `name_or_path` names a built-in plugin or a file (loading nothing): what the
/// command line checks.
pub fn check_source(name_or_path: &str) -> Result<()> {
    if BUILTIN.iter().any(|b| b.name == name_or_path) || std::path::Path::new(name_or_path).exists()
    {
        return Ok(());
    }
    let names: Vec<&str> = BUILTIN.iter().map(|b| b.name).collect();
    bail!(
        "unknown plugin `{name_or_path}`: it is neither a built-in plugin ({}) nor a file",
        names.join(", ")
    );
}

impl PluginHost {
    pub fn new(limits: PluginLimits) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| anyhow!("starting wasmtime: {e}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| clocks::add_to_linker(&mut linker))
            .map_err(|e| anyhow!("linking WASI: {e}"))?;
        Handler::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("linking the plugin imports: {e}"))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, stop) = (engine.weak(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .context("starting the plugin timer thread")?;
        Ok(Self {
            engine,
            linker,
            limits,
            ticker_stop,
        })
    }

    /// A built-in plugin by name, or a component file by path.
    pub fn load(&self, name_or_path: &str) -> Result<Plugin> {
        if let Some(b) = BUILTIN.iter().find(|b| b.name == name_or_path) {
            return self.load_bytes(b.name, b.wasm);
        }
        check_source(name_or_path)?;
        let path = std::path::Path::new(name_or_path);
        let bytes =
            crate::input::read_file_bounded(path, crate::input::MAX_PLUGIN_BYTES, "plugin file")?;
        self.load_bytes(name_or_path, &bytes)
    }

    /// Compile a component and check it against the `handler` world.
    pub fn load_bytes(&self, source: &str, wasm: &[u8]) -> Result<Plugin> {
        let start = Instant::now();
        let component = cache::compile(&self.engine, source, wasm)?;
        check_imports(source, &component, &self.engine)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(HandlerPre::new)
            .map_err(|e| {
                anyhow!("plugin `{source}` does not match the {WIT_PACKAGE} `handler` world: {e:#}")
            })?;
        let mut plugin = Plugin {
            source: source.to_string(),
            info: PluginMeta {
                name: source.to_string(),
                version: String::new(),
                summary: String::new(),
            },
            pre,
        };
        let idle = CallContext {
            compute: None,
            stop: Stop::new(),
            emit: Box::new(|_| {}),
        };
        let info = self
            .with_instance(&plugin, idle, |handler, store| handler.call_info(store))
            .map_err(|e| anyhow!("{e}"))?;
        plugin.info = PluginMeta {
            name: info.name,
            version: info.version,
            summary: info.summary,
        };
        log::debug!(
            "loaded plugin `{}` ({} {}) in {:.1} ms",
            source,
            plugin.info.name,
            plugin.info.version,
            start.elapsed().as_secs_f64() * 1e3
        );
        Ok(plugin)
    }

    /// Handle one request in a fresh sandbox.
    pub fn handle(
        &self,
        plugin: &Plugin,
        request: &str,
        call: CallContext,
    ) -> Result<PluginReply, PluginFailure> {
        let reply = self.with_instance(plugin, call, |handler, store| {
            handler.call_handle(store, request)
        })?;
        Ok(match reply.status {
            types::ReplyStatus::Ok => PluginReply::Ok(reply.body),
            types::ReplyStatus::Error => PluginReply::Error(reply.body),
        })
    }

    /// Instantiate `plugin` in a new store with the call's limits and run `f`; a trap
    /// becomes a [`PluginFailure`] that says what happened.
    fn with_instance<R>(
        &self,
        plugin: &Plugin,
        call: CallContext,
        f: impl FnOnce(&Handler, &mut Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginFailure> {
        let stderr = MemoryOutputPipe::new(64 << 10);
        let clock = PluginClock::default();
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .instances(16)
            .tables(16)
            .memories(4)
            .build();
        let state = State {
            wasi,
            table: ResourceTable::new(),
            clock,
            limits,
            plugin: plugin.info.name.clone(),
            call,
            started: Instant::now(),
            host_time: Duration::ZERO,
            guest_limit: self.limits.guest_time,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // What one call to the host may carry out of the plugin (a reply, a list of nonces):
        // the plugin's own memory limit, not wasmtime's default 128 MiB, so that there is one
        // limit and --plugin-memory names it.
        store.set_hostcall_fuel(self.limits.memory_bytes);
        // Checked every tick: only time spent in plugin code counts against the limit.
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().guest_time() > ctx.data().guest_limit {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.set_epoch_deadline(1);

        let result = plugin
            .pre
            .instantiate(&mut store)
            .and_then(|handler| f(&handler, &mut store));
        result.map_err(|e| self.failure(plugin, &store, &stderr, e))
    }

    fn failure(
        &self,
        plugin: &Plugin,
        store: &Store<State>,
        stderr: &MemoryOutputPipe,
        e: wasmtime::Error,
    ) -> PluginFailure {
        let name = &plugin.source;
        let what = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "ran past its time limit ({:.1} s of plugin code in one call) and was stopped",
                store.data().guest_limit.as_secs_f64()
            ),
            Some(trap) => format!("trapped ({trap})"),
            None if format!("{e:#}").contains("growing memory") => format!(
                "ran out of its memory limit ({} MiB) and was stopped",
                self.limits.memory_bytes >> 20
            ),
            None if format!("{e:#}").contains("fuel allocated for hostcalls") => format!(
                "passed more than its memory limit ({} MiB) to the host in one call and was stopped",
                self.limits.memory_bytes >> 20
            ),
            None => format!("failed: {e:#}"),
        };
        // A Rust plugin's panic message, without the backtrace hint.
        let printed: Vec<String> = String::from_utf8_lossy(&stderr.contents())
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note:"))
            .map(str::to_string)
            .collect();
        let printed = match printed.join(" ") {
            p if p.is_empty() => String::new(),
            p => format!("; it printed: {}", p.chars().take(500).collect::<String>()),
        };
        log::debug!("plugin `{name}` failure detail: {e:?}");
        PluginFailure {
            message: format!("plugin `{name}` {what}{printed}"),
        }
    }
}

#[cfg(test)]
mod tests;
