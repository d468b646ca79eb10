//! The server driven in-process: the router built from an app on the CPU host, requests
//! sent with `tower::ServiceExt::oneshot`, no process spawned and no HTTP parsed by hand.

use super::{App, ServeConfig, router};
use crate::test_support::golden_response::assert_matches_golden;
use crate::test_support::{golden, host};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

fn config(concurrency: usize, queue: usize) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        concurrency,
        queue,
        max_body: 1 << 20,
        time_limit: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(5),
        callback_interval: Duration::from_millis(200),
        flush_timeout: Duration::from_secs(5),
        undelivered: None,
    }
}

fn app(concurrency: usize, queue: usize) -> Arc<App> {
    let host = host();
    let (serverless, validator) = (
        host.load("runpod").unwrap(),
        host.load("validator").unwrap(),
    );
    App::new(host, serverless, validator, config(concurrency, queue))
}

/// (status, body text) of one request through the router.
async fn send(
    app: &Arc<App>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_answers_with_the_golden_response() {
    let app = app(2, 4);
    for file in ["runpod_tiny_r2.json", "runpod_tiny_rdefault.json"] {
        let g = golden(file);
        let (status, v) =
            send_json(&app, "POST", "/runsync", Some(&g["request"].to_string())).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["status"], json!("COMPLETED"));
        assert_matches_golden(&v["output"], &g["expected_response"], file);
        let id = v["id"].as_str().unwrap();
        let (status, again) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
        assert_eq!((status, &again["output"]), (StatusCode::OK, &v["output"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_answered_503_before_the_job_is_kept() {
    let app = app(1, 0);
    // The one compute slot is taken.
    let _running = app.slots.reserve().unwrap().acquire().await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (status, v) = send_json(&app, "POST", "/run", Some(&request)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("busy"), "{v}");
    let (_, health) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(health["jobs"]["inQueue"], json!(0), "{health}");
    assert_eq!(health["workers"], json!({"running": 1, "idle": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_a_slot_is_cancelled_before_it_starts() {
    let app = app(1, 4);
    let slot = app.slots.reserve().unwrap().acquire().await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (status, v) = send_json(&app, "POST", "/run", Some(&request)).await;
    assert_eq!(status, StatusCode::OK);
    let id = v["id"].as_str().unwrap().to_string();
    let (_, cancelled) = send_json(&app, "POST", &format!("/cancel/{id}"), None).await;
    assert_eq!(cancelled["status"], json!("CANCELLED"));
    drop(slot);
    app.background.idle().await;
    let (_, v) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
    assert_eq!(v["status"], json!("CANCELLED"), "{v}");
    assert!(
        v.get("output").is_none(),
        "a cancelled job computed nothing: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_queued_jobs_from_starting() {
    let app = app(1, 4);
    let slot = app.slots.reserve().unwrap().acquire().await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (_, v) = send_json(&app, "POST", "/run", Some(&request)).await;
    let id = v["id"].as_str().unwrap().to_string();
    // The process's stop reaches the server's jobs through the stop tree.
    app.host.stop.finish();
    drop(slot);
    app.background.idle().await;
    let (_, v) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
    assert_eq!(v["status"], json!("FAILED"), "{v}");
    assert_eq!(v["error_type"], json!("Cancelled"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods_get_json_errors() {
    let app = app(1, 1);
    let (status, v) = send_json(&app, "GET", "/nowhere", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(v["detail"].as_str().unwrap().contains("no such endpoint"));
    let (status, v) = send_json(&app, "GET", "/runsync", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(v["detail"].as_str().is_some());
    let (status, v) = send_json(&app, "GET", "/status/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], json!("Job ID not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_the_reason() {
    let app = app(1, 1);
    for (body, status, says) in [
        ("{", StatusCode::BAD_REQUEST, ""),
        ("[]", StatusCode::UNPROCESSABLE_ENTITY, ""),
        ("{}", StatusCode::UNPROCESSABLE_ENTITY, "input"),
        (
            r#"{"input": 5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "`input` must be a JSON object",
        ),
        (
            r#"{"input": {}, "webhook": "ftp://x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhook",
        ),
    ] {
        let (got, v) = send_json(&app, "POST", "/run", Some(body)).await;
        assert_eq!(got.as_u16() / 100, status.as_u16() / 100, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
}
