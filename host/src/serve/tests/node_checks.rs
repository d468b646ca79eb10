//! What the node API accepts and refuses, as the reference and the validator plugin would:
//! init values the validator would refuse later are refused at init in its words, unknown
//! `params` keys are ignored, a ProofBatch needs every field, and the status says what the
//! node is doing when its nonces run out.

use super::node_requests::init_request;
use super::*;

async fn init(app: &Arc<App>, path: &str, init: &Value) -> (StatusCode, Value) {
    send_json(app, "POST", path, Some(&init.to_string())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_values_the_validator_would_refuse_are_refused_in_its_words() {
    let app = app(config());
    let url = "http://127.0.0.1:1/x";
    let long_hash = "a".repeat(powhost_plugin_kit::MAX_TEXT_BYTES + 1);
    for (field, value, says) in [
        (
            "fraud_threshold",
            json!(0),
            "`fraud_threshold` must be a positive finite number, got 0",
        ),
        (
            "fraud_threshold",
            json!(1.5),
            "`fraud_threshold` is a probability and must be at most 1, got 1.5",
        ),
        (
            "r_target",
            json!(0.0),
            "`r_target` must be a positive finite number, got 0",
        ),
        ("block_hash", json!(long_hash), "bytes long"),
        (
            "block_height",
            json!(-1),
            "`block_height` must be 0 or more",
        ),
    ] {
        let mut body = init_request(url, 0, 1, 1.4);
        body[field] = value;
        for path in ["/api/v1/pow/init/validate", "/api/v1/pow/init"] {
            let (status, v) = init(&app, path, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {v}");
            let detail = v["detail"].as_str().unwrap();
            assert!(detail.contains(says), "{field}: {detail}");
        }
    }
    let (_, state) = send_json(&app, "GET", "/api/v1/state", None).await;
    assert_eq!(state["state"], json!("STOPPED"), "nothing was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_params_keys_are_ignored_as_by_the_reference() {
    let app = app(config());
    let mut body = init_request("http://127.0.0.1:1/x", 0, 1, 1.4);
    body["params"]["a_field_of_a_newer_node"] = json!({"any": "value"});
    let (status, v) = init(&app, "/api/v1/pow/init/validate", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // The init is the same as without the key: the controller is kept.
    let (status, v) = init(
        &app,
        "/api/v1/pow/init/validate",
        &init_request("http://127.0.0.1:1/x", 0, 1, 1.4),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A known field with a wrong value is still refused.
    body["params"]["dim"] = json!("wide");
    let (status, v) = init(&app, "/api/v1/pow/init/validate", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("invalid type"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_batch_without_node_id_is_refused_422() {
    let app = app(config());
    let body = init_request("http://127.0.0.1:1/x", 0, 1, 1.4);
    assert_eq!(
        init(&app, "/api/v1/pow/init/validate", &body).await.0,
        StatusCode::OK
    );
    let batch = json!({
        "public_key": KEY, "block_hash": HASH, "block_height": 7,
        "nonces": [1], "dist": [1.0],
    });
    let (status, v) = send_json(
        &app,
        "POST",
        "/api/v1/pow/validate",
        Some(&batch.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("missing field `node_id`"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_nonces_run_out_says_so() {
    let app = app(config());
    // Node 3 of 2^62 has two nonces below 2^63: 3 and 3 + 2^62.
    let body = init_request("http://127.0.0.1:1/x", 3, 1 << 62, 10.0);
    let (status, v) = init(&app, "/api/v1/pow/init/generate", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let (_, status) = send_json(&app, "GET", "/api/v1/pow/status", None).await;
        if status["status"] != json!("GENERATING") {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["status"], json!("STOPPED"), "{status}");
    assert_eq!(status["computed"], json!(2), "{status}");
    assert!(status.get("error").is_none(), "{status}");
    assert!(
        status["ended"].as_str().unwrap().contains("below 2^63"),
        "{status}"
    );
}

/// The node software sends its 1-based registration number as `node_id` and counts only the
/// nodes dispatched to, so `node_id ≥ node_count` is how the network runs: accepted, as by
/// the reference, computing `node_id + m·node_count`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_id_past_node_count_generates_as_the_reference_does() {
    let app = app(config());
    let body = init_request("http://127.0.0.1:1/x", 5, 2, 10.0);
    let (status, v) = init(&app, "/api/v1/pow/init/generate", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["pow_status"]["status"], json!("GENERATING"));
}
