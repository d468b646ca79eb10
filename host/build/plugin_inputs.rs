//! What the plugin build reads, and one hash over exactly that: the committed components in
//! `plugins/prebuilt/` are used only by toolchains that cannot build them, and only while this
//! hash matches the one recorded beside them. Anything that cannot change the components must
//! stay out of it, or a host-only change (a dependency bump, a comment in a plugin test) would
//! make the prebuilt components stale and only someone with the wasm target could refresh them.
//!
//! The inputs:
//! - each plugin crate's `src/`, its build script if it has one (byte for byte), and its
//!   `Cargo.toml` (as entries: comments and layout do not count). The plugin crates are the
//!   workspace members under `plugins/`. Tests, benches and other files beside `src/` are not
//!   compiled into the components.
//! - `wit/` (the bindings are generated from it) and `rust-toolchain.toml` (the compiler).
//! - of the root `Cargo.toml`, what the plugin build inherits from it: the profile it is built
//!   with and every profile that one `inherits`, package overrides included; the
//!   `[workspace.package]` keys and `[workspace.dependencies]` entries a plugin manifest takes
//!   with `workspace = true`; the workspace's feature `resolver`; and `[patch]`/`[replace]`,
//!   which can redirect any dependency. Members, host-only dependencies, other profiles and
//!   comments do not count.
//! - of `Cargo.lock`, the `[[package]]` entries of the plugins' dependency closure, found by
//!   walking the entries' `dependencies` lists from the plugin packages. The lock lists a
//!   package's dependencies for every platform and every feature the whole workspace enables,
//!   so the closure can hold a package the wasm build never compiles: a change there makes the
//!   prebuilt components stale for nothing, which is the safe side.
//!
//! Cargo.lock and the manifests are read with a reader for the subset of TOML they use (tables,
//! arrays of tables, `key = value` with values spanning lines inside brackets, basic and
//! literal strings, comments); no TOML crate is in the lock to build it with.

use super::toml_subset::{Table, parse_toml, strings_in};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where the plugin crates live, relative to the workspace.
const PLUGIN_DIR: &str = "plugins";

/// The files and entries the plugin build reads, gathered from a workspace.
pub struct PluginInputs {
    /// Files that count byte for byte, by path relative to the workspace, `/`-separated.
    files: BTreeMap<String, Vec<u8>>,
    /// TOML entries that count as (where, table header, key, value), comments and
    /// whitespace outside strings removed.
    entries: BTreeSet<(String, String, String, String)>,
}

impl PluginInputs {
    /// Gather the inputs of building the plugin crates with `profile`.
    pub fn read(workspace: &Path, profile: &str) -> Result<Self, String> {
        let mut inputs = PluginInputs {
            files: BTreeMap::new(),
            entries: BTreeSet::new(),
        };
        let root = parse_toml(&read_text(&workspace.join("Cargo.toml"))?);
        let crates = plugin_crates(&root);
        if crates.is_empty() {
            return Err(format!(
                "Cargo.toml: no workspace member under {PLUGIN_DIR}/"
            ));
        }
        inputs.add_file(workspace, "rust-toolchain.toml")?;
        inputs.add_tree(workspace, "wit")?;

        let mut plugin_packages = BTreeSet::new();
        let mut inherited_keys = BTreeSet::new();
        let mut workspace_deps = BTreeSet::new();
        for dir in &crates {
            let manifest_path = format!("{dir}/Cargo.toml");
            let manifest = parse_toml(&read_text(&workspace.join(&manifest_path))?);
            inputs.add_entries(&manifest_path, &manifest, |_, _| true);
            let name = package_name(&manifest)
                .ok_or_else(|| format!("{manifest_path}: no [package] name"))?;
            plugin_packages.insert(name);
            inherited_keys.extend(inherited_package_keys(&manifest));
            workspace_deps.extend(workspace_dependencies(&manifest));
            inputs.add_tree(workspace, &format!("{dir}/src"))?;
            if let Some(script) = build_script(workspace, dir, &manifest) {
                inputs.add_file(workspace, &script)?;
            }
        }

        // What the plugin build takes from the root manifest (the module docs say why).
        let profiles = profile_chain(&root, profile);
        let in_profile = |header: &str| {
            profiles.iter().any(|p| {
                let table = format!("profile.{p}");
                header == table || header.starts_with(&format!("{table}."))
            })
        };
        inputs.add_entries("Cargo.toml", &root, |header, key| match header {
            "workspace" => key == "resolver",
            "workspace.package" => inherited_keys.contains(key_name(key)),
            "workspace.dependencies" => workspace_deps.contains(key_name(key)),
            "replace" => true,
            _ => {
                in_profile(header)
                    || header.starts_with("patch.")
                    || dependency_table_of(header, "workspace.dependencies")
                        .is_some_and(|dep| workspace_deps.contains(dep))
            }
        });

        let lock = parse_toml(&read_text(&workspace.join("Cargo.lock"))?);
        for entry in lock_closure(&lock, &plugin_packages)? {
            let id = format!("{} {}", entry.get("name"), entry.get("version"));
            inputs.add_entries(
                &format!("Cargo.lock {id}"),
                std::slice::from_ref(entry),
                |_, _| true,
            );
        }
        Ok(inputs)
    }

