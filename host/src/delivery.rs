//! Every result powhost POSTs: `serve`'s callbacks to the node software
//! (docs/spec/PROTOCOLS.md §A6–A7) and serverless webhooks, and the worker's results to the
//! serverless platform.
//!
//! Nothing computed is lost: generated nonces accumulate per destination and are sealed into
//! one ProofBatch every `--callback-interval`; a result stays in the outbox until a POST of it
//! succeeds (2xx), retried with a doubling backoff, each attempt under a timeout. A result is
//! removed once delivered and never sent again, and every attempt carries the same
//! `X-Powhost-Batch-Id`, so a receiver can drop a repeat that a lost response caused. Results
//! in one ordered queue (a job's stream chunks, then its final result) go out one at a time,
//! in order. On shutdown the outbox is flushed for `--flush-timeout`; anything still
//! undelivered is then appended to `--undelivered` or written to the log in full.

use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Every POST's User-Agent.
pub const USER_AGENT: &str = concat!("powhost/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Copy, Debug)]
pub struct CallbackConfig {
    /// How often accumulated generated nonces are sealed and sent.
    pub interval: Duration,
    /// One POST's limit.
    pub timeout: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
}

/// Which ProofBatch generated nonces belong to (the reference merges a node's batches
/// between sends under the first one's header).
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedFor {
    /// The init request's `url`: batches go to `{url}/generated`.
    pub url: String,
    pub public_key: String,
    pub block_hash: String,
    pub block_height: i64,
    pub node_id: i64,
}

struct OpenBatch {
    to: GeneratedFor,
    nonces: Vec<i64>,
    dist: Vec<f64>,
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
    /// Once set (the result's job was stopped), a failed attempt is the last one.
    pub give_up: Option<Arc<AtomicBool>>,
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
}

#[derive(Default)]
struct State {
    open: Vec<OpenBatch>,
    unsent: VecDeque<Delivery>,
    delivered: u64,
}

pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    client: reqwest::Client,
    config: CallbackConfig,
}

/// What `/health` and the logs report.
#[derive(Serialize)]
pub struct OutboxStats {
    pub pending: usize,
    pub delivered: u64,
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
    pub fn new(config: CallbackConfig) -> anyhow::Result<Self> {
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
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Valid nonces of one computed batch; sent with the next seal.
    pub fn add_generated(&self, to: &GeneratedFor, nonces: &[i64], dist: &[f64]) {
        if nonces.is_empty() {
            return;
        }
        let mut state = self.state();
        match state.open.iter_mut().find(|b| &b.to == to) {
            Some(open) => {
                open.nonces.extend_from_slice(nonces);
                open.dist.extend_from_slice(dist);
            }
            None => state.open.push(OpenBatch {
                to: to.clone(),
                nonces: nonces.to_vec(),
                dist: dist.to_vec(),
            }),
        }
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
            pending: state.unsent.len()
                + state.open.iter().filter(|b| !b.nonces.is_empty()).count(),
            delivered: state.delivered,
        }
    }

