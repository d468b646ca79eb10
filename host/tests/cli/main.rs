//! The `powhost` binary end to end, by concept:
//! - results.rs: golden results through the CLI (fingerprints, distances, bench's figures);
//! - bad_inputs.rs: every kind of bad input answered with one clear error line and a non-zero
//!   exit, never a panic;
//! - hostile_inputs.rs: unbounded, hanging, malformed and overflowing inputs;
//! - mtls_flags.rs: the mutual-TLS files, all three or none, refused at start-up when bad.
//! - usage_errors.rs: exit 2 for a command line no command can use, one test per command.

use common::tempdir;
use serde_json::Value;
use std::process::{Command, Output};

mod bad_inputs;
#[path = "../common/mod.rs"]
mod common;
mod hostile_inputs;
mod mtls_flags;
mod results;
mod usage_errors;

const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const KEY: &str = "test_public_key_12345678901234567890";

fn powhost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powhost"))
        .args(args)
        .output()
        .expect("run powhost")
}

fn golden(name: &str) -> Value {
    let path = format!("{}/../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "powhost failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}
