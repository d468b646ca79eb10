//! `powhost plugins`: the built-in plugins and what each does.

use crate::plugin_host::{BUILTIN, PluginHost, PluginLimits, WIT_PACKAGE};
use anyhow::Result;

pub fn run(json: bool) -> Result<()> {
    let host = PluginHost::new(PluginLimits::default())?;
    let mut infos = Vec::new();
    for builtin in BUILTIN {
        infos.push(host.load(builtin.name)?.info);
    }
    if json {
        let out = serde_json::json!({ "wit": WIT_PACKAGE, "plugins": infos });
        println!("{out}");
        return Ok(());
    }
    println!("Built-in plugins (world `handler` of {WIT_PACKAGE}; the first is the default):");
    for (i, info) in infos.iter().enumerate() {
        let default = if i == 0 { " (default)" } else { "" };
        println!(
            "  {} {}{default}\n      {}",
            info.name, info.version, info.summary
        );
    }
    println!("Load any other component with `powhost run --plugin PATH.wasm`.");
    Ok(())
}
