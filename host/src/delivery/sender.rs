//! When each result is sent: every due attempt runs as its own task, so that a slow or silent
//! receiver delays only its own posts. Three rules keep it orderly and bounded: a queue's
//! results go out one at a time, oldest first; at most [`PER_DESTINATION`] POSTs are in flight
//! to one `scheme://host:port` (a flood of webhooks to one receiver opens no flood of
//! connections) and at most [`IN_FLIGHT`] in all; a result is never in flight twice. An
//! attempt's end (delivered, or failed and rescheduled) is recorded by the attempt itself,
//! so attempts started by the sender outlive it and the shutdown flush picks them up.

use super::{Delivery, Outbox, Post, redacted, undelivered};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// POSTs in flight to one destination (`scheme://host:port`) at most: what a browser opens to
/// one host, enough that a handful of slow webhooks to one receiver do not queue up.
pub const PER_DESTINATION: usize = 6;
/// POSTs in flight in all at most.
pub const IN_FLIGHT: usize = 64;

/// Where a POST goes, as connections are counted: `scheme://host:port`.
fn destination(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or_default()
        ),
        Err(_) => url.to_string(),
    }
}

impl Outbox {
    /// The sender: start each result's attempt when it is due (added, its retry wait over,
    /// its queue's previous result delivered, a connection to its destination free), until
    /// `stop` resolves. Attempts in flight then go on, and a later [`Outbox::flush`] sees
    /// them through.
    pub async fn run(self: &Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            // Listening before looking, so that a result added in between is not missed.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let next_retry = self.start_due();
            let retry = async {
                match next_retry {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = woken => {}
                _ = retry => {}
                _ = &mut stop => return,
            }
        }
    }

    /// Deliver everything, retrying as usual, until done or `within` has passed; then cut
    /// the attempts still in flight. What is left is appended to `keep` (one JSON line per
    /// delivery) or, without it, written to the log in full, so nothing is lost silently, and
    /// taken out of the outbox. Returns how many were left.
    pub async fn flush(
        self: &Arc<Self>,
        within: Duration,
        keep: Option<&std::path::Path>,
    ) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let next_retry = self.start_due();
            if self.state().unsent.is_empty() {
                return 0;
            }
            if Instant::now() >= deadline {
                break;
            }
            let wake_at = next_retry.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
        let mut state = self.state();
        for d in &mut state.unsent {
            if let Some(attempt) = d.in_flight.take() {
                attempt.abort();
            }
        }
        // The file keeps the full URL, credentials included: it is the operator's own record,
        // to replay the POSTs exactly (only logs and error messages are redacted).
        let left: Vec<Delivery> = state.unsent.drain(..).collect();
        drop(state);
        undelivered::keep(
            left.iter().map(|d| undelivered::Left {
                url: &d.post.url,
                batch_id: &d.id,
                body: &d.post.body,
                what: &d.post.what,
                attempts: d.attempts,
            }),
            keep,
        );
        left.len()
    }

    /// Start every attempt that may start now; when the next waiting one is due, if any.
    /// The one place that starts attempts, under the lock: a result is never in flight twice.
    fn start_due(self: &Arc<Self>) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.state();
        let mut per_destination: HashMap<String, usize> = HashMap::new();
        for d in state.unsent.iter().filter(|d| d.in_flight.is_some()) {
            *per_destination.entry(destination(&d.post.url)).or_default() += 1;
        }
        let mut in_flight: usize = per_destination.values().sum();
        let mut queues_seen = HashSet::new();
        let mut next_retry: Option<Instant> = None;
        for d in state.unsent.iter_mut() {
            // Of an ordered queue, only its oldest result may go (and not while in flight).
            let head = match &d.post.queue {
                Some(q) => queues_seen.insert(q.clone()),
                None => true,
            };
            if !head || d.in_flight.is_some() {
                continue;
            }
            if d.next_try > now {
                next_retry = Some(next_retry.map_or(d.next_try, |t| t.min(d.next_try)));
                continue;
            }
            let to = destination(&d.post.url);
            let busy = per_destination.entry(to).or_default();
            // Full: it starts when an attempt ends (which wakes the sender).
            if *busy >= PER_DESTINATION || in_flight >= IN_FLIGHT {
                continue;
            }
            *busy += 1;
            in_flight += 1;
            let (outbox, id, post) = (self.clone(), d.id.clone(), d.post.clone());
            // The attempt records its end under the same lock, so not before this is set.
            d.in_flight = Some(
                tokio::spawn(async move {
                    let result = outbox.post(&id, &post).await;
                    outbox.settle(&id, &post, result);
                })
                .abort_handle(),
            );
        }
        next_retry
    }

    /// An attempt ended: a delivered result leaves the outbox, a failed one waits for its
    /// retry (or is dropped when its job was stopped by its platform).
    fn settle(&self, id: &str, post: &Post, result: Result<(), String>) {
        let url = redacted(&post.url);
        let what = &post.what;
        {
            let mut state = self.state();
            // Gone: kept by the flush that cut this attempt.
            let Some(pos) = state.unsent.iter().position(|d| d.id == id) else {
                return;
            };
            state.unsent[pos].in_flight = None;
            match result {
                Ok(()) => {
                    state.unsent.remove(pos);
                    state.delivered += 1;
                    log::info!("delivered {what} to {url}");
                }
                Err(e) => {
                    state.failed_attempts += 1;
                    if post
                        .give_up
                        .as_ref()
                        .is_some_and(CancellationToken::is_cancelled)
                    {
                        log::warn!(
                            "POST to {url} failed ({e}); {what} dropped: its job was stopped"
                        );
                        state.unsent.remove(pos);
                    } else {
                        state.retried += 1;
                        let d = &mut state.unsent[pos];
                        d.attempts += 1;
                        let wait = self.backoff.after(d.attempts);
                        d.next_try = Instant::now() + wait;
                        log::warn!(
                            "POST to {url} failed ({e}); {what} kept, retry {} in {:.1} s",
                            d.attempts,
                            wait.as_secs_f64()
                        );
                    }
                }
            }
        }
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_counted_by_scheme_host_and_port() {
        assert_eq!(destination("http://a:1/x?y"), "http://a:1");
        assert_eq!(destination("https://u:p@b/z"), "https://b:443");
        assert_eq!(destination("http://b/"), "http://b:80");
    }
}
