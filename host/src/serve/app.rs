//! What the handlers share: the runtime's services, the two plugins, the compute slots and
//! their queue, the jobs, the node's PoC state, and the work that outlives its request.

use super::ServeConfig;
use super::jobs;
use super::memory_budget::MemoryBudget;
use super::node::{self, ProofBatches};
use crate::plugin_host::{CallContext, Plugin, PluginFailure, PluginReply};
use crate::runtime::Host;
use crate::runtime::stop::Stop;
use http::ApiError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::http;

/// Which of the two loaded plugins a call goes to (both are `handler`-world components).
#[derive(Clone, Copy, Debug)]
pub enum PluginKind {
    /// The serverless job contract: `/runsync`, `/run`.
    Serverless,
    /// ProofBatch validation: `/api/v1/pow/validate`.
    Validator,
}

/// Everything the handlers share.
pub struct App {
    pub host: Arc<Host>,
    serverless: Arc<Plugin>,
    validator: Arc<Plugin>,
    pub config: ServeConfig,
    pub slots: Slots,
    /// The bytes requests in flight and queued may hold (`--memory-budget`).
    pub memory: MemoryBudget,
    /// The address the server listens on, once bound: callbacks and webhooks to it are
    /// refused (own_address.rs).
    pub listening: std::sync::OnceLock<std::net::SocketAddr>,
    pub jobs: jobs::Jobs,
    pub node: node::Node,
    pub proof_batches: ProofBatches,
    /// This transport's node of the stop tree: shutdown finishes it, so jobs stop after the
    /// batch in flight (delivering it) and jobs still waiting for a slot do not start.
    pub stop: Stop,
    /// Work that outlives its request (`/run` jobs, validations): shutdown waits for it.
    pub background: Background,
}

impl App {
    pub fn new(
        host: Arc<Host>,
        serverless: Arc<Plugin>,
        validator: Arc<Plugin>,
        config: ServeConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            stop: host.stop.child(),
            host,
            serverless,
            validator,
            slots: Slots::new(config.concurrency, config.queue),
            memory: MemoryBudget::new(config.memory_budget),
            listening: std::sync::OnceLock::new(),
            jobs: jobs::Jobs::new(config.memory_budget / jobs::FINISHED_SHARE),
            config,
            node: node::Node::default(),
            proof_batches: ProofBatches::default(),
            background: Background::default(),
        })
    }

    /// What a request body may be: `--max-body`, `--idle-timeout`, the memory budget.
    pub fn body_limits(&self) -> http::BodyLimits<'_> {
        http::BodyLimits {
            max: self.config.max_body,
            idle: self.config.idle_timeout,
            memory: &self.memory,
        }
    }

    fn plugin(&self, kind: PluginKind) -> &Arc<Plugin> {
        match kind {
            PluginKind::Serverless => &self.serverless,
            PluginKind::Validator => &self.validator,
        }
    }

    /// Count a task as background work until the guard is dropped.
    pub fn background_task(self: &Arc<Self>) -> BackgroundTask {
        self.background.running.fetch_add(1, Ordering::SeqCst);
        BackgroundTask(self.clone())
    }

    /// A job's node of the stop tree: aborted by `/cancel` (or a caller that hung up),
    /// finished by the server's shutdown; its computation adds the time limit.
    pub fn job_stop(&self) -> Stop {
        self.stop.child()
    }

    /// What `/health` reports of the callbacks: the outbox's, and ProofBatches still filling.
    pub fn callback_stats(&self) -> crate::delivery::OutboxStats {
        let mut stats = self.host.outbox.stats();
        stats.pending += self.proof_batches.pending();
        stats
    }

    /// Run a plugin call in the compute slot it was given, off the async threads. A call
    /// stopped while it waited for the slot does not start.
    pub async fn call(
        self: &Arc<Self>,
        kind: PluginKind,
        request: String,
        slot: OwnedSemaphorePermit,
        stop: Stop,
        emit: Box<dyn FnMut(&str) + Send>,
    ) -> Result<PluginReply, PluginFailure> {
        if stop.is_stopping() {
            return Ok(PluginReply::Error(crate::error_reply::build(
                "cancelled before it started",
                "Cancelled",
            )));
        }
        let call = CallContext {
            compute: Some(self.host.compute.clone()),
            stop,
            emit,
        };
        self.host
            .call(self.plugin(kind), request, call, Some(slot))
            .await
    }

    /// A call that computes nothing (a dry run), outside the compute slots.
    pub async fn call_unqueued(
        self: &Arc<Self>,
        kind: PluginKind,
        request: String,
    ) -> Result<PluginReply, PluginFailure> {
        let call = CallContext {
            compute: Some(self.host.compute.clone()),
            stop: self.stop.child(),
            emit: Box::new(|_| {}),
        };
        self.host.call(self.plugin(kind), request, call, None).await
    }
}

/// A count of background tasks, each holding a guard, and a way to wait for none.
#[derive(Default)]
pub struct Background {
    running: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One background task; dropping it (however the task ends) counts it out.
pub struct BackgroundTask(Arc<App>);

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        let background = &self.0.background;
        if background.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            background.idle.notify_waiters();
        }
    }
}

impl Background {
    /// Resolves once no background task is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Compute slots and the queue in front of them.
pub struct Slots {
    semaphore: Arc<Semaphore>,
    size: usize,
    waiting: Arc<AtomicUsize>,
    queue: usize,
}

/// A place in the queue; `acquire` turns it into a compute slot.
pub struct Ticket {
    semaphore: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticket {
    /// Wait for a compute slot.
    pub async fn acquire(self) -> OwnedSemaphorePermit {
        self.semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the compute semaphore is never closed")
    }
}

impl Slots {
    pub fn new(size: usize, queue: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
            waiting: Arc::new(AtomicUsize::new(0)),
            queue,
        }
    }

    /// A place in the queue, or 503 when it is full.
    pub fn reserve(&self) -> Result<Ticket, ApiError> {
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let ticket = Ticket {
            semaphore: self.semaphore.clone(),
            waiting: self.waiting.clone(),
        };
        // Idle slots take requests at once; beyond them, `queue` may wait.
        if before >= self.queue + self.semaphore.available_permits() {
            drop(ticket);
            return Err(ApiError::busy(&format!(
                "{} requests are already waiting for {} compute slots",
                before, self.size
            )));
        }
        Ok(ticket)
    }

    /// (running, idle) compute slots.
    pub fn usage(&self) -> (usize, usize) {
        let idle = self.semaphore.available_permits();
        (self.size - idle, idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_503_and_frees_its_places() {
        let slots = Slots::new(1, 1);
        let first = slots.reserve().expect("an idle slot takes a request");
        let running = first.acquire().await;
        assert_eq!(slots.usage(), (1, 0));
        let queued = slots.reserve().expect("one request may wait");
        let refused = slots.reserve().err().expect("the queue is full");
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused
                .detail
                .contains("1 requests are already waiting for 1 compute slots")
        );
        // A place given up (a request that went away) is free again.
        drop(queued);
        let queued = slots.reserve().expect("the freed place is taken");
        drop(running);
        let _second = queued.acquire().await;
        assert_eq!(slots.usage(), (1, 0));
    }

    #[tokio::test]
    async fn without_a_queue_only_idle_slots_take_requests() {
        let slots = Slots::new(2, 0);
        let a = slots.reserve().unwrap().acquire().await;
        let _b = slots.reserve().unwrap();
        assert!(slots.reserve().is_err());
        drop(a);
        assert_eq!(slots.usage(), (0, 2));
    }
}
