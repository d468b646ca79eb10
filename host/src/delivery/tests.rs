//! The outbox against real receivers on loopback: order within a queue, retries, redirects,
//! receivers that never answer or answer slowly, the flush deadline.

use super::*;

#[test]
fn only_http_urls_with_a_host_are_taken() {
    assert!(check_url("http://10.0.0.2:9100/v1/poc-batches").is_ok());
    assert!(check_url("https://node/v1").is_ok());
    assert!(check_url("ftp://node").is_err());
    assert!(check_url("http://").is_err());
    assert!(check_url("node:9100").is_err());
}

#[test]
fn urls_join_like_the_reference() {
    assert_eq!(
        join("http://a:1/v1/poc-batches", "generated"),
        "http://a:1/v1/poc-batches/generated"
    );
    assert_eq!(join("http://a:1/x/", "validated"), "http://a:1/x/validated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_goes_out_in_order_and_a_refusal_is_retried_after_half_a_second() {
    use crate::test_support::receiver::Receiver;
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500]);
    let outbox = std::sync::Arc::new(Outbox::new(crate::test_support::delivery()).unwrap());
    let stop = CancellationToken::new();
    let sender = tokio::spawn({
        let (outbox, stop) = (outbox.clone(), stop.clone());
        async move { outbox.run(stop.cancelled()).await }
    });
    for i in 0..3 {
        outbox.add_post(Post {
            queue: Some("job".into()),
            ..Post::new(
                format!("{}/chunk/{i}", receiver.url),
                format!("{{\"n\":{i}}}"),
                format!("chunk {i}"),
            )
        });
    }
    let got = receiver.wait_for(4, Duration::from_secs(10)).await;
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    // The refused first chunk holds the others back, and is sent again first.
    assert_eq!(paths, ["/chunk/0", "/chunk/0", "/chunk/1", "/chunk/2"]);
    assert_eq!(got[0].batch_id, got[1].batch_id);
    assert_ne!(got[1].batch_id, got[2].batch_id);
    assert_eq!(got[2].body, r#"{"n":1}"#);
    // Retried when its backoff is over, not at some later tick.
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_millis(1500),
        "retried after {waited:?}"
    );
    stop.cancel();
    sender.await.unwrap();
    // The last answer may still be on its way back to the outbox.
    assert_eq!(outbox.flush(Duration::from_secs(5), None).await, 0);
    let stats = outbox.stats();
    assert_eq!((stats.pending, stats.delivered), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_delivered_by_the_deadline_is_left() {
    let outbox = Arc::new(Outbox::new(crate::test_support::delivery()).unwrap());
    // Nothing listens on port 9 of loopback: every attempt is refused at once.
    outbox.add(
        "http://127.0.0.1:9/x".into(),
        "{}".into(),
        "a result".into(),
    );
    let started = Instant::now();
    let left = outbox.flush(Duration::from_millis(1200), None).await;
    assert_eq!(left, 1);
    assert!(started.elapsed() < Duration::from_secs(3));
    // Kept (here: in the log), so no longer the outbox's.
    assert_eq!(outbox.stats().pending, 0);
}

use crate::test_support::receiver::{Answer, Receiver};

/// An outbox on `config` and its sender, stopped by the token.
fn outbox_running(config: DeliveryConfig) -> (Arc<Outbox>, CancellationToken) {
    let outbox = Arc::new(Outbox::new(config).unwrap());
    let stop = CancellationToken::new();
    tokio::spawn({
        let (outbox, stop) = (outbox.clone(), stop.clone());
        async move { outbox.run(stop.cancelled()).await }
    });
    (outbox, stop)
}

/// Posts answered 301, 302 and 303 are not delivered (no GET follows them: a receiver
/// answering that GET 200 never saw the result) and are sent again until a 2xx; a 307 and a
/// 308 are followed with the method and body kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_2xx_delivers_and_only_307_and_308_are_followed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let receiver = Receiver::start().await;
    let hook_posts = AtomicUsize::new(0);
    receiver.answer_with(move |r| match r.path.as_str() {
        "/hook" => match hook_posts.fetch_add(1, Ordering::SeqCst) {
            0 => Answer::redirect(301, "/elsewhere?token=s3cret"),
            1 => Answer::redirect(302, "/elsewhere"),
            2 => Answer::redirect(303, "/elsewhere"),
            _ => Answer::new(200, ""),
        },
        "/moved" => Answer::redirect(307, "/target"),
        "/renamed" => Answer::redirect(308, "/target"),
        _ => Answer::new(200, ""),
    });
    let (outbox, stop) = outbox_running(crate::test_support::delivery());
    for (path, body) in [("hook", "r1"), ("moved", "r2"), ("renamed", "r3")] {
        outbox.add(
            format!("{}/{path}", receiver.url),
            format!("{{\"{body}\":1}}"),
            body.into(),
        );
    }
    let got = receiver
        .wait_until("every result delivered", Duration::from_secs(20), |r| {
            r.iter().filter(|p| p.path == "/hook").count() >= 4
                && r.iter().filter(|p| p.path == "/target").count() >= 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_now = receiver.received();
    assert_eq!(
        got.len(),
        got_now.len(),
        "nothing sent after delivery: {got_now:?}"
    );
    assert!(
        got_now.iter().all(|r| r.method == "POST"),
        "a redirect was followed with a GET: {got_now:?}"
    );
    assert!(!got_now.iter().any(|r| r.path.starts_with("/elsewhere")));
    let hook: Vec<&str> = got_now
        .iter()
        .filter(|r| r.path == "/hook")
        .map(|r| r.batch_id.as_str())
        .collect();
    assert_eq!(hook.len(), 4, "three redirects, then the 200");
    assert!(
        hook.iter().all(|id| *id == hook[0]),
        "the same batch each time"
    );
    let mut followed: Vec<&str> = got_now
        .iter()
        .filter(|r| r.path == "/target")
        .map(|r| r.body.as_str())
        .collect();
    followed.sort();
    assert_eq!(followed, [r#"{"r2":1}"#, r#"{"r3":1}"#], "the body kept");
    let stats = outbox.stats();
    assert_eq!((stats.pending, stats.delivered), (0, 3));
    assert_eq!(stats.failed_attempts, 3);
    stop.cancel();
}

/// A redirect's failure names where it pointed, its secrets redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_fails_naming_its_location_redacted() {
    let receiver = Receiver::start().await;
    receiver.answer_with(|_| Answer::redirect(302, "http://u:pw@other/x?token=s3cret"));
    let outbox = Outbox::new(crate::test_support::delivery()).unwrap();
    let post = Post::new(format!("{}/hook", receiver.url), "{}".into(), "r".into());
    let why = outbox.post("id", &post).await.unwrap_err();
    assert!(why.contains("HTTP 302"), "{why}");
    assert!(
        why.contains("http://REDACTED@other/x?token=REDACTED"),
        "{why}"
    );
    assert!(!why.contains("s3cret") && !why.contains("pw"), "{why}");
}

/// A connection error names the URL with its secrets redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_url_redacted() {
    let outbox = Outbox::new(crate::test_support::delivery()).unwrap();
    let post = Post::new(
        "http://alice:pw0rd@127.0.0.1:9/cb?signature=s3cret".into(),
        "{}".into(),
        "r".into(),
    );
    let why = outbox.post("id", &post).await.unwrap_err();
    assert!(!why.contains("s3cret") && !why.contains("pw0rd"), "{why}");
}

/// Ten posts to a receiver that never answers, then one to a healthy receiver: the healthy one
/// gets its post at once, and the silent one has no more than its share of connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_receiver_delays_only_its_own_posts() {
    let silent = Receiver::start().await;
    silent.answer_with(|_| Answer::never());
    let healthy = Receiver::start().await;
    let config = DeliveryConfig {
        timeout: Duration::from_secs(60),
        ..crate::test_support::delivery()
    };
    let (outbox, stop) = outbox_running(config);
    for i in 0..10 {
        outbox.add(
            format!("{}/hook/{i}", silent.url),
            "{}".into(),
            format!("webhook {i}"),
        );
    }
    silent
        .wait_for(sender::PER_DESTINATION, Duration::from_secs(10))
        .await;
    let sent = Instant::now();
    outbox.add(
        format!("{}/generated", healthy.url),
        "{}".into(),
        "ProofBatch".into(),
    );
    healthy.wait_for(1, Duration::from_secs(5)).await;
    assert!(sent.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        silent.received().len(),
        sender::PER_DESTINATION,
        "at most this many connections to one destination"
    );
    let stats = outbox.stats();
    assert_eq!((stats.pending, stats.delivered), (10, 1));
    assert_eq!(stats.in_flight, sender::PER_DESTINATION);
    stop.cancel();
}

/// A queue to a slow receiver stays in order and one at a time, while another queue goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_independent_and_each_in_order() {
    let slow = Receiver::start().await;
    slow.answer_with(|_| Answer::new(200, "").held_for(Duration::from_millis(400)));
    let fast = Receiver::start().await;
    let (outbox, stop) = outbox_running(crate::test_support::delivery());
    for i in 0..3 {
        for (receiver, queue) in [(&slow, "slow"), (&fast, "fast")] {
            outbox.add_post(Post {
                queue: Some(queue.into()),
                ..Post::new(
                    format!("{}/{i}", receiver.url),
                    "{}".into(),
                    format!("{queue} {i}"),
                )
            });
        }
    }
    let fast_got = fast.wait_for(3, Duration::from_secs(5)).await;
    // The slow queue's first post is still being answered.
    assert!(slow.received().len() <= 1, "{:?}", slow.received());
    let slow_got = slow.wait_for(3, Duration::from_secs(10)).await;
    for got in [&fast_got, &slow_got] {
        let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/0", "/1", "/2"]);
    }
    // One at a time: each arrived after the one before was answered.
    for pair in slow_got.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(350));
    }
    stop.cancel();
}

