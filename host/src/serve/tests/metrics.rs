//! `/metrics` read strictly (every line against the text format's rules) and seen to move
//! as work is done: a `/runsync`, generation for the node, callbacks refused then delivered.

use super::*;
use crate::metrics::exposition::{Exposition, parse};
use crate::test_support::receiver::Receiver;

/// `/metrics`, checked line by line, after its status and content type.
pub(super) async fn scrape(app: &Arc<App>) -> Exposition {
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = router(app.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"))
}

const CPU: [(&str, &str); 1] = [("backend", "cpu")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsync_of_8_nonces_moves_the_counters() {
    let app = app(config());
    let before = scrape(&app).await;
    assert_eq!(before.value("powhost_nonces_computed_total", &CPU), 0.0);
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("backend", "cpu"),
        ("device", &app.host.compute.backend().device_description()),
    ];
    assert_eq!(before.value("powhost_build_info", &build), 1.0);

    let mut input = tiny_input();
    input["nonces"] = json!([0, 1, 2, 3, 4, 5, 6, 7]);
    let job = json!({ "input": input }).to_string();
    let (status, text) = send(&app, "POST", "/runsync", Some(&job)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let after = scrape(&app).await;
    let rose = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.get(name, labels).unwrap_or(0.0)
    };
    assert_eq!(rose("powhost_nonces_computed_total", &CPU), 8.0);
    assert!(rose("powhost_batch_seconds_count", &CPU) >= 1.0);
    assert!(rose("powhost_batch_seconds_sum", &CPU) > 0.0);
    assert_eq!(rose("powhost_model_build_seconds_count", &CPU), 1.0);
    let runpod = [("plugin", "runpod")];
    assert_eq!(rose("powhost_plugin_calls_total", &runpod), 1.0);
    assert_eq!(after.value("powhost_jobs", &[("status", "completed")]), 1.0);
    assert!(after.value("powhost_process_resident_memory_bytes", &[]) > 1e6);

    // A refused request is an error reply, counted as such.
    let mut bad = tiny_input();
    bad["nonces"] = json!("not a list");
    let job = json!({ "input": bad }).to_string();
    send(&app, "POST", "/runsync", Some(&job)).await;
    let e = scrape(&app).await;
    assert_eq!(e.value("powhost_plugin_calls_total", &runpod), 2.0);
    assert_eq!(e.value("powhost_plugin_error_replies_total", &runpod), 1.0);
    assert_eq!(e.value("powhost_jobs", &[("status", "failed")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_turned_off_answer_404_and_health_stays() {
    let app = app(ServeConfig {
        metrics: false,
        ..config()
    });
    let (status, body) = send_json(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.to_string().contains("POWHOST_METRICS=off"), "{body}");
    assert_eq!(send(&app, "GET", "/health", None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_refused_then_delivered_are_counted_with_the_oldest_age() {
    let app = app(config());
    let receiver = Receiver::start().await;
    receiver.answer_next(&[503, 500]);
    let url = format!("{}/webhook", receiver.url);
    app.host
        .outbox
        .add(url, "{}".into(), "a test result".into());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Not sent yet: pending, and waiting.
    let e = scrape(&app).await;
    assert_eq!(e.value("powhost_callbacks_pending", &[]), 1.0);
    assert!(e.value("powhost_callbacks_oldest_pending_age_seconds", &[]) >= 0.1);
    deliver(&app);
    receiver.wait_for(3, Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        let e = scrape(&app).await;
        if e.value("powhost_callbacks_delivered_total", &[]) == 1.0 {
            break e;
        }
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(e.value("powhost_callbacks_refused_total", &[]), 2.0);
    assert_eq!(e.value("powhost_callbacks_retried_total", &[]), 2.0);
    assert_eq!(e.value("powhost_callbacks_pending", &[]), 0.0);
    assert_eq!(
        e.value("powhost_callbacks_oldest_pending_age_seconds", &[]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_moves_valid_nonces_and_the_block_height() {
    let app = app(config());
    let receiver = Receiver::start().await;
    deliver(&app);
    let init = json!({
        "node_id": 0,
        "node_count": 1,
        "block_hash": HASH,
        "block_height": 7,
        "public_key": KEY,
        "batch_size": 100,
        // Every nonce is valid under this target.
        "r_target": 10.0,
        "fraud_threshold": 1e-7,
        "params": tiny_input()["params"],
        "url": format!("{}/v1/poc-batches", receiver.url),
    });
    let (status, text) = send(
        &app,
        "POST",
        "/api/v1/pow/init/generate",
        Some(&init.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let e = loop {
        let e = scrape(&app).await;
        if e.value("powhost_nonces_valid_total", &CPU) > 0.0 {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no valid nonce counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.value("powhost_model_block_height", &[]), 7.0);
    assert!(
        e.value("powhost_nonces_computed_total", &CPU)
            >= e.value("powhost_nonces_valid_total", &CPU)
    );
    let (_, h) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(h["service_state"], json!("POW"));
    assert_eq!(
        h["managers"]["pow"],
        json!({"running": true, "healthy": true})
    );
}
