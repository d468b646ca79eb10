//! Taking jobs from the platform and answering each: the long-poll job-take, the plugin
//! call, every streamed chunk and the final result handed to the outbox.
//!
//! At most `--concurrency` jobs compute at once: a job-take answering more jobs than there is
//! room for (a platform may) leaves the rest waiting, in order, and nothing more is asked
//! until they have started. An id is computing or waiting once at most: a job taken again
//! under an id the worker holds is the same job handed out twice, and is dropped (logged),
//! so that the platform gets one result per id, from the job that holds it; the SDK would
//! compute both and post two results under the one id. A job whose id cannot be sent back
//! (job_ids.rs) is refused once: answered with an error when the URL can carry its id, else
//! logged and dropped. Jobs still waiting at shutdown are answered with an error saying
//! they did not start, so that they can be sent again.

use super::job_ids::{self, IdCheck};
use super::{LONG_POLL, MIN_POLL_SPACING, RunningJob, TOO_MANY_REQUESTS_WAIT, Worker, result};
use crate::delivery::Post;
use crate::plugin_host::CallContext;
use serde_json::value::RawValue;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A job taken from the platform: its id, and the plugin's request.
pub(super) struct Taken {
    pub id: String,
    pub request: String,
}

impl Worker {
    /// Take jobs by long-poll while there is room, until shutdown.
    pub(super) async fn take_jobs(self: Arc<Self>) {
        let mut failures = 0u32;
        let concurrency = self.config.concurrency;
        loop {
            if self.stop.is_stopping() {
                self.answer_waiting_at_shutdown();
                return;
            }
            // Listening before looking, so that a job ending in between is not missed.
            let ended = self.changed.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            self.start_waiting();
            let room = concurrency.saturating_sub(self.jobs().len());
            if room == 0 || !self.waiting().is_empty() {
                tokio::select! {
                    _ = ended => {}
                    _ = self.stop.stopping() => {}
                }
                continue;
            }
            let in_progress = !self.in_progress().is_empty();
            let url = self.platform.take_url(room, concurrency > 1, in_progress);
            let asked = Instant::now();
            let answer = tokio::select! {
                a = self.get(&url, LONG_POLL) => a,
                _ = self.stop.stopping() => continue,
            };
            let wait = match answer {
                Ok((200, body)) => {
                    failures = 0;
                    let jobs = self.parse_jobs(&body);
                    let none = jobs.is_empty();
                    for job in jobs {
                        self.admit(job);
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
                    let wait = self.backoff.after(failures);
                    log::warn!(
                        "job-take answered HTTP {status} ({:.200}); asking again in {:.1} s",
                        body.trim(),
                        wait.as_secs_f64()
                    );
                    wait
                }
                Err(why) => {
                    failures += 1;
                    let wait = self.backoff.after(failures);
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
                    _ = self.stop.stopping() => {}
                }
            }
        }
    }

    /// A job-take answer: one job object or an array of them (job-take-batch). Each becomes
    /// the plugin's request `{"id", "input"}`; a job without a string `id` cannot be answered
    /// and is logged.
    fn parse_jobs(&self, body: &str) -> Vec<Taken> {
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
            jobs.push(Taken { id, request });
        }
        jobs
    }

    /// A job taken: queued to start, unless its id cannot be answered or is held already.
    fn admit(&self, job: Taken) {
        match job_ids::check(&job.id) {
            IdCheck::Fits => {}
            IdCheck::AnswerOnly(why) => {
                log::error!("{why}; answered with this error");
                let body = crate::error_reply::build(&why, "ValueError");
                self.post_result(&job.id, result::error_body(&body), false);
                return;
            }
            IdCheck::Unanswerable(why) => {
                log::error!(
                    "job-take answered with a job that cannot be answered, dropped: {why}: {:.200}",
                    job.request
                );
                return;
            }
        }
        let mut waiting = self.waiting();
        if self.jobs().contains_key(&job.id) || waiting.iter().any(|w| w.id == job.id) {
            log::warn!(
                "job {} was taken again while this worker holds it: the second copy is dropped, the first answers the id",
                job_ids::quoted(&job.id)
            );
            return;
        }
        waiting.push_back(job);
    }

    /// Start waiting jobs, in order, while fewer than `--concurrency` compute.
    fn start_waiting(self: &Arc<Self>) {
        loop {
            if self.jobs().len() >= self.config.concurrency {
                return;
            }
            let Some(job) = self.waiting().pop_front() else {
                return;
            };
            self.start(job);
        }
    }

    /// Jobs taken but not started when the worker stops are answered, not lost: with an
    /// error saying so, which the platform's client may send again.
    fn answer_waiting_at_shutdown(&self) {
        let waiting = std::mem::take(&mut *self.waiting());
        for job in waiting {
            log::warn!(
                "job {}: not started, the worker is stopping; answered with an error",
                job.id
            );
            let body = crate::error_reply::build(
                "the worker stopped before this job started; send it again",
                "WorkerStopping",
            );
            self.post_result(&job.id, result::error_body(&body), false);
        }
    }

    /// A job's final result, handed to the outbox.
    fn post_result(&self, id: &str, body: String, is_stream: bool) {
        self.host.outbox.add_post(Post {
            headers: self.platform.post_headers(id),
            queue: Some(id.to_string()),
            ..Post::new(
                self.platform.output_url(id, is_stream),
                body,
                format!("the result of job {}", job_ids::quoted(id)),
            )
        });
    }

    fn start(self: &Arc<Self>, Taken { id, request }: Taken) {
        let job = RunningJob {
            stop: self.stop.child(),
            stopped_by_platform: CancellationToken::new(),
        };
        let (stop, stopped) = (job.stop.clone(), job.stopped_by_platform.clone());
        self.jobs().insert(id.clone(), job);
        log::info!("job {id}: started");
        self.changed.notify_waiters();
        let worker = self.clone();
        tokio::spawn(async move {
            worker.run_job(&id, request, stop, stopped).await;
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
        stop: crate::runtime::stop::Stop,
        stopped: CancellationToken,
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
                worker.host.outbox.add_post(Post {
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
                if worker.config.aggregate_stream {
                    e.1.push(chunk.to_string());
                }
            }) as Box<dyn FnMut(&str) + Send>
        };
        let call = CallContext {
            compute: Some(self.host.compute.clone()),
            stop: stop.child_until(Instant::now() + self.config.time_limit),
            emit,
        };
        let reply = self.host.call(&self.plugin, request, call, None).await;
        let (count, chunks) =
            std::mem::take(&mut *emitted.lock().unwrap_or_else(|p| p.into_inner()));
        if stopped.is_cancelled() {
            // As the SDK: nothing more for a job the platform stopped (its last batch went out).
            log::info!("job {id}: stopped by the platform after {count} chunks");
            return;
        }
        let aggregate = self.config.aggregate_stream.then_some(chunks.as_slice());
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
        self.host.outbox.add_post(Post {
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
}
