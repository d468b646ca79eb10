//! The server's own accept loop (axum's has no timeouts): hyper's HTTP/1 connections, each
//! with a header-read timeout that also closes an idle keep-alive connection, and a bounded,
//! graceful close when the server stops.

use crate::runtime::stop::Stop;
use axum::Router;
use std::time::Duration;

/// Accept connections until `stop`, then tell each open one to finish its request in flight
/// and close. Each has `idle_timeout` to send a request's headers, which also closes a
/// keep-alive connection idle that long. Returns the connections still open; dropping the
/// set closes them. The listener stays the caller's: dropped to refuse what comes next, or
/// handed on to another server.
pub async fn serve_connections(
    listener: &tokio::net::TcpListener,
    router: Router,
    idle_timeout: Duration,
    stop: Stop,
) -> tokio::task::JoinSet<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let closing = stop.clone();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: give connections in flight a
                    // moment to close before accepting again (a retry timer, not a poll).
                    log::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.stopping() => break,
        };
        while connections.try_join_next().is_some() {}
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let closing = closing.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(idle_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = closing.stopping() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                log::debug!("connection from {peer}: {e}");
            }
        });
    }
    connections
}
