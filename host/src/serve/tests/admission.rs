//! Admission by count and by bytes: a busy server or a full memory budget refuses a request
//! before its body is read (503 with Retry-After; 413 for a body the budget could never
//! hold), a queued job holds its share of the budget until it ends, and finished jobs are
//! kept within their share of it.

use super::*;
use crate::serve::jobs::{Job, Jobs};
use axum::body::HttpBody;
use hyper::body::{Bytes, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// A request body that counts the pieces the server reads of it: `pieces` of `piece`
/// bytes (spaces, which JSON ignores, then `{}`), declared by length or not.
struct Counted {
    piece: usize,
    pieces: usize,
    declared: bool,
    read: Arc<AtomicUsize>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let n = self.read.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(match n.cmp(&self.pieces) {
            std::cmp::Ordering::Less => Some(Ok(Frame::data(Bytes::from(vec![b' '; self.piece])))),
            std::cmp::Ordering::Equal => Some(Ok(Frame::data(Bytes::from_static(b"{}")))),
            std::cmp::Ordering::Greater => None,
        })
    }

    fn size_hint(&self) -> SizeHint {
        if self.declared {
            SizeHint::with_exact((self.piece * self.pieces + 2) as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// (status, Retry-After, detail, pieces read) of a POST of a counted body.
async fn post_counted(
    app: &Arc<App>,
    path: &str,
    piece: usize,
    pieces: usize,
    declared: bool,
) -> (StatusCode, Option<String>, String, usize) {
    let read = Arc::new(AtomicUsize::new(0));
    let body = Counted {
        piece,
        pieces,
        declared,
        read: read.clone(),
    };
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .body(Body::new(body))
        .unwrap();
    let response = router(app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let detail = v["detail"].as_str().unwrap_or_default().to_string();
    (status, retry_after, detail, read.load(Ordering::SeqCst))
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_refuses_a_batch_before_reading_it() {
    let app = app(ServeConfig {
        concurrency: 1,
        queue: 0,
        ..config()
    });
    let _running = app.slots.reserve().unwrap().acquire().await;
    for path in ["/api/v1/pow/validate", "/run", "/runsync"] {
        let (status, retry_after, detail, read) = post_counted(&app, path, MIB, 8, true).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {detail}");
        assert_eq!(retry_after.as_deref(), Some("5"), "{path}");
        assert!(detail.contains("compute slots"), "{path}: {detail}");
        assert_eq!(read, 0, "{path}: the body was read before the refusal");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_memory_budget_are_refused_before_they_are_read() {
    // 10 MiB holds one body of 1.6 MiB (six times over).
    let app = app(ServeConfig {
        memory_budget: 10 << 20,
        ..config()
    });
    // Declared larger than the whole budget can hold: 413, nothing read.
    let (status, retry_after, detail, read) = post_counted(&app, "/run", MIB, 3, true).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{detail}");
    assert_eq!((retry_after, read), (None, 0));
    assert!(detail.contains("--memory-budget"), "{detail}");
    // Undeclared: refused as soon as what arrived passes the budget, not at the end.
    let (status, _, detail, read) = post_counted(&app, "/run", MIB / 4, 40, false).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{detail}");
    assert!(read <= 10, "{read} pieces of 40 were read");

    // With most of the budget held by others: 503 with Retry-After, nothing read.
    let mut others = app.memory.charge();
    app.memory.cover(&mut others, (3 * MIB / 2) as u64).unwrap();
    for path in ["/api/v1/pow/validate", "/run", "/api/v1/pow/init"] {
        let (status, retry_after, detail, read) = post_counted(&app, path, MIB, 1, true).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {detail}");
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert!(detail.contains("memory budget"), "{detail}");
        assert_eq!(read, 0, "{path}");
    }
    let (status, _, detail, read) = post_counted(&app, "/run", MIB / 4, 8, false).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{detail}");
    assert!(read <= 2, "{read} pieces of 8 were read");
    // What the others gave back is free again (the body `{}` is then a job without input).
    drop(others);
    let (status, _, detail, _) = post_counted(&app, "/run", MIB, 1, true).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{detail}");
    assert_eq!(app.memory.used(), 0, "a refused request holds nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_holds_its_share_of_the_budget_until_it_ends() {
    let app = app(ServeConfig {
        concurrency: 1,
        queue: 4,
        ..config()
    });
    let slot = app.slots.reserve().unwrap().acquire().await;
    let request = golden("runpod_tiny_r2.json")["request"].to_string();
    let (status, v) = send_json(&app, "POST", "/run", Some(&request)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        app.memory.used(),
        request.len() as u64 * crate::serve::memory_budget::BODY_COPIES
    );
    drop(slot);
    wait_for_status(&app, v["id"].as_str().unwrap(), "COMPLETED").await;
    idle(&app).await;
    assert_eq!(app.memory.used(), 0);
}

fn finished_job(jobs: &Jobs, id: &str, output_bytes: usize) {
    let job = Job::new(id.into(), None, Stop::new());
    let output = format!("\"{}\"", "x".repeat(output_bytes));
    job.finish(Ok(crate::plugin_host::PluginReply::Ok(output)));
    jobs.insert(job.clone());
    jobs.finished(&job);
}

#[test]
fn finished_jobs_are_kept_within_their_byte_budget_oldest_first() {
    let jobs = Jobs::new(10_000);
    for id in ["a", "b", "c"] {
        finished_job(&jobs, id, 3_000);
    }
    assert!(["a", "b", "c"].iter().all(|id| jobs.get(id).is_some()));
    // A fourth would pass 10 000 bytes: the oldest goes.
    finished_job(&jobs, "d", 3_000);
    assert!(jobs.get("a").is_none());
    assert!(["b", "c", "d"].iter().all(|id| jobs.get(id).is_some()));
    // One larger than the whole budget clears the others and is not kept itself.
    finished_job(&jobs, "huge", 20_000);
    assert!(
        ["b", "c", "d", "huge"]
            .iter()
            .all(|id| jobs.get(id).is_none())
    );
    finished_job(&jobs, "e", 10);
    assert!(jobs.get("e").is_some());
}
