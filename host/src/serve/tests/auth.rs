//! Access control through the router: the node's control routes refuse requests not signed
//! by the signer key (tests/golden/signatures.json: the reference library's verdicts, sent
//! over HTTP) and change nothing when they do; the serverless routes refuse requests without
//! the API key; the routes left open stay open; the GPU routes answer in the reference's shapes.

use super::*;
use crate::serve::{Access, ApiKey, SignerKey};
use crate::test_support::proof_batches::generated_nonces;
use crate::test_support::receiver::Receiver;
use axum::http::HeaderMap;
use k256::ecdsa::signature::Signer;
use k256::ecdsa::{Signature, SigningKey};

/// The signer of tests/golden/signatures.json (scripts/signature_vectors.py).
fn signing_key() -> SigningKey {
    let mut secret = [0u8; 32];
    secret[20..].copy_from_slice(&0x5E_C2E7_1234_5678_9ABC_DEF0_u128.to_be_bytes()[4..]);
    SigningKey::from_slice(&secret).unwrap()
}

fn vectors() -> Value {
    golden("signatures.json")
}

/// The signer's key as SIGNER_PUBKEY holds it, in an encoding of the vectors.
fn pubkey(encoding: &str) -> String {
    let vectors = vectors();
    let case = vectors["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key_encoding"] == json!(encoding))
        .unwrap();
    case["signer_pubkey"].as_str().unwrap().to_string()
}

fn signed_config(encoding: &str) -> ServeConfig {
    ServeConfig {
        access: Access {
            signer: Some(SignerKey::from_base64(&pubkey(encoding)).unwrap()),
            api_key: None,
        },
        ..config()
    }
}

/// X-Signature for `body`, by the signer.
fn sign(body: &str) -> Vec<u8> {
    use base64::Engine;
    let signature: Signature = signing_key().sign(body.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(signature.to_bytes())
        .into_bytes()
}

/// (status, JSON body, headers) of one request with these headers.
async fn send_with(
    app: &Arc<App>,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &[u8])],
) -> (StatusCode, Value, HeaderMap) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, axum::http::HeaderValue::from_bytes(value).unwrap());
    }
    let request = request.body(Body::from(body.to_string())).unwrap();
    let response = router(app.clone()).oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, value, headers)
}

async fn send_signed(app: &Arc<App>, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
    let signature = sign(body);
    let (status, v, _) = send_with(app, method, path, body, &[("X-Signature", &signature)]).await;
    (status, v)
}

fn init_request(url: &str) -> Value {
    json!({
        "node_id": 0, "node_count": 1, "block_hash": HASH, "block_height": 7,
        "public_key": KEY, "batch_size": 100, "r_target": 10.0, "fraud_threshold": 1e-7,
        "params": tiny_input()["params"], "url": url,
    })
}

const MISSING: (StatusCode, &str) = (StatusCode::FORBIDDEN, "Missing signature");
const INVALID: (StatusCode, &str) = (StatusCode::FORBIDDEN, "Invalid signature");

