//! The serverless jobs this server knows of: their status, emitted chunks and result, and how
//! the API shows them (keys in the serverless API's order).

use crate::plugin_host::{PluginFailure, PluginReply};
use crate::runtime::stop::Stop;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Finished jobs kept for `/status` and `/stream`, at most; the oldest are forgotten first.
const KEEP_FINISHED: usize = 10_000;

/// Finished jobs' results are kept within this share of the memory budget (a quarter).
pub(super) const FINISHED_SHARE: u64 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    InQueue,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub(super) fn name(self) -> &'static str {
        match self {
            Status::InQueue => "IN_QUEUE",
            Status::InProgress => "IN_PROGRESS",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
        }
    }
    pub(super) fn finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

pub(super) struct JobState {
    pub(super) status: Status,
    /// Every result the plugin emitted (streaming jobs), in order.
    /// Kept as the plugin wrote them: key order is part of the contract.
    pub(super) chunks: Vec<Box<RawValue>>,
    /// How many of `chunks` `/stream` has handed out.
    pub(super) streamed: usize,
    /// Whether `/stream` has handed out a non-streaming job's output.
    pub(super) output_streamed: bool,
    pub(super) output: Option<Box<RawValue>>,
    pub(super) error: Option<(String, String)>,
}

pub struct Job {
    pub(super) id: String,
    /// The job's node of the stop tree: `/cancel` and a `/runsync` caller that hangs up
    /// abort it.
    pub(super) stop: Stop,
    pub(super) webhook: Option<String>,
    pub(super) state: Mutex<JobState>,
}

impl Job {
    pub(super) fn new(id: String, webhook: Option<String>, stop: Stop) -> Arc<Self> {
        Arc::new(Self {
            id,
            stop,
            webhook,
            state: Mutex::new(JobState {
                status: Status::InQueue,
                chunks: Vec::new(),
                streamed: 0,
                output_streamed: false,
                output: None,
                error: None,
            }),
        })
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `{"id", "status", "output" | "error"}`, as the serverless API answers.
    pub(super) fn view(&self) -> String {
        let s = self.state();
        let output = match &s.output {
            Some(output) => Some(Output::One(output)),
            None if s.status.finished() && !s.chunks.is_empty() => Some(Output::All(&s.chunks)),
            None => None,
        };
        to_text(&View {
            id: &self.id,
            status: s.status.name(),
            output,
            stream: None,
            error: s.error.as_ref().map(|e| e.0.as_str()),
            error_type: s.error.as_ref().map(|e| e.1.as_str()),
        })
    }

    /// Bytes its results and error hold: what keeping it finished costs.
    pub(super) fn result_bytes(&self) -> u64 {
        let s = self.state();
        let chunks: usize = s.chunks.iter().map(|c| c.get().len()).sum();
        let output = s.output.as_ref().map_or(0, |o| o.get().len());
        let error = s.error.as_ref().map_or(0, |(m, k)| m.len() + k.len());
        (self.id.len() + chunks + output + error) as u64
    }

    pub(super) fn finish(&self, result: Result<PluginReply, PluginFailure>) {
        let cancelled = self.stop.is_aborted();
        let mut s = self.state();
        match result {
            Ok(PluginReply::Ok(body)) => {
                s.status = if cancelled {
                    Status::Cancelled
                } else {
                    Status::Completed
                };
                if !body.is_empty() {
                    s.output = Some(raw(&body));
                }
            }
            Ok(PluginReply::Error(body)) => {
                s.status = if cancelled {
                    Status::Cancelled
                } else {
                    Status::Failed
                };
                s.error = Some(crate::error_reply::read(&body));
            }
            Err(failure) => {
                s.status = Status::Failed;
                s.error = Some((failure.to_string(), "PluginError".into()));
            }
        }
    }
}

/// A job as the API shows it, keys in the serverless API's order.
#[derive(Serialize)]
pub(super) struct View<'a> {
    pub(super) id: &'a str,
    pub(super) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output: Option<Output<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) stream: Option<Vec<Item<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error_type: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Output<'a> {
    One(&'a RawValue),
    /// A streaming job's results, in order.
    All(&'a [Box<RawValue>]),
}

#[derive(Serialize)]
pub(super) struct Item<'a> {
    pub(super) output: &'a RawValue,
}

/// What a plugin wrote, kept verbatim when it is JSON (else as a JSON string).
pub(super) fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.trim().to_string()).unwrap_or_else(|_| {
        RawValue::from_string(Value::String(text.into()).to_string()).expect("a JSON string")
    })
}

pub(super) fn to_text(view: &View) -> String {
    serde_json::to_string(view).expect("a job view serialises")
}

/// Every job this server knows of; the finished ones within a count and a byte budget.
pub struct Jobs {
    inner: Mutex<JobsInner>,
    /// Bytes the finished jobs' results may hold, all told.
    keep_bytes: u64,
}

#[derive(Default)]
struct JobsInner {
    by_id: HashMap<String, Arc<Job>>,
    /// Finished jobs, oldest first, with the bytes each holds.
    finished: VecDeque<(String, u64)>,
    finished_bytes: u64,
}

impl Jobs {
    pub fn new(keep_bytes: u64) -> Self {
        Self {
            inner: Mutex::default(),
            keep_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn insert(&self, job: Arc<Job>) {
        self.lock().by_id.insert(job.id.clone(), job);
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().by_id.get(id).cloned()
    }

    /// Keep `job`'s result for `/status` and `/stream`, forgetting the oldest finished jobs
    /// beyond the count or the byte budget (a result larger than the whole budget is not kept).
    pub(super) fn finished(&self, job: &Job) {
        let bytes = job.result_bytes();
        let mut inner = self.lock();
        inner.finished.push_back((job.id.clone(), bytes));
        inner.finished_bytes += bytes;
        while inner.finished.len() > KEEP_FINISHED || inner.finished_bytes > self.keep_bytes {
            let (old, old_bytes) = inner.finished.pop_front().expect("not empty");
            inner.finished_bytes -= old_bytes;
            inner.by_id.remove(&old);
            if old == job.id {
                log::warn!(
                    "the result of job {old} ({} MiB) is larger than the finished jobs' share of --memory-budget; it is not kept for /status",
                    old_bytes >> 20
                );
            }
        }
    }

    pub(super) fn counts(&self) -> Value {
        let inner = self.lock();
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for job in inner.by_id.values() {
            *counts.entry(job.state().status.name()).or_default() += 1;
        }
        let n = |s: Status| counts.get(s.name()).copied().unwrap_or(0);
        json!({
            "completed": n(Status::Completed),
            "failed": n(Status::Failed),
            "cancelled": n(Status::Cancelled),
            "inProgress": n(Status::InProgress),
            "inQueue": n(Status::InQueue),
            "retried": 0,
        })
    }
}
