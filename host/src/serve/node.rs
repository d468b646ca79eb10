//! The network node's PoC API under `/api/v1` (docs/spec/PROTOCOLS.md §A2–A7): what the Gonka node
//! software drives. The host owns the controller (init, phases, status), the background
//! generation loop and the callbacks; the validator plugin owns validation.

use super::http::{ApiError, ok, ok_text, read_object};
use super::{App, PluginKind};
use crate::compute_service::{ComputeService, FailureKind, StopSignal, Task};
use crate::delivery::{GeneratedFor, join};
use crate::plugins::PluginReply;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use powhost_core::ModelParams;
use powhost_core::params::PartialParams;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The reference's shared phase (docs/spec/PROTOCOLS.md §A4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Idle = 0,
    Generate = 1,
    Validate = 2,
}

/// The init request (`PowInitRequestUrl`), checked. Two inits are the same when every
/// field is, `url` included (the reference's restart rule).
#[derive(Clone, Debug, PartialEq)]
pub struct InitRequest {
    pub node_id: i64,
    pub node_count: i64,
    pub block_hash: String,
    pub block_height: i64,
    pub public_key: String,
    /// Accepted and ignored, as by the reference: the batch size is the backend's.
    pub batch_size: i64,
    pub r_target: f64,
    pub fraud_threshold: f64,
    pub params: ModelParams,
    pub url: String,
}

#[derive(Deserialize)]
struct InitBody {
    #[serde(default = "unset")]
    node_id: i64,
    #[serde(default = "unset")]
    node_count: i64,
    block_hash: String,
    block_height: i64,
    public_key: String,
    batch_size: i64,
    r_target: f64,
    fraud_threshold: f64,
    /// Missing fields take the reference's Python defaults (`reference-default`).
    #[serde(default)]
    params: Option<PartialParams>,
    url: String,
}

fn unset() -> i64 {
    -1
}

impl InitRequest {
    /// 422 for a body of the wrong shape (as FastAPI answers), 400 for values that cannot work.
    pub fn parse(
        body: serde_json::Map<String, Value>,
        compute: &ComputeService,
    ) -> Result<Self, ApiError> {
        let b: InitBody = serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::unprocessable(format!("the init request is malformed: {e}")))?;
        let params = ModelParams::from_partial(&b.params.unwrap_or_default());
        compute.check_params(&params).map_err(|e| {
            ApiError::bad_request(format!("the init request's params cannot be used: {e}"))
        })?;
        let bad = |m: String| Err(ApiError::bad_request(m));
        if b.block_hash.is_empty() || b.public_key.is_empty() {
            return bad("`block_hash` and `public_key` must not be empty".into());
        }
        if !(b.r_target.is_finite() && b.r_target > 0.0) {
            return bad(format!(
                "`r_target` must be a positive number, got {}",
                b.r_target
            ));
        }
        if !(b.fraud_threshold.is_finite() && (0.0..=1.0).contains(&b.fraud_threshold)) {
            return bad(format!(
                "`fraud_threshold` must be a probability between 0 and 1, got {}",
                b.fraud_threshold
            ));
        }
        if let Err(why) = crate::delivery::check_url(&b.url) {
            return bad(format!("`url` {why}"));
        }
        Ok(Self {
            node_id: b.node_id,
            node_count: b.node_count,
            block_hash: b.block_hash,
            block_height: b.block_height,
            public_key: b.public_key,
            batch_size: b.batch_size,
            r_target: b.r_target,
            fraud_threshold: b.fraud_threshold,
            params,
            url: b.url,
        })
    }

    /// Generation needs this node's place among the nodes.
    fn check_assignment(&self) -> Result<(), ApiError> {
        if self.node_id == -1 || self.node_count == -1 {
            return Err(ApiError::bad_request("Node ID and node count must be set"));
        }
        if self.node_id < 0 || self.node_count < 1 {
            return Err(ApiError::bad_request(format!(
                "`node_id` must be 0 or more and `node_count` at least 1, got {} and {}",
                self.node_id, self.node_count
            )));
        }
        Ok(())
    }
}

/// The nonces of node `node_id` of `node_count`, worker group `group` of `groups`
/// (docs/spec/COMPUTATION.md §8): `node_id + group·node_count + x·groups·node_count`, x = 0, 1, ….
#[derive(Clone, Debug)]
pub struct NonceSequence {
    first: i64,
    step: i64,
    next_x: i64,
}

impl NonceSequence {
    pub fn new(node_id: i64, node_count: i64, group: i64, groups: i64) -> Option<Self> {
        Some(Self {
            first: node_id.checked_add(group.checked_mul(node_count)?)?,
            step: groups.checked_mul(node_count)?,
            next_x: 0,
        })
    }

    /// The next `n` nonces, without moving past them (a stopped batch is computed again);
    /// None once they would pass the largest 64-bit integer.
    pub fn peek(&self, n: usize) -> Option<Vec<i64>> {
        (0..n as i64)
            .map(|i| {
                self.next_x
                    .checked_add(i)?
                    .checked_mul(self.step)?
                    .checked_add(self.first)
            })
            .collect()
    }

