//! Every result powhost POSTs: `serve`'s callbacks to the node software
//! (docs/spec/PROTOCOLS.md §A6–A7) and serverless webhooks, and the worker's results to the
//! serverless platform.
//!
//! Nothing computed is lost: a result stays in the outbox until a POST of it is answered 2xx
//! (a redirect is no delivery: client.rs), retried with the doubling backoff
//! (crate::backoff) as soon as its wait is over, each attempt under a timeout. A result is
//! removed once delivered and never sent again, and every attempt carries the same
//! `X-Powhost-Batch-Id`, so a receiver can drop a repeat that a lost response caused.
//! Destinations are delivered independently (sender.rs): a slow or silent receiver delays only
//! its own posts; results in one ordered queue (a job's stream chunks, then its final result)
//! go out one at a time, in order. On shutdown the outbox is flushed until a deadline that
//! also cuts the posts in flight; anything still undelivered is then appended to a file or
//! written to the log in full (undelivered.rs). URLs in logs and errors have their secrets
//! redacted (redact.rs).

mod client;
mod mtls;
mod redact;
mod sender;
mod undelivered;

pub use client::{error_text, send_error, with_causes};
pub use mtls::{Mtls, MtlsFiles};
pub use redact::redacted;

use crate::backoff::Backoff;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

/// Every POST's User-Agent.
pub const USER_AGENT: &str = concat!("powhost/", env!("CARGO_PKG_VERSION"));

/// How results are posted.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// One POST's limit.
    pub timeout: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
    /// The client certificate and the receivers' CA for mutual TLS (mtls.rs), if configured.
    pub mtls: Option<Mtls>,
}

impl DeliveryConfig {
    /// For a runtime whose outbox is never given anything to post (`powhost run`).
    pub const NOTHING_POSTED: Self = Self {
        timeout: Duration::from_secs(10),
        backoff_max: Duration::from_secs(30),
        mtls: None,
    };
}

/// One result to POST.
pub struct Post {
    pub url: String,
    pub body: String,
    /// For the logs: "ProofBatch of 12 nonces", "ValidatedBatch", "webhook".
    pub what: String,
    /// Besides the User-Agent and the batch id; `Content-Type` defaults to application/json.
    pub headers: Vec<(&'static str, String)>,
    /// Posts with the same queue go out one at a time, in the order they were added.
    pub queue: Option<String>,
    /// Once cancelled (the result's job was stopped by its platform), a failed attempt is
    /// the last one.
    pub give_up: Option<CancellationToken>,
}

impl Post {
    pub fn new(url: String, body: String, what: String) -> Self {
        Self {
            url,
            body,
            what,
            headers: Vec::new(),
            queue: None,
            give_up: None,
        }
    }
}

struct Delivery {
    id: String,
    /// Shared with the attempt in flight, which reads it without the lock.
    post: Arc<Post>,
    attempts: u32,
    next_try: Instant,
    added: Instant,
    /// The attempt in flight, cut when the flush deadline passes.
    in_flight: Option<AbortHandle>,
}

#[derive(Default)]
struct State {
    unsent: VecDeque<Delivery>,
    delivered: u64,
    failed_attempts: u64,
    refused: u64,
    retried: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    /// Something was added, or an attempt ended: something may be due now.
    wake: Notify,
    client: reqwest::Client,
    config: DeliveryConfig,
    backoff: Backoff,
}

/// What `/health` and the logs report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OutboxStats {
    pub pending: usize,
    pub delivered: u64,
    /// POSTs being sent now.
    pub in_flight: usize,
    /// Attempts that failed (refused, redirected, timed out, unreachable), each retried.
    pub failed_attempts: u64,
    /// Attempts answered with a status other than 2xx (redirects included).
    pub refused: u64,
    /// Failed attempts scheduled again.
    pub retried: u64,
    /// How long the oldest pending result has waited, in seconds (0 when none).
    pub oldest_pending_seconds: f64,
}

/// Whether results can be POSTed to `url`: an http:// or https:// URL with a host. Says why not.
pub fn check_url(url: &str) -> Result<(), String> {
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && reqwest::Url::parse(url).is_ok_and(|u| u.host().is_some());
    if !valid {
        return Err(format!(
            "must be an http:// or https:// URL with a host, got {}",
            redacted(url)
        ));
    }
    Ok(())
}

/// `{url}/{leaf}` as the reference joins them (a trailing slash is not doubled).
pub fn join(url: &str, leaf: &str) -> String {
    format!("{}/{leaf}", url.trim_end_matches('/'))
}

impl Outbox {
    pub fn new(config: DeliveryConfig) -> anyhow::Result<Self> {
        Ok(Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            client: client::build(&config)?,
            backoff: Backoff::up_to(config.backoff_max),
            config,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A finished body for `url` (a ValidatedBatch, a webhook result): sent now.
    pub fn add(&self, url: String, body: String, what: String) {
        self.add_post(Post::new(url, body, what));
    }

    /// A result with its own headers, queue or give-up signal: sent now (after the earlier
    /// ones of its queue).
    pub fn add_post(&self, post: Post) {
        let now = Instant::now();
        self.state().unsent.push_back(Delivery {
            id: uuid::Uuid::new_v4().to_string(),
            post: Arc::new(post),
            attempts: 0,
            next_try: now,
            added: now,
            in_flight: None,
        });
        self.wake.notify_one();
    }

    /// The queues that still have something to deliver.
    pub fn pending_queues(&self) -> HashSet<String> {
        self.state()
            .unsent
            .iter()
            .filter_map(|d| d.post.queue.clone())
            .collect()
    }

    pub fn stats(&self) -> OutboxStats {
        let state = self.state();
        OutboxStats {
            pending: state.unsent.len(),
            delivered: state.delivered,
            in_flight: state
                .unsent
                .iter()
                .filter(|d| d.in_flight.is_some())
                .count(),
            failed_attempts: state.failed_attempts,
            refused: state.refused,
            retried: state.retried,
            oldest_pending_seconds: state
                .unsent
                .iter()
                .map(|d| d.added.elapsed().as_secs_f64())
                .fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod mtls_tests;
#[cfg(test)]
mod tests;
