//! What the in-process tests share: a host on the CPU backend with the built-in plugins, the
//! golden files, a stand-in HTTP server (receiver.rs) and what generation delivered to it
//! (proof_batches.rs).

pub mod failing_device;
pub mod golden_response;
pub mod proof_batches;
// The serverless platform's stand-in in the worker tests uses what the lib's tests do not.
#[allow(dead_code)]
pub mod receiver;
pub mod tls_receiver;

use crate::delivery::DeliveryConfig;
use crate::plugin_host::PluginLimits;
use crate::runtime::{Host, RuntimeConfig};
use std::sync::Arc;
use std::time::Duration;

/// The services on the CPU backend, without self-test or progress.
pub fn host() -> Arc<Host> {
    host_with(PluginLimits::default())
}

/// The services on the CPU backend, with these plugin limits.
pub fn host_with(plugin_limits: PluginLimits) -> Arc<Host> {
    Host::start(&RuntimeConfig {
        backend: "cpu".into(),
        batch: None,
        plugin_limits,
        self_test: false,
        progress: false,
        delivery: delivery(),
        thread_name: "test",
    })
    .expect("the CPU host starts")
}

/// The services on `backend`, without self-test or progress.
pub fn host_on(backend: Box<dyn powhost_core::Backend>) -> Arc<Host> {
    Host::start_on(
        &RuntimeConfig {
            backend: "cpu".into(),
            batch: None,
            plugin_limits: PluginLimits::default(),
            self_test: false,
            progress: false,
            delivery: delivery(),
            thread_name: "test",
        },
        backend,
    )
    .expect("the host starts")
}

/// Short timeouts, and refused posts retried after half a second at most, so that a failing
/// receiver does not hold a test up.
pub fn delivery() -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_secs(2),
        backoff_max: Duration::from_millis(500),
        mtls: None,
    }
}

/// A directory of the test's own, removed with what is in it when dropped: also when the
/// test panics, so that no run leaves files behind.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("powhost-test-")
        .tempdir()
        .expect("a temporary directory")
}

/// A file of tests/golden, made by running the network's reference.
pub fn golden(name: &str) -> serde_json::Value {
    let path = format!("{}/../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
