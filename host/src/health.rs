//! Whether the device still computes right answers, for `/health`, `/livez`, `/readyz` and
//! `/ping`: the start-up self-test's verdict, then the same known-answer check run again
//! when a verdict is older than a few seconds and someone asks. A device that starts failing
//! after start-up (a GPU fallen off the bus, a driver reset, memory going bad) turns the
//! answer to 503 within one check. The check runs off the async threads; a request waits
//! for it only briefly, and while one is running, requests are answered from the last
//! verdict (a check that never returns is itself a failure, after [`HUNG_AFTER`]).

use crate::metrics::Metrics;
use crate::selftest::Report;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a verdict is reused (the reference's health cache: 5 s).
pub const FRESH_FOR: Duration = Duration::from_secs(5);
/// How long a request waits for a check it started before answering from the last verdict.
const WAIT_FOR_CHECK: Duration = Duration::from_secs(2);
/// A check running this long means the device no longer answers (a small forward pass takes
/// milliseconds, even behind a large batch).
pub const HUNG_AFTER: Duration = Duration::from_secs(120);

/// The known-answer check: a self-test report, or why the device could not compute.
pub type Probe = Box<dyn Fn() -> anyhow::Result<Report> + Send + Sync>;

/// One check's outcome.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub healthy: bool,
    /// Why not, in one sentence; None when healthy.
    pub reason: Option<String>,
    pub max_abs_diff: Option<f64>,
    pub at: Instant,
}

impl Verdict {
    fn of(result: &anyhow::Result<Report>) -> Self {
        let at = Instant::now();
        match result {
            Ok(report) if report.passed => Self {
                healthy: true,
                reason: None,
                max_abs_diff: Some(report.max_abs_diff),
                at,
            },
            Ok(report) => Self {
                healthy: false,
                reason: Some(format!(
                    "the device failed its self-test: distances differ from the reference by up to {:.2e}, over the {:.0e} budget",
                    report.max_abs_diff, report.budget
                )),
                max_abs_diff: Some(report.max_abs_diff),
                at,
            },
            Err(e) => Self {
                healthy: false,
                reason: Some(format!("the device cannot compute: {e:#}")),
                max_abs_diff: None,
                at,
            },
        }
    }
}

struct State {
    /// How long a verdict is reused, and when a running check counts as hung
    /// ([`FRESH_FOR`], [`HUNG_AFTER`]; shorter in tests).
    fresh_for: Duration,
    hung_after: Duration,
    last: Option<Verdict>,
    /// When the check in flight started.
    running_since: Option<Instant>,
    /// Finished checks, for waiters.
    done: u64,
}

/// The device's health: the last verdict and the check that refreshes it.
pub struct DeviceHealth {
    probe: Probe,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    finished: tokio::sync::Notify,
}

impl DeviceHealth {
    /// Checked by `probe`; `first` is the start-up self-test's result, if one ran.
    pub fn new(probe: Probe, metrics: Arc<Metrics>, first: Option<&Report>) -> Arc<Self> {
        let last = first.map(|r| {
            metrics.selftest(r.passed, Some(r.max_abs_diff));
            Verdict::of(&Ok(r.clone()))
        });
        Arc::new(Self {
            probe,
            metrics,
            state: Mutex::new(State {
                fresh_for: FRESH_FOR,
                hung_after: HUNG_AFTER,
                last,
                running_since: None,
                done: 0,
            }),
            finished: tokio::sync::Notify::new(),
        })
    }

    /// Shorter times, so that tests see a verdict expire or a check hang.
    #[cfg(test)]
    pub fn set_timing(&self, fresh_for: Duration, hung_after: Duration) {
        let mut state = self.state();
        state.fresh_for = fresh_for;
        state.hung_after = hung_after;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device's health now: the last verdict while fresh, else a new check's (waiting
    /// for it at most a moment). Never blocks the async threads.
    pub async fn verdict(self: &Arc<Self>) -> Verdict {
        let now = Instant::now();
        let started = {
            let mut state = self.state();
            if let Some(since) = state.running_since {
                if now.duration_since(since) > state.hung_after {
                    self.metrics.selftest_unanswered();
                    return hung(since);
                }
                None
            } else if let Some(last) = state
                .last
                .as_ref()
                .filter(|v| now.duration_since(v.at) < state.fresh_for)
            {
                return last.clone();
            } else {
                state.running_since = Some(now);
                Some(state.done)
            }
        };
        if let Some(done_before) = started {
            let health = self.clone();
            // Detached: a request that stops waiting leaves the check to finish and record.
            tokio::task::spawn_blocking(move || health.check());
            let finished = async {
                loop {
                    let notified = self.finished.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if self.state().done > done_before {
                        return;
                    }
                    notified.await;
                }
            };
            let _ = tokio::time::timeout(WAIT_FOR_CHECK, finished).await;
        }
        match &self.state().last {
            Some(last) => last.clone(),
            None => Verdict {
                healthy: false,
                reason: Some("the device's first check is still running".into()),
                max_abs_diff: None,
                at: now,
            },
        }
    }

    /// Run the probe here (a blocking thread) and record its verdict.
    fn check(&self) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.probe)()))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the check panicked")));
        let verdict = Verdict::of(&result);
        if let Some(reason) = &verdict.reason {
            log::error!("health check: {reason}");
        }
        self.metrics.selftest(verdict.healthy, verdict.max_abs_diff);
        let mut state = self.state();
        state.last = Some(verdict);
        state.running_since = None;
        state.done += 1;
        drop(state);
        self.finished.notify_waiters();
    }
}

