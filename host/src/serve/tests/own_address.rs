//! Callbacks and webhooks that would reach this server itself are refused when they are
//! given: posted back to its own endpoints they loop (`…/pow/validate?`) or act as commands
//! (`…/pow/stop?`).

use super::node_requests::init_request;
use super::*;

/// The app as if listening on `listening`.
fn listening_on(listening: &str) -> Served {
    let app = app(config());
    app.listening.set(listening.parse().unwrap()).unwrap();
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_url_reaching_this_server_is_refused_at_init() {
    // `[::]`: every local address of both families.
    let app = listening_on("[::]:18080");
    for url in [
        "http://127.0.0.1:18080/api/v1/pow/validate?",
        "http://LOCALHOST.:18080/api/v1/pow/stop?",
        "http://[::1]:18080/x",
        "http://127.9.9.9:18080/x",
        "http://0.0.0.0:18080/x",
    ] {
        let init = init_request(url, 0, 1, 10.0).to_string();
        for path in ["/api/v1/pow/init/generate", "/api/v1/pow/init"] {
            let (status, v) = send_json(&app, "POST", path, Some(&init)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {v}");
            let detail = v["detail"].as_str().unwrap();
            assert!(
                detail.starts_with("`url` reaches this server itself"),
                "{url}: {detail}"
            );
        }
    }
    // Nothing was started.
    let (_, state) = send_json(&app, "GET", "/api/v1/state", None).await;
    assert_eq!(state["state"], json!("STOPPED"));
    // Another port of the same machine is another server.
    let init = init_request("http://127.0.0.1:18081/x", 0, 1, 10.0).to_string();
    let (status, v) = send_json(&app, "POST", "/api/v1/pow/init", Some(&init)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_reaching_this_server_is_refused() {
    let app = listening_on("127.0.0.1:18082");
    let mut job =
        json!({"input": tiny_input(), "webhook": "http://localhost:18082/api/v1/pow/stop?"});
    for path in ["/run", "/runsync"] {
        let (status, v) = send_json(&app, "POST", path, Some(&job.to_string())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("`webhook` reaches this server itself"),
            "{detail}"
        );
    }
    job["webhook"] = json!("http://127.0.0.1:18083/hook");
    let (status, v) = send_json(&app, "POST", "/runsync", Some(&job.to_string())).await;
    assert_eq!(
        (status, &v["status"]),
        (StatusCode::OK, &json!("COMPLETED"))
    );
}
