//! What the `powhost` integration tests share: the test seeds, the golden files, and the
//! binary run with a request on stdin or asked for distances directly; and, the same files as
//! the in-process tests use, the comparison with a golden response, a stand-in HTTP server (a
//! webhook receiver, or the serverless platform) and what generation delivered to it.
#![allow(dead_code)] // each test binary uses its own subset

#[path = "../../src/test_support/golden_response.rs"]
pub mod golden_response;
#[path = "../../src/test_support/proof_batches.rs"]
pub mod proof_batches;
#[path = "../../src/test_support/receiver.rs"]
pub mod receiver;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

pub const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";
pub const KEY: &str = "test_public_key_12345678901234567890";

/// The binary, with the caller's log settings removed.
pub fn powhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_powhost"));
    cmd.env_remove("RUST_LOG").env_remove("LOG_LEVEL");
    cmd
}

/// `powhost ARGS` with `stdin` as its input.
pub fn powhost_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = powhost()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start powhost");
    let mut input = child.stdin.take().unwrap();
    // A usage error exits before reading its input: a broken pipe then is no failure.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("powhost output")
}

/// A file of tests/golden, made by running the network's reference.
pub fn golden(name: &str) -> Value {
    let path = format!("{}/../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `powhost distances --json` on the CPU for these params and nonces, with the test seeds.
pub fn direct_distances(params: &Value, nonces: &str) -> Value {
    let out = powhost()
        .args(["distances", "--backend", "cpu", "--params"])
        .arg(params.to_string())
        .args([
            "--block-hash",
            HASH,
            "--public-key",
            KEY,
            "--nonces",
            nonces,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A directory of the test's own, removed with what is in it when dropped: also when the
/// test panics, so that no run leaves files behind.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("powhost-test-")
        .tempdir()
        .expect("a temporary directory")
}

/// A file under the name the test gives it (errors name it), in a directory of its own that
/// is removed when this is dropped: keep it while a process may read the file.
pub struct TempFile {
    path: String,
    _dir: tempfile::TempDir,
}

impl TempFile {
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        let dir = tempdir();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        Self {
            path: path.to_str().unwrap().to_string(),
            _dir: dir,
        }
    }

    /// The path, as a command-line argument.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// The `misbehave` test plugin (traps, loops, hoards memory on request) as a file, for
/// `--plugin PATH`.
pub fn misbehave_plugin() -> TempFile {
    TempFile::new(
        "misbehave.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm")),
    )
}
