//! The sandbox's limits, on the `misbehave` test plugin: each failure names the plugin and
//! the limit, and the host serves the next call.

use super::*;

const MISBEHAVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm"));

fn host(memory_mib: usize, guest_ms: u64) -> (PluginHost, Plugin) {
    let host = PluginHost::new(PluginLimits {
        memory_bytes: memory_mib << 20,
        guest_time: Duration::from_millis(guest_ms),
    })
    .unwrap();
    let plugin = host.load_bytes("misbehave", MISBEHAVE).unwrap();
    (host, plugin)
}

fn call(host: &PluginHost, plugin: &Plugin, request: &str) -> Result<PluginReply, PluginFailure> {
    host.handle(
        plugin,
        request,
        CallContext {
            compute: None,
            stop: Stop::new(),
            emit: Box::new(|_| {}),
        },
    )
}

#[test]
fn a_plugin_past_its_memory_limit_is_stopped_and_the_next_call_served() {
    let (host, plugin) = host(64, 5_000);
    let failure = call(&host, &plugin, "memory").unwrap_err();
    assert!(
        failure
            .message
            .starts_with("plugin `misbehave` ran out of its memory limit (64 MiB)"),
        "{failure}"
    );
    assert_eq!(failure.kind(), "memory");
    assert_eq!(
        call(&host, &plugin, "hello").unwrap(),
        PluginReply::Ok("{\"echo\": \"hello\"}".into())
    );
}

#[test]
fn a_plugin_past_its_time_limit_is_stopped() {
    let (host, plugin) = host(64, 200);
    let started = Instant::now();
    let failure = call(&host, &plugin, "loop").unwrap_err();
    assert!(
        failure.message.contains("ran past its time limit (0.2 s"),
        "{failure}"
    );
    assert_eq!(failure.kind(), "time_limit");
    assert!(started.elapsed() < Duration::from_secs(5));
    let failure = call(&host, &plugin, "host-loop").unwrap_err();
    assert!(
        failure.message.contains("ran past its time limit"),
        "{failure}"
    );
}

#[test]
fn a_trap_is_a_failure_that_quotes_the_panic() {
    let (host, plugin) = host(64, 5_000);
    let failure = call(&host, &plugin, "trap").unwrap_err();
    assert!(failure.message.contains("trapped"), "{failure}");
    assert_eq!(failure.kind(), "trap");
    assert!(
        failure.message.contains("misbehaving on purpose"),
        "{failure}"
    );
}