    pub fn advance(&mut self, n: usize) {
        self.next_x += n as i64;
    }
}

/// What the generation workers and the handlers share.
struct Shared {
    phase: AtomicU8,
    /// Set to end the workers.
    stop: AtomicBool,
    /// Set on every phase change or stop: a batch not yet started is not started (it is
    /// computed when generation resumes, so no nonce is skipped); a forward pass already
    /// running finishes and its nonces are delivered.
    interrupt: Arc<AtomicBool>,
    model_ready: AtomicBool,
    failure: Mutex<Option<String>>,
    computed: AtomicU64,
    valid: AtomicU64,
}

impl Shared {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            1 => Phase::Generate,
            2 => Phase::Validate,
            _ => Phase::Idle,
        }
    }
    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
        self.interrupt.store(true, Ordering::SeqCst);
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
        let shared = Arc::new(Shared {
            phase: AtomicU8::new(Phase::Idle as u8),
            stop: AtomicBool::new(false),
            interrupt: Arc::new(AtomicBool::new(false)),
            model_ready: AtomicBool::new(false),
            failure: Mutex::new(None),
            computed: AtomicU64::new(0),
            valid: AtomicU64::new(0),
        });
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
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.interrupt.store(true, Ordering::SeqCst);
        self.worker.take()
    }

    fn status(&self) -> PowStatus {
        let ready = self.shared.model_ready.load(Ordering::SeqCst);
        let failure = self.shared.failure.lock().unwrap().clone();
        let status = match self.shared.phase() {
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
        }
    }
}

