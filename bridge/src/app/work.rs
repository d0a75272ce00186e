//! What a job does once it holds a worker: one process (kubectl, aws), a terraform plan (copy the
//! stack, init when needed, plan), or an Alertmanager API call. Every kind reports progress the
//! same way, stops on the same Cancel token, and ends in a [`Finished`] whose text is redacted.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slipway_core::redact::redactor;
use slipway_infra::exec::{self, ExecEnd, ExecResult, ExecSpec, Progress};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::silence::SilenceWork;
use super::terraform::{PlanSummary, PlanWork};

/// The work of a job.
#[derive(Debug, Clone)]
pub enum Work {
    /// One process, its output rendered as `shape` says.
    Process { spec: ExecSpec, shape: Shape },
    /// `/tf plan`.
    TfPlan(PlanWork),
    /// `/silence`.
    Silence(SilenceWork),
}

/// How a finished run's output is shown in its thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Preformatted text.
    Text,
    /// JSON (the AWS CLI): a compact table when it fits, else the text.
    Json,
    /// A terraform plan with its summary.
    Plan(Option<PlanSummary>),
}

impl Work {
    /// The whole run's time limit.
    pub fn timeout(&self) -> Duration {
        match self {
            Work::Process { spec, .. } => spec.timeout,
            Work::TfPlan(p) => p.timeout,
            Work::Silence(s) => s.timeout,
        }
    }
}

/// How a job ended, with everything the audit record and the messages need.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The (redacted) output and how the run ended.
    pub result: ExecResult,
    /// Replaces the generic "finished" / "exited with code 1" in the run message.
    pub outcome: Option<String>,
    pub shape: Shape,
    /// The argv that ran (the last process), for the audit record.
    pub argv: Option<Vec<String>>,
    /// Merged into the execution record's `details`.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Finished {
    fn process(result: ExecResult, argv: Vec<String>, shape: Shape) -> Self {
        Self {
            result,
            outcome: None,
            shape,
            argv: Some(argv),
            details: serde_json::Map::new(),
        }
    }

    /// The result of work that is not a process: `text` is redacted here, before it is kept.
    pub fn api(end: ExecEnd, text: &str, started: Instant) -> Self {
        Self {
            result: text_result(end, text, started),
            outcome: None,
            shape: Shape::Text,
            argv: None,
            details: serde_json::Map::new(),
        }
    }

    pub fn with_outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// An [`ExecResult`] for text that did not come from a process (redacted here).
pub fn text_result(end: ExecEnd, text: &str, started: Instant) -> ExecResult {
    let clean = redactor().redact(text);
    ExecResult {
        end,
        total_bytes: clean.len() as u64,
        digest: hex::encode(Sha256::digest(clean.as_bytes())),
        output: clean,
        truncated: false,
        duration: started.elapsed(),
    }
}

/// Whether the run's message has been posted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Pending,
    /// Posted, with this `ts`.
    At(String),
    /// Posting failed; results go to the `response_url`.
    Failed,
}

/// Where the job's run message is, for work that links to it (silence comments). Work starts
/// before the message is posted, so nothing waits on Slack unless it needs the message.
#[derive(Debug, Clone)]
pub struct Context {
    pub run_id: String,
    pub channel: String,
    pub message: watch::Receiver<Posted>,
}

impl Context {
    /// The run message's `ts`, once posting it has been tried.
    pub async fn message_ts(&mut self) -> Option<String> {
        let posted = self
            .message
            .wait_for(|p| *p != Posted::Pending)
            .await
            .ok()?
            .clone();
        match posted {
            Posted::At(ts) => Some(ts),
            Posted::Pending | Posted::Failed => None,
        }
    }
}

/// Start the work. Returns at once: progress on the watch channel, the outcome on the handle.
/// Cancelling `cancel` stops whatever is running (a process group, or an API call).
pub fn start(
    state: &AppState,
    work: Work,
    ctx: Context,
    cancel: CancellationToken,
) -> (watch::Receiver<Progress>, tokio::task::JoinHandle<Finished>) {
    match work {
        Work::Process { spec, shape } => {
            let argv = spec.argv.clone();
            let running = exec::start(spec);
            let progress = running.progress.clone();
            let done = tokio::spawn(async move {
                let result = follow(running, &cancel).await;
                Finished::process(result, argv, shape)
            });
            (progress, done)
        }
        Work::TfPlan(plan) => {
            let (tx, rx) = watch::channel(Progress::default());
            let done = tokio::spawn(plan.run(ctx, tx, cancel));
            (rx, done)
        }
        Work::Silence(silence) => {
            let (_tx, rx) = watch::channel(Progress::default());
            let state = state.clone();
            let done = tokio::spawn(async move { silence.run(&state, ctx, cancel).await });
            (rx, done)
        }
    }
}

/// Wait for a started process, passing a cancel on to it.
pub async fn follow(running: exec::Running, cancel: &CancellationToken) -> ExecResult {
    let started = Instant::now();
    let mut done = running.done;
    let joined = tokio::select! {
        r = &mut done => r,
        () = cancel.cancelled() => {
            running.cancel.cancel();
            done.await
        }
    };
    joined.unwrap_or_else(|e| {
        tracing::error!(error = %e, "execution task failed");
        failed_result("internal error", started)
    })
}

/// A result for a run that never got going.
pub fn failed_result(why: &str, started: Instant) -> ExecResult {
    text_result(ExecEnd::SpawnFailed(why.to_string()), "", started)
}

/// Run a step of non-process work with the job's deadline and Cancel button.
pub async fn bounded<T>(
    cancel: &CancellationToken,
    deadline: tokio::time::Instant,
    fut: impl Future<Output = T>,
) -> Result<T, ExecEnd> {
    tokio::select! {
        r = fut => Ok(r),
        () = tokio::time::sleep_until(deadline) => Err(ExecEnd::TimedOut),
        () = cancel.cancelled() => Err(ExecEnd::Cancelled),
    }
}
