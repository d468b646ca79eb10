//! The stand-in for the serverless platform: the shared stand-in server (common/receiver.rs)
//! answering from a script of jobs, 429s, refusals and stop lists, on the test's own async
//! runtime.

use crate::common::receiver::{Answer, Received, Receiver};
use crate::{API_KEY, POD};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the stand-in answers.
#[derive(Default)]
pub struct Script {
    pub jobs: VecDeque<Value>,
    /// The next job-takes answer 429.
    pub take_429: usize,
    /// The next result POSTs (job-done) answer 500.
    pub refuse_output: usize,
    /// Answered once on job-stop.
    pub stop: Vec<String>,
    /// The next job-takes answer with this many bytes of body (a broken platform).
    pub huge_take: Option<usize>,
    /// The next job-takes answer with these bodies, whatever they asked for (a platform
    /// handing out more jobs than asked, or the same id twice).
    pub answers: VecDeque<Value>,
}

impl Script {
    fn answer(&mut self, request: &Received) -> Answer {
        let answer = if request.is("job-take") || request.is("job-take-batch") {
            self.take(&request.path)
        } else if request.is("job-stop") {
            if self.stop.is_empty() {
                Answer::new(204, "")
            } else {
                let ids = std::mem::take(&mut self.stop);
                Answer::new(200, json!({ "jobsToStop": ids }).to_string())
            }
        } else if request.is("job-done") && self.refuse_output > 0 {
            self.refuse_output -= 1;
            Answer::new(500, "")
        } else {
            Answer::new(200, "")
        };
        // A platform with nothing to hand out holds the long-poll a little.
        if answer.status == 204 {
            answer.held_for(Duration::from_millis(50))
        } else {
            answer
        }
    }

    fn take(&mut self, path: &str) -> Answer {
        if self.take_429 > 0 {
            self.take_429 -= 1;
            return Answer::new(429, "");
        }
        if let Some(bytes) = self.huge_take.take() {
            return Answer::new(200, " ".repeat(bytes));
        }
        if let Some(body) = self.answers.pop_front() {
            return Answer::new(200, body.to_string());
        }
        if path.contains("/job-take-batch/") {
            let n: usize = query(path, "batch_size").parse().unwrap_or(1);
            let jobs: Vec<Value> = (0..n).filter_map(|_| self.jobs.pop_front()).collect();
            if jobs.is_empty() {
                Answer::new(204, "")
            } else {
                Answer::new(200, Value::Array(jobs).to_string())
            }
        } else {
            match self.jobs.pop_front() {
                Some(job) => Answer::new(200, job.to_string()),
                None => Answer::new(204, ""),
            }
        }
    }
}

/// Which of the platform's endpoints a request went to.
pub trait Endpoint {
    /// Whether the request went to `endpoint` (`job-take`, `job-done`, `ping`, …).
    fn is(&self, endpoint: &str) -> bool;
}

impl Endpoint for Received {
    fn is(&self, endpoint: &str) -> bool {
        self.path.contains(&format!("/{endpoint}/"))
    }
}

fn query<'a>(path: &'a str, key: &str) -> &'a str {
    path.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
}

/// The stand-in, with the async runtime it runs on (dropped last, after the server).
pub struct Platform {
    receiver: Receiver,
    script: Arc<Mutex<Script>>,
    runtime: tokio::runtime::Runtime,
}

impl Platform {
    pub fn start() -> Self {
        Self::at("127.0.0.1:0".parse().unwrap())
    }

    /// The stand-in on `addr`, a port a worker may already be trying.
    pub fn at(addr: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let receiver = runtime.block_on(Receiver::start_at(addr));
        let script = Arc::new(Mutex::new(Script::default()));
        let answers = script.clone();
        receiver.answer_with(move |request| answers.lock().unwrap().answer(request));
        Self {
            receiver,
            script,
            runtime,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        platform_env(&self.receiver.url)
    }

    pub fn add_job(&self, id: &str, input: Value) {
        self.script()
            .jobs
            .push_back(json!({"id": id, "input": input}));
    }

    pub fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }

    /// Every request, in the order they arrived.
    pub fn seen(&self) -> Vec<Received> {
        self.receiver.received()
    }

    /// Accepted POSTs to the output URL (job-done) for `job`.
    pub fn results(&self, job: &str) -> Vec<Received> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.method == "POST" && s.is("job-done") && s.path.contains(&format!("/{job}?"))
            })
            .filter(|s| s.answered == 200)
            .collect()
    }

    /// POSTs to the stream URL for `job`.
    pub fn chunks(&self, job: &str) -> Vec<Received> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.method == "POST" && s.is("job-stream") && s.path.contains(&format!("/{job}?"))
            })
            .collect()
    }

    /// Wait until `done`, looking again at each request that arrives (panics, naming `what`,
    /// after `secs`).
    pub fn wait_for(&self, what: &str, secs: u64, done: impl Fn(&Platform) -> bool) {
        self.runtime.block_on(
            self.receiver
                .wait_until(what, Duration::from_secs(secs), |_| done(self)),
        );
    }
}

/// The environment the platform gives a worker, pointing at a stand-in on `url`
/// (`http://HOST:PORT`).
pub fn platform_env(url: &str) -> Vec<(String, String)> {
    let base = format!("{url}/v2/ep");
    vec![
        (
            "RUNPOD_WEBHOOK_GET_JOB".into(),
            format!("{base}/job-take/$ID?gpu=test"),
        ),
        (
            "RUNPOD_WEBHOOK_POST_OUTPUT".into(),
            format!("{base}/job-done/$RUNPOD_POD_ID/$ID?gpu=test"),
        ),
        (
            "RUNPOD_WEBHOOK_POST_STREAM".into(),
            format!("{base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=test"),
        ),
        (
            "RUNPOD_WEBHOOK_PING".into(),
            format!("{base}/ping/$RUNPOD_POD_ID?gpu=test"),
        ),
        ("RUNPOD_AI_API_KEY".into(), API_KEY.into()),
        ("RUNPOD_POD_ID".into(), POD.into()),
        ("RUNPOD_PING_INTERVAL".into(), "200".into()),
    ]
}
