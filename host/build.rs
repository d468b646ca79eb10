//! Compiles the plugins under `plugins/` to WebAssembly components (`wasm32-wasip2`), so
//! that the built-in ones can be embedded in the binary and the test fixtures loaded by
//! the tests. The inner cargo gets its own target directory: sharing the outer one
//! deadlocks on cargo's build lock.
//!
//! A toolchain without the wasm target (and no rustup to add it) uses the components committed
//! in `plugins/prebuilt/`, if they were built from exactly these sources (a hash of what the
//! plugin build reads, kept beside them: `build/plugin_inputs.rs` says what counts);
//! `POWHOST_UPDATE_PREBUILT=1 cargo build --release` refreshes them, and a test fails when they
//! are stale.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/plugin_inputs.rs"]
mod plugin_inputs;
#[path = "build/toml_subset.rs"]
mod toml_subset;

/// (package, file name in OUT_DIR). `runpod` and `validator` are embedded; `misbehave` is a
/// test fixture.
const PLUGINS: &[(&str, &str)] = &[
    ("powhost-plugin-runpod", "runpod.wasm"),
    ("powhost-plugin-validator", "validator.wasm"),
    ("powhost-plugin-misbehave", "misbehave.wasm"),
];

const TARGET: &str = "wasm32-wasip2";
/// The root Cargo.toml's profile the plugins are built with.
const PROFILE: &str = "wasm-plugin";

/// Committed components for toolchains without the wasm target; not an input.
const PREBUILT: &str = "plugins/prebuilt";
const UPDATE_PREBUILT: &str = "POWHOST_UPDATE_PREBUILT";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    for watched in plugin_inputs::watched_paths(&workspace).unwrap_or_else(|e| fail(&e)) {
        println!("cargo:rerun-if-changed={}", watched.display());
    }
    println!("cargo:rerun-if-env-changed={UPDATE_PREBUILT}");
    let sources = plugin_inputs::PluginInputs::read(&workspace, PROFILE)
        .unwrap_or_else(|e| fail(&format!("reading the plugin build's inputs: {e}")))
        .hash();
    write(&out_dir.join("plugin-sources.hash"), sources.as_bytes());

    if !ensure_wasm_target() {
        use_prebuilt(&workspace, &out_dir, &sources);
        return;
    }

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out: the wasm builds live beside
    // <profile>, shared by debug and release builds.
    let target_dir = out_dir.ancestors().nth(4).unwrap().join("wasm-plugins");
    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&workspace)
        .args(["build", "--profile", PROFILE, "--target", TARGET])
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
        .unwrap_or_else(|e| fail(&format!("could not run cargo to build the plugins: {e}")));
    if !status.success() {
        fail(
            "building the built-in plugins for wasm32-wasip2 failed (the inner cargo's errors are above)",
        );
    }
    let built = target_dir.join(TARGET).join(PROFILE);
    for (package, file) in PLUGINS {
        let from = built.join(format!("{}.wasm", package.replace('-', "_")));
        copy(&from, &out_dir.join(file));
    }
    if env::var_os(UPDATE_PREBUILT).is_some_and(|v| v == "1") {
        let prebuilt = workspace.join(PREBUILT);
        if let Err(e) = std::fs::create_dir_all(&prebuilt) {
            fail(&format!("creating {}: {e}", prebuilt.display()));
        }
        for (_, file) in PLUGINS {
            copy(&out_dir.join(file), &prebuilt.join(file));
        }
        write(&prebuilt.join("SOURCES"), format!("{sources}\n").as_bytes());
        println!("cargo:warning=refreshed {PREBUILT} from these sources ({sources})");
    }
}

/// The toolchain cannot build the plugins: take the committed ones, if they are current.
fn use_prebuilt(workspace: &Path, out_dir: &Path, sources: &str) {
    let prebuilt = workspace.join(PREBUILT);
    let recorded = std::fs::read_to_string(prebuilt.join("SOURCES")).unwrap_or_default();
    if recorded.trim() != sources {
        fail(&format!(
            "the built-in plugins need the {TARGET} target, which this Rust toolchain lacks and \
             rustup could not add, and the prebuilt ones in {PREBUILT} were built from other \
             sources: run `rustup target add {TARGET}` (without rustup, install your \
             toolchain's {TARGET} standard library), then build again"
        ));
    }
    println!(
        "cargo:warning=using the prebuilt plugins in {PREBUILT} (built from these very sources), as this toolchain cannot build {TARGET}"
    );
    for (_, file) in PLUGINS {
        copy(&prebuilt.join(file), &out_dir.join(file));
    }
}

fn write(to: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(to, bytes) {
        fail(&format!("writing {}: {e}", to.display()));
    }
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        fail(&format!(
            "copying {} to {}: {e}",
            from.display(),
            to.display()
        ));
    }
}

/// The plugins are compiled for wasm32-wasip2: make sure the toolchain has it before minutes
/// of building. A rustup toolchain that lacks it gets it added (rust-toolchain.toml lists it,
/// but rustup adds listed targets only when it installs the toolchain); otherwise the build
/// falls back to the prebuilt components. Whether the target is there now.
fn ensure_wasm_target() -> bool {
    if wasm_target_present() {
        return true;
    }
    println!(
        "cargo:warning=the toolchain lacks the {TARGET} target the built-in plugins are compiled for: running `rustup target add {TARGET}`"
    );
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    added && wasm_target_present()
}

/// Whether the standard library for the target is installed.
fn wasm_target_present() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            })
        })
}

/// Stop the build with one sentence (a panic would add a backtrace note).
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
