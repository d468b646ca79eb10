//! Plugins may import the WASI clocks (Rust's standard library links them), and learn no time
//! from them: the wall clock reads the Unix epoch plus what the plugin slept, the monotonic
//! clock what it slept, and a sleep returns at once.

use serde_json::Value;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{TempFile, misbehave_plugin, powhost};

const MISBEHAVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm"));

/// What the fixture's `clocks` request sleeps.
const SLEEP: Duration = Duration::from_secs(3600);

/// `powhost run --plugin PLUGIN` on `request`, failed (not waited for) if it is not done in
/// `limit`.
fn run_within(limit: Duration, plugin: &str, request: &str) -> std::process::Output {
    let mut child = powhost()
        .args(["run", "--plugin", plugin])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start powhost");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("`powhost run` on {request:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_fixture_imports_the_wasi_clocks() {
    // Otherwise the test below would prove nothing.
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, MISBEHAVE).unwrap();
    let imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    for clock in ["wasi:clocks/wall-clock@", "wasi:clocks/monotonic-clock@"] {
        assert!(
            imports.iter().any(|i| i.starts_with(clock)),
            "{clock}: {imports:?}"
        );
    }
}

#[test]
fn a_plugin_reading_the_clocks_loads_learns_no_time_and_does_not_wait_its_sleep() {
    let plugin = misbehave_plugin();
    // Far less than the hour slept: the host must not wait it.
    let out = run_within(Duration::from_secs(120), plugin.path(), "clocks");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let slept = SLEEP.as_nanos() as u64;
    assert_eq!(
        reply,
        serde_json::json!({
            "wall_before_ns": 0,
            "wall_after_ns": slept,
            "monotonic_slept_ns": slept,
        }),
        "the clocks must read the epoch and the time slept, nothing of the host's time"
    );
}

#[test]
fn randomness_is_still_refused() {
    let component = wat::parse_str(
        r#"(component
             (import "wasi:random/random@0.2.0"
               (instance (export "get-random-u64" (func (result u64)))))
           )"#,
    )
    .unwrap();
    let plugin = TempFile::new("random.wasm", &component);
    let out = run_within(Duration::from_secs(120), plugin.path(), "{}");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("wasi:random/random") && stdout.contains("does not grant"),
        "{stdout}"
    );
}