/// Every guarded route, sent unsigned, with an empty signature, and with the signature of
/// another body: each is refused with the reference's 403. The inits would send the nonces to
/// `stranger_url`.
async fn assert_every_route_refuses_strangers(app: &Arc<App>, init: &Value, stranger_url: &str) {
    let stranger = init_request(stranger_url).to_string();
    let batch = json!({"public_key": KEY, "block_hash": HASH, "block_height": 7, "nonces": [1], "dist": [0.5], "node_id": 0}).to_string();
    let routes = [
        ("POST", "/api/v1/pow/init", stranger.clone()),
        ("POST", "/api/v1/pow/init/generate", stranger.clone()),
        ("POST", "/api/v1/pow/init/validate", stranger),
        ("POST", "/api/v1/pow/phase/generate", String::new()),
        ("POST", "/api/v1/pow/phase/validate", String::new()),
        ("POST", "/api/v1/pow/validate", batch),
        ("GET", "/api/v1/pow/status", String::new()),
        ("POST", "/api/v1/pow/stop", String::new()),
        ("GET", "/api/v1/gpu/devices", String::new()),
        ("GET", "/api/v1/gpu/driver", String::new()),
    ];
    let others_signature = sign(&init.to_string());
    for (method, path, body) in routes {
        for (headers, want) in [
            (vec![], MISSING),
            (vec![("X-Signature", &b""[..])], MISSING),
            (vec![("X-Signature", &others_signature[..])], INVALID),
        ] {
            let (status, v, _) = send_with(app, method, path, &body, &headers).await;
            assert_eq!(
                (status, v),
                (want.0, json!({"detail": want.1})),
                "{method} {path} with {} header(s)",
                headers.len()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_control_requests_are_refused_and_change_nothing() {
    let (receiver, strangers) = (Receiver::start().await, Receiver::start().await);
    let app = app(signed_config("compressed"));
    deliver(&app);
    let init = init_request(&format!("{}/v1/poc-batches", receiver.url));
    let stranger_url = format!("{}/v1/poc-batches", strangers.url);
    let status = || send_signed(&app, "GET", "/api/v1/pow/status", "");

    assert_every_route_refuses_strangers(&app, &init, &stranger_url).await;
    assert_eq!(
        status().await,
        (StatusCode::OK, json!({"status": "NOT_LOADED"}))
    );

    // The node's own requests pass.
    let (code, v) = send_signed(&app, "POST", "/api/v1/pow/init/generate", &init.to_string()).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["pow_status"]["status"], json!("GENERATING"));

    // While it generates, strangers can neither stop, redirect nor flip it: the node's
    // receiver gets the nonces, the stranger's nothing.
    assert_every_route_refuses_strangers(&app, &init, &stranger_url).await;
    let (code, v) = status().await;
    assert_eq!((code, &v["status"]), (StatusCode::OK, &json!("GENERATING")));
    receiver
        .wait_until("generated nonces", Duration::from_secs(120), |r| {
            !generated_nonces(r, &init).is_empty()
        })
        .await;
    assert!(strangers.received().is_empty());
    let (code, v) = send_signed(&app, "POST", "/api/v1/pow/init/generate", &init.to_string()).await;
    assert_eq!(code, StatusCode::OK, "{v}");

    // The open routes answer anyone, as in the reference.
    let (code, v, _) = send_with(&app, "GET", "/api/v1/state", "", &[]).await;
    assert_eq!((code, &v["state"]), (StatusCode::OK, &json!("POW")));
    let (code, _, _) = send_with(&app, "GET", "/health", "", &[]).await;
    assert_eq!(code, StatusCode::OK);

    let (code, v) = send_signed(&app, "POST", "/api/v1/pow/stop", "").await;
    assert_eq!((code, &v["status"]), (StatusCode::OK, &json!("OK")));
    let (_, v, _) = send_with(&app, "GET", "/api/v1/state", "", &[]).await;
    assert_eq!(v["state"], json!("STOPPED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_references_signatures_get_its_verdicts_over_http() {
    let vectors = vectors();
    let mut apps = std::collections::HashMap::new();
    for case in vectors["signatures"].as_array().unwrap() {
        let encoding = case["key_encoding"].as_str().unwrap();
        let app = apps
            .entry(encoding.to_string())
            .or_insert_with(|| app(signed_config(encoding)));
        let body = case["body"].as_str().unwrap();
        let signature = case["signature"].as_str().unwrap().as_bytes();
        // A GET's signature covers its empty body.
        let (method, path) = if body.is_empty() {
            ("GET", "/api/v1/pow/status")
        } else {
            ("POST", "/api/v1/pow/init")
        };
        let (status, v, _) =
            send_with(app, method, path, body, &[("X-Signature", signature)]).await;
        let what = format!("{} ({} key): {status} {v}", case["what"], encoding);
        match case["expected"].as_str().unwrap() {
            // Past the check: a status, or the init body's missing fields.
            "ok" => assert!(
                status == StatusCode::OK || status == StatusCode::UNPROCESSABLE_ENTITY,
                "{what}"
            ),
            "invalid" => assert_eq!(
                (status, v),
                (INVALID.0, json!({"detail": INVALID.1})),
                "{what}"
            ),
            "missing" => assert_eq!(
                (status, v),
                (MISSING.0, json!({"detail": MISSING.1})),
                "{what}"
            ),
            other => panic!("unknown verdict {other}"),
        }
    }
    assert_eq!(apps.len(), 4, "every key encoding was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_is_checked_before_the_body_is_parsed() {
    let app = app(signed_config("raw"));
    for (headers, want) in [
        (vec![], MISSING),
        (vec![("X-Signature", &sign("{}")[..])], INVALID),
    ] {
        let (status, v, _) =
            send_with(&app, "POST", "/api/v1/pow/init", "not json {", &headers).await;
        assert_eq!((status, v), (want.0, json!({"detail": want.1})));
    }
    // Signed, the body is then read as ever.
    let (status, v) = send_signed(&app, "POST", "/api/v1/pow/init", "not json {").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_signer_key_nothing_is_checked() {
    let app = app(config());
    let (status, v, _) = send_with(&app, "GET", "/api/v1/pow/status", "", &[]).await;
    assert_eq!(
        (status, v),
        (StatusCode::OK, json!({"status": "NOT_LOADED"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gpu_routes_answer_as_the_reference_does_without_a_gpu() {
    let app = app(signed_config("uncompressed"));
    let (status, v) = send_signed(&app, "GET", "/api/v1/gpu/devices", "").await;
    assert_eq!(
        (status, v),
        (StatusCode::OK, json!({"devices": [], "count": 0}))
    );
    let (status, v) = send_signed(&app, "GET", "/api/v1/gpu/driver", "").await;
    assert_eq!(
        (status, v),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": "NVML not initialized. GPU features are not available."})
        )
    );
}

fn keyed_config() -> ServeConfig {
    ServeConfig {
        access: Access {
            signer: None,
            api_key: Some(ApiKey::new("s3cret-key")),
        },
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serverless_routes_need_the_api_key() {
    let app = app(keyed_config());
    let job = json!({"input": tiny_input()}).to_string();
    let refusals: [(&[u8], &str); 6] = [
        (b"Bearer wrong-key", "not valid"),
        (b"Bearer s3cret-ke", "not valid"),
        (b"Basic s3cret-key", "must be `Bearer KEY`"),
        (b"s3cret-key", "must be `Bearer KEY`"),
        (b"Bearer", "must be `Bearer KEY`"),
        (b"Bearer \xff\xfe\x80junk", "not valid"),
    ];
    for (method, path) in [
        ("POST", "/runsync"),
        ("POST", "/run"),
        ("GET", "/status/some-id"),
        ("POST", "/stream/some-id"),
        ("POST", "/cancel/some-id"),
    ] {
        let (status, v, headers) = send_with(&app, method, path, &job, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer KEY")
        );
        assert_eq!(headers["www-authenticate"], r#"Bearer realm="powhost""#);
        for (authorization, why) in refusals {
            let (status, v, headers) = send_with(
                &app,
                method,
                path,
                &job,
                &[("Authorization", authorization)],
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {v}");
            assert!(v["detail"].as_str().unwrap().contains(why), "{path}: {v}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer ")
            );
        }
    }
    // Nothing was queued by the refused requests.
    let (_, health, _) = send_with(&app, "GET", "/health", "", &[]).await;
    assert_eq!(
        health["jobs"],
        json!({"completed": 0, "failed": 0, "cancelled": 0, "inProgress": 0, "inQueue": 0, "retried": 0})
    );

    // The key passes, under the scheme's name in any case.
    for authorization in ["Bearer s3cret-key", "bearer s3cret-key"] {
        let header = [("Authorization", authorization.as_bytes())];
        let (status, v, _) = send_with(&app, "POST", "/runsync", &job, &header).await;
        assert_eq!(
            (status, &v["status"]),
            (StatusCode::OK, &json!("COMPLETED")),
            "{v}"
        );
        let (status, v, _) = send_with(&app, "GET", "/status/nope", "", &header).await;
        assert_eq!(
            (status, &v["error"]),
            (StatusCode::NOT_FOUND, &json!("Job ID not found"))
        );
    }
    // The node's routes are not the key's.
    let (status, _, _) = send_with(&app, "GET", "/api/v1/pow/status", "", &[]).await;
    assert_eq!(status, StatusCode::OK);
}
