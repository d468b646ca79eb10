//! Every result powhost POSTs: `serve`'s callbacks to the node software
//! (docs/spec/PROTOCOLS.md §A6–A7) and serverless webhooks, and the worker's results to the
//! serverless platform.
//!
//! Nothing computed is lost: a result stays in the outbox until a POST of it succeeds (2xx),
//! retried with the doubling backoff (crate::backoff) as soon as its wait is over, each
//! attempt under a timeout. A result is removed once delivered and never sent again, and
//! every attempt carries the same `X-Powhost-Batch-Id`, so a receiver can drop a repeat that
//! a lost response caused. Results in one ordered queue (a job's stream chunks, then its final
//! result) go out one at a time, in order. On shutdown the outbox is flushed for a last
//! while; anything still undelivered is then appended to a file or written to the log in full
//! (undelivered.rs).

mod undelivered;

use crate::backoff::Backoff;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Every POST's User-Agent.
pub const USER_AGENT: &str = concat!("powhost/", env!("CARGO_PKG_VERSION"));

/// How results are posted.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryConfig {
    /// One POST's limit.
    pub timeout: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
}

impl DeliveryConfig {
    /// For a runtime whose outbox is never given anything to post (`powhost run`).
    pub const NOTHING_POSTED: Self = Self {
        timeout: Duration::from_secs(10),
        backoff_max: Duration::from_secs(30),
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
    post: Post,
    attempts: u32,
    next_try: Instant,
    added: Instant,
}

#[derive(Default)]
struct State {
    unsent: VecDeque<Delivery>,
    delivered: u64,
    refused: u64,
    retried: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    /// Something was added: it may be due now.
    wake: Notify,
    client: reqwest::Client,
    config: DeliveryConfig,
    backoff: Backoff,
}

/// What `/health` and the logs report.
#[derive(Serialize, Debug)]
pub struct OutboxStats {
    pub pending: usize,
    pub delivered: u64,
    /// Attempts answered with an HTTP error status.
    pub refused: u64,
    /// Failed attempts scheduled again.
    pub retried: u64,
    /// How long the oldest result still to deliver has waited (0 when none).
    pub oldest_pending_seconds: f64,
}

/// Whether results can be POSTed to `url`: an http:// or https:// URL with a host. Says why not.
pub fn check_url(url: &str) -> Result<(), String> {
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && reqwest::Url::parse(url).is_ok_and(|u| u.host().is_some());
    if !valid {
        return Err(format!(
            "must be an http:// or https:// URL with a host, got {url:?}"
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
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            client,
            config,
            backoff: Backoff::up_to(config.backoff_max),
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
        self.state().unsent.push_back(Delivery {
            id: uuid::Uuid::new_v4().to_string(),
            post,
            attempts: 0,
            next_try: Instant::now(),
            added: Instant::now(),
        });
        self.wake.notify_one();
    }

    /// When the next result is due to be tried, if any is left.
    fn next_try(&self) -> Option<Instant> {
        self.state().unsent.iter().map(|d| d.next_try).min()
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
        let oldest = state.unsent.iter().map(|d| d.added).min();
        OutboxStats {
            pending: state.unsent.len(),
            delivered: state.delivered,
            refused: state.refused,
            retried: state.retried,
            oldest_pending_seconds: oldest.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        }
    }

    /// The sender: deliver each result when it is due (added, or its retry wait over),
    /// until `stop` resolves.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            // Listening before looking, so that a result added in between is not missed.
            let added = self.wake.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            self.deliver_due().await;
            let next_retry = self.next_try();
            let retry = async {
                match next_retry {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = added => {}
                _ = retry => {}
                _ = &mut stop => return,
            }
        }
    }

    /// Deliver what is due until nothing due is left: a queue's next result is due as soon
    /// as the one before it is delivered.
    async fn deliver_due(&self) {
        while self.deliver_due_once().await {}
    }

    /// Try every delivery whose backoff has passed, oldest first (of an ordered queue, only
    /// its oldest); whether any was delivered. Only the sender (or the final flush) calls
    /// this, so a delivery is never in flight twice.
    async fn deliver_due_once(&self) -> bool {
        let mut delivered_any = false;
        let now = Instant::now();
        // Copies of what is due, so that no lock is held across a POST.
        let due: Vec<(String, Post)> = {
            let state = self.state();
            let mut queues_seen = HashSet::new();
            state
                .unsent
                .iter()
                .filter(|d| match &d.post.queue {
                    Some(q) => queues_seen.insert(q.clone()),
                    None => true,
                })
                .filter(|d| d.next_try <= now)
                .map(|d| {
                    let post = Post {
                        headers: d.post.headers.clone(),
                        ..Post::new(d.post.url.clone(), d.post.body.clone(), d.post.what.clone())
                    };
                    (d.id.clone(), post)
                })
                .collect()
        };
        for (id, post) in due {
            let Post {
                url,
                body,
                what,
                headers,
                ..
            } = post;
            let result = self.post(&id, &url, body, &headers).await;
            let mut state = self.state();
            let Some(pos) = state.unsent.iter().position(|d| d.id == id) else {
                continue;
            };
            match result {
                Ok(()) => {
                    state.unsent.remove(pos);
                    state.delivered += 1;
                    delivered_any = true;
                    log::info!("delivered {what} to {url}");
                }
                Err(e) => {
                    let d = &mut state.unsent[pos];
                    d.attempts += 1;
                    if d.post
                        .give_up
                        .as_ref()
                        .is_some_and(CancellationToken::is_cancelled)
                    {
                        log::warn!(
                            "POST to {url} failed ({e}); {what} dropped: its job was stopped"
                        );
                        state.unsent.remove(pos);
                        continue;
                    }
                    let (attempts, wait) = (d.attempts, self.backoff.after(d.attempts));
                    d.next_try = Instant::now() + wait;
                    state.retried += 1;
                    log::warn!(
                        "POST to {url} failed ({e}); {what} kept, retry {} in {:.1} s",
                        attempts,
                        wait.as_secs_f64()
                    );
                }
            }
        }
        delivered_any
    }

    async fn post(
        &self,
        id: &str,
        url: &str,
        body: String,
        headers: &[(&'static str, String)],
    ) -> Result<(), String> {
        let mut request = self.client.post(url).header("X-Powhost-Batch-Id", id);
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| send_error(&e, self.config.timeout))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            self.state().refused += 1;
            Err(format!("HTTP {status}"))
        }
    }

    /// Deliver everything, retrying as usual, until done or `within` has passed. What is
    /// left is appended to `keep` (one JSON line per delivery) or, without it, written to the
    /// log in full, so nothing is lost silently. Returns how many were left.
    pub async fn flush(&self, within: Duration, keep: Option<&std::path::Path>) -> usize {
        let deadline = Instant::now() + within;
        loop {
            self.deliver_due().await;
            let next = self.next_try();
            match next {
                None => return 0,
                Some(_) if Instant::now() >= deadline => break,
                Some(t) => tokio::time::sleep_until(t.min(deadline).into()).await,
            }
        }
        let state = self.state();
        undelivered::keep(
            state.unsent.iter().map(|d| undelivered::Left {
                url: &d.post.url,
                batch_id: &d.id,
                body: &d.post.body,
                what: &d.post.what,
                attempts: d.attempts,
            }),
            keep,
        );
        state.unsent.len()
    }
}

/// Why a request got no answer, in one phrase: "no answer within 10 s", or the error with
/// its causes.
pub fn send_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {:.1} s", timeout.as_secs_f64())
    } else {
        with_causes(e)
    }
}

/// An error with its causes: reqwest's own message leaves them out (connection refused, …).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
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
        let stats = outbox.stats();
        assert_eq!((stats.pending, stats.delivered), (0, 3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_cannot_be_delivered_by_the_deadline_is_left() {
        let outbox = Outbox::new(crate::test_support::delivery()).unwrap();
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
        assert_eq!(outbox.stats().pending, 1);
    }
}
