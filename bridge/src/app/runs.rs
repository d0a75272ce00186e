//! The bounded worker pool: a global queue bound, a per-user limit, and the registry of running
//! commands that the Cancel button reaches. When full, the user hears "busy" at once; nothing
//! waits past the ack deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_core::audit::{Actor, AuditRecord, CommandInfo, EventKind, Output};
use slipway_core::command::Tier;
use slipway_core::policy::SlackUser;
use slipway_core::policy::model::Visibility;
use slipway_infra::exec::ExecEnd;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::render;
use super::work::{self, Finished, Work};
use crate::metrics::{ExecLabels, Metrics};
use crate::slack::client::Message;

/// A command waiting for, or holding, a worker.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub requester: SlackUser,
    pub subject: String,
    pub role: String,
    pub channel: String,
    pub response_url: String,
    pub text: String,
    /// The argv as shown to people.
    pub shown: String,
    pub target: String,
    pub tier: Option<Tier>,
    pub decision_audit_id: String,
    /// What to do: a process, a terraform plan or an API call.
    pub spec: Work,
    /// Who sees the output, as policy decided.
    pub visibility: Visibility,
    /// A protected entry covers the resource.
    pub protected: bool,
}

/// A change step (a dry run, opening a PR): it holds a pool slot and counts against its
/// requester's limit like a run, but reports through its own messages.
pub struct ChangeTask {
    pub user: String,
    pub work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for ChangeTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeTask")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What the queue holds.
#[derive(Debug)]
enum Queued {
    Run(Box<Job>),
    Change(ChangeTask),
}

impl Queued {
    fn user(&self) -> &str {
        match self {
            Queued::Run(j) => &j.requester.user_id,
            Queued::Change(c) => &c.user,
        }
    }
}

/// The outcome of trying to enqueue.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    Ok,
    /// The user already has this many commands queued or running.
    UserBusy(usize),
    /// The global queue is full.
    Full,
}

/// A running command, as the Cancel button sees it.
#[derive(Debug, Clone)]
struct Handle {
    cancel: CancellationToken,
    requester: String,
    cancelled_by: Option<String>,
}

/// Why a cancel click did nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelError {
    NotRunning,
    NotAllowed,
}

/// Queue and registry.
#[derive(Debug)]
pub struct Runs {
    tx: mpsc::Sender<Queued>,
    rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    per_user: usize,
    active: Mutex<HashMap<String, usize>>,
    running: Mutex<HashMap<String, Handle>>,
}

use slipway_infra::sync::lock;

impl Runs {
    pub fn new(queue: usize, per_user: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            per_user,
            active: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Try to queue a job without waiting.
    pub fn enqueue(&self, job: Job, metrics: &Metrics) -> Enqueued {
        self.admit(Queued::Run(Box::new(job)), metrics)
    }

    /// Try to queue a change step without waiting, under the same limits as runs.
    pub fn enqueue_change(&self, task: ChangeTask, metrics: &Metrics) -> Enqueued {
        self.admit(Queued::Change(task), metrics)
    }

    fn admit(&self, job: Queued, metrics: &Metrics) -> Enqueued {
        let user = job.user().to_string();
        let mut active = lock(&self.active);
        let mine = active.get(&user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Enqueued::UserBusy(mine);
        }
        match self.tx.try_send(job) {
            Ok(()) => {
                *active.entry(user).or_default() += 1;
                metrics.queue_depth.inc();
                Enqueued::Ok
            }
            Err(_) => Enqueued::Full,
        }
    }

    fn finished(&self, user: &str) {
        let mut active = lock(&self.active);
        if let Some(n) = active.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                active.remove(user);
            }
        }
    }

    /// Cancel a run if `who` is its requester or `is_owner`.
    pub fn cancel(&self, run_id: &str, who: &str, is_owner: bool) -> Result<(), CancelError> {
        let mut running = lock(&self.running);
        let handle = running.get_mut(run_id).ok_or(CancelError::NotRunning)?;
        if handle.requester != who && !is_owner {
            return Err(CancelError::NotAllowed);
        }
        handle.cancelled_by.get_or_insert_with(|| who.to_string());
        handle.cancel.cancel();
        Ok(())
    }
}

/// Start the worker tasks.
pub fn start_workers(state: &AppState) {
    let Some(rx) = lock(&state.runs.rx).take() else {
        return;
    };
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..state.config.execution.workers {
        let state = state.clone();
        let rx = rx.clone();
        tokio::spawn(async move {
            loop {
                let job = { rx.lock().await.recv().await };
                let Some(job) = job else { break };
                state.metrics.queue_depth.dec();
                let user = job.user().to_string();
                match job {
                    Queued::Run(job) => run_job(&state, *job).await,
                    // Its own task, so a panic in it can't take this worker down.
                    Queued::Change(task) => {
                        if let Err(e) = tokio::spawn(task.work).await {
                            tracing::error!(error = %e, "a change step failed");
                        }
                    }
                }
                state.runs.finished(&user);
            }
        });
    }
}

