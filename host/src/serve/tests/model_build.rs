//! A large model takes seconds to build; the server answers meanwhile.

use super::node_requests::init_request;
use super::*;
use std::time::Instant;

/// `reference-default` (an init without `params`) takes seconds to build on a CPU. While it
/// builds, more inits with it (whose params are checked against the model cache) and a
/// state query must not wait for it: the async threads never wait on a build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_while_a_model_builds() {
    let app = app(config());
    let mut body = init_request("http://127.0.0.1:1/x", 0, 1, 1.4);
    body.as_object_mut().unwrap().remove("params");
    let body = body.to_string();
    let (status, v) = send_json(&app, "POST", "/api/v1/pow/init", Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // As many more inits as there are async threads.
    let more: Vec<_> = (0..2)
        .map(|_| {
            let (app, body) = (Arc::clone(&app), body.clone());
            tokio::spawn(async move { send(&app, "POST", "/api/v1/pow/init", Some(&body)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let (_, state) = send_json(&app, "GET", "/api/v1/state", None).await;
    let waited = start.elapsed();
    let (_, status) = send_json(&app, "GET", "/api/v1/pow/status", None).await;
    assert_eq!(state, json!({"state": "POW"}));
    assert_eq!(
        status["is_model_initialized"],
        json!(false),
        "the model was built before the test could look: {status}"
    );
    assert!(
        waited < Duration::from_secs(2),
        "/api/v1/state took {waited:?} while the model built"
    );
    for init in more {
        assert_eq!(init.await.unwrap().0, StatusCode::OK);
    }
}
