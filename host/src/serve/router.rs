//! The routes: every endpoint of the node's PoC API and of the serverless API, built from the
//! app alone, so that tests drive it in-process.

use super::app::App;
use super::http::ApiError;
use super::{auth, gpu, health, node, serverless};
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Instant;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/pow/init", post(node::init))
        .route("/api/v1/pow/init/generate", post(node::init_generate))
        .route("/api/v1/pow/init/validate", post(node::init_validate))
        .route("/api/v1/pow/phase/generate", post(node::phase_generate))
        .route("/api/v1/pow/phase/validate", post(node::phase_validate))
        .route("/api/v1/pow/validate", post(node::validate))
        .route("/api/v1/pow/status", get(node::status))
        .route("/api/v1/pow/stop", post(node::stop_pow))
        .route("/api/v1/gpu/devices", get(gpu::devices))
        .route("/api/v1/gpu/driver", get(gpu::driver))
        .route("/api/v1/state", get(node::state))
        .route("/api/v1/stop", post(node::stop_all))
        .route("/runsync", post(serverless::runsync))
        .route("/run", post(serverless::run))
        .route(
            "/status/{id}",
            get(serverless::status).post(serverless::status),
        )
        .route(
            "/stream/{id}",
            get(serverless::stream).post(serverless::stream),
        )
        .route("/cancel/{id}", post(serverless::cancel))
        // For the operator's monitoring: never behind authentication.
        .route("/health", get(health::health))
        .route("/livez", get(health::health))
        .route("/readyz", get(health::readyz))
        .route("/ping", get(health::ping))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found: no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed: see `powhost serve --help` for each endpoint's method",
            )
        })
        // Every request, routed or not, passes its route's access check first.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::check_access,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app)
}

/// One debug line per request (`RUST_LOG=powhost=debug`): method, path, status, time.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    log::debug!(
        "{method} {path} -> {} in {:.1} ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1e3
    );
    response
}
