//! The network node's PoC API under `/api/v1` (docs/spec/PROTOCOLS.md §A2–A7): what the Gonka
//! node software drives. The host owns the controller (init, phases, status: here), the
//! background generation loop (generation.rs) and the callbacks; the validator plugin owns
//! validation (validation.rs). The init request is checked in init.rs, the status object
//! shaped in status.rs.

mod generation;
mod init;
mod proof_batches;
mod status;
mod validation;

pub use init::InitRequest;
pub use proof_batches::ProofBatches;
pub use validation::{validate, validation_requests};

use super::App;
use super::http::{ApiError, ok, ok_text, read_object};
use crate::runtime::stop::Stop;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use generation::generate;
use serde_json::json;
use status::{PowStatus, pow_status_response};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// The reference's shared phase (docs/spec/PROTOCOLS.md §A4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Idle = 0,
    Generate = 1,
    Validate = 2,
}

/// What the generation worker and the handlers share.
struct Shared {
    phase: Mutex<Phase>,
    /// The phase changed or the controller stopped: the worker, waiting for GENERATE,
    /// looks again.
    changed: Condvar,
    /// The controller's node of the stop tree (under the server's): aborted to end the worker.
    stop: Stop,
    /// The batch being computed: aborted on every phase change, so a batch not yet started
    /// is not started (it is computed when generation resumes, so no nonce is skipped); a
    /// forward pass already running finishes and its nonces are delivered.
    batch: Mutex<Stop>,
    model_ready: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Why generation ended without failing: this node's nonces are all computed.
    ended: Mutex<Option<String>>,
    computed: AtomicU64,
    valid: AtomicU64,
}

impl Shared {
    fn new(stop: Stop) -> Self {
        Self {
            phase: Mutex::new(Phase::Idle),
            changed: Condvar::new(),
            batch: Mutex::new(stop.child()),
            stop,
            model_ready: AtomicBool::new(false),
            failure: Mutex::new(None),
            ended: Mutex::new(None),
            computed: AtomicU64::new(0),
            valid: AtomicU64::new(0),
        }
    }

    fn phase_lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn phase(&self) -> Phase {
        *self.phase_lock()
    }

    fn set_phase(&self, phase: Phase) {
        let mut current = self.phase_lock();
        *current = phase;
        self.batch.lock().unwrap_or_else(|p| p.into_inner()).abort();
        self.changed.notify_all();
    }

    /// End the worker: the batch in flight stops between forward passes.
    fn stop(&self) {
        let _phase = self.phase_lock();
        self.stop.abort();
        self.changed.notify_all();
    }

    /// A fresh stop node for the next batch, which the next phase change aborts.
    fn next_batch(&self) -> Stop {
        let batch = self.stop.child();
        *self.batch.lock().unwrap_or_else(|p| p.into_inner()) = batch.clone();
        batch
    }
}

/// One initialised PoC: its init request and its generation worker.
struct Controller {
    init: Arc<InitRequest>,
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Controller {
    fn start(init: InitRequest, app: &Arc<App>) -> Self {
        let init = Arc::new(init);
        let shared = Arc::new(Shared::new(app.stop.child()));
        let shared_for_error = shared.clone();
        let worker = {
            let (init, shared, app) = (init.clone(), shared.clone(), app.clone());
            std::thread::Builder::new()
                .name("generate".into())
                .spawn(move || generate(&init, &shared, &app))
                .map_err(|e| {
                    let message = format!("could not start the generation thread: {e}");
                    log::error!("{message}");
                    *shared_for_error.failure.lock().unwrap() = Some(message);
                })
                .ok()
        };
        app.host.metrics.model_block_height(init.block_height);
        log::info!(
            "PoC initialised: block {} (height {}), node {} of {}, callbacks to {}",
            init.block_hash,
            init.block_height,
            init.node_id,
            init.node_count,
            init.url
        );
        Self {
            init,
            shared,
            worker,
        }
    }

    /// Tell the worker to end after (or by abandoning) its batch; `join` waits for it.
    fn stop(mut self) -> Option<std::thread::JoinHandle<()>> {
        self.shared.stop();
        self.worker.take()
    }

    fn status(&self) -> PowStatus {
        let ready = self.shared.model_ready.load(Ordering::SeqCst);
        let failure = self.shared.failure.lock().unwrap().clone();
        let ended = self.shared.ended.lock().unwrap().clone();
        let status = match self.shared.phase() {
            // Generation failed or has nothing left to compute: not GENERATING.
            Phase::Generate if failure.is_some() || ended.is_some() => "STOPPED",
            Phase::Generate => "GENERATING",
            Phase::Validate => "VALIDATING",
            Phase::Idle if !ready && failure.is_none() => "LOADING",
            Phase::Idle => "IDLE",
        };
        PowStatus {
            status,
            is_model_initialized: Some(ready),
            computed: Some(self.shared.computed.load(Ordering::Relaxed)),
            valid: Some(self.shared.valid.load(Ordering::Relaxed)),
            error: failure,
            ended,
        }
    }
}

/// The node's PoC state: at most one controller.
#[derive(Default)]
pub struct Node {
    current: Mutex<Option<Controller>>,
}

impl Node {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Controller>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// None when no PoC is initialised, else its generation's failure, if any (`/health`).
    pub fn health(&self) -> Option<Option<String>> {
        let current = self.lock();
        let failure = |c: &Controller| c.shared.failure.lock().unwrap().clone();
        current.as_ref().map(failure)
    }

