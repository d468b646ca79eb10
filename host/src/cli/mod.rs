//! The command line, documented for `--help`.

mod names;
mod transports;

use clap::{Args, Parser, Subcommand};
use std::time::Duration;
pub use transports::{DeliveryArgs, ServeArgs, WorkerArgs};

#[derive(Parser, Debug)]
#[command(
    name = "powhost",
    version,
    about = "Compute host for Gonka's Proof-of-Compute (PoW 2.0)",
    long_about = "Compute host for Gonka's Proof-of-Compute (PoW 2.0).\n\n\
        Builds the network's seeded LLaMA-style model for a block hash and computes nonce \
        distances exactly as the network's reference does (bit-exact RNG and weights, \
        float16 forward pass) on the CPU, wgpu or CUDA; handles requests through \
        WebAssembly plugins (`run`, the serverless contract and validation built in); \
        serves the network node's PoC API over HTTP (`serve`); benchmarks and cross-checks \
        backends (`bench`, `compare`).\n\n\
        Logging: set RUST_LOG or LOG_LEVEL (error, warn, info, debug)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the model's parameter table with the SHA-256 of every parameter's f16 bytes:
    /// what to compare when a validator disagrees with you.
    Fingerprint(FingerprintArgs),
    /// Compute the distance of every given nonce, unfiltered, in order.
    Distances(DistancesArgs),
    /// Measure nonces per second, model build time and peak memory.
    Bench(BenchArgs),
    /// Compute the same nonces on several backends (and read a golden file) and report how
    /// closely they agree: does this machine compute what the network will accept?
    /// Exit 1 when a pair breaks the budget.
    Compare(CompareArgs),
    /// Handle requests with a plugin: one request (`{"input": {...}}`) from a file or stdin,
    /// or one per line with --ndjson. Exit 0 on success, 1 when the response is an error.
    Run(RunArgs),
    /// Serve HTTP: the network node's PoC API under /api/v1 (generate with callbacks,
    /// validate, status, stop) and serverless-style endpoints (/runsync, /run, /status/ID,
    /// /stream/ID, /cancel/ID) and, for monitoring, /health, /livez, /readyz, /ping and
    /// /metrics (Prometheus). Stops on SIGINT/SIGTERM after delivering pending callbacks.
    Serve(ServeArgs),
    /// Be the serverless platform's worker: take jobs from it (configured by the environment
    /// it gives its workers: RUNPOD_WEBHOOK_GET_JOB, RUNPOD_WEBHOOK_POST_OUTPUT, …), handle
    /// each with the plugin, post the results back (retried until delivered), send the
    /// heartbeat and obey the job-stop channel. Runs the device self-test first. Stops on
    /// SIGTERM/SIGINT after the jobs in flight end at their next batch and their results are
    /// delivered.
    Worker(WorkerArgs),
    /// Compute a few nonces whose distances the network's reference computed, on this
    /// backend, and compare them within the agreement budget: does this device compute what
    /// validators accept? Exit 1 when it does not.
    Selftest(SelftestArgs),
    /// List the built-in plugins and what each does.
    Plugins {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the named model presets.
    Presets {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The compute backend: one flag, one default, for every command that computes.
#[derive(Args, Debug, Clone)]
pub struct BackendArg {
    /// The compute backend: `auto` picks CUDA when a device answers, then a hardware GPU
    /// through wgpu, then the CPU (a software Vulkan driver is passed over); or `cpu`, `wgpu`,
    /// `cuda` (every device; `cuda:0,cuda:1` for some). With several devices, each batch is
    /// spread over them.
    #[arg(long = "backend", default_value = "auto", value_name = "NAME", value_parser = names::backend_name)]
    pub name: String,
}

/// The CPU backend's GEMM path, for the commands that measure or check it.
#[derive(Args, Debug, Clone)]
pub struct CpuGemmArg {
    /// The CPU backend's matrix products: `f32` (f32 GEMMs, every processor), `amx` (float16
    /// split exactly into bfloat16 pairs on Intel's AMX tiles; an error where the processor,
    /// or Linux, does not offer them) or `auto` (AMX where available). Default: the
    /// POWHOST_CPU_GEMM environment variable, else `auto`.
    #[arg(long = "cpu-gemm", value_name = "PATH", value_parser = ["f32", "amx", "auto"])]
    pub cpu_gemm: Option<String>,
}

/// Which model: a named preset or a params JSON object.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ModelArgs {
    /// A named preset (see `powhost presets`), e.g. `tiny`, `devtest`, `mainnet`.
    #[arg(long, value_parser = names::preset_name)]
    pub preset: Option<String>,
    /// A params JSON object (inline, or a path to a file holding one); missing fields take
    /// the `reference-default` values.
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
}

#[derive(Args, Debug)]
pub struct FingerprintArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The block hash that seeds the weights.
    #[arg(long)]
    pub block_hash: String,
    /// Only these parameters (comma-separated names, e.g. `output.weight,norm.weight`).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub only: Option<Vec<String>>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DistancesArgs {
    #[command(flatten)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The block hash that seeds weights and target.
    #[arg(long)]
    pub block_hash: String,
    /// The node's public key (part of every nonce's seeds).
    #[arg(long)]
    pub public_key: String,
    /// Nonces: comma-separated integers and half-open ranges `A..B`, e.g. `5,-3,0..64`.
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub nonces: String,
    /// Nonces per forward pass (default: chosen from the model size).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Print `{"nonces": [...], "dist": [...]}` instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub cpu_gemm: CpuGemmArg,
    /// The preset to measure.
    #[arg(long, default_value = "cpu-bench", value_parser = names::preset_name)]
    pub preset: String,
    /// How many nonces to compute (default: enough for a few seconds on a CPU; at most
    /// 10,000,000).
    #[arg(long, value_parser = nonce_count)]
    pub nonces: Option<usize>,
    /// Nonces per forward pass (default: chosen from the model size).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Time the nonces this many times on the one model and report the median round's
    /// rate (every round's is in the JSON): on a shared or virtual machine single runs
    /// move by a third. At most 1,000.
    #[arg(long, default_value_t = 1, value_parser = round_count, conflicts_with = "plugin")]
    pub rounds: usize,
    /// The block hash to build the model for.
    #[arg(
        long,
        default_value = "0000000000000000000000000000000000000000000000000000000000000001"
    )]
    pub block_hash: String,
    /// Measure the per-request overhead of this plugin instead (a runpod-contract plugin,
    /// built-in name or path): the same requests through the plugin and straight to the
    /// backend, the model built once.
    #[arg(long, value_name = "NAME|PATH", value_parser = names::plugin_source)]
    pub plugin: Option<String>,
    /// With --plugin: how many requests to time each way.
    #[arg(long, default_value_t = 300, value_parser = request_count)]
    pub requests: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The request: a file holding `{"input": {...}}`, or `-` (the default) for stdin.
    #[arg(value_name = "INPUT", default_value = "-")]
    pub input: String,
    /// The plugin: a built-in name (see `powhost plugins`) or the path of a component (.wasm).
    #[arg(long, default_value = "runpod", value_name = "NAME|PATH", value_parser = names::plugin_source)]
    pub plugin: String,
    #[command(flatten)]
    pub backend: BackendArg,
    /// One request per input line, one response per output line; the model is reused.
    #[arg(long)]
    pub ndjson: bool,
    /// Seconds a request may compute: a stream then stops, delivering its whole batches (a
    /// batch still computing is cut short); a list of nonces not done by then is a TimeoutError.
    #[arg(long, default_value = "420", value_name = "SECONDS", value_parser = positive_seconds)]
    pub time_limit: Duration,
    /// Nonces per forward pass (default: chosen from the model size).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    #[command(flatten)]
    pub limits: PluginLimitArgs,
}

