//! `powhost worker --metrics-listen ADDR`: a small HTTP server beside the worker (which
//! otherwise listens on nothing) for the operator's monitoring: `/metrics`, and `/health`
//! (`/livez`) and `/readyz` on the device's self-test, unauthenticated.

use super::{JobCount, Live};
use crate::health::{gpu_json, http_status, readiness, status_word};
use crate::runtime::Host;
use crate::runtime::stop::Stop;
use crate::serve::http::json_response;
use crate::serve::listener::serve_connections;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection may take to send a request's headers, or stay idle (as serve's
/// `--idle-timeout` default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the monitoring server reads.
pub struct Monitor {
    pub host: Arc<Host>,
    /// `/metrics` on (else 404).
    pub metrics: bool,
    /// Jobs by status at the time of a request.
    pub jobs: Box<dyn Fn() -> Vec<JobCount> + Send + Sync>,
}

/// Bind `addr` and serve `monitor` on it until the process ends; an address that cannot be
/// bound is an error saying so.
pub async fn start(addr: SocketAddr, monitor: Monitor) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} for --metrics-listen; is the address free and on this machine?"
        )
    })?;
    let bound = listener.local_addr()?;
    let app = router(Arc::new(monitor));
    // serve's accept loop, for its header-read timeout; never told to stop, so the probes
    // answer until the process ends, through the worker's final flush.
    tokio::spawn(async move {
        serve_connections(&listener, app, IDLE_TIMEOUT, Stop::new()).await;
    });
    Ok(bound)
}

fn router(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "Not Found: this address serves /metrics, /health, /livez and /readyz\n",
            )
        })
        .with_state(monitor)
}

async fn metrics(State(m): State<Arc<Monitor>>) -> Response {
    if !m.metrics {
        return (
            StatusCode::NOT_FOUND,
            "Not Found: metrics are turned off (POWHOST_METRICS=off)\n",
        )
            .into_response();
    }
    let text = m.host.metrics.render(Live {
        jobs: (m.jobs)(),
        callbacks: Some(m.host.outbox.stats()),
    });
    ([(header::CONTENT_TYPE, super::CONTENT_TYPE)], text).into_response()
}

async fn health(State(m): State<Arc<Monitor>>) -> Response {
    let verdict = m.host.health.verdict().await;
    let jobs: serde_json::Map<String, serde_json::Value> = (m.jobs)()
        .into_iter()
        .map(|c| (c.status, json!(c.jobs)))
        .collect();
    let mut body = json!({
        "status": status_word(verdict.healthy),
        "service_state": if m.host.stop.is_stopping() { "STOPPING" } else { "WORKER" },
        "gpu": gpu_json(&verdict, &m.host.compute),
        "managers": {},
        "jobs": jobs,
        "results": m.host.outbox.stats(),
    });
    if let Some(reason) = &verdict.reason {
        body["reason"] = json!(reason);
    }
    json_response(http_status(verdict.healthy), body)
}

async fn readyz(State(m): State<Arc<Monitor>>) -> Response {
    let why = if m.host.stop.is_stopping() {
        Some("stopping: no new jobs are taken".to_string())
    } else {
        m.host.health.verdict().await.reason
    };
    let (status, body) = readiness(why);
    json_response(status, body)
}
