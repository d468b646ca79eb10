//! Plugins compiled from `plugins/` by `build.rs` and embedded in the binary, so that
//! `powhost` works alone.

pub struct BuiltinPlugin {
    pub name: &'static str,
    pub wasm: &'static [u8],
}

/// The first is the default.
pub const BUILTIN: &[BuiltinPlugin] = &[
    BuiltinPlugin {
        name: "runpod",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/runpod.wasm")),
    },
    BuiltinPlugin {
        name: "validator",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/validator.wasm")),
    },
];