/// The sandbox every plugin call runs in.
#[derive(Args, Debug, Clone)]
pub struct PluginLimitArgs {
    /// Memory one plugin call may use, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB", value_parser = at_least_one)]
    pub plugin_memory: usize,
    /// Seconds of plugin code one call may run (time computing distances does not count).
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = positive_seconds)]
    pub plugin_time_limit: Duration,
}

#[derive(Args, Debug)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub backend: BackendArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Backends to run, comma-separated (`cpu`, `wgpu`, `cuda`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cpu,wgpu",
        value_name = "LIST",
        value_parser = names::backend_name
    )]
    pub backends: Vec<String>,
    #[command(flatten)]
    pub cpu_gemm: CpuGemmArg,
    /// A named preset; with --golden, it must be the golden file's model (the default).
    #[arg(long, conflicts_with = "params", value_parser = names::preset_name)]
    pub preset: Option<String>,
    /// A params JSON object (inline or a file); missing fields take `reference-default`.
    /// With --golden, it must be the golden file's model.
    #[arg(long, value_name = "JSON")]
    pub params: Option<String>,
    /// The block hash (default: the golden file's, else 00…01).
    #[arg(long)]
    pub block_hash: Option<String>,
    /// The public key (default: the golden file's, else the test key).
    #[arg(long)]
    pub public_key: Option<String>,
    /// Nonces, e.g. `0..64` (default: the golden file's, else 0..64).
    #[arg(long, value_name = "LIST", allow_hyphen_values = true)]
    pub nonces: Option<String>,
    /// Verdicts are compared at this r_target.
    #[arg(long, default_value_t = 1.4013564660458173, value_name = "R")]
    pub r_target: f64,
    /// A `forward_<preset>.json` golden file (distances from the reference) to compare with.
    #[arg(long, value_name = "FILE")]
    pub golden: Option<String>,
    /// Largest |Δd| a pair may show (docs/spec/COMPUTATION.md §9).
    #[arg(long, default_value_t = 5e-6, value_name = "X")]
    pub budget_max: f64,
    /// Largest median |Δd| a pair may show (docs/spec/COMPUTATION.md §9).
    #[arg(long, default_value_t = 5e-7, value_name = "Y")]
    pub budget_median: f64,
    /// Nonces per forward pass (default: chosen from the model size).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