    /// Stop generating; returns the worker to wait for.
    pub fn stop(&self) -> Option<std::thread::JoinHandle<()>> {
        self.lock().take().and_then(Controller::stop)
    }

    fn status(&self) -> PowStatus {
        match &*self.lock() {
            None => PowStatus::not_loaded(),
            Some(c) => c.status(),
        }
    }

    /// Start a controller for `init` unless the running one has the same init; then set
    /// the phase.
    fn init(&self, app: &Arc<App>, init: InitRequest, phase: Phase) {
        let mut current = self.lock();
        // A controller whose generation failed (say, the model did not fit) starts afresh.
        let same = current
            .as_ref()
            .is_some_and(|c| *c.init == init && c.shared.failure.lock().unwrap().is_none());
        if !same {
            if let Some(old) = current.take().and_then(Controller::stop) {
                detach_join(old);
            }
            *current = Some(Controller::start(init, app));
        }
        current.as_ref().unwrap().shared.set_phase(phase);
    }
}

/// Wait for an old worker off the request path (it ends within one forward pass).
fn detach_join(worker: std::thread::JoinHandle<()>) {
    std::thread::spawn(move || {
        let _ = worker.join();
    });
}

pub async fn init(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    init_phase(app, body, Phase::Idle).await
}

pub async fn init_generate(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    init_phase(app, body, Phase::Generate).await
}

pub async fn init_validate(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    init_phase(app, body, Phase::Validate).await
}

async fn init_phase(app: Arc<App>, body: Body, phase: Phase) -> Result<Response, ApiError> {
    let (body, _memory) = read_object(body, app.body_limits()).await?;
    let init = InitRequest::parse(body, &app.host.compute)?;
    if phase == Phase::Generate {
        init.check_assignment()?;
    }
    // Callbacks to this server itself would loop, or stop generation (`…/pow/stop?`).
    super::own_address::refuse_own(&init.url, app.listening.get().copied())
        .await
        .map_err(|why| ApiError::bad_request(format!("`url` {why}")))?;
    validation::check_init(&app, &init).await?;
    if init.batch_size != 100 {
        log::debug!(
            "init batch_size {} ignored, as by the reference",
            init.batch_size
        );
    }
    app.node.init(&app, init, phase);
    Ok(pow_status_response(app.node.status()))
}

pub async fn phase_generate(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    set_phase(&app, Phase::Generate)
}

pub async fn phase_validate(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    set_phase(&app, Phase::Validate)
}

fn set_phase(app: &App, phase: Phase) -> Result<Response, ApiError> {
    {
        let current = app.node.lock();
        let c = current.as_ref().ok_or_else(not_running)?;
        if phase == Phase::Generate {
            c.init.check_assignment()?;
        }
        c.shared.set_phase(phase);
    }
    Ok(pow_status_response(app.node.status()))
}

fn not_running() -> ApiError {
    ApiError::bad_request("PoW is not running")
}

pub async fn status(State(app): State<Arc<App>>) -> Response {
    ok_text(serde_json::to_string(&app.node.status()).expect("serialises"))
}

pub async fn stop_pow(State(app): State<Arc<App>>) -> Response {
    let stopped = app.node.lock().take();
    match stopped {
        None => pow_status_response("PoW is not running"),
        Some(controller) => {
            if let Some(worker) = controller.stop() {
                detach_join(worker);
            }
            pow_status_response(app.node.status())
        }
    }
}

pub async fn state(State(app): State<Arc<App>>) -> Response {
    let running = app.node.lock().is_some();
    ok(json!({
        "state": if running { "POW" } else { "STOPPED" },
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn stop_all(State(app): State<Arc<App>>) -> Response {
    if let Some(worker) = app.node.stop() {
        detach_join(worker);
    }
    ok(json!({"status": "OK"}))
}
