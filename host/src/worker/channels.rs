//! The platform's two other channels: the heartbeat naming the jobs in progress, and the
//! job-stop long-poll that ends a job after its batch in flight.

use super::{LONG_POLL, MIN_POLL_SPACING, Worker};
use std::sync::Arc;
use std::time::Instant;

impl Worker {
    /// Every `RUNPOD_PING_INTERVAL`, the jobs in progress, until the worker ends.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let interval = self.platform.ping_interval;
        if self.platform.ping_url(&[]).is_none() {
            return;
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let Some(url) = self.platform.ping_url(&self.in_progress()) else {
                return;
            };
            match self.get(&url, interval * 2).await {
                Ok((status, _)) if (200..300).contains(&status) => failing = false,
                Ok((status, _)) => {
                    if !failing {
                        log::warn!("the heartbeat was answered with HTTP {status}");
                    }
                    failing = true;
                }
                Err(why) => {
                    if !failing {
                        log::warn!("the heartbeat did not reach the platform ({why})");
                    }
                    failing = true;
                }
            }
        }
    }

    /// The job-stop channel, while jobs run: a stopped job ends after its batch in flight.
    pub(super) async fn watch_stops(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            self.until_jobs(|n| n > 0).await;
            let asked = Instant::now();
            let wait = match self.get(&self.platform.stop_url(), LONG_POLL).await {
                Ok((200, body)) => {
                    failures = 0;
                    #[derive(serde::Deserialize)]
                    struct Stops {
                        #[serde(rename = "jobsToStop", default)]
                        jobs_to_stop: Vec<String>,
                    }
                    match serde_json::from_str::<Stops>(&body) {
                        Ok(stops) => {
                            for id in stops.jobs_to_stop {
                                let before = self.waiting().len();
                                self.waiting().retain(|job| job.id != id);
                                if self.waiting().len() < before {
                                    log::info!(
                                        "the platform stopped job {id} before it started: it is not run"
                                    );
                                }
                                if let Some(job) = self.jobs().get(&id) {
                                    log::info!(
                                        "the platform stopped job {id}: it ends after its batch in flight"
                                    );
                                    job.stopped_by_platform.cancel();
                                    job.stop.finish();
                                }
                            }
                        }
                        Err(e) => log::warn!(
                            "job-stop answered with no jobsToStop list ({e}): {body:.200}"
                        ),
                    }
                    MIN_POLL_SPACING.saturating_sub(asked.elapsed())
                }
                Ok((204, _)) => {
                    failures = 0;
                    MIN_POLL_SPACING.saturating_sub(asked.elapsed())
                }
                Ok((status, _)) => {
                    failures += 1;
                    if failures == 1 {
                        log::warn!("job-stop answered HTTP {status}; asking again with a backoff");
                    }
                    self.backoff.after(failures)
                }
                Err(why) => {
                    failures += 1;
                    if failures == 1 {
                        log::warn!(
                            "job-stop did not reach the platform ({why}); asking again with a backoff"
                        );
                    }
                    self.backoff.after(failures)
                }
            };
            if self.stop.is_stopping() && self.jobs().is_empty() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}
