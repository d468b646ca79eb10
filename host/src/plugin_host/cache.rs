//! The compiled-plugin cache: Cranelift takes ~120 ms per component, loading its machine
//! code back takes ~1 ms, so each component is compiled once per machine.

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compile a component, or load the machine code compiled for it earlier from the
/// cache (0.2 ms instead of ~120 ms of Cranelift per process start).
pub(super) fn compile(engine: &Engine, source: &str, wasm: &[u8]) -> Result<Component> {
    let cached = cache_path(engine, wasm);
    if let Some(path) = cached.as_deref().filter(|p| p.exists()) {
        // SAFETY: deserialising runs machine code from the file. The file is this host's
        // own `serialize` output, named by the hash of the component and of the engine's
        // configuration, in the user's own cache directory; wasmtime also checks its
        // header and refuses a file made by another version or configuration.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => return Ok(component),
            Err(e) => log::debug!("recompiling: cached {} unusable: {e}", path.display()),
        }
    }
    let component = Component::new(engine, wasm).map_err(|e| {
        anyhow!("plugin `{source}` is not a WebAssembly component this host can load: {e}")
    })?;
    if let Some(path) = cached
        && let Err(e) = write_cache(&path, &component)
    {
        log::debug!(
            "not caching the compiled plugin at {}: {e:#}",
            path.display()
        );
    }
    Ok(component)
}

/// Where compiled plugins are kept: `$POWHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/powhost`,
/// else `~/.cache/powhost`. `POWHOST_CACHE_DIR=off` turns the cache off.
fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("POWHOST_CACHE_DIR") {
        Some(dir) if dir == "off" => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("powhost")),
    }
}

fn cache_path(engine: &Engine, wasm: &[u8]) -> Option<PathBuf> {
    let dir = cache_dir()?;
    let mut engine_hash = std::hash::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let key = Sha256::new()
        .chain_update(wasm)
        .chain_update(engine_hash.finish().to_le_bytes())
        .chain_update(env!("CARGO_PKG_VERSION"))
        .finalize();
    let hex: String = key[..16].iter().map(|b| format!("{b:02x}")).collect();
    Some(dir.join(format!("plugin-{hex}.cwasm")))
}

/// Written beside its final name, then renamed: a reader never sees half a file.
fn write_cache(path: &Path, component: &Component) -> Result<()> {
    let bytes = component.serialize().map_err(|e| anyhow!("{e}"))?;
    let dir = path.parent().context("cache path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
