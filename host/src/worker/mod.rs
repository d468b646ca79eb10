//! `powhost worker`: powhost as the serverless platform's worker process
//! (docs/spec/PROTOCOLS.md §B1), in place of the platform's Python SDK wrapped around the seed
//! handler.
//!
//! Four loops share one compute service and one outbox: jobs are taken by long-poll (as many
//! as `--concurrency` leaves room for), each job's request goes to the plugin exactly as
//! `powhost run` hands it one, its streamed chunks and final result are POSTed through the
//! outbox (in order, retried until delivered: the SDK gives up after 3 tries), the heartbeat
//! names the jobs in progress, and the job-stop channel ends a job after its batch in flight.
//! SIGTERM stops the taking, ends the jobs at their next batch, delivers, and keeps what could
//! not be delivered in `--undelivered`.

mod platform;
mod result;

use crate::backends::backend_by_name;
use crate::cli::WorkerArgs;
use crate::compute_service::{ComputeService, StopSignal};
use crate::delivery::{CallbackConfig, Outbox, Post, with_causes};
use crate::plugin_host::{CallContext, Plugin, PluginFailure, PluginHost, PluginLimits};
use anyhow::{Context, Result};
use platform::Platform;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Largest answer taken from the platform (a job-take holds at most a few jobs' requests):
/// a longer one is refused rather than read into memory without end.
const MAX_PLATFORM_ANSWER: usize = 256 << 20;

/// A response body as text, refused once it passes `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| with_causes(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!(
                "the answer is larger than {} MiB and was not read",
                limit >> 20
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The SDK's long-poll limit for job-take and job-stop.
const LONG_POLL: Duration = Duration::from_secs(90);
/// A platform that answers "no job" at once is asked again no sooner than this.
const MIN_POLL_SPACING: Duration = Duration::from_millis(500);
/// The SDK's wait after a 429.
const TOO_MANY_REQUESTS_WAIT: Duration = Duration::from_secs(5);
/// Backoff after failures to reach the platform: doubling from the first, up to the second.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// A job being computed.
struct RunningJob {
    /// End the job after its batch in flight (shutdown, the platform's job-stop).
    finish: Arc<AtomicBool>,
    /// The platform stopped the job: its results are not retried past a failure.
    stopped: Arc<AtomicBool>,
}

struct Worker {
    platform: Platform,
    plugin_host: PluginHost,
    plugin: Plugin,
    compute: Arc<ComputeService>,
    outbox: Arc<Outbox>,
    client: reqwest::Client,
    concurrency: usize,
    time_limit: Duration,
    aggregate_stream: bool,
    running: Mutex<HashMap<String, RunningJob>>,
    /// A job started or ended.
    changed: Notify,
}

pub fn run(args: WorkerArgs) -> Result<ExitCode> {
    let platform = Platform::from_env(|name| std::env::var(name).ok())?;
    let plugin_host = PluginHost::new(PluginLimits::from_args(&args.limits))?;
    let plugin = plugin_host.load(&args.plugin)?;
    let backend = backend_by_name(&args.backend)?;
    let compute = Arc::new(ComputeService::new(backend, args.batch).without_progress());
    // Before the first job: a device that computes wrong answers takes none.
    let report = crate::selftest::require(&compute)?;
    eprintln!("powhost: {}", report.summary());
    let outbox = Arc::new(Outbox::new(CallbackConfig {
        // The worker seals nothing (no generated nonces); results are sent as they come.
        interval: Duration::from_secs(1),
        timeout: args.delivery.callback_timeout,
        backoff_max: args.delivery.callback_backoff_max,
    })?);
    let client = reqwest::Client::builder()
        .user_agent(crate::delivery::USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    log::info!(
        "worker {}: plugin `{}` {} on backend {} ({}), {} job(s) at once",
        platform.worker_id,
        plugin.info.name,
        plugin.info.version,
        compute.backend().name(),
        compute.backend().device_description(),
        args.concurrency
    );
    let worker = Arc::new(Worker {
        platform,
        plugin_host,
        plugin,
        compute,
        outbox,
        client,
        concurrency: args.concurrency,
        time_limit: args.time_limit,
        aggregate_stream: args.aggregate_stream,
        running: Mutex::new(HashMap::new()),
        changed: Notify::new(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("worker")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(worker.work(
        args.delivery.flush_timeout,
        args.delivery.undelivered.as_deref(),
    ))
}

impl Worker {
    async fn work(
        self: Arc<Self>,
        flush_timeout: Duration,
        undelivered: Option<&std::path::Path>,
    ) -> Result<ExitCode> {
        eprintln!(
            "powhost: worker {} taking jobs (SIGTERM or Ctrl-C stops: jobs end at their next batch, results are delivered first)",
            self.platform.worker_id
        );
        let (stopping_tx, stopping) = watch::channel(false);
        let sender = {
            let (outbox, mut rx) = (self.outbox.clone(), stopping.clone());
            tokio::spawn(async move {
                outbox
                    .run(async move {
                        let _ = rx.wait_for(|&s| s).await;
                    })
                    .await
            })
        };
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let stops = tokio::spawn(self.clone().watch_stops(stopping.clone()));
        let taker = tokio::spawn(self.clone().take_jobs(stopping.clone()));

        crate::serve::shutdown_signal().await;
        eprintln!(
            "powhost: stopping: no new jobs; ending the jobs in flight at their next batch (interrupt again to quit now)"
        );
        tokio::spawn(async {
            crate::serve::shutdown_signal().await;
            eprintln!("powhost: interrupted again, quitting");
            std::process::exit(130);
        });
        let _ = stopping_tx.send(true);
        let _ = taker.await;
        for job in self.jobs().values() {
            job.finish.store(true, Ordering::SeqCst);
        }
        while !self.jobs().is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(100), self.changed.notified()).await;
        }
        stops.abort();
        let _ = sender.await;
        let left = self.outbox.flush(flush_timeout, undelivered).await;
        heartbeat.abort();
        if left > 0 {
            eprintln!(
                "powhost: {left} results could not be delivered; {}",
                match undelivered {
                    Some(path) => format!("they are kept in {}", path.display()),
                    None => "their bodies are in the log above".to_string(),
                }
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("powhost: stopped; every result was delivered");
        Ok(ExitCode::SUCCESS)
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningJob>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs computing, and jobs whose results are still being delivered.
    fn in_progress(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs().keys().cloned().collect();
        for queue in self.outbox.pending_queues() {
            if !ids.contains(&queue) {
                ids.push(queue);
            }
        }
        ids.sort();
        ids
    }

    /// A GET to the platform: (status, body) or why it failed.
    async fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String), String> {
        let mut request = self.client.get(url).timeout(timeout);
        for (name, value) in self.platform.get_headers() {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {:.0} s", timeout.as_secs_f64())
            } else {
                with_causes(&e)
            }
        })?;
        let status = response.status().as_u16();
        let body = read_limited(response, MAX_PLATFORM_ANSWER).await?;
        Ok((status, body))
    }

    /// Take jobs by long-poll while there is room, until shutdown.
    async fn take_jobs(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            if *stopping.borrow() {
                return;
            }
            // Listening before looking, so that a job ending in between is not missed.
            let ended = self.changed.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let room = self.concurrency.saturating_sub(self.jobs().len());
            if room == 0 {
                tokio::select! {
                    _ = ended => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stopping.changed() => {}
                }
                continue;
            }
            let in_progress = !self.in_progress().is_empty();
            let url = self
                .platform
                .take_url(room, self.concurrency > 1, in_progress);
            let asked = Instant::now();
            let answer = tokio::select! {
                a = self.get(&url, LONG_POLL) => a,
                _ = stopping.changed() => return,
            };
            let wait = match answer {
                Ok((200, body)) => {
                    failures = 0;
                    let jobs = self.parse_jobs(&body);
                    let none = jobs.is_empty();
                    for (id, request) in jobs {
                        self.start(id, request);
                    }
                    if none {
                        MIN_POLL_SPACING.saturating_sub(asked.elapsed())
                    } else {
                        Duration::ZERO
                    }
                }
                // No job (400: the platform's FlashBoot answer).
                Ok((204 | 400, _)) => {
                    failures = 0;
                    MIN_POLL_SPACING.saturating_sub(asked.elapsed())
                }
                Ok((429, _)) => {
                    log::warn!(
                        "the platform answered job-take with 429 Too Many Requests: waiting {} s",
                        TOO_MANY_REQUESTS_WAIT.as_secs()
                    );
                    TOO_MANY_REQUESTS_WAIT
                }
                Ok((status, body)) => {
                    failures += 1;
                    let wait = backoff(failures);
                    log::warn!(
                        "job-take answered HTTP {status} ({:.200}); asking again in {:.1} s",
                        body.trim(),
                        wait.as_secs_f64()
                    );
                    wait
                }
                Err(why) => {
                    failures += 1;
                    let wait = backoff(failures);
                    log::warn!(
                        "the platform could not be reached for a job ({why}); asking again in {:.1} s",
                        wait.as_secs_f64()
                    );
                    wait
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.changed() => return,
                }
            }
        }
    }

    /// A job-take answer: one job object or an array of them (job-take-batch). Each becomes
    /// (id, the plugin's request `{"id", "input"}`); a job without a string `id` cannot be
    /// answered and is logged.
    fn parse_jobs(&self, body: &str) -> Vec<(String, String)> {
        if body.trim().is_empty() {
            return Vec::new();
        }
        let objects: Vec<Box<RawValue>> = match serde_json::from_str::<Vec<Box<RawValue>>>(body) {
            Ok(list) => list,
            Err(_) => match serde_json::from_str::<Box<RawValue>>(body) {
                Ok(one) => vec![one],
                Err(e) => {
                    log::error!(
                        "job-take answered with something that is not JSON ({e}): {body:.200}"
                    );
                    return Vec::new();
                }
            },
        };
        let mut jobs = Vec::new();
        for object in objects {
            #[derive(serde::Deserialize)]
            struct Job<'a> {
                id: Option<serde_json::Value>,
                #[serde(borrow)]
                input: Option<&'a RawValue>,
            }
            let job: Job = match serde_json::from_str(object.get()) {
                Ok(job) => job,
                Err(_) => {
                    log::error!(
                        "job-take answered with a job that is not an object: {:.200}",
                        object.get()
                    );
                    continue;
                }
            };
            let Some(serde_json::Value::String(id)) = job.id else {
                log::error!(
                    "job-take answered with a job without a string `id`, which cannot be answered: {:.200}",
                    object.get()
                );
                continue;
            };
            let id_json = serde_json::to_string(&id).expect("a string serialises");
            // The plugin checks the input as `powhost run` would (a missing one is its error).
            let request = match job.input {
                Some(input) => format!("{{\"id\":{id_json},\"input\":{}}}", input.get()),
                None => format!("{{\"id\":{id_json}}}"),
            };
            jobs.push((id, request));
        }
        jobs
    }

    fn start(self: &Arc<Self>, id: String, request: String) {
        let job = RunningJob {
            finish: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
        };
        let (finish, stopped) = (job.finish.clone(), job.stopped.clone());
        if self.jobs().insert(id.clone(), job).is_some() {
            log::warn!("job {id} was taken again while it runs; both are answered");
        }
        log::info!("job {id}: started");
        self.changed.notify_waiters();
        let worker = self.clone();
        tokio::spawn(async move {
            worker.run_job(&id, request, finish, stopped).await;
            worker.jobs().remove(&id);
            worker.changed.notify_waiters();
        });
    }

    /// One job: the plugin call off the async threads, every emitted chunk posted to the
    /// stream URL as it comes, then the final result.
    async fn run_job(
        self: &Arc<Self>,
        id: &str,
        request: String,
        finish: Arc<AtomicBool>,
        stopped: Arc<AtomicBool>,
    ) {
        let start = Instant::now();
        let emitted = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
        let emit = {
            let (worker, id, emitted, stopped) = (
                self.clone(),
                id.to_string(),
                emitted.clone(),
                stopped.clone(),
            );
            Box::new(move |chunk: &str| {
                worker.outbox.add_post(Post {
                    headers: worker.platform.post_headers(&id),
                    queue: Some(id.clone()),
                    give_up: Some(stopped.clone()),
                    ..Post::new(
                        worker.platform.stream_url(&id),
                        result::chunk_body(chunk),
                        format!("a stream chunk of job {id}"),
                    )
                });
                let mut e = emitted.lock().unwrap_or_else(|p| p.into_inner());
                e.0 += 1;
                if worker.aggregate_stream {
                    e.1.push(chunk.to_string());
                }
            }) as Box<dyn FnMut(&str) + Send>
        };
        let call = CallContext {
            compute: Some(self.compute.clone()),
            stop: StopSignal::finishing_on(finish, Some(Instant::now() + self.time_limit)),
            emit,
        };
        let reply = {
            let worker = self.clone();
            tokio::task::spawn_blocking(move || {
                worker.plugin_host.handle(&worker.plugin, &request, call)
            })
            .await
            .unwrap_or_else(|e| {
                Err(PluginFailure {
                    message: format!("the plugin call failed in the host: {e}"),
                })
            })
        };
        let (count, chunks) =
            std::mem::take(&mut *emitted.lock().unwrap_or_else(|p| p.into_inner()));
        if stopped.load(Ordering::SeqCst) {
            // As the SDK: nothing more for a job the platform stopped (its last batch went out).
            log::info!("job {id}: stopped by the platform after {count} chunks");
            return;
        }
        let aggregate = self.aggregate_stream.then_some(chunks.as_slice());
        let result = result::final_result(reply, count, aggregate);
        log::info!(
            "job {id}: {} after {:.0} ms{}; result queued",
            if result.failed { "failed" } else { "done" },
            start.elapsed().as_secs_f64() * 1e3,
            if result.is_stream {
                format!(", {count} chunks")
            } else {
                String::new()
            }
        );
        self.outbox.add_post(Post {
            headers: self.platform.post_headers(id),
            queue: Some(id.to_string()),
            give_up: Some(stopped),
            ..Post::new(
                self.platform.output_url(id, result.is_stream),
                result.body,
                format!("the result of job {id}"),
            )
        });
    }

    /// Every `RUNPOD_PING_INTERVAL`, the jobs in progress, until the worker ends.
    async fn heartbeat(self: Arc<Self>) {
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
    async fn watch_stops(self: Arc<Self>, stopping: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            if self.jobs().is_empty() {
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), self.changed.notified()).await;
                continue;
            }
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
                                if let Some(job) = self.jobs().get(&id) {
                                    log::info!(
                                        "the platform stopped job {id}: it ends after its batch in flight"
                                    );
                                    job.stopped.store(true, Ordering::SeqCst);
                                    job.finish.store(true, Ordering::SeqCst);
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
                    backoff(failures)
                }
                Err(why) => {
                    failures += 1;
                    if failures == 1 {
                        log::warn!(
                            "job-stop did not reach the platform ({why}); asking again with a backoff"
                        );
                    }
                    backoff(failures)
                }
            };
            if *stopping.borrow() && self.jobs().is_empty() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

fn backoff(failures: u32) -> Duration {
    BACKOFF
        .0
        .saturating_mul(1 << failures.clamp(1, 16).saturating_sub(1))
        .min(BACKOFF.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