/// The reference's status object (keys in its order), with how far generation got and what
/// went wrong, if anything, after them.
#[derive(Serialize)]
struct PowStatus {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_model_initialized: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    computed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl PowStatus {
    fn not_loaded() -> Self {
        Self {
            status: "NOT_LOADED",
            is_model_initialized: None,
            computed: None,
            valid: None,
            error: None,
        }
    }
}

/// `{"status": "OK", "pow_status": …}`.
fn pow_status_response(pow_status: impl Serialize) -> Response {
    #[derive(Serialize)]
    struct Ps<T> {
        status: &'static str,
        pow_status: T,
    }
    ok_text(
        serde_json::to_string(&Ps {
            status: "OK",
            pow_status,
        })
        .expect("serialises"),
    )
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

/// The generation loop (docs/spec/PROTOCOLS.md §A5–A6): build the model, then while the phase is
/// GENERATE compute this node's next batch and hand its valid nonces to the outbox.
///
/// Worker groups: the reference runs one worker per GPU group g of G on the sequence
/// `node_id + g·node_count + x·G·node_count`; together the G sequences are exactly
/// `node_id + m·node_count`, m = 0, 1, …, which is what this one loop computes in order,
/// while the backend spreads each batch over its devices.
fn generate(init: &InitRequest, shared: &Shared, app: &App) {
    let task = Task {
        block_hash: init.block_hash.clone(),
        public_key: init.public_key.clone(),
        params: init.params.clone(),
        devices: Vec::new(),
    };
    let fail = |message: String| {
        log::error!("{message}");
        *shared.failure.lock().unwrap() = Some(message);
    };
    if let Err(e) = app.compute.prepare(&task) {
        return fail(format!(
            "building the model for block {} failed: {e}",
            init.block_hash
        ));
    }
    shared.model_ready.store(true, Ordering::SeqCst);
    let batch = app.compute.batch_for(&task.params);
    let Some(mut sequence) = NonceSequence::new(init.node_id.max(0), init.node_count.max(1), 0, 1)
    else {
        return fail("the nonce sequence overflows 64-bit integers".into());
    };
    let to = GeneratedFor {
        url: init.url.clone(),
        public_key: init.public_key.clone(),
        block_hash: init.block_hash.clone(),
        block_height: init.block_height,
        node_id: init.node_id,
    };
    while !shared.stop.load(Ordering::SeqCst) {
        shared.interrupt.store(false, Ordering::SeqCst);
        if shared.phase() != Phase::Generate || init.node_id < 0 || init.node_count < 1 {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let Some(nonces) = sequence.peek(batch) else {
            return fail("this node's nonces have passed the largest 64-bit integer".into());
        };
        let stop = StopSignal::new(shared.interrupt.clone(), None);
        match app.compute.distances(&task, &nonces, &stop) {
            Ok(dist) => {
                sequence.advance(batch);
                let (valid_nonces, valid_dist): (Vec<i64>, Vec<f64>) = nonces
                    .iter()
                    .zip(&dist)
                    .filter(|&(_, &d)| d < init.r_target)
                    .unzip();
                shared
                    .computed
                    .fetch_add(nonces.len() as u64, Ordering::Relaxed);
                shared
                    .valid
                    .fetch_add(valid_nonces.len() as u64, Ordering::Relaxed);
                app.outbox.add_generated(&to, &valid_nonces, &valid_dist);
            }
            // A phase change or stop before the batch started: it is computed when
            // generation resumes.
            Err(e) if e.kind == FailureKind::Stopped => {}
            Err(e) => return fail(format!("generation stopped: {e}")),
        }
    }
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
    let body = read_object(body, app.max_body, app.idle_timeout).await?;
    let init = InitRequest::parse(body, &app.compute)?;
    if phase == Phase::Generate {
        init.check_assignment()?;
    }
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
    ok(json!({"state": if running { "POW" } else { "STOPPED" }}))
}

pub async fn stop_all(State(app): State<Arc<App>>) -> Response {
    if let Some(worker) = app.node.stop() {
        detach_join(worker);
    }
    ok(json!({"status": "OK"}))
}

const PROOF_BATCH_FIELDS: &[&str] = &[
    "public_key",
    "block_hash",
    "block_height",
    "nonces",
    "dist",
    "node_id",
];

/// `POST /api/v1/pow/validate`: the batch is checked now (a malformed batch or one for
/// another block hash is refused with the reason), answered `null` as by the reference,
/// and validated in the background; the ValidatedBatch goes to `{url}/validated`.
pub async fn validate(State(app): State<Arc<App>>, body: Body) -> Result<Response, ApiError> {
    let batch = read_object(body, app.max_body, app.idle_timeout).await?;
    let init = app
        .node
        .lock()
        .as_ref()
        .map(|c| c.init.clone())
        .ok_or_else(not_running)?;
    let (request, check) = validation_requests(batch, &init);

    match app.call_unqueued(PluginKind::Validator, check).await {
        Ok(PluginReply::Ok(_)) => {}
        Ok(PluginReply::Error(body)) => return Err(plugin_refusal(&body)),
        Err(failure) => {
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                failure.to_string(),
            ));
        }
    }
    let ticket = app.slots.reserve()?;
    let task_app = app.clone();
    let background = app.background_task();
    tokio::spawn(async move {
        let _background = background;
        let slot = ticket.acquire().await;
        let reply = task_app
            .call(
                PluginKind::Validator,
                request,
                slot,
                StopSignal::default(),
                Box::new(|_| {}),
            )
            .await;
        match reply {
            Ok(PluginReply::Ok(body)) => {
                task_app
                    .outbox
                    .add(join(&init.url, "validated"), body, "ValidatedBatch".into());
            }
            Ok(PluginReply::Error(body)) => log::error!("validation failed: {body}"),
            Err(failure) => log::error!("validation failed: {failure}"),
        }
    });
    Ok(ok(Value::Null))
}

/// The validator's request for a ProofBatch body under this init, and the same as a dry run
/// (the check made before answering).
pub fn validation_requests(
    mut batch: serde_json::Map<String, Value>,
    init: &InitRequest,
) -> (String, String) {
    // A ProofBatch; other keys are ignored, as the reference's pydantic model ignores them
    // (the settings below come from the init, never from the batch).
    batch.retain(|key, _| PROOF_BATCH_FIELDS.contains(&key.as_str()));
    // The node's settings; the plugin refuses a batch for another block hash.
    batch.insert("r_target".into(), json!(init.r_target));
    batch.insert("fraud_threshold".into(), json!(init.fraud_threshold));
    batch.insert("params".into(), json!(init.params));
    batch.insert("expected_block_hash".into(), json!(init.block_hash));
    let request = Value::Object(batch.clone()).to_string();
    batch.insert("dry_run".into(), json!(true));
    (request, Value::Object(batch).to_string())
}

/// A plugin's refusal as a 400 with the plugin's sentence.
fn plugin_refusal(body: &str) -> ApiError {
    let (message, kind) = super::plugin_error(body);
    ApiError::bad_request(format!("{kind}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_sequences_follow_the_spec() {
        let s = NonceSequence::new(2, 3, 0, 1).unwrap();
        assert_eq!(s.peek(4).unwrap(), vec![2, 5, 8, 11]);
        let mut s = NonceSequence::new(1, 4, 1, 2).unwrap();
        assert_eq!(s.peek(3).unwrap(), vec![5, 13, 21]);
        s.advance(3);
        assert_eq!(s.peek(1).unwrap(), vec![29]);
        // The G groups' sequences together are node_id + m·node_count, each once.
        let mut all: Vec<i64> = (0..3)
            .flat_map(|g| NonceSequence::new(2, 5, g, 3).unwrap().peek(10).unwrap())
            .collect();
        all.sort();
        assert_eq!(all, (0..30).map(|m| 2 + 5 * m).collect::<Vec<_>>());
        // Past i64::MAX: None, not a wrap.
        let mut s = NonceSequence::new(i64::MAX - 1, 1, 0, 1).unwrap();
        assert!(s.peek(2).is_some());
        s.advance(1);
        assert!(s.peek(2).is_none());
        assert!(NonceSequence::new(1, i64::MAX, 2, 1).is_none());
    }
}