    /// FNV-1a (64-bit) over every input, each field length-prefixed, in a fixed order: enough
    /// to tell whether the prebuilt components match these sources (not a security check).
    pub fn hash(&self) -> String {
        let mut hash = Fnv1a::new();
        for (path, bytes) in &self.files {
            hash.field(b"file");
            hash.field(path.as_bytes());
            hash.field(bytes);
        }
        for (place, header, key, value) in &self.entries {
            hash.field(b"entry");
            for field in [place, header, key, value] {
                hash.field(field.as_bytes());
            }
        }
        format!("fnv1a64:{:016x}", hash.0)
    }

    /// The files that count byte for byte, relative to the workspace (for the tests: the build
    /// script only needs the hash).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    fn add_file(&mut self, workspace: &Path, relative: &str) -> Result<(), String> {
        let path = workspace.join(relative);
        let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        self.files.insert(relative.to_string(), bytes);
        Ok(())
    }

    /// Every file under `relative` (a missing directory adds nothing).
    fn add_tree(&mut self, workspace: &Path, relative: &str) -> Result<(), String> {
        let path = workspace.join(relative);
        if path.is_file() {
            return self.add_file(workspace, relative);
        }
        if !path.is_dir() {
            return Ok(());
        }
        let entries =
            std::fs::read_dir(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading {}: {e}", path.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            self.add_tree(workspace, &format!("{relative}/{name}"))?;
        }
        Ok(())
    }

    /// The entries of `tables` that `keep(header, key)` says count.
    fn add_entries(&mut self, place: &str, tables: &[Table], keep: impl Fn(&str, &str) -> bool) {
        for table in tables {
            let header = match table.array {
                true => format!("[{}]", table.header),
                false => table.header.clone(),
            };
            for (key, value) in &table.entries {
                if keep(&table.header, key) {
                    self.entries
                        .insert((place.into(), header.clone(), key.clone(), value.clone()));
                }
            }
        }
    }
}

/// What `cargo:rerun-if-changed` must watch for the hash and the components to follow the
/// inputs. Whole plugin crate directories rather than their `src/`: a build script added
/// beside `src/` is an input, and cargo cannot watch a file that does not exist yet. Changes
/// there that are not inputs rerun the build script but leave the hash as it was.
pub fn watched_paths(workspace: &Path) -> Result<Vec<PathBuf>, String> {
    let root = parse_toml(&read_text(&workspace.join("Cargo.toml"))?);
    let mut paths: Vec<PathBuf> = ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "wit"]
        .iter()
        .map(|p| workspace.join(p))
        .collect();
    paths.extend(plugin_crates(&root).iter().map(|dir| workspace.join(dir)));
    Ok(paths)
}

struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn field(&mut self, bytes: &[u8]) {
        for &b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The workspace members under `plugins/`, sorted.
fn plugin_crates(root: &[Table]) -> Vec<String> {
    let mut crates: Vec<String> = root
        .iter()
        .filter(|t| t.header == "workspace" && !t.array)
        .filter_map(|t| t.get_raw("members"))
        .flat_map(strings_in)
        .map(|m| m.trim_end_matches('/').to_string())
        .filter(|m| m.starts_with(&format!("{PLUGIN_DIR}/")))
        .collect();
    crates.sort();
    crates.dedup();
    crates
}

fn package_name(manifest: &[Table]) -> Option<String> {
    let package = manifest.iter().find(|t| t.header == "package")?;
    strings_in(package.get_raw("name")?).into_iter().next()
}

/// `[package]` keys taken from `[workspace.package]`: `version.workspace = true` or
/// `version = { workspace = true }`.
fn inherited_package_keys(manifest: &[Table]) -> Vec<String> {
    manifest
        .iter()
        .filter(|t| t.header == "package")
        .flat_map(|t| &t.entries)
        .filter(|(key, value)| takes_workspace(key, value))
        .map(|(key, _)| key_name(key).to_string())
        .collect()
}

/// Dependencies the manifest takes from `[workspace.dependencies]`, in the tables that build
/// the crate (`dependencies`, `build-dependencies`, and their `target.*` forms; not
/// `dev-dependencies`, which the component never links).
fn workspace_dependencies(manifest: &[Table]) -> Vec<String> {
    let mut deps = Vec::new();
    for table in manifest {
        let header = table.header.as_str();
        let building = |kind: &str| {
            header == kind
                || (header.starts_with("target.") && header.ends_with(&format!(".{kind}")))
        };
        if building("dependencies") || building("build-dependencies") {
            deps.extend(
                table
                    .entries
                    .iter()
                    .filter(|(key, value)| takes_workspace(key, value))
                    .map(|(key, _)| key_name(key).to_string()),
            );
        }
        // `[dependencies.serde]` with `workspace = true` inside.
        for kind in ["dependencies", "build-dependencies"] {
            if let Some(dep) = dependency_table_of(header, kind)
                && table.get_raw("workspace") == Some("true")
            {
                deps.push(dep.to_string());
            }
        }
    }
    deps
}

fn takes_workspace(key: &str, value: &str) -> bool {
    (key.ends_with(".workspace") && value == "true")
        || (value.starts_with('{') && value.contains("workspace=true"))
}

/// `serde` of `serde.workspace`, `serde.features` or `serde`.
fn key_name(key: &str) -> &str {
    key.split('.').next().unwrap_or(key).trim_matches('"')
}

/// `serde` of a `[<kind>.serde]` table header.
fn dependency_table_of<'h>(header: &'h str, kind: &str) -> Option<&'h str> {
    header
        .strip_prefix(kind)?
        .strip_prefix('.')
        .map(|dep| dep.trim_matches('"'))
}

