//! What an operator's Prometheus scrapes from `powhost serve` (`GET /metrics`) and from
//! `powhost worker --metrics-listen`: the work done (nonces, forward passes, model builds,
//! plugin calls), the device's self-test, and, read at each scrape, the jobs, the results
//! still to deliver and the process's memory (live.rs). One [`Metrics`] per runtime, so that
//! tests running side by side each count only their own work. The Prometheus text format
//! (0.0.4, as the network's own engine serves it) is written by `prometheus-client`.

#[cfg(test)]
pub mod exposition;
mod live;
pub mod server;
#[cfg(test)]
mod tests;

pub use live::{JobCount, Live};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginFailureLabels {
    plugin: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    backend: String,
    device: String,
}

/// How a plugin call ended, as the metrics count it.
#[derive(Clone, Copy, Debug)]
pub enum PluginOutcome {
    /// An OK reply.
    Answered,
    /// An error response (a refused or failed request): the plugin did its job.
    ErrorReply,
    /// No answer, by kind (`PluginFailure::kind`).
    Failed(&'static str),
}

/// The runtime's metrics.
pub struct Metrics {
    registry: Registry,
    live: Arc<live::LiveCollector>,
    nonces_computed: Family<BackendLabel, Counter>,
    nonces_valid: Family<BackendLabel, Counter>,
    batch_seconds: Family<BackendLabel, Histogram>,
    model_build_seconds: Family<BackendLabel, Histogram>,
    model_block_height: Gauge,
    plugin_calls: Family<PluginLabel, Counter>,
    plugin_failures: Family<PluginFailureLabels, Counter>,
    plugin_error_replies: Family<PluginLabel, Counter>,
    selftest_passed: Gauge,
    selftest_max_abs_diff: Gauge<f64, AtomicU64>,
    selftest_checks: Counter,
    build_info: Family<BuildLabels, Gauge>,
    /// One scrape at a time: the live snapshot is set, then written.
    render: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Doubling buckets over 16 steps: 1 ms to 33 s for a forward pass.
fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Doubling buckets over 16 steps: 10 ms to 5.5 min for a model build.
fn build_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("powhost");
        let m = Self {
            live: Arc::new(live::LiveCollector::default()),
            nonces_computed: Family::default(),
            nonces_valid: Family::default(),
            batch_seconds: Family::new_with_constructor(batch_histogram as fn() -> Histogram),
            model_build_seconds: Family::new_with_constructor(build_histogram as fn() -> Histogram),
            model_block_height: Gauge::default(),
            plugin_calls: Family::default(),
            plugin_failures: Family::default(),
            plugin_error_replies: Family::default(),
            selftest_passed: Gauge::default(),
            selftest_max_abs_diff: Gauge::default(),
            selftest_checks: Counter::default(),
            build_info: Family::default(),
            render: Mutex::new(()),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "nonces_computed",
            "Nonces whose distance the backend computed",
            m.nonces_computed.clone(),
        );
        r.register(
            "nonces_valid",
            "Nonces under the PoC's r_target found by serve's generation loop (a plugin's own filtering is not seen by the host)",
            m.nonces_valid.clone(),
        );
        r.register_with_unit(
            "batch",
            "Forward passes (one batch of nonces each) and the time each took",
            Unit::Seconds,
            m.batch_seconds.clone(),
        );
        r.register_with_unit(
            "model_build",
            "Model builds (weight pool drawn and loaded on the backend) and the time each took",
            Unit::Seconds,
            m.model_build_seconds.clone(),
        );
        r.register(
            "model_block_height",
            "Block height of the PoC whose model serve was last initialised for (0: none yet)",
            m.model_block_height.clone(),
        );
        r.register(
            "plugin_calls",
            "Plugin calls, by plugin",
            m.plugin_calls.clone(),
        );
        r.register(
            "plugin_failures",
            "Plugin calls that did not answer, by plugin and kind (time_limit, memory, trap, failed, host)",
            m.plugin_failures.clone(),
        );
        r.register(
            "plugin_error_replies",
            "Plugin calls answered with an error response (a refused or failed request), by plugin",
            m.plugin_error_replies.clone(),
        );
        r.register(
            "selftest_passed",
            "1 when the device's last self-test matched the reference, else 0",
            m.selftest_passed.clone(),
        );
        r.register(
            "selftest_max_abs_diff",
            "Largest |distance difference| against the reference in the last self-test",
            m.selftest_max_abs_diff.clone(),
        );
        r.register(
            "selftest_checks",
            "Self-tests run (at start and by health checks)",
            m.selftest_checks.clone(),
        );
        r.register(
            "build_info",
            "Always 1; the labels say which powhost, backend and device",
            m.build_info.clone(),
        );
        r.register_collector(Box::new(m.live.clone()));
        Self { registry, ..m }
    }

