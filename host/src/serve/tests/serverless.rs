//! The serverless endpoints answering: `/runsync` against the golden responses, `/run` with
//! its stream, bodies refused with the reason, a plugin's failures kept to its job, and a
//! bounded load test.

use super::*;
use crate::test_support::golden_response::assert_matches_golden;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_answers_with_the_golden_response_in_the_contracts_key_order() {
    let app = app(config());
    for file in ["runpod_tiny_r2.json", "runpod_tiny_rdefault.json"] {
        let g = golden(file);
        let (status, text) = send(&app, "POST", "/runsync", Some(&g["request"].to_string())).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        // Keys in the serverless API's order, and the output's in the reference handler's.
        let position = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
        assert!(position("id") < position("status") && position("status") < position("output"));
        let order = [
            "public_key",
            "block_hash",
            "block_height",
            "nonces",
            "dist",
            "node_id",
            "total_computed",
            "total_valid",
        ];
        assert!(
            order.windows(2).all(|w| position(w[0]) < position(w[1])),
            "{text}"
        );

        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], json!("COMPLETED"));
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("sync-"), "{id}");
        assert_matches_golden(&v["output"], &g["expected_response"], file);
        // The same job, by id.
        let (status, again) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
        assert_eq!((status, &again["output"]), (StatusCode::OK, &v["output"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_jobs_batches_stream_in_order_until_it_is_cancelled() {
    let app = app(config());
    let (status, job) = send_json(&app, "POST", "/run", Some(&stream_job(100, 16, None))).await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"], json!("IN_QUEUE"));
    let id = job["id"].as_str().unwrap().to_string();
    let stream_path = format!("/stream/{id}");
    let outputs = |s: &Value| -> Vec<Value> {
        s["stream"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["output"].clone())
            .collect()
    };

    // Batches arrive on /stream as they are computed; each call gives the new ones.
    let mut batches: Vec<Value> = Vec::new();
    while batches.len() < 3 {
        let (status, s) = send_json(&app, "GET", &stream_path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(s["id"], json!(id));
        batches.extend(outputs(&s));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, cancelled) = send_json(&app, "POST", &format!("/cancel/{id}"), None).await;
    assert_eq!(cancelled, json!({"id": id, "status": "CANCELLED"}));
    idle(&app).await;
    let (_, last) = send_json(&app, "GET", &format!("/status/{id}"), None).await;
    assert_eq!(last["status"], json!("CANCELLED"), "{last}");
    let (_, rest) = send_json(&app, "GET", &stream_path, None).await;
    batches.extend(outputs(&rest));
    // Consecutive batches from 100, none lost or repeated; the output has them all.
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(b["batch_number"], json!(i + 1));
        assert_eq!(b["next_nonce"], json!(100 + 16 * (i + 1)));
    }
    assert_eq!(last["output"].as_array().unwrap().len(), batches.len());
    let (_, health) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(health["jobs"]["cancelled"], json!(1), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_malformed_bodies_with_the_reason() {
    let app = app(config());
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
            r#"{"input": [1]}"#,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_refuses_malformed_bodies_422_with_the_reason() {
    let app = app(config());
    for (body, says) in [
        ("", "empty"),
        ("{nope", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "missing field `input`"),
        ("{\"input\": {}, \"webhook\": 5}", "webhook"),
    ] {
        let (status, v) = send_json(&app, "POST", "/runsync", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(says),
            "{body}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_size_limit_is_refused_413_naming_the_flag() {
    let app = app(ServeConfig {
        max_body: 1 << 20,
        ..config()
    });
    let big = format!("{{\"input\": {{\"pad\": \"{}\"}}}}", "x".repeat(2 << 20));
    let (status, text) = send(&app, "POST", "/runsync", Some(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("--max-body"), "{text}");
    // Still serving.
    assert_eq!(send(&app, "GET", "/health", None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_refusal_is_a_failed_job_with_the_plugins_error() {
    let app = app(config());
    let (status, v) = send_json(
        &app,
        "POST",
        "/runsync",
        Some("{\"input\": {\"block_hash\": \"ab\"}}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], json!("FAILED"));
    assert_eq!(v["error_type"], json!("KeyError"));
}

/// The `misbehave` test plugin: traps, loops or hoards memory on request.
const MISBEHAVE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/misbehave.wasm"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_plugin_fails_its_job_and_the_server_goes_on() {
    let limits = PluginLimits {
        memory_bytes: 64 << 20,
        guest_time: Duration::from_millis(500),
    };
    let host = host_with(limits);
    let misbehave = Arc::new(host.plugins.load_bytes("misbehave", MISBEHAVE).unwrap());
    let app = app_on(host, misbehave, config());
    for (action, says) in [
        ("trap", "trapped"),
        ("loop", "time limit"),
        ("memory", "memory limit"),
    ] {
        let body = json!({"input": {"action": action}}).to_string();
        let (status, v) = send_json(&app, "POST", "/runsync", Some(&body)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], json!("FAILED"), "{action}: {v}");
        assert_eq!(v["error_type"], json!("PluginError"), "{action}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{action}: {v}");
    }
    let body = json!({"input": {"action": "hello"}}).to_string();
    let (_, v) = send_json(&app, "POST", "/runsync", Some(&body)).await;
    assert_eq!(v["status"], json!("COMPLETED"), "{v}");
    let (_, health) = send_json(&app, "GET", "/health", None).await;
    assert_eq!(health["jobs"]["failed"], json!(3));
}

/// A bounded load test: 200 concurrent /runsync requests for the 64-nonce tiny golden
/// request; every one is answered with the golden nonces. Prints requests/s (run with
/// --nocapture); the figure belongs in docs/BENCHMARKS.md, not in an assertion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_200_concurrent_runsync() {
    const CLIENTS: usize = 200;
    let app = app(ServeConfig {
        concurrency: 2,
        queue: 256,
        ..config()
    });
    let g = golden("runpod_tiny_r2.json");
    let body = Arc::new(g["request"].to_string());
    let want = g["expected_response"]["nonces"].clone();
    let start = std::time::Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (app, body) = (Arc::clone(&app), body.clone());
            tokio::spawn(async move { send_json(&app, "POST", "/runsync", Some(&body)).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(CLIENTS);
    for client in clients {
        answers.push(client.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    for (status, v) in &answers {
        assert_eq!(*status, StatusCode::OK, "{v}");
        assert_eq!(v["status"], json!("COMPLETED"), "{v}");
        assert_eq!(v["output"]["nonces"], want);
    }
    eprintln!(
        "load: {CLIENTS} concurrent /runsync (tiny, 64 nonces each) answered in {elapsed:.2} s: {:.0} requests/s, {:.0} nonces/s",
        CLIENTS as f64 / elapsed,
        (CLIENTS * 64) as f64 / elapsed
    );
}
