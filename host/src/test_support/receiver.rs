//! A stand-in HTTP receiver on loopback for the tests: it records every POST (path, batch id,
//! body, the status it answered) and answers each with the next status it was told, else 200.
//! It depends only on axum and tokio, so the integration tests include this same file.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One POST as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query.
    pub path: String,
    pub batch_id: String,
    pub body: String,
    pub at: Instant,
    /// The status this POST was answered with.
    pub answered: u16,
}

impl Received {
    /// Whether the POST was accepted (answered 2xx), so the sender may consider it delivered.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

#[derive(Default)]
struct Recorder {
    received: Mutex<Vec<Received>>,
    answers: Mutex<VecDeque<u16>>,
    arrived: Notify,
}

pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    recorder: Arc<Recorder>,
}

impl Receiver {
    /// Listen on a free loopback port, on the caller's async runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let recorder = Arc::new(Recorder::default());
        // Whole results arrive, however large (a stream's webhook carries every distance).
        let app = Router::new()
            .fallback(record)
            .layer(DefaultBodyLimit::disable())
            .with_state(recorder.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, recorder }
    }

    /// Answer the next POSTs with these statuses, in order; 200 after them.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.recorder.answers.lock().unwrap().extend(statuses);
    }

    pub fn received(&self) -> Vec<Received> {
        self.recorder.received.lock().unwrap().clone()
    }

    /// Wait until `n` POSTs have arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        self.wait_until(&format!("{n} POSTs"), within, |received| {
            received.len() >= n
        })
        .await
    }

    /// Wait until what arrived satisfies `done`, looking again at each arrival (panics,
    /// naming `what`, after `within`).
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.recorder.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let received = self.received();
            if done(&received) {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "{what} expected within {within:?}, {} POSTs arrived: {received:?}",
                    received.len()
                );
            }
        }
    }
}

async fn record(
    State(recorder): State<Arc<Recorder>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let batch_id = headers
        .get("x-powhost-batch-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let answered = recorder.answers.lock().unwrap().pop_front().unwrap_or(200);
    recorder.received.lock().unwrap().push(Received {
        path: uri.to_string(),
        batch_id,
        body,
        at: Instant::now(),
        answered,
    });
    recorder.arrived.notify_waiters();
    StatusCode::from_u16(answered).unwrap()
}