    /// Name the backend and device in `powhost_build_info`, and show the backend's counts
    /// from zero (a series that appears only at its first increment hides that increase).
    pub fn set_build_info(&self, backend: &str, device: &str) {
        let backend_label = label(backend);
        let _ = self.nonces_computed.get_or_create(&backend_label);
        let _ = self.nonces_valid.get_or_create(&backend_label);
        let _ = self.batch_seconds.get_or_create(&backend_label);
        let _ = self.model_build_seconds.get_or_create(&backend_label);
        self.build_info.clear();
        self.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                backend: backend.into(),
                device: device.into(),
            })
            .set(1);
    }

    /// `n` distances computed on `backend`.
    pub fn nonces_computed(&self, backend: &str, n: usize) {
        self.nonces_computed
            .get_or_create(&label(backend))
            .inc_by(n as u64);
    }

    /// `n` nonces found valid on `backend`.
    pub fn nonces_valid(&self, backend: &str, n: usize) {
        self.nonces_valid
            .get_or_create(&label(backend))
            .inc_by(n as u64);
    }

    /// Times the forward passes of one compute call: call [`BatchTimer::batch_done`] after each.
    pub fn batch_timer(&self, backend: &str) -> BatchTimer {
        BatchTimer {
            histogram: self.batch_seconds.get_or_create(&label(backend)).clone(),
            last: Mutex::new(Instant::now()),
        }
    }

    pub fn model_built(&self, backend: &str, seconds: f64) {
        self.model_build_seconds
            .get_or_create(&label(backend))
            .observe(seconds);
    }

    pub fn model_block_height(&self, height: i64) {
        self.model_block_height.set(height);
    }

    /// One plugin call and how it ended.
    pub fn plugin_call(&self, plugin: &str, outcome: PluginOutcome) {
        let name = PluginLabel {
            plugin: plugin.into(),
        };
        self.plugin_calls.get_or_create(&name).inc();
        match outcome {
            PluginOutcome::Answered => {}
            PluginOutcome::ErrorReply => {
                self.plugin_error_replies.get_or_create(&name).inc();
            }
            PluginOutcome::Failed(kind) => {
                self.plugin_failures
                    .get_or_create(&PluginFailureLabels {
                        plugin: plugin.into(),
                        kind: kind.into(),
                    })
                    .inc();
            }
        }
    }

    /// A self-test's verdict; a device that could not compute at all reports no difference.
    pub fn selftest(&self, passed: bool, max_abs_diff: Option<f64>) {
        self.selftest_checks.inc();
        self.selftest_passed.set(i64::from(passed));
        if let Some(d) = max_abs_diff {
            self.selftest_max_abs_diff.set(d);
        }
    }

    /// The device has not answered a self-test for too long: failing, with nothing compared.
    pub fn selftest_unanswered(&self) {
        self.selftest_passed.set(0);
    }

    /// The exposition, with `live` as what the scrape-time series say.
    pub fn render(&self, live: Live) -> String {
        let _one_at_a_time = self.render.lock().unwrap_or_else(|p| p.into_inner());
        self.live.set(live);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

fn label(backend: &str) -> BackendLabel {
    BackendLabel {
        backend: backend.into(),
    }
}

/// Observes the time between a compute call's progress reports: one forward pass each.
pub struct BatchTimer {
    histogram: Histogram,
    last: Mutex<Instant>,
}

impl BatchTimer {
    pub fn batch_done(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        self.histogram
            .observe(now.duration_since(*last).as_secs_f64());
        *last = now;
    }
}