fn hung(since: Instant) -> Verdict {
    Verdict {
        healthy: false,
        reason: Some(format!(
            "the device has not answered its known-answer check for {:.0} s",
            since.elapsed().as_secs_f64()
        )),
        max_abs_diff: None,
        at: Instant::now(),
    }
}

/// The reference's `gpu` object (`available`, `count`, `devices`) for the backend the
/// verdict is about, with the backend and the last check beside it.
pub fn gpu_json(verdict: &Verdict, compute: &crate::compute_service::ComputeService) -> Value {
    let backend = compute.backend();
    let devices: Vec<Value> = compute
        .devices()
        .into_iter()
        .map(|name| json!({ "name": name }))
        .collect();
    json!({
        "available": verdict.healthy,
        "count": devices.len(),
        "devices": devices,
        "backend": backend.name(),
        "description": backend.device_description(),
        "selftest": {
            "passed": verdict.healthy,
            "max_abs_diff": verdict.max_abs_diff,
            "checked_seconds_ago": verdict.at.elapsed().as_secs_f64(),
        },
    })
}

/// 200 when `ok`, else 503.
pub fn http_status(ok: bool) -> axum::http::StatusCode {
    if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `/readyz`'s answer: `{"ready": true}`, or false with why not.
pub fn readiness(why_not: Option<String>) -> (axum::http::StatusCode, Value) {
    match why_not {
        None => (http_status(true), json!({ "ready": true })),
        Some(why) => (http_status(false), json!({ "ready": false, "reason": why })),
    }
}

/// The reference's words for the overall state.
pub fn status_word(healthy: bool) -> &'static str {
    if healthy { "healthy" } else { "unhealthy" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn passed() -> Report {
        Report {
            backend: "cpu".into(),
            device: "test".into(),
            preset: "small".into(),
            nonces: vec![0],
            reference: vec![1.0],
            computed: vec![1.0],
            max_abs_diff: 1e-7,
            budget: crate::selftest::MAX_DIST_DIFF,
            passed: true,
            seconds: 0.0,
        }
    }

    /// A check that blocks until the test sends its result.
    fn held_check(
        metrics: Arc<Metrics>,
    ) -> (Arc<DeviceHealth>, mpsc::Sender<anyhow::Result<Report>>) {
        let (send, receive) = mpsc::channel::<anyhow::Result<Report>>();
        let receive = Mutex::new(receive);
        let probe: Probe = Box::new(move || {
            let receive = receive.lock().unwrap();
            receive
                .recv()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("test over")))
        });
        let health = DeviceHealth::new(probe, metrics, Some(&passed()));
        health.set_timing(Duration::ZERO, Duration::from_secs(60));
        (health, send)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_still_running_is_answered_from_the_last_verdict() {
        let (health, send) = held_check(Arc::default());
        let start = Instant::now();
        let first = health.verdict().await;
        // Waited for the check a moment, then answered from the start-up verdict.
        assert!(first.healthy);
        assert!(start.elapsed() < WAIT_FOR_CHECK + Duration::from_secs(5));
        let again = Instant::now();
        assert!(health.verdict().await.healthy);
        assert!(
            again.elapsed() < Duration::from_millis(500),
            "a check already running is not waited for"
        );
        send.send(Err(anyhow::anyhow!("device lost"))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = health.verdict().await;
            if !v.healthy {
                assert!(v.reason.unwrap().contains("cannot compute: device lost"));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the failed check was not recorded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(send);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_that_never_returns_is_a_failure() {
        let metrics = Arc::new(Metrics::new());
        let (health, send) = held_check(metrics.clone());
        health.set_timing(Duration::ZERO, Duration::from_millis(100));
        assert!(health.verdict().await.healthy);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let v = health.verdict().await;
        assert!(!v.healthy);
        assert!(
            v.reason.as_deref().unwrap().contains("has not answered"),
            "{v:?}"
        );
        let text = metrics.render(crate::metrics::Live::default());
        assert!(text.contains("\npowhost_selftest_passed 0\n"), "{text}");
        send.send(Ok(passed())).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_verdict_is_reused_without_a_check() {
        let probe: Probe = Box::new(|| panic!("no check while the verdict is fresh"));
        let health = DeviceHealth::new(probe, Arc::default(), Some(&passed()));
        for _ in 0..3 {
            assert!(health.verdict().await.healthy);
        }
    }
}
