//! The node's PoC API driven as the node software drives it: generation delivering this
//! node's whole sequence to a receiver that refuses its first callbacks, phase flips,
//! validation catching a tampered batch, and init requests refused with the reason.

use super::*;
use crate::test_support::proof_batches::{assert_sequence, generated_nonces};
use crate::test_support::receiver::{Received, Receiver};
use std::collections::BTreeSet;

use super::node_requests::init_request;

fn callbacks_url(receiver: &Receiver) -> String {
    format!("{}/v1/poc-batches", receiver.url)
}

/// After generation stopped: wait until every callback the server holds has been delivered.
async fn wait_until_delivered(app: &Arc<App>) {
    // The batch in flight ends and is sealed within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_health(app, "every callback delivered", |h| {
        h["callbacks"]["pending"] == json!(0)
    })
    .await;
}

/// Wait until the receiver has accepted `n` generated nonces.
async fn wait_for_nonces(receiver: &Receiver, init: &Value, n: usize) -> Vec<Received> {
    receiver
        .wait_until(
            &format!("{n} generated nonces"),
            Duration::from_secs(120),
            |r| generated_nonces(r, init).len() >= n,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_delivers_this_nodes_sequence_despite_refused_callbacks() {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500, 500, 500]);
    let app = app(config());
    deliver(&app);
    let get = |path: &'static str| send_json(&app, "GET", path, None);
    assert_eq!(
        get("/api/v1/pow/status").await,
        (StatusCode::OK, json!({"status": "NOT_LOADED"}))
    );
    assert_eq!(
        get("/api/v1/state").await,
        (
            StatusCode::OK,
            json!({"state": "STOPPED", "version": env!("CARGO_PKG_VERSION")})
        )
    );

    // Unset node ids are refused as by the reference.
    let unset = init_request(&callbacks_url(&receiver), -1, -1, 10.0).to_string();
    assert_eq!(
        send_json(&app, "POST", "/api/v1/pow/init/generate", Some(&unset)).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "Node ID and node count must be set"})
        )
    );

    // Node 2 of 3; r_target 10 keeps every nonce, so the delivered nonces are everything
    // this node computed.
    let init = init_request(&callbacks_url(&receiver), 2, 3, 10.0);
    let (status, body) = send_json(
        &app,
        "POST",
        "/api/v1/pow/init/generate",
        Some(&init.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], json!("OK"));
    assert_eq!(body["pow_status"]["status"], json!("GENERATING"));
    assert_eq!(get("/api/v1/state").await.1["state"], json!("POW"));

    wait_for_nonces(&receiver, &init, 500).await;
    let (_, text) = send(&app, "GET", "/api/v1/pow/status", None).await;
    assert!(
        text.starts_with("{\"status\":\"GENERATING\",\"is_model_initialized\":true"),
        "{text}"
    );

    // Stop: what was computed is still delivered.
    let (status, body) = send_json(&app, "POST", "/api/v1/pow/stop", Some("")).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("OK")));
    assert_eq!(
        get("/api/v1/state").await.1,
        json!({"state": "STOPPED", "version": env!("CARGO_PKG_VERSION")})
    );
    wait_until_delivered(&app).await;

    let received = receiver.received();
    let refused: Vec<&Received> = received.iter().filter(|r| !r.accepted()).collect();
    assert_eq!(refused.len(), 3, "the first posts were refused");
    let got = generated_nonces(&received, &init);
    assert_sequence(got.iter().map(|g| g.0).collect(), 2, 3);
    // Each batch was delivered once, under its own id; the refused ones among them.
    let accepted: Vec<&Received> = received.iter().filter(|r| r.accepted()).collect();
    let ids: BTreeSet<&str> = accepted.iter().map(|r| r.batch_id.as_str()).collect();
    assert_eq!(ids.len(), accepted.len());
    assert!(refused.iter().all(|r| ids.contains(r.batch_id.as_str())));
    // And the distances are the backend's.
    let sample: Vec<(i64, f64)> = got.iter().copied().filter(|g| g.0 < 60).collect();
    let nonces: Vec<i64> = sample.iter().map(|g| g.0).collect();
    for ((n, d), want) in sample.iter().zip(direct_distances(&nonces)) {
        assert_eq!(*d, want, "nonce {n}");
    }
    // Stopping again says so.
    assert_eq!(
        send_json(&app, "POST", "/api/v1/pow/stop", Some(""))
            .await
            .1,
        json!({"status": "OK", "pow_status": "PoW is not running"})
    );
}

