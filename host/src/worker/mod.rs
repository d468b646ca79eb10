//! `powhost worker`: powhost as the serverless platform's worker process
//! (docs/spec/PROTOCOLS.md §B1), in place of the platform's Python SDK wrapped around the seed
//! handler.
//!
//! Four loops share the runtime's compute service and outbox: jobs are taken by long-poll (as
//! many as the concurrency leaves room for: jobs.rs), each job's request goes to the plugin
//! exactly as `powhost run` hands it one, its streamed chunks and final result are POSTed
//! through the outbox (in order, retried until delivered: the SDK gives up after 3 tries), the
//! heartbeat names the jobs in progress, and the job-stop channel ends a job after its batch in
//! flight (channels.rs). A stop signal ends the taking, finishes the jobs at their next batch
//! (through the stop tree), delivers, and keeps what could not be delivered.

mod channels;
mod job_ids;
mod jobs;
mod platform;
mod result;
mod unhealthy;

pub use platform::Platform;
pub use unhealthy::report_unhealthy;

use crate::backoff::Backoff;
use crate::delivery::{error_text, send_error};
use crate::plugin_host::Plugin;
use crate::runtime::shutdown::ShutdownBudget;
use crate::runtime::stop::Stop;
use crate::runtime::{Host, Runtime};
use anyhow::{Context, Result};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the worker runs, beside the runtime's own configuration.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Jobs computed at once; above 1, jobs are taken in batches.
    pub concurrency: usize,
    /// What one job may compute for.
    pub time_limit: Duration,
    /// A stream's final result: every chunk (true) or `[]`.
    pub aggregate_stream: bool,
    /// After a stop signal: how long to keep delivering.
    pub flush_timeout: Duration,
    /// Where results still undelivered at the end are appended.
    pub undelivered: Option<PathBuf>,
    /// Where to serve `/metrics` and `/health` (metrics/server.rs), if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `/metrics` on (else 404).
    pub metrics: bool,
}

/// Largest answer taken from the platform (a job-take holds at most a few jobs' requests):
/// a longer one is refused rather than read into memory without end.
const MAX_PLATFORM_ANSWER: usize = 256 << 20;

/// A response body as text, refused once it passes `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_text(&e))? {
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
/// The longest wait after failures to reach the platform.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A job being computed.
struct RunningJob {
    /// The job's node of the stop tree: finished by shutdown (through the worker's node)
    /// and by the platform's job-stop.
    stop: Stop,
    /// The platform stopped the job: its results are not retried past a failure.
    stopped_by_platform: CancellationToken,
}

struct Worker {
    host: Arc<Host>,
    platform: Platform,
    plugin: Arc<Plugin>,
    client: reqwest::Client,
    config: WorkerConfig,
    backoff: Backoff,
    /// The worker's node of the stop tree.
    stop: Stop,
    /// Jobs computing, by id: an id is running once at most (jobs.rs refuses a duplicate).
    running: Mutex<HashMap<String, RunningJob>>,
    /// Jobs taken but not started, in the order taken: a job-take may answer more jobs than
    /// `--concurrency` leaves room for.
    waiting: Mutex<VecDeque<jobs::Taken>>,
    /// A job started or ended.
    changed: Notify,
}

