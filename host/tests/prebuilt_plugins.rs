//! The components committed in `plugins/prebuilt/` (used by toolchains without the wasm target,
//! see host/build.rs) must be built from the current sources and answer as the ones built now;
//! the hash that says so must follow what the plugin build reads, and nothing else.

use serde_json::Value;
use std::path::Path;

mod common;
use common::{golden, powhost_with_stdin};

#[path = "../build/plugin_inputs.rs"]
mod plugin_inputs;
#[path = "../build/toml_subset.rs"]
mod toml_subset;
use plugin_inputs::{PluginInputs, watched_paths};

const PREBUILT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/prebuilt");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// The profile host/build.rs builds the plugins with.
const PROFILE: &str = "wasm-plugin";

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

/// A copy of what the hash may read of this workspace, to edit; removed when dropped.
fn scratch_workspace() -> tempfile::TempDir {
    let dir = common::tempdir();
    for item in [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        "wit",
        "plugins",
    ] {
        copy_tree(&Path::new(WORKSPACE).join(item), &dir.path().join(item));
    }
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

fn hash(workspace: &Path) -> String {
    PluginInputs::read(workspace, PROFILE).unwrap().hash()
}

/// Replace the first `old` in a file with `new`; the fixture text must be there.
fn edit(workspace: &Path, file: &str, old: &str, new: &str) {
    let path = workspace.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(old), "{file} no longer contains {old:?}");
    std::fs::write(&path, text.replacen(old, new, 1)).unwrap();
}

fn append(workspace: &Path, file: &str, text: &str) {
    let path = workspace.join(file);
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    bytes.extend_from_slice(text.as_bytes());
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn the_build_hashes_the_inputs_this_module_reads() {
    let built = include_str!(concat!(env!("OUT_DIR"), "/plugin-sources.hash"));
    assert_eq!(hash(Path::new(WORKSPACE)), built);
}

#[test]
fn every_hashed_file_is_watched_by_the_build_script() {
    let workspace = Path::new(WORKSPACE);
    let watched = watched_paths(workspace).unwrap();
    let inputs = PluginInputs::read(workspace, PROFILE).unwrap();
    let files: Vec<&str> = inputs.files().collect();
    assert!(files.contains(&"plugins/validator/src/lib.rs"), "{files:?}");
    assert!(files.contains(&"wit/pow.wit"), "{files:?}");
    for file in files.iter().copied().chain(["Cargo.toml", "Cargo.lock"]) {
        assert!(
            watched.iter().any(|w| workspace.join(file).starts_with(w)),
            "{file} is hashed but no rerun-if-changed covers it"
        );
    }
}

#[test]
fn what_the_plugin_build_does_not_read_leaves_the_hash_alone() {
    let scratch = scratch_workspace();
    let workspace = scratch.path();
    let before = hash(workspace);
    // A plugin's tests and files beside its sources.
    append(
        workspace,
        "plugins/validator/tests/binomtest.py",
        "# a comment in a plugin test\n",
    );
    std::fs::write(
        workspace.join("plugins/validator/tests/more.rs"),
        "// a new test\n",
    )
    .unwrap();
    std::fs::write(workspace.join("plugins/runpod/NOTES.md"), "notes\n").unwrap();
    // A host-only dependency added to the lock, and a host-only package bumped in it.
    edit(
        workspace,
        "Cargo.lock",
        "name = \"powhost\"\nversion = \"0.1.0\"\ndependencies = [\n",
        "name = \"powhost\"\nversion = \"0.1.0\"\ndependencies = [\n \"host-only\",\n",
    );
    append(
        workspace,
        "Cargo.lock",
        "\n[[package]]\nname = \"host-only\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"00\"\n",
    );
    edit(
        workspace,
        "Cargo.lock",
        "name = \"faer\"\nversion = \"0.24.4\"",
        "name = \"faer\"\nversion = \"0.24.5\"",
    );
    // Host-only workspace dependencies, another profile, comments and members.
    edit(
        workspace,
        "Cargo.toml",
        "rayon = \"1.10\"",
        "rayon = \"1.11\"\nnew-host-dep = \"1\"",
    );
    edit(
        workspace,
        "Cargo.toml",
        "[profile.dev]\nopt-level = 2",
        "[profile.dev]\nopt-level = 1",
    );
    edit(
        workspace,
        "Cargo.toml",
        "# Built-in plugins:",
        "# The built-in plugins:",
    );
    edit(
        workspace,
        "Cargo.toml",
        "lto = true",
        "lto = true # a comment",
    );
    edit(
        workspace,
        "Cargo.toml",
        "\"backends/cuda\", \"host\"",
        "\"backends/cuda\", \"host\", \"tools/x\"",
    );
    // A plugin manifest's comment and layout.
    edit(
        workspace,
        "plugins/kit/Cargo.toml",
        "[dependencies]\n",
        "[dependencies]\n# why\n\n",
    );
    assert_eq!(hash(workspace), before);
}

#[test]
fn what_the_plugin_build_reads_changes_the_hash() {
    let scratch = scratch_workspace();
    let workspace = scratch.path();
    let before = hash(workspace);
    let changes: &[(&str, &str, &str)] = &[
        (
            "plugins/validator/src/lib.rs",
            "",
            "// a comment in a plugin's source\n",
        ),
        ("plugins/kit/src/lib.rs", "", "\n"),
        ("wit/pow.wit", "", "\n"),
        (
            "rust-toolchain.toml",
            "channel = \"1.95.0\"",
            "channel = \"1.96.0\"",
        ),
        (
            "plugins/runpod/Cargo.toml",
            "[dependencies]\n",
            "[dependencies]\nitoa = \"1\"\n",
        ),
        // The plugins' profile and the one it inherits, package overrides included.
        ("Cargo.toml", "lto = true", "lto = false"),
        (
            "Cargo.toml",
            "[profile.release]\ncodegen-units = 1",
            "[profile.release]\ncodegen-units = 2",
        ),
        (
            "Cargo.toml",
            "[profile.release.package.\"*\"]\ncodegen-units = 16",
            "[profile.release.package.\"*\"]\ncodegen-units = 8",
        ),
        // What the plugin manifests take from the workspace.
        ("Cargo.toml", "version = \"0.1.0\"", "version = \"0.2.0\""),
        (
            "Cargo.toml",
            "features = [\"float_roundtrip\"]",
            "features = [\"float_roundtrip\", \"std\"]",
        ),
        ("Cargo.toml", "resolver = \"3\"", "resolver = \"2\""),
        // The plugins' own dependencies in the lock, direct and transitive.
        (
            "Cargo.lock",
            "name = \"rand_chacha\"\nversion = \"0.9.0\"",
            "name = \"rand_chacha\"\nversion = \"0.9.1\"",
        ),
        (
            "Cargo.lock",
            "checksum = \"67dca2c9c5",
            "checksum = \"77dca2c9c5",
        ),
    ];
    for (file, old, new) in changes {
        let original = std::fs::read(workspace.join(file)).unwrap();
        match old.is_empty() {
            true => append(workspace, file, new),
            false => edit(workspace, file, old, new),
        }
        assert_ne!(hash(workspace), before, "{file}: {old:?} -> {new:?}");
        std::fs::write(workspace.join(file), original).unwrap();
        assert_eq!(hash(workspace), before, "{file} restored");
    }
}
