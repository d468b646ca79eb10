//! A stand-in HTTP server on loopback for the tests. It records every request (method, path and
//! query, headers, body, the status it answered) and answers each with the next status it was
//! told, else with what the test's answering function says, else 200: a webhook receiver needs
//! only the statuses, a stand-in for the serverless platform answers by function. It depends
//! only on axum, tokio and serde_json, so the integration tests include this same file.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::ToSocketAddrs;
use tokio::sync::Notify;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    /// The `x-powhost-batch-id` header, empty when there is none.
    pub batch_id: String,
    pub body: String,
    pub at: Instant,
    /// The status this request was answered with (0 while an answering function decides it).
    pub answered: u16,
}

impl Received {
    /// Whether the request was accepted (answered 2xx), so the sender may consider it delivered.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }

    /// A header's value, empty when it is missing or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON (panics, showing the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// How to answer one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Sent as JSON when not empty.
    pub body: String,
    /// How long the answer is held back after the request is recorded.
    pub delay: Duration,
    /// A `Location` header, when not empty (a redirect).
    pub location: String,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
            delay: Duration::ZERO,
            location: String::new(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            ..Self::new(status, "")
        }
    }

    /// No answer (before the test ends): a receiver that accepted the connection and hangs.
    pub fn never() -> Self {
        Self::new(200, "").held_for(Duration::from_secs(24 * 3600))
    }

    /// The same answer, held back for `delay` (a long-poll with nothing to hand out).
    pub fn held_for(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }
}

type AnswerFn = dyn Fn(&Received) -> Answer + Send + Sync;

#[derive(Default)]
struct Recorder {
    received: Mutex<Vec<Received>>,
    answers: Mutex<VecDeque<u16>>,
    answer_fn: Mutex<Option<Arc<AnswerFn>>>,
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
        Self::start_at("127.0.0.1:0").await
    }

    /// Listen on `addr` (one a client was already told about), on the caller's async runtime.
    pub async fn start_at(addr: impl ToSocketAddrs) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let recorder = Arc::new(Recorder::default());
        // Whole requests arrive, however large (a stream's webhook carries every distance).
        let app = Router::new()
            .fallback(record)
            .layer(DefaultBodyLimit::disable())
            .with_state(recorder.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, recorder }
    }

    /// Answer the next requests with these statuses, in order, before anything else.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.recorder.answers.lock().unwrap().extend(statuses);
    }

    /// Answer every request the status script leaves to `answer` (instead of 200 and no
    /// body); it sees the request as recorded.
    pub fn answer_with(&self, answer: impl Fn(&Received) -> Answer + Send + Sync + 'static) {
        *self.recorder.answer_fn.lock().unwrap() = Some(Arc::new(answer));
    }

    pub fn received(&self) -> Vec<Received> {
        self.recorder.received.lock().unwrap().clone()
    }

    /// Wait until `n` requests have arrived (panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        self.wait_until(&format!("{n} requests"), within, |received| {
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
                    "{what} expected within {within:?}, {} requests arrived: {received:?}",
                    received.len()
                );
            }
        }
    }
}

async fn record(
    State(recorder): State<Arc<Recorder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let batch_id = headers
        .get("x-powhost-batch-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut request = Received {
        method: method.to_string(),
        path: uri.to_string(),
        headers,
        batch_id,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        answered: 0,
    };
    let scripted = recorder.answers.lock().unwrap().pop_front();
    // Cloned out of the lock: the function may take its own.
    let answer_fn = recorder.answer_fn.lock().unwrap().clone();
    let answer = match (scripted, answer_fn) {
        (Some(status), _) => Answer::new(status, ""),
        (None, Some(answer)) => answer(&request),
        (None, None) => Answer::new(200, ""),
    };
    request.answered = answer.status;
    recorder.received.lock().unwrap().push(request);
    recorder.arrived.notify_waiters();
    tokio::time::sleep(answer.delay).await;
    let status = StatusCode::from_u16(answer.status).unwrap();
    let mut response = if answer.body.is_empty() {
        status.into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            answer.body,
        )
            .into_response()
    };
    if !answer.location.is_empty() {
        response
            .headers_mut()
            .insert(header::LOCATION, answer.location.parse().unwrap());
    }
    response
}
