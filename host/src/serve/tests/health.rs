//! The monitoring endpoints: `/health` and `/livez` in the network engine's shape, `/readyz`
//! and `/ping` following readiness, and the device's health followed as it fails and
//! recovers (a switchable CPU backend stands in for a GPU going bad).

use super::metrics::scrape;
use super::*;
use crate::test_support::failing_device::{Device, DeviceSwitch};
use crate::test_support::host_on;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readyz_and_ping_answer_in_the_references_shape() {
    let app = app(config());
    for path in ["/health", "/livez"] {
        let (status, h) = send_json(&app, "GET", path, None).await;
        assert_eq!(status, StatusCode::OK, "{h}");
        assert_eq!(h["status"], json!("healthy"));
        assert_eq!(h["service_state"], json!("STOPPED"));
        assert_eq!(h["gpu"]["available"], json!(true));
        assert_eq!(h["gpu"]["count"], json!(1));
        assert_eq!(h["gpu"]["devices"], json!([{"name": "cpu"}]));
        assert_eq!(h["gpu"]["selftest"]["passed"], json!(true));
        assert!(h["gpu"]["selftest"]["max_abs_diff"].as_f64().unwrap() < 5e-6);
        assert_eq!(
            h["managers"]["pow"],
            json!({"running": false, "healthy": true})
        );
        // Today's fields, kept beside the reference's.
        assert_eq!(h["jobs"]["completed"], json!(0));
        assert_eq!(h["workers"], json!({"running": 0, "idle": 4}));
        assert_eq!(h["callbacks"]["pending"], json!(0));
        assert!(h.get("reason").is_none());
    }
    assert_eq!(
        send_json(&app, "GET", "/readyz", None).await,
        (StatusCode::OK, json!({"ready": true}))
    );
    assert_eq!(
        send_json(&app, "GET", "/ping", None).await,
        (StatusCode::OK, json!({"status": "healthy"}))
    );
    let (_, state) = send_json(&app, "GET", "/api/v1/state", None).await;
    assert_eq!(
        state,
        json!({"state": "STOPPED", "version": env!("CARGO_PKG_VERSION")})
    );
    // Stopping: alive still, but no longer taking work.
    app.stop.finish();
    let (status, ready) = send_json(&app, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["ready"], json!(false));
    assert!(ready["reason"].as_str().unwrap().contains("stopping"));
    let (status, _) = send_json(&app, "GET", "/ping", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&app, "GET", "/health", None).await.0, StatusCode::OK);
    // Only GET.
    let (status, _) = send(&app, "POST", "/health", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Poll `/health` until its status is `want` (panics after 20 s); the body then.
async fn health_turns(app: &Arc<App>, want: StatusCode) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, h) = send_json(app, "GET", "/health", None).await;
        if status == want {
            return h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {status}: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_when_the_device_fails_and_200_when_it_recovers() {
    let switch = DeviceSwitch::default();
    let host = host_on(switch.backend());
    host.health
        .set_timing(Duration::from_millis(100), Duration::from_secs(60));
    let serverless = host.load("runpod").unwrap();
    let app = app_on(host, serverless, config());
    health_turns(&app, StatusCode::OK).await;

    switch.set(Device::Unresponsive);
    let h = health_turns(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(h["status"], json!("unhealthy"));
    assert_eq!(h["gpu"]["available"], json!(false));
    let reason = h["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot compute") && reason.contains("did not answer"),
        "{reason}"
    );
    let (status, ready) = send_json(&app, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["ready"], json!(false));
    assert_eq!(
        send(&app, "GET", "/ping", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let e = scrape(&app).await;
    assert_eq!(e.value("powhost_selftest_passed", &[]), 0.0);

    // Working again, then computing wrong answers: the self-test's comparison catches it.
    switch.set(Device::Working);
    health_turns(&app, StatusCode::OK).await;
    switch.set(Device::WrongAnswers);
    let h = health_turns(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    let reason = h["reason"].as_str().unwrap();
    assert!(reason.contains("failed its self-test"), "{reason}");
    assert!(h["gpu"]["selftest"]["max_abs_diff"].as_f64().unwrap() > 5e-6);

    switch.set(Device::Working);
    let h = health_turns(&app, StatusCode::OK).await;
    assert_eq!(h["status"], json!("healthy"));
    assert_eq!(
        send_json(&app, "GET", "/readyz", None).await,
        (StatusCode::OK, json!({"ready": true}))
    );
    assert_eq!(
        scrape(&app).await.value("powhost_selftest_passed", &[]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_leaves_the_works_model_built() {
    let host = host();
    host.health
        .set_timing(Duration::ZERO, Duration::from_secs(60));
    let app = app_on(host.clone(), host.load("runpod").unwrap(), config());
    let job = json!({"input": tiny_input()}).to_string();
    let cpu = [("backend", "cpu")];
    assert_eq!(
        send(&app, "POST", "/runsync", Some(&job)).await.0,
        StatusCode::OK
    );
    let checks = scrape(&app)
        .await
        .value("powhost_selftest_checks_total", &[]);
    health_turns(&app, StatusCode::OK).await;
    assert!(
        scrape(&app)
            .await
            .value("powhost_selftest_checks_total", &[])
            > checks
    );
    assert_eq!(
        send(&app, "POST", "/runsync", Some(&job)).await.0,
        StatusCode::OK
    );
    // One build: the check computed on a model of its own.
    let e = scrape(&app).await;
    assert_eq!(e.value("powhost_model_build_seconds_count", &cpu), 1.0);
}