async fn run_job(state: &AppState, job: Job) {
    state.metrics.running.inc();
    let started = Instant::now();
    // Registered before the message with the Cancel button exists, so every click finds it.
    let cancel = CancellationToken::new();
    lock(&state.runs.running).insert(
        job.id.clone(),
        Handle {
            cancel: cancel.clone(),
            requester: job.requester.user_id.clone(),
            cancelled_by: None,
        },
    );
    let timeout = job.spec.timeout();
    let view = |status: render::Status, tail: &[String]| {
        render::run_message(&job, status, started.elapsed(), tail)
    };
    let (posted_tx, posted_rx) = tokio::sync::watch::channel(work::Posted::Pending);
    let ctx = work::Context {
        run_id: job.id.clone(),
        channel: job.channel.clone(),
        message: posted_rx,
    };
    let private = is_private(state, &job).await;
    let (mut progress, mut done) = work::start(state, job.spec.clone(), ctx, cancel);
    let ts = if private {
        // Only the requester sees it: the response_url (five uses), so no progress updates.
        respond(
            state,
            &job.response_url,
            &view(render::Status::Running, &[]),
            false,
        )
        .await;
        None
    } else {
        match state
            .slack
            .post(&job.channel, None, &view(render::Status::Running, &[]))
            .await
        {
            Ok(ts) => Some(ts),
            Err(e) => {
                tracing::warn!(error = %e, run = %job.id, "could not post the run message; results go to response_url");
                None
            }
        }
    };
    let _ = posted_tx.send(ts.clone().map_or(work::Posted::Failed, work::Posted::At));
    let interval = state.config.execution.progress_interval;
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(200)));
    tick.tick().await;
    let result = loop {
        tokio::select! {
            r = &mut done => break r,
            _ = tick.tick() => {
                if let Some(ts) = &ts {
                    let tail = progress.borrow_and_update().tail.clone();
                    if let Err(e) = state.slack.update(&job.channel, ts, &view(render::Status::Running, &tail)).await {
                        tracing::debug!(error = %e, "progress update failed");
                    }
                }
            }
        }
    };
    let handle = lock(&state.runs.running).remove(&job.id);
    state.metrics.running.dec();
    let finished = result.unwrap_or_else(|e| {
        tracing::error!(error = %e, run = %job.id, "the run's task failed");
        Finished::api(ExecEnd::SpawnFailed("internal error".into()), "", started)
    });
    let result = &finished.result;
    let cancelled_by = handle.and_then(|h| h.cancelled_by);
    let outcome = match &result.end {
        ExecEnd::Exited(0) => "success",
        ExecEnd::Exited(_) | ExecEnd::Signalled(_) => "failure",
        ExecEnd::TimedOut => "timeout",
        ExecEnd::Cancelled => "cancelled",
        ExecEnd::SpawnFailed(_) => "error",
    };
    state
        .metrics
        .executions
        .get_or_create(&ExecLabels {
            tier: job.tier.map_or("none", Tier::as_str),
            outcome,
        })
        .inc();

    let mut details = serde_json::json!({
        "run_id": job.id,
        "decision_event_id": job.decision_audit_id,
        "end": finished.outcome.clone().unwrap_or_else(|| result.end.describe(timeout)),
        "cancelled_by": cancelled_by,
    });
    if let Some(map) = details.as_object_mut() {
        map.extend(finished.details.clone());
    }
    let audit = AuditRecord::new(EventKind::Execution, state.ids.next(), state.clock.now())
        .with_actor(Actor {
            slack_user_id: Some(job.requester.user_id.clone()),
            subject: Some(job.subject.clone()),
            role: Some(job.role.clone()),
            ..Actor::default()
        })
        .with_command(CommandInfo {
            text: job.text.clone(),
            family: None,
            argv: finished.argv.clone(),
        })
        .with_output(Output {
            excerpt: result.output.clone(),
            sha256: result.digest.clone(),
            bytes: result.total_bytes,
            exit_code: result.end.exit_code(),
            duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
            truncated: result.truncated,
        })
        .with_details(details);
    let audit_id = state
        .record(audit, "the execution")
        .await
        .ok()
        .map(|r| r.event_id);

    let status = render::Status::Done {
        end: result.end.clone(),
        timeout,
        cancelled_by: cancelled_by.clone(),
        outcome: finished.outcome.clone(),
    };
    let final_msg = view(status, &[]);
    let output_msg = render::output_message(&finished, audit_id.as_deref());
    if let Some(ts) = &ts {
        if let Err(e) = state.slack.update(&job.channel, ts, &final_msg).await {
            tracing::warn!(error = %e, "final update failed");
        }
        if let Err(e) = state.slack.post(&job.channel, Some(ts), &output_msg).await {
            tracing::warn!(error = %e, "posting the output failed");
        }
    } else {
        let mut msg = final_msg;
        msg.blocks.extend(output_msg.blocks);
        if private {
            msg.blocks.push(super::share::button(&job.id));
            state.shares.keep(
                &job.id,
                &job.requester.user_id,
                &job.channel,
                &job.text,
                msg.clone(),
                job.protected,
            );
        }
        respond(state, &job.response_url, &msg, private).await;
    }
}

/// Whether a run's messages go to the requester alone: the policy says so (protected resources
/// by default), or the output is protected and the channel is shared with another organisation.
async fn is_private(state: &AppState, job: &Job) -> bool {
    if job.visibility == Visibility::Ephemeral {
        return true;
    }
    job.protected && !super::share::channel_is_safe(state, &job.channel).await
}

async fn respond(state: &AppState, url: &str, msg: &Message, replace_original: bool) {
    if url.is_empty() {
        return;
    }
    if let Err(e) = state.slack.respond(url, msg, replace_original).await {
        tracing::warn!(error = %e, "response_url failed");
    }
}
