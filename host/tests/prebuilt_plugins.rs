//! The components committed in `plugins/prebuilt/` (used by toolchains without the wasm target,
//! see host/build.rs) must be built from the current sources and answer as the ones built now.

use serde_json::Value;

mod common;
use common::{golden, powhost_with_stdin};

const PREBUILT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/prebuilt");

#[test]
fn prebuilt_plugins_are_built_from_the_current_sources() {
    let now = include_str!(concat!(env!("OUT_DIR"), "/plugin-sources.hash"));
    let recorded = std::fs::read_to_string(format!("{PREBUILT}/SOURCES")).unwrap_or_default();
    assert_eq!(
        recorded.trim(),
        now,
        "plugins/prebuilt is stale: run `POWHOST_UPDATE_PREBUILT=1 cargo build --release` and commit plugins/prebuilt"
    );
}

#[test]
fn prebuilt_runpod_answers_as_the_builtin() {
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let reply = |plugin: &[&str]| -> Value {
        let mut args = vec!["run", "--backend", "cpu"];
        args.extend_from_slice(plugin);
        let out = powhost_with_stdin(&args, &request);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let prebuilt = format!("{PREBUILT}/runpod.wasm");
    assert_eq!(reply(&["--plugin", &prebuilt]), reply(&[]));
}
