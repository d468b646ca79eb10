//! What a receiver or a callback URL can do to the server: receivers that redirect, never
//! answer or dawdle; a callback URL that reaches the server itself; and the server's own
//! answers (metrics switched off, health while a model builds).

use super::*;

/// Receivers that redirect, never answer, or answer slowly lose nothing and delay nothing
/// else: the node's ProofBatches reach a healthy receiver at once, the slow one gets its
/// webhooks, the others' are kept; SIGTERM returns within --flush-timeout (+1 s).
#[test]
fn bad_receivers_lose_nothing_delay_nothing_and_sigterm_keeps_the_deadline() {
    use common::receiver::Answer;
    let dir = common::tempdir();
    let kept = dir.path().join("undelivered.ndjson");
    let mut server = Server::start(&[
        "--callback-timeout",
        "60",
        "--flush-timeout",
        "3",
        "--undelivered",
        kept.to_str().unwrap(),
    ]);
    let (silent, redirecting, slow, healthy) = (
        server.receiver(),
        server.receiver(),
        server.receiver(),
        server.receiver(),
    );
    silent.answer_with(|_| Answer::never());
    let to = format!("{}/elsewhere", healthy.url);
    redirecting.answer_with(move |_| Answer::redirect(302, to.clone()));
    slow.answer_with(|_| Answer::new(200, "").held_for(Duration::from_millis(1500)));
    let input = golden("runpod_tiny_r2.json")["request"]["input"].clone();
    for (receiver, n) in [(&silent, 8), (&redirecting, 2), (&slow, 2)] {
        for _ in 0..n {
            let job = json!({ "input": input, "webhook": format!("{}/hook", receiver.url) });
            assert_eq!(server.post("/run", &job.to_string()).0, 200);
        }
    }
    server.block_on(silent.wait_for(6, Duration::from_secs(60)));
    let init = init_request(&format!("{}/v1/poc-batches", healthy.url), 0, 1, 10.0);
    let started = Instant::now();
    assert_eq!(
        server
            .post("/api/v1/pow/init/generate", &init.to_string())
            .0,
        200
    );
    server.block_on(healthy.wait_for(1, Duration::from_secs(60)));
    let first_batch = started.elapsed();
    assert!(
        first_batch < Duration::from_secs(5),
        "first ProofBatch after {first_batch:?}"
    );
    server.block_on(slow.wait_for(2, Duration::from_secs(30)));
    server.block_on(redirecting.wait_for(4, Duration::from_secs(60)));
    let signalled = Instant::now();
    let status = server.terminate();
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with --flush-timeout 3"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "undelivered webhooks show in the exit code"
    );
    let kept_text = std::fs::read_to_string(&kept).unwrap();
    let kept_for = |r: &Receiver| kept_text.matches(&format!("\"{}/hook\"", r.url)).count();
    let kept_counts = [&silent, &redirecting, &slow].map(kept_for);
    assert_eq!(kept_counts, [8, 2, 0], "{kept_text}");
    let all = [redirecting.received(), healthy.received()].concat();
    assert!(
        all.iter()
            .all(|r| r.method == "POST" && r.path != "/elsewhere")
    );
}

#[test]
fn metrics_turned_off_by_flag_answer_404_and_the_help_names_the_variable() {
    let server = Server::start(&["--metrics", "off"]);
    assert_eq!(server.get("/metrics").0, 404);
    assert_eq!(server.get("/health").0, 200);
    assert_eq!(server.get("/readyz"), (200, json!({"ready": true})));
    let help = Command::new(env!("CARGO_BIN_EXE_powhost"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[env: POWHOST_METRICS"), "{help}");
}

/// A callback URL that reaches the server itself (here by name, on the port it picked) is
/// refused at init: its callbacks would come back to its own endpoints without end.
#[test]
fn a_callback_url_reaching_the_server_itself_is_refused() {
    let server = Server::start(&[]);
    let port = server.addr.port();
    for url in [
        format!("http://localhost:{port}/api/v1/pow/validate?"),
        format!("http://127.0.0.1:{port}/api/v1/pow/stop?"),
    ] {
        let init = init_request(&url, 0, 1, 10.0);
        let (code, v) = server.post("/api/v1/pow/init/validate", &init.to_string());
        assert_eq!(code, 400, "{url}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("`url` reaches this server itself"),
            "{url}: {detail}"
        );
    }
    assert_eq!(server.get("/api/v1/state").1["state"], json!("STOPPED"));
}

/// While a large model builds (a weight pool of about 600 MB: seconds on a CPU), two more
/// inits with it, whose params are checked against the model cache, must not hold the
/// server's async threads: `/health` answers in less than half the build's time (waiting for
/// the build, it would take nearly all of it).
#[test]
fn the_server_answers_while_a_model_builds() {
    let server = Server::start(&[]);
    let mut init = init_request("http://127.0.0.1:9/x", 0, 1, 1.4);
    init["params"] = json!({"n_layers": 96});
    let init = init.to_string();
    let started = Instant::now();
    assert_eq!(server.post("/api/v1/pow/init", &init).0, 200);
    // The build is under way; as many more inits as the server has async threads.
    std::thread::sleep(Duration::from_millis(300));
    let more: Vec<_> = (0..2)
        .map(|_| {
            let request = server
                .client
                .post(server.url("/api/v1/pow/init"))
                .body(init.clone());
            server
                .runtime
                .spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    let (code, _) = server.get("/health");
    let waited = asked.elapsed();
    assert_eq!(code, 200);
    let (_, then) = server.get("/api/v1/pow/status");
    for init in more {
        assert_eq!(server.block_on(init).unwrap().unwrap().as_u16(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, status) = server.get("/api/v1/pow/status");
        if status["status"] != json!("LOADING") {
            assert_eq!(status["is_model_initialized"], json!(true), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the model was not built: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let built = started.elapsed();
    assert!(
        waited * 2 < built,
        "/health took {waited:?} while the model built (in {built:?})"
    );
    assert_eq!(
        then["status"],
        json!("LOADING"),
        "the model was built before the test could look: {then}"
    );
}
