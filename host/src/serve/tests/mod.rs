//! The server driven in-process: the router built from an app on the CPU host, requests
//! sent with `tower::ServiceExt::oneshot`, no process spawned and no HTTP parsed by hand.
//! The node's PoC API is in node.rs, the serverless endpoints in serverless.rs, what becomes
//! of jobs beyond their answer (the queue, cancellation, webhooks, shutdown) in jobs.rs.
//! What needs the process itself (signals, exit codes, the listener's timeouts) is tested in
//! tests/serve/.

mod admission;
mod auth;
mod health;
mod jobs;
mod metrics;
mod node;
mod node_checks;
mod node_requests;
mod own_address;
mod serverless;

use super::{App, ServeConfig, router};
use crate::backends::backend_by_name;
use crate::compute_service::{ComputeService, Task};
use crate::model::choose_batch;
use crate::plugin_host::{Plugin, PluginLimits};
use crate::runtime::Host;
use crate::runtime::stop::Stop;
use crate::test_support::{golden, host, host_with};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use powhost_core::ModelParams;
use powhost_core::params::PartialParams;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The golden requests' block hash and public key.
const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000001";
const KEY: &str = "test_public_key_12345678901234567890";

/// The binary's defaults, but callbacks sealed every 0.2 s, so that tests see them soon.
fn config() -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        concurrency: 4,
        queue: 1024,
        max_body: 64 << 20,
        memory_budget: 4 << 30,
        time_limit: Duration::from_secs(420),
        idle_timeout: Duration::from_secs(30),
        callback_interval: Duration::from_millis(200),
        flush_timeout: Duration::from_secs(5),
        undelivered: None,
        access: Default::default(),
        metrics: true,
    }
}

/// An app under test. Dropping it stops what it still runs (generation, jobs, delivery), so
/// that a test, passing or failing, leaves no work computing behind it.
struct Served(Arc<App>);

impl std::ops::Deref for Served {
    type Target = Arc<App>;
    fn deref(&self) -> &Arc<App> {
        &self.0
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // The generation thread ends within one forward pass; nothing waits for it.
        drop(self.0.node.stop());
        self.0.stop.abort();
    }
}

/// The app with the built-in plugins, the default plugin limits and the tests' delivery.
fn app(config: ServeConfig) -> Served {
    let host = host();
    let serverless = host.load("runpod").unwrap();
    app_on(host, serverless, config)
}

/// The app on `host` with `serverless` for the serverless endpoints.
fn app_on(host: Arc<Host>, serverless: Arc<Plugin>, config: ServeConfig) -> Served {
    let validator = host.load("validator").unwrap();
    Served(App::new(host, serverless, validator, config))
}

/// The outbox's sender and the ProofBatch sealer, as the server runs them, until the test's
/// runtime ends.
fn deliver(app: &Served) {
    drop(super::start_delivery(
        app,
        &tokio_util::sync::CancellationToken::new(),
    ));
}

/// (status, body text) of one request through the router. No Content-Type, as the node
/// software sends its requests.
async fn send(
    app: &Arc<App>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = router(app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn send_json(
    app: &Arc<App>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let (status, text) = send(app, method, path, body).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

/// Poll `/health` until `done` holds for it (panics, naming `what`, after 30 s).
async fn wait_for_health(app: &Arc<App>, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, health) = send_json(app, "GET", "/health", None).await;
        if done(&health) {
            return health;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the work that outlives its request (jobs, validations) has ended.
async fn idle(app: &Arc<App>) {
    tokio::time::timeout(Duration::from_secs(60), app.background.idle())
        .await
        .expect("the background work ends within a minute");
}

/// Poll a job's `/status` until it is `status`.
async fn wait_for_status(app: &Arc<App>, id: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = send_json(app, "GET", &format!("/status/{id}"), None).await;
        if v["status"] == json!(status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waiting for {status}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The tiny golden request's input.
fn tiny_input() -> Value {
    golden("runpod_tiny_r2.json")["request"]["input"].clone()
}

/// A `/run` body computing from `start_nonce` on, `batch_size` nonces per compute call.
fn stream_job(start: i64, batch_size: i64, webhook: Option<&str>) -> String {
    let mut input = tiny_input();
    let fields = input.as_object_mut().unwrap();
    fields.remove("nonces");
    fields.insert("start_nonce".into(), json!(start));
    fields.insert("batch_size".into(), json!(batch_size));
    let mut job = json!({ "input": input });
    if let Some(url) = webhook {
        job["webhook"] = json!(url);
    }
    job.to_string()
}

/// A streaming job with seconds of work in each compute call.
fn long_stream_job() -> String {
    stream_job(0, 400_000, None)
}

/// The distances of `nonces` on the tiny model with the golden seeds, computed apart from
/// the server, as `powhost distances` computes them.
fn direct_distances(nonces: &[i64]) -> Vec<f64> {
    let partial: PartialParams = serde_json::from_value(tiny_input()["params"].clone()).unwrap();
    let params = ModelParams::from_partial(&partial);
    let backend = backend_by_name("cpu").unwrap();
    let batch = choose_batch(None, &*backend, &params, nonces.len());
    let compute = ComputeService::new(backend, Some(batch));
    let task = Task {
        block_hash: HASH.into(),
        public_key: KEY.into(),
        params,
        devices: Vec::new(),
    };
    tokio::task::block_in_place(|| compute.distances(&task, nonces, &Stop::new()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_get_json_errors() {
    let app = app(config());
    let (status, v) = send_json(&app, "GET", "/nowhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("Not Found") && detail.contains("no such endpoint"),
        "{v}"
    );
    let (status, v) = send_json(&app, "GET", "/runsync", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(v["detail"].as_str().is_some());
    let (status, v) = send_json(&app, "GET", "/api/v1/pow/init", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        v["detail"].as_str().unwrap().contains("Method Not Allowed"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_job_ids_are_answered_404() {
    let app = app(config());
    let (status, v) = send_json(&app, "GET", "/status/nope", None).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::NOT_FOUND,
            json!({"id": "nope", "status": "FAILED", "error": "Job ID not found"})
        )
    );
    let (status, _) = send(&app, "POST", "/cancel/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
