//! What `serve` answers while it starts. Opening the backend, the device self-test and loading
//! the plugins take seconds to minutes on a large model or a slow device; a load balancer or
//! orchestrator probing the port meanwhile must learn "starting", not time out on a silent
//! backlog and mark the server dead. So the listener, bound first, is answered at once by this
//! small responder on a thread and async runtime of its own (the runtime's own does not exist
//! yet), and handed over to the real server once it is ready: the same socket, never closed,
//! so no connection is refused in between; connections made after the hand-over wait in the
//! backlog for the real server's accept.
//!
//! Every answer closes its connection (`Connection: close`), so that no client keeps talking
//! to the responder after the hand-over: `/ping` 204 (the serverless platform's load balancer:
//! initializing), `/readyz` 503 `{"ready": false}`, `/health` and `/livez` 503 with `status`
//! `starting`, anything else 503 with Retry-After.
//!
//! No signal handler is installed here: SIGINT and SIGTERM during the start end the process at
//! once, as before the server existed.

use super::http::{ApiError, json_response};
use super::listener::serve_connections;
use crate::health::readiness;
use crate::runtime::stop::Stop;
use anyhow::{Context, Result};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::time::Duration;
use tokio::sync::oneshot;

/// What every answer says the server is doing.
const STARTING: &str =
    "the server is still starting: the device self-test is running and the plugins are loading";

/// The responder on a bound listener, until [`Starting::hand_over`]. Dropping it (a start that
/// failed) stops it and closes the listener.
pub struct Starting {
    hand_over: oneshot::Sender<()>,
    listener: std::sync::mpsc::Receiver<std::io::Result<std::net::TcpListener>>,
}

impl Starting {
    /// Answer `listener` from now on. `idle_timeout` bounds how long a connection may take to
    /// send its request, as the real server's does.
    pub fn answer(listener: std::net::TcpListener, idle_timeout: Duration) -> Result<Self> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime that answers while starting")?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _entered = tokio.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (hand_over, handed_over) = oneshot::channel();
        let (give_back, taken_back) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("serve-starting".into())
            .spawn(move || {
                tokio.block_on(respond(listener, idle_timeout, handed_over, give_back));
            })
            .context("starting the thread that answers while starting")?;
        Ok(Self {
            hand_over,
            listener: taken_back,
        })
    }

    /// Stop accepting and give the listener back, for the real server to accept on. The
    /// connections already accepted get their "starting" answer, then close, on their own.
    pub fn hand_over(self) -> Result<std::net::TcpListener> {
        let _ = self.hand_over.send(());
        self.listener
            .recv()
            .context("the responder that answers while starting ended early")?
            .context("taking the listener back from the responder that answers while starting")
    }
}

/// Accept and answer until the hand-over (or until dropped: the start failed), give the
/// listener back, then let the connections still open finish (within `idle_timeout`; the
/// process does not wait for this thread).
async fn respond(
    listener: tokio::net::TcpListener,
    idle_timeout: Duration,
    handed_over: oneshot::Receiver<()>,
    give_back: std::sync::mpsc::SyncSender<std::io::Result<std::net::TcpListener>>,
) {
    let stop = Stop::new();
    let accepting = stop.clone();
    tokio::spawn(async move {
        let _ = handed_over.await;
        accepting.finish();
    });
    let connections = serve_connections(&listener, router(), idle_timeout, stop).await;
    let _ = give_back.send(listener.into_std());
    let _ = tokio::time::timeout(idle_timeout, connections.join_all()).await;
}

/// The answers while starting.
pub fn router() -> Router {
    Router::new()
        .route("/ping", get(|| async { StatusCode::NO_CONTENT }))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/livez", get(health))
        .fallback(|| async { ApiError::unavailable(STARTING) })
        .layer(axum::middleware::map_response(closing))
}

async fn readyz() -> Response {
    let (status, body) = readiness(Some(STARTING.into()));
    json_response(status, body)
}

/// `/health`'s shape, with the state it is in: no device verdict, jobs or callbacks yet.
async fn health() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "starting", "service_state": "STARTING", "reason": STARTING}),
    )
}

async fn closing(response: Response) -> impl IntoResponse {
    let mut response = response;
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    use tower::ServiceExt;

    async fn answer(method: &str, path: &str) -> (StatusCode, Response) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        (response.status(), response)
    }

    async fn json_body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn probes_hear_starting_and_every_route_is_refused_for_now() {
        let (status, response) = answer("GET", "/ping").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(response.headers()[header::CONNECTION], "close");

        let (status, response) = answer("GET", "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body = json_body(response).await;
        assert_eq!(body["ready"], json!(false));
        assert!(body["reason"].as_str().unwrap().contains("self-test"));

        for path in ["/health", "/livez"] {
            let (status, response) = answer("GET", path).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            let body = json_body(response).await;
            assert_eq!(body["status"], json!("starting"), "{path}");
            assert_eq!(body["service_state"], json!("STARTING"), "{path}");
        }

        for (method, path) in [
            ("POST", "/runsync"),
            ("POST", "/api/v1/pow/init/generate"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/state"),
        ] {
            let (status, response) = answer(method, path).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(response.headers()[header::CONNECTION], "close", "{path}");
            assert!(
                response.headers().contains_key(header::RETRY_AFTER),
                "{path}"
            );
            let body = json_body(response).await;
            assert!(
                body["detail"].as_str().unwrap().contains("still starting"),
                "{path}: {body}"
            );
        }
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // One write: `write!` may send the request in pieces.
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        // To the end: the responder closes the connection after its answer.
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// On a real socket: answered while starting; after the hand-over the same listener takes
    /// the connections, and one made in between waits for it rather than being refused.
    #[test]
    fn the_listener_is_answered_then_handed_over_without_refusing() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let starting = Starting::answer(listener, Duration::from_secs(5)).unwrap();
        let answer = get(addr, "/ping");
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"));

        let listener = starting.hand_over().unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
        let waiting = std::thread::spawn(move || get(addr, "/ping"));
        listener.set_nonblocking(false).unwrap();
        let (mut stream, _) = listener.accept().unwrap();
        // The whole request, so that closing with unread bytes does not reset the connection.
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "the request ended early"
            );
            request.push(byte[0]);
        }
        assert!(request.starts_with(b"GET /ping"));
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        drop(stream);
        let answer = waiting.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