// Flag values are checked here, once, as the command line is parsed: a bad one is a usage
// error (exit 2) naming the flag, before anything is loaded.

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!(
            "must be a whole number of at least 1, got `{text}`"
        )),
    }
}

fn at_most(text: &str, max: usize) -> Result<usize, String> {
    let n = at_least_one(text)?;
    if n > max {
        return Err(format!("must be at most {max}, got {n}"));
    }
    Ok(n)
}

/// A nonce count: the same bound as a nonce list (crate::nonce_list::MAX_NONCES).
fn nonce_count(text: &str) -> Result<usize, String> {
    at_most(text, crate::nonce_list::MAX_NONCES)
}

/// `bench --rounds`: each round's rate is kept, so the count is bounded.
fn round_count(text: &str) -> Result<usize, String> {
    at_most(text, 1_000)
}

/// `bench --plugin --requests`: each timing is kept, so the count is bounded.
fn request_count(text: &str) -> Result<usize, String> {
    at_most(text, 1_000_000)
}

fn seconds(text: &str, zero_allowed: bool) -> Result<Duration, String> {
    let what = if zero_allowed {
        "0 or more seconds"
    } else {
        "a positive number of seconds"
    };
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && (x > 0.0 || (zero_allowed && x == 0.0)) => {
            Duration::try_from_secs_f64(x).map_err(|_| format!("must be {what}, got `{text}`"))
        }
        _ => Err(format!("must be {what}, got `{text}`")),
    }
}

fn positive_seconds(text: &str) -> Result<Duration, String> {
    seconds(text, false)
}

fn non_negative_seconds(text: &str) -> Result<Duration, String> {
    seconds(text, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_are_checked_at_parse_time() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("-1").is_err());
        assert!(at_least_one("x").is_err());
        assert!(nonce_count("99999999999").unwrap_err().contains("at most"));
        assert!(request_count("99999999999999").is_err());
        assert_eq!(nonce_count("10000000"), Ok(10_000_000));
        assert_eq!(positive_seconds("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "nan", "inf", "1e300", "x"] {
            assert!(positive_seconds(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative_seconds("0"), Ok(Duration::ZERO));
        assert!(non_negative_seconds("-1").is_err());
    }
}
