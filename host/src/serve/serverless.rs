//! Serverless-style endpoints (docs/spec/PROTOCOLS.md §B2): `/runsync`, `/run`,
//! `/status/{id}`, `/stream/{id}`, `/cancel/{id}` (`/health`: health.rs). The request plugin (default
//! `runpod`) handles each job's `{"input": {...}}`; the host keeps the jobs.

use super::app::{App, BackgroundTask, PluginKind, Ticket};
use super::http::{ApiError, json_response, ok, ok_text, read_object};
use super::jobs::{Item, Job, Status, View, raw, to_text};
use super::memory_budget::MemoryCharge;
use crate::runtime::stop::Stop;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// Aborts the job if dropped before disarmed: a `/runsync` caller that hangs up stops its
/// job.
struct CancelOnDrop(Option<Stop>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = &self.0 {
            stop.abort();
        }
    }
}

/// A job as the plugin will get it, its webhook if any, and what it holds of the memory
/// budget until it ends.
struct JobRequest {
    request: String,
    webhook: Option<String>,
    memory: MemoryCharge,
}

/// The request body as the plugin will get it, and its webhook if any.
async fn job_request(app: &App, body: Body) -> Result<JobRequest, ApiError> {
    let (request, memory) = read_object(body, app.body_limits()).await?;
    match request.get("input") {
        Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "`input` must be a JSON object, got {}",
                super::http::kind(other)
            )));
        }
        None => {
            return Err(ApiError::unprocessable(
                "missing field `input`: a job is {\"input\": {...}}",
            ));
        }
    }
    let webhook = match request.get("webhook") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => {
            crate::delivery::check_url(url)
                .map_err(|why| ApiError::unprocessable(format!("`webhook` {why}")))?;
            // A webhook to this server would post the job back to its own endpoints.
            super::own_address::refuse_own(url, app.listening.get().copied())
                .await
                .map_err(|why| ApiError::unprocessable(format!("`webhook` {why}")))?;
            Some(url.clone())
        }
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "`webhook` must be an http:// URL, got {}",
                super::http::kind(other)
            )));
        }
    };
    Ok(JobRequest {
        request: Value::Object(request).to_string(),
        webhook,
        memory,
    })
}

/// Run a job to its end: wait for a compute slot, run the plugin, record the result, post
/// the webhook. Spawned, so it ends (and is recorded) whatever happens to the request that
/// started it; counted as background work from before it is spawned, so that a shutdown
/// right after the request does not miss it.
async fn execute(
    app: Arc<App>,
    job: Arc<Job>,
    request: String,
    ticket: Ticket,
    memory: MemoryCharge,
    _background: BackgroundTask,
) {
    let emit = {
        let job = job.clone();
        Box::new(move |chunk: &str| {
            job.state().chunks.push(raw(chunk));
        })
    };
    let slot = ticket.acquire().await;
    {
        let mut s = job.state();
        if s.status == Status::InQueue {
            s.status = Status::InProgress;
        }
    }
    // The time limit counts from the start of the computation, not of the wait for a slot.
    let stop = job
        .stop
        .child_until(std::time::Instant::now() + app.config.time_limit);
    let result = app
        .call(PluginKind::Serverless, request, slot, stop, emit)
        .await;
    job.finish(result);
    // The request is done with; what is kept of the job is its result.
    drop(memory);
    app.jobs.finished(&job);
    if let Some(url) = &job.webhook {
        app.host.outbox.add(
            url.clone(),
            job.view(),
            format!("webhook of job {}", job.id),
        );
    }
}

/// The longest `/runsync?wait=` (milliseconds): a day.
const MAX_WAIT_MS: u64 = 86_400_000;