/// The crate's build script, relative to the workspace: `package.build` if it names one,
/// else `build.rs` beside the manifest if it exists (cargo's default).
fn build_script(workspace: &Path, dir: &str, manifest: &[Table]) -> Option<String> {
    let declared = manifest
        .iter()
        .find(|t| t.header == "package")
        .and_then(|t| t.get_raw("build"));
    match declared {
        Some("false") => None,
        Some(value) => strings_in(value)
            .first()
            .map(|path| format!("{dir}/{path}")),
        None => {
            let default = format!("{dir}/build.rs");
            workspace.join(&default).is_file().then_some(default)
        }
    }
}

/// `profile` and the profiles it inherits from, through `inherits` (a built-in profile
/// without one inherits nothing cargo reads from the manifest).
fn profile_chain(root: &[Table], profile: &str) -> Vec<String> {
    let mut chain = vec![profile.to_string()];
    while let Some(parent) = root
        .iter()
        .find(|t| t.header == format!("profile.{}", chain.last().unwrap()))
        .and_then(|t| t.get_raw("inherits"))
        .and_then(|v| strings_in(v).into_iter().next())
    {
        if chain.contains(&parent) {
            break;
        }
        chain.push(parent);
    }
    chain
}

/// The lock's `[[package]]` entries the plugin packages depend on, themselves included.
fn lock_closure<'l>(
    lock: &'l [Table],
    plugins: &BTreeSet<String>,
) -> Result<Vec<&'l Table>, String> {
    let packages: Vec<&Table> = lock
        .iter()
        .filter(|t| t.array && t.header == "package")
        .collect();
    let mut todo = Vec::new();
    for name in plugins {
        let index = packages
            .iter()
            .position(|p| p.get("name") == *name)
            .ok_or_else(|| format!("Cargo.lock does not list the plugin package {name}"))?;
        todo.push(index);
    }
    let mut closure = BTreeSet::new();
    while let Some(index) = todo.pop() {
        if !closure.insert(index) {
            continue;
        }
        let package = packages[index];
        let name = package.get("name");
        // A path dependency has no `source`: its sources are inputs, and only the plugin
        // crates' are hashed.
        if package.get_raw("source").is_none() && !plugins.contains(&name) {
            return Err(format!(
                "the plugins depend on the workspace crate {name}, outside {PLUGIN_DIR}/: its \
                 sources would be inputs of the plugin build that host/build/plugin_inputs.rs \
                 does not hash; move it under {PLUGIN_DIR}/"
            ));
        }
        let dependencies = package.get_raw("dependencies").map(strings_in);
        for dependency in dependencies.unwrap_or_default() {
            let before = todo.len();
            todo.extend(
                (0..packages.len()).filter(|&i| dependency_matches(&dependency, packages[i])),
            );
            if todo.len() == before {
                return Err(format!(
                    "Cargo.lock: {name} depends on `{dependency}`, which the lock does not list"
                ));
            }
        }
    }
    Ok(closure.into_iter().map(|i| packages[i]).collect())
}

/// Whether a lock `dependencies` item (`name`, `name version` or `name version (source)`,
/// as much as tells packages apart) refers to `package`.
fn dependency_matches(dependency: &str, package: &Table) -> bool {
    let (reference, source) = match dependency.split_once(" (") {
        Some((reference, source)) => (reference, Some(source.trim_end_matches(')'))),
        None => (dependency, None),
    };
    let mut parts = reference.split(' ');
    let name = parts.next().unwrap_or_default();
    let version = parts.next();
    package.get("name") == name
        && version.is_none_or(|v| package.get("version") == v)
        && source.is_none_or(|s| package.get("source") == s)
}
