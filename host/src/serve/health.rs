//! What the operator's monitoring asks of `powhost serve`, unauthenticated: `/health` and
//! `/livez` (the device passes its self-test and answers: 200, else 503 with the reason, in
//! the shape of the network's own engine, with the jobs, compute slots and callbacks beside
//! it), `/readyz` (`{"ready": …}`: takes work), `/ping` (the serverless platform's load
//! balancer: 200 ready, 204 starting, 503 otherwise) and `/metrics` (Prometheus text).

use super::app::App;
use super::http::{ApiError, json_response};
use crate::health::{gpu_json, http_status, readiness, status_word};
use crate::metrics::{JobCount, Live};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// `/health` and `/livez`.
pub async fn health(State(app): State<Arc<App>>) -> Response {
    let verdict = app.host.health.verdict().await;
    let (running, idle) = app.slots.usage();
    let pow = app.node.health();
    let mut body = json!({
        "status": status_word(verdict.healthy),
        "service_state": if pow.is_some() { "POW" } else { "STOPPED" },
        "gpu": gpu_json(&verdict, &app.host.compute),
        "managers": {
            "pow": {
                "running": pow.is_some(),
                "healthy": pow.is_none_or(|failure| failure.is_none()),
            },
        },
        "jobs": app.jobs.counts(),
        "workers": {"running": running, "idle": idle},
        "callbacks": app.callback_stats(),
    });
    if let Some(reason) = &verdict.reason {
        body["reason"] = json!(reason);
    }
    json_response(http_status(verdict.healthy), body)
}

/// Why the server takes no work now, if it does not.
async fn not_ready(app: &Arc<App>) -> Option<String> {
    if app.stop.is_stopping() {
        return Some("stopping: no new requests are taken".into());
    }
    app.host.health.verdict().await.reason
}

/// `/readyz`: the plugins are loaded (this router answers only then), the self-test passed and
/// the server is not stopping.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let (status, body) = readiness(not_ready(&app).await);
    json_response(status, body)
}

/// `/ping`, for the serverless platform's load balancer: 200 when ready; 503 (not routed to)
/// when the device fails or the server stops. (204, "still starting", is said by the
/// responder that answers before this router takes over: starting.rs.)
pub async fn ping(State(app): State<Arc<App>>) -> Response {
    match not_ready(&app).await {
        None => json_response(StatusCode::OK, json!({"status": "healthy"})),
        Some(why) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unhealthy", "reason": why}),
        ),
    }
}

/// `/metrics` in the Prometheus text format; 404 when turned off (`POWHOST_METRICS=off`).
pub async fn metrics(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    if !app.config.metrics {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Not Found: metrics are turned off (POWHOST_METRICS=off)",
        ));
    }
    let live = Live {
        jobs: job_counts(&app.jobs.counts()),
        callbacks: Some(app.callback_stats()),
    };
    let text = app.host.metrics.render(live);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// `/health`'s job counts as `status` labels: `inQueue` → `in_queue`.
fn job_counts(counts: &Value) -> Vec<JobCount> {
    let Some(counts) = counts.as_object() else {
        return Vec::new();
    };
    counts
        .iter()
        .filter(|(status, _)| *status != "retried")
        .map(|(status, n)| JobCount {
            status: snake_case(status),
            jobs: n.as_u64().unwrap_or(0),
        })
        .collect()
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
