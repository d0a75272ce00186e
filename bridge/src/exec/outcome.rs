//! How any job ends, whatever ran it: the [`Finished`] outcome (redacted text, digest, shape),
//! where its message was posted, and the helpers every backend uses to follow a process or bound
//! an API call by the job's deadline and Cancel button.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use slipway_core::redact::redactor;
use slipway_infra::exec::{self, ExecEnd, ExecResult, ExecSpec, Progress};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

/// Resources a plan would add, change, destroy and import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub add: u64,
    pub change: u64,
    pub destroy: u64,
    pub import: u64,
}

impl PlanSummary {
    pub fn is_empty(&self) -> bool {
        *self == PlanSummary::default()
    }

    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let mut s = String::new();
        if self.import > 0 {
            let _ = write!(s, "{} to import, ", self.import);
        }
        let _ = write!(
            s,
            "{} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        );
        s
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
    pub(super) fn process(result: ExecResult, argv: Vec<String>, shape: Shape) -> Self {
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

    #[must_use]
    pub fn with_outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    #[must_use]
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

/// Run one process to its end, its live progress on `tx` (a job's channel; a sender nobody
/// listens to shows none), stopped by the deadline in `spec` or by `cancel`.
pub async fn run_process(
    spec: ExecSpec,
    tx: &watch::Sender<Progress>,
    cancel: &CancellationToken,
) -> ExecResult {
    if spec.timeout.is_zero() {
        return text_result(ExecEnd::TimedOut, "", Instant::now());
    }
    let running = exec::start(spec);
    let mut progress = running.progress.clone();
    let fut = follow(running, cancel);
    tokio::pin!(fut);
    let mut open = true;
    loop {
        tokio::select! {
            r = &mut fut => return r,
            changed = progress.changed(), if open => match changed {
                Ok(()) => {
                    let p = progress.borrow_and_update().clone();
                    let _ = tx.send(p);
                }
                Err(_) => open = false,
            },
        }
    }
}
