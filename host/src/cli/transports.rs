//! The flags of the commands that serve: `serve` (HTTP), `worker` (the serverless platform's
//! protocol), and how both deliver results.

use super::names;
use super::{BackendArg, PluginLimitArgs, at_least_one, non_negative_seconds, positive_seconds};
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, e.g. `127.0.0.1:8080` or `0.0.0.0:8080` (port 0 picks a free
    /// one). The bound address is printed on stdout as `{"listening": "ADDR"}`.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR", value_parser = names::listen_address)]
    pub listen: String,
    /// The plugin for the serverless-style endpoints (/runsync, /run): a built-in name or a
    /// component path.
    #[arg(long, default_value = "runpod", value_name = "NAME|PATH", value_parser = names::plugin_source)]
    pub plugin: String,
    /// The plugin that validates ProofBatches (POST /api/v1/pow/validate).
    #[arg(long, default_value = "validator", value_name = "NAME|PATH", value_parser = names::plugin_source)]
    pub validator: String,
    #[command(flatten)]
    pub backend: BackendArg,
    /// Nonces per forward pass (default: chosen from the model size and device memory).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Plugin calls computing at once; further requests wait in the queue.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = at_least_one)]
    pub concurrency: usize,
    /// Requests that may wait for a compute slot; beyond this the server answers 503.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub queue: usize,
    /// Largest request body, in MiB (a 1-million-nonce ProofBatch is about 30 MiB).
    #[arg(long, default_value_t = 64, value_name = "MIB", value_parser = at_least_one)]
    pub max_body: usize,
    /// Memory, in MiB, that the requests in flight and queued may hold, all told, each counted
    /// as its body six times over (read, parsed, copied for the plugin). A request the budget
    /// cannot hold now is refused before its body is read (503 with Retry-After; 413 when it
    /// alone is over the budget). Finished jobs' results are kept within a quarter of it, the
    /// oldest forgotten first. Default: a quarter of the memory available at start
    /// (MemAvailable in /proc/meminfo).
    #[arg(long, value_name = "MIB", value_parser = at_least_one)]
    pub memory_budget: Option<usize>,
    /// Seconds a request may compute: a stream then stops, delivering its whole batches (a
    /// batch still computing is cut short); a list of nonces not done by then is a TimeoutError.
    #[arg(long, default_value = "420", value_name = "SECONDS", value_parser = positive_seconds)]
    pub time_limit: Duration,
    /// Seconds a connection may take to send a request's headers, sit idle between requests,
    /// or pause in the middle of a body (then answered 408) before it is closed.
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = positive_seconds)]
    pub idle_timeout: Duration,
    /// Seconds between callback deliveries of generated nonces (the reference: 5).
    #[arg(long, default_value = "5", value_name = "SECONDS", value_parser = positive_seconds)]
    pub callback_interval: Duration,
    /// The node's signer public key (base64 of a secp256k1 key: 33 bytes compressed, 64 raw
    /// x||y or 65 uncompressed), as the network's engine reads SIGNER_PUBKEY. When set, every
    /// /api/v1/pow/* and /api/v1/gpu/* request must carry `X-Signature`: base64 of the
    /// node's 64-byte r||s ECDSA signature of the raw body with SHA-256 (403 otherwise).
    /// /api/v1/state, /api/v1/stop and the health routes stay open. Unset: no check.
    #[arg(
        long,
        env = "SIGNER_PUBKEY",
        value_name = "BASE64",
        hide_env_values = true
    )]
    pub signer_pubkey: Option<String>,
    /// The key the serverless endpoints (/run, /runsync, /status, /stream, /cancel) require
    /// as `Authorization: Bearer KEY` (401 otherwise). Unset: no check.
    #[arg(
        long,
        env = "POWHOST_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// `GET /metrics` (Prometheus text format) on or off; off answers 404. /health, /livez,
    /// /readyz and /ping are always served, without authentication.
    #[arg(
        long,
        env = "POWHOST_METRICS",
        default_value = "on",
        value_name = "on|off",
        value_parser = ["on", "off"]
    )]
    pub metrics: String,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub limits: PluginLimitArgs,
}

