//! What becomes of a job beyond its answer: the compute slots and the queue in front of them,
//! cancellation (by `/cancel`, by a `/runsync` caller hanging up, before or during its
//! computation), `/runsync?wait=`, webhooks, and the server's shutdown.

use super::*;
use crate::test_support::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_answered_503_before_the_job_is_kept() {
    let app = app(ServeConfig {
        concurrency: 1,
        queue: 0,
        ..config()
    });
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

/// A job computing in the only slot, with nothing allowed to wait: the next request is
/// answered 503, and once the job is cancelled the slot takes requests again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_the_only_slot_turns_the_next_away_until_it_ends() {
    let app = app(ServeConfig {
        concurrency: 1,
        queue: 0,
        ..config()
    });
    let (status, first) = send_json(&app, "POST", "/run", Some(&stream_job(0, 16, None))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    wait_for_status(&app, &id, "IN_PROGRESS").await;
    let (status, busy) = send_json(&app, "POST", "/runsync", Some(&stream_job(0, 16, None))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{busy}");
    assert!(busy["detail"].as_str().unwrap().contains("busy"), "{busy}");
    let (_, health) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(health["workers"], json!({"running": 1, "idle": 0}));

    send(&app, "POST", &format!("/cancel/{id}"), None).await;
    idle(&app).await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (status, v) = send_json(&app, "POST", "/runsync", Some(&request)).await;
    assert_eq!(
        (status, &v["status"]),
        (StatusCode::OK, &json!("COMPLETED"))
    );
}

/// A job cancelled once it has a batch: its result, CANCELLED with the batches computed,
/// goes to its webhook, retried past a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_jobs_result_reaches_its_webhook_past_a_refusal() {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500]);
    let app = app(config());
    deliver(&app);
    let hook = format!("{}/hook", receiver.url);
    let (status, first) =
        send_json(&app, "POST", "/run", Some(&stream_job(0, 16, Some(&hook)))).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    loop {
        let (_, s) = send_json(&app, "GET", &format!("/stream/{id}"), None).await;
        if s["stream"] != json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    send(&app, "POST", &format!("/cancel/{id}"), None).await;
    let received = receiver
        .wait_until("the webhook", Duration::from_secs(120), |r| {
            r.iter().any(|p| p.accepted())
        })
        .await;
    let delivered = received.iter().find(|p| p.accepted()).unwrap();
    // The refused POST, sent again.
    assert_eq!(delivered.batch_id, received[0].batch_id);
    assert_eq!(delivered.path, "/hook");
    let body: Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(body["id"], json!(id));
    assert_eq!(body["status"], json!("CANCELLED"));
    assert!(!body["output"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_a_slot_is_cancelled_before_it_starts() {
    let app = app(ServeConfig {
        concurrency: 1,
        queue: 4,
        ..config()
    });
    let slot = app.slots.reserve().unwrap().acquire().await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (status, v) = send_json(&app, "POST", "/run", Some(&request)).await;
    assert_eq!(status, StatusCode::OK);
    let id = v["id"].as_str().unwrap().to_string();
    let (_, cancelled) = send_json(&app, "POST", &format!("/cancel/{id}"), None).await;
    assert_eq!(cancelled["status"], json!("CANCELLED"));
    drop(slot);
    idle(&app).await;
    let (_, v) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
    assert_eq!(v["status"], json!("CANCELLED"), "{v}");
    assert!(
        v.get("output").is_none(),
        "a cancelled job computed nothing: {v}"
    );
}

/// `/cancel` during a long compute call: the job ends CANCELLED, never FAILED as the plugin's
/// fault once the call has run past the plugin's time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_during_a_long_batch_stays_cancelled() {
    let limits = PluginLimits {
        guest_time: Duration::from_millis(300),
        ..PluginLimits::default()
    };
    let host = host_with(limits);
    let runpod = host.load("runpod").unwrap();
    let app = app_on(host, runpod, config());
    let (status, v) = send_json(&app, "POST", "/run", Some(&long_stream_job())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    send(&app, "POST", &format!("/cancel/{id}"), None).await;
    // Once its background work has ended, the job's record is final.
    idle(&app).await;
    let (_, finished) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
    assert_eq!(finished["status"], json!("CANCELLED"), "{finished}");
}

/// A `/runsync` caller that hangs up cancels its job, which is counted cancelled, not in
/// progress for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsync_caller_that_hangs_up_cancels_its_job() {
    let app = app(config());
    let caller = tokio::spawn({
        let app = Arc::clone(&app);
        async move { send(&app, "POST", "/runsync", Some(&long_stream_job())).await }
    });
    wait_for_health(&app, "the job starts", |h| {
        h["jobs"]["inProgress"] == json!(1)
    })
    .await;
    // Hanging up: the request's future is dropped.
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    idle(&app).await;
    let (_, health) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(health["jobs"]["inProgress"], json!(0), "{health}");
    assert_eq!(health["jobs"]["cancelled"], json!(1), "{health}");
    assert_eq!(health["workers"]["running"], json!(0), "{health}");
}

/// `/runsync?wait=MS` answers with the job's id once the wait is over, so it can be polled and
/// cancelled; a job done within its wait is answered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_with_a_wait_hands_out_the_id() {
    let app = app(config());
    let start = std::time::Instant::now();
    let (status, v) = send_json(&app, "POST", "/runsync?wait=300", Some(&long_stream_job())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(v["status"], json!("IN_PROGRESS"), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sync-"), "{id}");
    let (_, cancelled) = send_json(&app, "POST", &format!("/cancel/{id}"), None).await;
    assert_eq!(cancelled["status"], json!("CANCELLED"));
    idle(&app).await;
    let (_, health) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(health["jobs"]["cancelled"], json!(1), "{health}");
    assert_eq!(health["jobs"]["inProgress"], json!(0), "{health}");
    // A short job within its wait: the whole answer.
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (status, v) = send_json(&app, "POST", "/runsync?wait=60000", Some(&request)).await;
    assert_eq!(
        (status, &v["status"]),
        (StatusCode::OK, &json!("COMPLETED")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_refuses_a_wait_that_is_not_a_whole_number_of_milliseconds() {
    let app = app(config());
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    for bad in ["0", "abc", "-5", "99999999999999"] {
        let (status, v) = send_json(
            &app,
            "POST",
            &format!("/runsync?wait={bad}"),
            Some(&request),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("`wait`"), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_queued_jobs_from_starting() {
    let app = app(ServeConfig {
        concurrency: 1,
        queue: 4,
        ..config()
    });
    let slot = app.slots.reserve().unwrap().acquire().await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (_, v) = send_json(&app, "POST", "/run", Some(&request)).await;
    let id = v["id"].as_str().unwrap().to_string();
    // The process's stop reaches the server's jobs through the stop tree.
    app.host.stop.finish();
    drop(slot);
    idle(&app).await;
    let (_, v) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
    assert_eq!(v["status"], json!("FAILED"), "{v}");
    assert_eq!(v["error_type"], json!("Cancelled"), "{v}");
}