/// Phase flips abandon the batch in flight; it is computed again when generation resumes, so
/// the node's sequence has no gaps, and re-sending the same init keeps the position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_flips_keep_the_sequence_whole() {
    let receiver = Receiver::start().await;
    let app = app(config());
    deliver(&app);
    let init = init_request(&callbacks_url(&receiver), 0, 1, 10.0);
    let (status, _) = send(
        &app,
        "POST",
        "/api/v1/pow/init/generate",
        Some(&init.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_for_nonces(&receiver, &init, 200).await;

    let (status, v) = send_json(
        &app,
        "POST",
        "/api/v1/pow/init/validate",
        Some(&init.to_string()),
    )
    .await;
    assert_eq!(
        (status, &v["pow_status"]["status"]),
        (StatusCode::OK, &json!("VALIDATING"))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, paused) = send_json(&app, "GET", "/api/v1/pow/status", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, still) = send_json(&app, "GET", "/api/v1/pow/status", None).await;
    assert_eq!(
        paused["computed"], still["computed"],
        "generation went on while validating"
    );

    let (status, v) = send_json(&app, "POST", "/api/v1/pow/phase/generate", Some("")).await;
    assert_eq!(
        (status, &v["pow_status"]["status"]),
        (StatusCode::OK, &json!("GENERATING"))
    );
    let before = still["computed"].as_u64().unwrap() as usize;
    wait_for_nonces(&receiver, &init, before + 200).await;
    send(&app, "POST", "/api/v1/pow/stop", Some("")).await;
    wait_until_delivered(&app).await;
    let nonces = generated_nonces(&receiver.received(), &init)
        .iter()
        .map(|g| g.0)
        .collect();
    assert_sequence(nonces, 0, 1);
}

/// 400 nonces of the tiny model with their true distances, and an r_target that splits
/// them, so that some are valid and some are not.
fn batch_material() -> (Vec<i64>, Vec<f64>, f64) {
    let all: Vec<i64> = (0..400).collect();
    let dist = direct_distances(&all);
    let mut sorted = dist.clone();
    sorted.sort_by(f64::total_cmp);
    let r_target = (sorted[200] + sorted[201]) / 2.0;
    (all, dist, r_target)
}

fn proof_batch(nonces: &[i64], dist: &[f64]) -> Value {
    json!({
        "public_key": KEY,
        "block_hash": HASH,
        "block_height": 7,
        "nonces": nonces,
        "dist": dist,
        "node_id": 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_flags_a_tampered_batch_and_passes_an_honest_one() {
    let (all, dist, r_target) = batch_material();
    let valid: Vec<usize> = (0..all.len()).filter(|&i| dist[i] < r_target).collect();
    let invalid: Vec<usize> = (0..all.len()).filter(|&i| dist[i] > r_target).collect();
    assert!(valid.len() >= 200 && invalid.len() >= 6);

    let honest: Vec<usize> = valid[..200].to_vec();
    // 194 real, 6 whose true distance is above r_target, claimed below it.
    let tampered: Vec<usize> = valid[..194].iter().chain(&invalid[..6]).copied().collect();
    let claim = |idx: &[usize]| -> (Vec<i64>, Vec<f64>) {
        let nonces = idx.iter().map(|&i| all[i]).collect();
        let claimed = idx
            .iter()
            .map(|&i| {
                if dist[i] < r_target {
                    dist[i]
                } else {
                    r_target - 0.01
                }
            })
            .collect();
        (nonces, claimed)
    };

    let receiver = Receiver::start().await;
    receiver.answer_next(&[500]);
    let app = app(config());
    deliver(&app);
    let validate = |batch: String| {
        let app = Arc::clone(&app);
        async move { send_json(&app, "POST", "/api/v1/pow/validate", Some(&batch)).await }
    };
    let (h_nonces, h_dist) = claim(&honest);
    let (t_nonces, t_dist) = claim(&tampered);

    // Before any init there is nothing to validate against.
    assert_eq!(
        validate(proof_batch(&h_nonces, &h_dist).to_string()).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "PoW is not running"})
        )
    );

    let init = init_request(&callbacks_url(&receiver), 1, 1, r_target).to_string();
    let (status, body) = send_json(&app, "POST", "/api/v1/pow/init/validate", Some(&init)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pow_status"]["status"], json!("VALIDATING"));

    // Refused at once, with the reason: another block, a malformed batch, not JSON.
    let mut other = proof_batch(&h_nonces, &h_dist);
    other["block_hash"] = json!("ff");
    let (status, body) = validate(other.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("block hash `ff`") && detail.contains(HASH),
        "{detail}"
    );
    let mut short = proof_batch(&h_nonces, &h_dist);
    short["dist"] = json!([1.0]);
    let (status, body) = validate(short.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("one claimed distance per nonce"), "{body}");
    let (status, body) = validate("{\"nonces\": [1,".into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));

    // The honest batch, then the tampered one: the reference answers null and posts later.
    let honest_batch = proof_batch(&h_nonces, &h_dist).to_string();
    assert_eq!(validate(honest_batch).await, (StatusCode::OK, Value::Null));
    // Keys beyond the ProofBatch's are ignored, as by the reference; a batch cannot bring
    // its own r_target.
    let mut tampered_batch = proof_batch(&t_nonces, &t_dist);
    tampered_batch["batch_id"] = json!("x");
    tampered_batch["r_target"] = json!(2.0);
    assert_eq!(validate(tampered_batch.to_string()).await.0, StatusCode::OK);

    let received = receiver
        .wait_until("two ValidatedBatches", Duration::from_secs(120), |r| {
            r.iter().filter(|p| p.accepted()).count() >= 2
        })
        .await;
    let accepted: Vec<(String, Value)> = received
        .iter()
        .filter(|p| p.accepted())
        .map(|p| (p.path.clone(), serde_json::from_str(&p.body).unwrap()))
        .collect();
    assert_eq!(accepted.len(), 2);
    let find = |nonces: &[i64]| {
        accepted
            .iter()
            .find(|a| a.1["nonces"] == json!(nonces))
            .unwrap_or_else(|| panic!("no ValidatedBatch for {nonces:?}"))
            .clone()
    };
    let (path, h) = find(&h_nonces);
    assert_eq!(path, "/v1/poc-batches/validated");
    assert_eq!(h["n_invalid"], json!(0));
    assert_eq!(h["fraud_detected"], json!(false));
    assert_eq!(h["probability_honest"], json!(1.0));
    assert_eq!(h["received_dist"], json!(h_dist));
    assert_eq!(h["r_target"], json!(r_target));
    assert_eq!(h["fraud_threshold"], json!(1e-7));
    let recomputed: Vec<f64> = honest.iter().map(|&i| dist[i]).collect();
    assert_eq!(h["dist"], json!(recomputed));

    let (_, t) = find(&t_nonces);
    assert_eq!(t["n_invalid"], json!(6));
    assert_eq!(t["fraud_detected"], json!(true));
    let p = t["probability_honest"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1e-7, "{p}");
    assert_eq!(received.iter().filter(|p| !p.accepted()).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_init_requests_are_refused_422_with_the_reason() {
    let app = app(config());
    for (body, says) in [
        ("{\"node_id\": 1}", "missing field"),
        ("{\"node_id\": \"x\"}", "invalid type"),
    ] {
        let (status, v) = send_json(&app, "POST", "/api/v1/pow/init/generate", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(says),
            "{body}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_change_before_any_init_is_refused() {
    let app = app(config());
    let (status, v) = send_json(&app, "POST", "/api/v1/pow/phase/generate", Some("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("PoW is not running"),
        "{v}"
    );
}

/// Values that cannot work are refused by name, before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_values_that_cannot_work_are_refused_400_by_name() {
    let app = app(config());
    let init_generate = |init: &Value| {
        let (app, body) = (Arc::clone(&app), init.to_string());
        async move { send_json(&app, "POST", "/api/v1/pow/init/generate", Some(&body)).await }
    };
    let mut init = init_request("http://127.0.0.1:1/x", 0, 1, 1.4);
    init["params"]["n_heads"] = json!(3);
    let (status, v) = init_generate(&init).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("params"), "{v}");
    let mut init = init_request("ftp://x", 0, 1, 1.4);
    let (status, v) = init_generate(&init).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("url"), "{v}");
    init["url"] = json!("https://");
    let (status, v) = init_generate(&init).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("with a host"), "{v}");
    init["url"] = json!("http://127.0.0.1:1/x");
    init["r_target"] = json!(-1.0);
    assert_eq!(init_generate(&init).await.0, StatusCode::BAD_REQUEST);
}