    /// Turn what generation accumulated into ProofBatches, one per destination.
    fn seal(&self) {
        #[derive(Serialize)]
        struct ProofBatch<'a> {
            public_key: &'a str,
            block_hash: &'a str,
            block_height: i64,
            nonces: &'a [i64],
            dist: &'a [f64],
            node_id: i64,
        }
        let mut state = self.state();
        let open = std::mem::take(&mut state.open);
        for b in open {
            let body = serde_json::to_string(&ProofBatch {
                public_key: &b.to.public_key,
                block_hash: &b.to.block_hash,
                block_height: b.to.block_height,
                nonces: &b.nonces,
                dist: &b.dist,
                node_id: b.to.node_id,
            })
            .expect("a ProofBatch serialises");
            state.unsent.push_back(Delivery {
                id: uuid::Uuid::new_v4().to_string(),
                post: Post::new(
                    join(&b.to.url, "generated"),
                    body,
                    format!("ProofBatch of {} nonces", b.nonces.len()),
                ),
                attempts: 0,
                next_try: Instant::now(),
            });
        }
    }

    /// The sender: seal every interval, deliver what is due, until `stop` resolves.
    pub async fn run(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.seal(),
                _ = self.wake.notified() => {}
                _ = &mut stop => return,
            }
            self.deliver_due().await;
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
                        .is_some_and(|g| g.load(Ordering::SeqCst))
                    {
                        log::warn!(
                            "POST to {url} failed ({e}); {what} dropped: its job was stopped"
                        );
                        state.unsent.remove(pos);
                        continue;
                    }
                    let wait = self.backoff(d.attempts);
                    d.next_try = Instant::now() + wait;
                    log::warn!(
                        "POST to {url} failed ({e}); {what} kept, retry {} in {:.1} s",
                        d.attempts,
                        wait.as_secs_f64()
                    );
                }
            }
        }
        delivered_any
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let base =
            Duration::from_millis(500).saturating_mul(1 << attempts.min(16).saturating_sub(1));
        base.min(self.config.backoff_max)
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
        let response = request.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                format!(
                    "no answer within {:.1} s",
                    self.config.timeout.as_secs_f64()
                )
            } else {
                with_causes(&e)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    /// Seal and deliver everything, retrying as usual, until done or `within` has passed.
    /// What is left is appended to `keep` (one JSON line per delivery) or, without it,
    /// written to the log in full, so nothing is lost silently. Returns how many were left.
    pub async fn flush(&self, within: Duration, keep: Option<&std::path::Path>) -> usize {
        self.seal();
        let deadline = Instant::now() + within;
        loop {
            self.deliver_due().await;
            let next = self.state().unsent.iter().map(|d| d.next_try).min();
            match next {
                None => return 0,
                Some(_) if Instant::now() >= deadline => break,
                Some(t) => tokio::time::sleep_until(t.min(deadline).into()).await,
            }
        }
        let state = self.state();
        let lines: Vec<String> = state
            .unsent
            .iter()
            .map(|d| {
                let (url, id) = (&d.post.url, &d.id);
                match serde_json::value::RawValue::from_string(d.post.body.clone()) {
                    Ok(body) => serde_json::json!({"url": url, "batch_id": id, "body": body}),
                    Err(_) => serde_json::json!({"url": url, "batch_id": id, "body": d.post.body}),
                }
                .to_string()
            })
            .collect();
        let kept = keep.map(|path| append_lines(path, &lines));
        for (d, line) in state.unsent.iter().zip(&lines) {
            match &kept {
                Some(Ok(())) => log::error!(
                    "undelivered after {} attempts: {} for {}; kept in {}",
                    d.attempts,
                    d.post.what,
                    d.post.url,
                    keep.unwrap().display()
                ),
                Some(Err(e)) => {
                    log::error!("could not keep it in a file ({e}); undelivered: {line}")
                }
                None => log::error!("undelivered after {} attempts: {line}", d.attempts),
            }
        }
        state.unsent.len()
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

fn append_lines(path: &std::path::Path, lines: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.sync_all()
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

    #[test]
    fn generated_nonces_merge_per_destination() {
        let outbox = Outbox::new(CallbackConfig {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
        })
        .unwrap();
        let to = GeneratedFor {
            url: "http://x".into(),
            public_key: "pk".into(),
            block_hash: "bh".into(),
            block_height: 1,
            node_id: 2,
        };
        outbox.add_generated(&to, &[2, 5], &[1.3, 1.2]);
        outbox.add_generated(&to, &[], &[]);
        outbox.add_generated(&to, &[8], &[1.1]);
        outbox.seal();
        outbox.seal();
        let state = outbox.state();
        assert_eq!(state.unsent.len(), 1);
        assert_eq!(
            state.unsent[0].post.body,
            r#"{"public_key":"pk","block_hash":"bh","block_height":1,"nonces":[2,5,8],"dist":[1.3,1.2,1.1],"node_id":2}"#
        );
        assert_eq!(state.unsent[0].post.url, "http://x/generated");
        drop(state);
        assert_eq!(outbox.backoff(1), Duration::from_millis(500));
        assert_eq!(outbox.backoff(3), Duration::from_secs(2));
        assert_eq!(outbox.backoff(30), Duration::from_secs(4));
    }
}