/// Take and answer jobs until a signal, then deliver what is left.
pub fn run(
    runtime: Runtime,
    platform: Platform,
    plugin: &str,
    config: WorkerConfig,
) -> Result<ExitCode> {
    let host = runtime.host.clone();
    let plugin = host.load(plugin)?;
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
        host.compute.backend().name(),
        host.compute.backend().device_description(),
        config.concurrency
    );
    let worker = Arc::new(Worker {
        stop: host.stop.child(),
        host,
        platform,
        plugin,
        client,
        config,
        backoff: Backoff::up_to(BACKOFF_MAX),
        running: Mutex::new(HashMap::new()),
        waiting: Mutex::new(VecDeque::new()),
        changed: Notify::new(),
    });
    if let Some(addr) = worker.config.metrics_listen {
        match runtime.block_on(crate::metrics::server::start(addr, worker.monitor())) {
            Ok(bound) => eprintln!("powhost: metrics and health on http://{bound}/metrics"),
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    runtime.stop_on_signals(
        "powhost: stopping: no new jobs; ending the jobs in flight at their next batch (interrupt again to quit now)",
    )?;
    runtime.block_on(worker.work())
}

impl Worker {
    async fn work(self: Arc<Self>) -> Result<ExitCode> {
        eprintln!(
            "powhost: worker {} taking jobs (SIGTERM or Ctrl-C stops: jobs end at their next batch, results are delivered first)",
            self.platform.worker_id
        );
        let flushing = CancellationToken::new();
        let sender = {
            let (outbox, flushing) = (self.host.outbox.clone(), flushing.clone());
            tokio::spawn(async move { outbox.run(flushing.cancelled()).await })
        };
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let stops = tokio::spawn(self.clone().watch_stops());
        let taker = tokio::spawn(self.clone().take_jobs());

        self.stop.stopping().await;
        // One budget for all that follows, results delivered all along.
        let budget = ShutdownBudget::starting_now(self.config.flush_timeout);
        let _ = taker.await;
        self.end_jobs(budget).await;
        stops.abort();
        flushing.cancel();
        let _ = sender.await;
        let code = self
            .host
            .deliver_rest(budget.left(), self.config.undelivered.as_deref(), "results")
            .await;
        heartbeat.abort();
        Ok(code)
    }

    /// The jobs' stops are children of the worker's: each ends at its next batch and queues
    /// its result. One still computing near the deadline is aborted (its compute call stops
    /// at the next forward pass, and what the plugin answers then is its result); one that
    /// has not ended even by the deadline is given up, and said so.
    async fn end_jobs(&self, budget: ShutdownBudget) {
        let ended = self.until_jobs(|n| n == 0);
        tokio::pin!(ended);
        if tokio::time::timeout_at(budget.abort_at.into(), &mut ended)
            .await
            .is_ok()
        {
            return;
        }
        log::warn!(
            "jobs still computing near the flush timeout ({:.1} s): aborting them at their next forward pass",
            self.config.flush_timeout.as_secs_f64()
        );
        self.stop.abort();
        if tokio::time::timeout_at(budget.deadline.into(), &mut ended)
            .await
            .is_err()
        {
            let mut ids: Vec<String> = self.jobs().keys().cloned().collect();
            ids.sort();
            log::error!(
                "jobs {} still computing at the flush timeout: their results are lost (the platform hands an unanswered job out again)",
                ids.join(", ")
            );
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunningJob>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, VecDeque<jobs::Taken>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once `running(number of jobs running)` holds.
    async fn until_jobs(&self, running: impl Fn(usize) -> bool) {
        loop {
            // Listening before looking, so that a job starting or ending in between is not
            // missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if running(self.jobs().len()) {
                return;
            }
            changed.await;
        }
    }

    /// What the monitoring server reads of this worker: its jobs computing and delivering.
    fn monitor(self: &Arc<Self>) -> crate::metrics::server::Monitor {
        let worker = self.clone();
        crate::metrics::server::Monitor {
            host: self.host.clone(),
            metrics: self.config.metrics,
            jobs: Box::new(move || {
                let computing = worker.jobs().len();
                let waiting = worker.waiting().len();
                let delivering = worker
                    .in_progress()
                    .len()
                    .saturating_sub(computing + waiting);
                let count = |status: &str, jobs: usize| crate::metrics::JobCount {
                    status: status.into(),
                    jobs: jobs as u64,
                };
                vec![
                    count("in_queue", waiting),
                    count("in_progress", computing),
                    count("delivering", delivering),
                ]
            }),
        }
    }

    /// Jobs computing or waiting to (as the SDK's heartbeat names its queued jobs), and jobs
    /// whose results are still being delivered.
    fn in_progress(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs().keys().cloned().collect();
        let waiting = self
            .waiting()
            .iter()
            .map(|job| job.id.clone())
            .collect::<Vec<_>>();
        for queue in waiting.into_iter().chain(self.host.outbox.pending_queues()) {
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
        let response = request.send().await.map_err(|e| send_error(&e, timeout))?;
        let status = response.status().as_u16();
        let body = read_limited(response, MAX_PLATFORM_ANSWER).await?;
        Ok((status, body))
    }
}