/// The flush ends at its deadline even while posts hang (each allowed a minute): they are cut
/// and kept in the file, in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flush_deadline_cuts_posts_in_flight_and_keeps_them() {
    let silent = Receiver::start().await;
    silent.answer_with(|_| Answer::never());
    let config = DeliveryConfig {
        timeout: Duration::from_secs(60),
        ..crate::test_support::delivery()
    };
    let (outbox, stop) = outbox_running(config);
    // The credentials stay in the file: it is the operator's record, to replay.
    let url = silent.url.replace("http://", "http://user:pw@");
    for i in 0..10 {
        outbox.add(
            format!("{url}/hook/{i}?token=t"),
            format!("{{\"i\":{i}}}"),
            "webhook".into(),
        );
    }
    silent
        .wait_for(sender::PER_DESTINATION, Duration::from_secs(10))
        .await;
    stop.cancel();
    let dir = crate::test_support::tempdir();
    let file = dir.path().join("flush-cut.ndjson");
    let started = Instant::now();
    let left = outbox.flush(Duration::from_secs(1), Some(&file)).await;
    let took = started.elapsed();
    assert_eq!(left, 10);
    assert!(took < Duration::from_secs(3), "flush took {took:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut kept: Vec<i64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|v| assert!(v["url"].as_str().unwrap().starts_with(&url), "{v}"))
        .inspect(|v| assert!(v["url"].as_str().unwrap().ends_with("?token=t"), "{v}"))
        .map(|v| v["body"]["i"].as_i64().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, (0..10).collect::<Vec<_>>());
    assert_eq!(outbox.stats().pending, 0);
}
