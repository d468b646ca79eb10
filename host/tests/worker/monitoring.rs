//! `--metrics-listen`: Prometheus metrics and the device's health beside the worker, moving
//! as it works; an address that cannot be bound stops it at start (exit 2).

use crate::platform::Platform;
use crate::{Worker, tiny_input, worker_command};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A loopback address free a moment ago.
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// (status, content type, body) of a GET, retried while the server is not yet listening.
fn get(url: &str) -> (u16, String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    runtime.block_on(async {
        loop {
            match reqwest::get(url).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let kind = response
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    return (status, kind, response.text().await.unwrap());
                }
                Err(e) => assert!(Instant::now() < deadline, "{url}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[test]
fn the_worker_serves_metrics_and_health_on_its_metrics_address() {
    let platform = Platform::start();
    let mut input = tiny_input();
    input["nonces"] = json!([0, 1, 2, 3, 4, 5, 6, 7]);
    platform.add_job("job-1", input);
    let addr = free_addr();
    let _worker = Worker::start(&platform, &["--metrics-listen", &addr]);
    platform.wait_for("job-1's result", 60, |p| !p.results("job-1").is_empty());

    let (status, kind, text) = get(&format!("http://{addr}/metrics"));
    assert_eq!(status, 200, "{text}");
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    for line in [
        "powhost_nonces_computed_total{backend=\"cpu\"} 8",
        "powhost_plugin_calls_total{plugin=\"runpod\"} 1",
        "powhost_selftest_passed 1",
        "powhost_jobs{status=\"in_progress\"} 0",
        "# TYPE powhost_batch_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("powhost_build_info{version=") && l.ends_with("} 1")),
        "{text}"
    );

    let (status, _, body) = get(&format!("http://{addr}/health"));
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], json!("healthy"));
    assert_eq!(health["gpu"]["available"], json!(true));
    assert_eq!(health["service_state"], json!("WORKER"));
    let (status, _, body) = get(&format!("http://{addr}/readyz"));
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
    assert_eq!(get(&format!("http://{addr}/elsewhere")).0, 404);
}

#[test]
fn metrics_turned_off_answer_404_beside_the_health() {
    let platform = Platform::start();
    let addr = free_addr();
    let _worker = Worker::start_with(
        platform.env(),
        &["--metrics-listen", &addr],
        &[("POWHOST_METRICS", "off")],
    );
    assert_eq!(get(&format!("http://{addr}/health")).0, 200);
    let (status, _, body) = get(&format!("http://{addr}/metrics"));
    assert_eq!(status, 404);
    assert!(body.contains("POWHOST_METRICS=off"), "{body}");
}

#[test]
fn a_metrics_address_that_cannot_be_used_stops_the_worker_with_exit_2() {
    let platform = Platform::start();
    platform.add_job("job-1", tiny_input());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = worker_command(platform.env(), &["--metrics-listen", &taken], &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken} for --metrics-listen")),
        "{stderr}"
    );
    assert!(platform.seen().is_empty(), "no job is taken");

    let out = worker_command(
        platform.env(),
        &["--metrics-listen", "nine-oh-nine-oh"],
        &[],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
