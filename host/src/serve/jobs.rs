//! The serverless jobs this server knows of: their status, emitted chunks and result, and how
//! the API shows them (keys in the serverless API's order).

use crate::plugin_host::{PluginFailure, PluginReply};
use crate::runtime::stop::Stop;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Finished jobs kept for `/status` and `/stream`; the oldest are forgotten first.
const KEEP_FINISHED: usize = 10_000;

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

/// Every job this server knows of.
#[derive(Default)]
pub struct Jobs {
    inner: Mutex<JobsInner>,
}

#[derive(Default)]
struct JobsInner {
    by_id: HashMap<String, Arc<Job>>,
    finished: VecDeque<String>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobsInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn insert(&self, job: Arc<Job>) {
        self.lock().by_id.insert(job.id.clone(), job);
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().by_id.get(id).cloned()
    }

    pub(super) fn finished(&self, id: &str) {
        let mut inner = self.lock();
        inner.finished.push_back(id.to_string());
        while inner.finished.len() > KEEP_FINISHED {
            let old = inner.finished.pop_front().unwrap();
            inner.by_id.remove(&old);
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