/// `?wait=MS`: how long `/runsync` holds the request before answering with the job's id
/// and status (the job goes on, to be polled or cancelled by id); absent, until the job ends.
fn runsync_wait(query: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    for pair in query.unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("wait=") {
            let ms = value
                .parse::<u64>()
                .ok()
                .filter(|ms| (1..=MAX_WAIT_MS).contains(ms))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`wait` must be a whole number of milliseconds from 1 to {MAX_WAIT_MS}, got `{value}`"
                    ))
                })?;
            return Ok(Some(std::time::Duration::from_millis(ms)));
        }
    }
    Ok(None)
}

/// A job answered when it ends, or after `?wait=` milliseconds with its id and status. A
/// caller that hangs up first cancels it.
pub async fn runsync(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let wait = runsync_wait(query.as_deref())?;
    // A place in the queue before the body is read: a busy server reads nothing.
    let ticket = app.slots.reserve()?;
    let JobRequest {
        request,
        webhook,
        memory,
    } = job_request(&app, body).await?;
    let job = Job::new(
        format!("sync-{}", uuid::Uuid::new_v4()),
        webhook,
        app.job_stop(),
    );
    app.jobs.insert(job.clone());
    let mut hang_up = CancelOnDrop(Some(job.stop.clone()));
    let background = app.background_task();
    let done = tokio::spawn(execute(
        app.clone(),
        job.clone(),
        request,
        ticket,
        memory,
        background,
    ));
    match wait {
        None => {
            let _ = done.await;
        }
        Some(wait) => {
            // Past the wait the job goes on; the caller has its id.
            let _ = tokio::time::timeout(wait, done).await;
        }
    }
    hang_up.0 = None;
    Ok(ok_text(job.view()))
}

pub async fn run(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    // A place in the queue before the body is read: a busy server reads nothing.
    let ticket = app.slots.reserve()?;
    let JobRequest {
        request,
        webhook,
        memory,
    } = job_request(&app, body).await?;
    let job = Job::new(uuid::Uuid::new_v4().to_string(), webhook, app.job_stop());
    app.jobs.insert(job.clone());
    let background = app.background_task();
    tokio::spawn(execute(
        app.clone(),
        job.clone(),
        request,
        ticket,
        memory,
        background,
    ));
    Ok(ok(json!({"id": job.id, "status": Status::InQueue.name()})))
}

fn not_found(id: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"id": id, "status": "FAILED", "error": "Job ID not found"}),
    )
}

pub async fn status(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.jobs.get(&id) {
        Some(job) => ok_text(job.view()),
        None => not_found(&id),
    }
}

/// The results emitted since the last `/stream` call (a non-streaming job's output once it
/// is done), as `{"stream": [{"output": …}, …]}`.
pub async fn stream(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let Some(job) = app.jobs.get(&id) else {
        return not_found(&id);
    };
    let mut s = job.state();
    let mut items: Vec<Item> = s.chunks[s.streamed..]
        .iter()
        .map(|c| Item { output: c })
        .collect();
    let streamed_now = s.chunks.len();
    let mut output_streamed = s.output_streamed;
    if s.status.finished() && s.chunks.is_empty() && !s.output_streamed {
        if let Some(output) = &s.output {
            items.push(Item { output });
        }
        output_streamed = true;
    }
    let view = to_text(&View {
        id: &id,
        status: s.status.name(),
        output: None,
        stream: Some(items),
        error: s.error.as_ref().map(|e| e.0.as_str()),
        error_type: s.error.as_ref().map(|e| e.1.as_str()),
    });
    s.streamed = streamed_now;
    s.output_streamed = output_streamed;
    ok_text(view)
}

pub async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let Some(job) = app.jobs.get(&id) else {
        return not_found(&id);
    };
    job.stop.abort();
    {
        // A job still queued never starts.
        let mut s = job.state();
        if s.status == Status::InQueue {
            s.status = Status::Cancelled;
        }
    }
    let status = job.state().status;
    let shown = if status.finished() {
        status
    } else {
        Status::Cancelled
    };
    ok(json!({"id": id, "status": shown.name()}))
}
