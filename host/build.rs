//! Compiles the plugins under `plugins/` to WebAssembly components (`wasm32-wasip2`), so
//! that the built-in ones can be embedded in the binary and the test fixtures loaded by
//! the tests. The inner cargo gets its own target directory: sharing the outer one
//! deadlocks on cargo's build lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, file name in OUT_DIR). `runpod` and `validator` are embedded; `misbehave` is a
/// test fixture.
const PLUGINS: &[(&str, &str)] = &[
    ("powhost-plugin-runpod", "runpod.wasm"),
    ("powhost-plugin-validator", "validator.wasm"),
    ("powhost-plugin-misbehave", "misbehave.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    for watched in ["plugins", "wit", "Cargo.lock", "Cargo.toml"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: the wasm builds live beside
    // <profile>, shared by debug and release builds.
    let target_dir = out_dir.ancestors().nth(4).unwrap().join("wasm-plugins");
    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&workspace)
        .args([
            "build",
            "--profile",
            "wasm-plugin",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in PLUGINS {
        cargo.args(["-p", package]);
    }
    // The outer build's flags and target are not the plugins'; the jobserver
    // (CARGO_MAKEFLAGS) is kept so both builds share the same cores.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cargo.env_remove(var);
    }
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo: {e}"));
    if !status.success() {
        panic!(
            "building the plugins for wasm32-wasip2 failed (see above). If the target is \
             missing, run `rustup target add wasm32-wasip2` (rust-toolchain.toml lists it)."
        );
    }
    let built = target_dir.join("wasm32-wasip2").join("wasm-plugin");
    for (package, file) in PLUGINS {
        let from = built.join(format!("{}.wasm", package.replace('-', "_")));
        copy(&from, &out_dir.join(file));
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}
