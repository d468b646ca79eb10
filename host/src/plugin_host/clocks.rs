//! The clocks a plugin sees. Rust's standard library links `wasi:clocks` for `SystemTime`,
//! `Instant` and `thread::sleep` (newer toolchains do so even in plugins that never ask the
//! time), so a plugin must be able to import them; but a plugin's answer must depend on its
//! request alone, so the clocks it reads reveal nothing of the host's time.
//!
//! Each call gets its own clock, which starts at zero and moves only when the plugin sleeps,
//! by exactly the time it asked to sleep: the wall clock reads the Unix epoch plus that time,
//! the monotonic clock that time in nanoseconds. A sleep returns at once, so a plugin that
//! sleeps for a year neither holds the host for a year nor learns anything; its plugin-time
//! limit still applies to everything it does between sleeps.

use super::State;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// One call's clock: the nanoseconds the plugin has slept so far. Shared by the WASI context's
/// clocks and the monotonic-clock interface of this module.
#[derive(Clone, Default)]
pub(crate) struct PluginClock {
    slept_ns: Arc<AtomicU64>,
}

impl PluginClock {
    fn slept_ns(&self) -> u64 {
        self.slept_ns.load(Ordering::Relaxed)
    }

    fn sleep_for(&self, ns: u64) {
        let _ = self
            .slept_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |slept| {
                Some(slept.saturating_add(ns))
            });
    }

    fn sleep_until(&self, ns: u64) {
        self.slept_ns.fetch_max(ns, Ordering::Relaxed);
    }
}

impl HostWallClock for PluginClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.slept_ns())
    }
}

impl HostMonotonicClock for PluginClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.slept_ns()
    }
}

/// Replace WASI's `wasi:clocks/monotonic-clock` in `linker` with this module's. The WASI
/// context's clock hooks cover `now` and `resolution`, but wasmtime-wasi's `subscribe-duration`
/// and `subscribe-instant` wait on the host's real clock whatever the hook says: a plugin could
/// hold the host as long as it liked (the plugin-time limit cannot stop a wait inside a host
/// call) and time its sleeps. Linked through wasmtime-wasi's own bindings, so the interface
/// and version replaced are exactly the ones it added.
pub(crate) fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added =
        monotonic_clock::add_to_linker::<State, PluginClocks>(linker, |state| PluginClockView {
            clock: &state.clock,
            table: &mut state.table,
        });
    linker.allow_shadowing(false);
    added
}

struct PluginClocks;

impl HasData for PluginClocks {
    type Data<'a> = PluginClockView<'a>;
}

struct PluginClockView<'a> {
    clock: &'a PluginClock,
    table: &'a mut ResourceTable,
}

impl PluginClockView<'_> {
    fn elapsed(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let ready = self.table.push(Elapsed)?;
        subscribe(self.table, ready)
    }
}

impl monotonic_clock::Host for PluginClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(HostMonotonicClock::now(self.clock))
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(HostMonotonicClock::resolution(self.clock))
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.sleep_until(when);
        self.elapsed()
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.sleep_for(duration);
        self.elapsed()
    }
}

/// A sleep that is over as soon as it is asked for: the clock has already moved past it.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}