/// How results are POSTed back (serve's callbacks and webhooks, the worker's results): each
/// POST under a timeout, retried with a doubling backoff until delivered.
#[derive(Args, Debug, Clone)]
pub struct DeliveryArgs {
    /// Seconds one result POST may take before it counts as failed and is retried.
    #[arg(long, default_value = "10", value_name = "SECONDS", value_parser = positive_seconds)]
    pub callback_timeout: Duration,
    /// Longest wait between retries of a failed POST (the wait doubles from 0.5 s).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = positive_seconds)]
    pub callback_backoff_max: Duration,
    /// On shutdown, how long to wait for work in flight (requests and jobs finishing their
    /// batch) and to keep trying to deliver pending results, all told, before giving up (what
    /// is still undelivered is then kept: see --undelivered).
    #[arg(long, default_value = "30", value_name = "SECONDS", value_parser = non_negative_seconds)]
    pub flush_timeout: Duration,
    /// Where results still undelivered at shutdown are appended, one JSON line each
    /// (`{"url", "batch_id", "body"}`), to be re-sent later; without it they go to the log.
    #[arg(long, value_name = "FILE")]
    pub undelivered: Option<std::path::PathBuf>,
    /// Mutual TLS: the client certificate (PEM) presented to every https receiver of the
    /// results. All three --mtls-* or none; with them, https receivers must chain to
    /// --mtls-server-ca (which replaces the system roots, as in the network's ML node).
    /// [env: MLNODE_MTLS_CLIENT_CERT, read when the flag is not given; empty is unset]
    #[arg(long, value_name = "FILE")]
    pub mtls_client_cert: Option<std::path::PathBuf>,
    /// Mutual TLS: the private key (PEM) of --mtls-client-cert.
    /// [env: MLNODE_MTLS_CLIENT_KEY]
    #[arg(long, value_name = "FILE")]
    pub mtls_client_key: Option<std::path::PathBuf>,
    /// Mutual TLS: the CA certificates (PEM) that receivers' certificates must chain to.
    /// [env: MLNODE_MTLS_SERVER_CA]
    #[arg(long, value_name = "FILE")]
    pub mtls_server_ca: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The plugin that handles each job's request: a built-in name or a component path.
    #[arg(long, default_value = "runpod", value_name = "NAME|PATH", value_parser = names::plugin_source)]
    pub plugin: String,
    #[command(flatten)]
    pub backend: BackendArg,
    /// Nonces per forward pass (default: chosen from the model size and device memory).
    #[arg(long, value_parser = at_least_one)]
    pub batch: Option<usize>,
    /// Jobs computed at once; above 1, jobs are taken in batches (job-take-batch).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = at_least_one)]
    pub concurrency: usize,
    /// Seconds a request may compute: a stream then stops, delivering its whole batches (a
    /// batch still computing is cut short); a list of nonces not done by then is a TimeoutError.
    #[arg(long, default_value = "420", value_name = "SECONDS", value_parser = positive_seconds)]
    pub time_limit: Duration,
    /// The final result of a stream: every chunk (`true`, as the seed handler's latest
    /// version asks of the SDK) or `[]` (`false`, its first streaming version).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub aggregate_stream: bool,
    /// Serve Prometheus metrics (`GET /metrics`) and the device's health (`GET /health`,
    /// /livez, /readyz) on this address, e.g. `0.0.0.0:9090`; off by default. An address that
    /// cannot be bound stops the worker at start (exit 2). POWHOST_METRICS=off turns
    /// /metrics into 404.
    #[arg(long, env = "POWHOST_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// /metrics on or off (with --metrics-listen); off answers 404.
    #[arg(
        long,
        env = "POWHOST_METRICS",
        default_value = "on",
        value_name = "on|off",
        value_parser = ["on", "off"]
    )]
    pub metrics: String,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub limits: PluginLimitArgs,
}
