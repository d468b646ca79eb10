//! `powhost run` end to end, by concept:
//! - golden_responses.rs: the default plugin against the reference handler's golden responses;
//! - streams.rs: streaming, the time limit, and cancellation;
//! - requests.rs: large requests, `--ndjson`, every kind of bad request answered with an error
//!   JSON and exit 1, bad flags;
//! - plugins.rs: bad plugins contained while the host keeps answering, and the plugin cache.

use serde_json::Value;
use std::process::Output;

#[path = "../common/mod.rs"]
mod common;
mod golden_responses;
mod plugins;
mod requests;
mod streams;

use common::{golden, powhost_with_stdin};

/// `powhost run ARGS` with `stdin` as the request.
fn run(args: &[&str], stdin: &str) -> Output {
    let args: Vec<&str> = std::iter::once("run").chain(args.iter().copied()).collect();
    powhost_with_stdin(&args, stdin)
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn one_response(out: &Output) -> Value {
    let mut all = lines(out);
    assert_eq!(
        all.len(),
        1,
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    all.remove(0)
}

fn tiny_input() -> Value {
    golden("runpod_tiny_r2.json")["request"]["input"].clone()
}
