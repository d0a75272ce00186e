//! The workers that take jobs off the queue: run a read, stream its progress into Slack, post the
//! redacted output, record the execution; or run a change step in its own task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_core::audit::{Actor, AuditRecord, CommandInfo, EventKind, Output};
use slipway_core::command::Tier;
use slipway_core::policy::model::Visibility;
use slipway_infra::exec::ExecEnd;

use super::messages;
use crate::ctx::Ctx;
use crate::exec::queue::{Job, Queued};
use crate::exec::work::{self, Finished};
use crate::metrics::ExecLabels;
use crate::slack::client::Message;

/// Start the worker tasks.
pub fn start_workers(state: &Ctx) {
    let Some(rx) = state.runs.take_receiver() else {
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
                    Queued::Run(job) => {
                        run_job(&state, *job).await;
                        state.runs.finished(&user);
                    }
                    // Its own task, so a panic in it can't take this worker down.
                    Queued::Change(task) => {
                        if let Err(e) = tokio::spawn(task.work).await {
                            tracing::error!(error = %e, "a change step failed");
                        }
                        state.runs.change_done(&task.id, &user).await;
                    }
                }
            }
        });
    }
}

/// One read, in phases: register it for Cancel, post the run message, follow progress until it
/// ends, count and record it, then post the outcome and the output (once across replicas).
pub(super) async fn run_job(state: &Ctx, job: Job) {
    state.metrics.running.inc();
    let started = Instant::now();
    // Registered before the message with the Cancel button exists, so every click finds it.
    let cancel = state.runs.register(&job.id, &job.requester.user_id);
    let (posted_tx, posted_rx) = tokio::sync::watch::channel(work::Posted::Pending);
    let ctx = work::Context {
        run_id: job.id.clone(),
        channel: job.channel.clone(),
        message: posted_rx,
    };
    let private = is_private(state, &job).await;
    let (progress, done) = work::start(state, job.spec.clone(), ctx, cancel);
    let ts = post_running(state, &job, started, private).await;
    if let (Some(shared), Some(ts)) = (state.runs.shared(), ts.as_deref()) {
        shared.note_message(&job.id, ts).await;
    }
    let _ = posted_tx.send(ts.clone().map_or(work::Posted::Failed, work::Posted::At));
    let result = follow(state, &job, started, ts.as_deref(), progress, done).await;
    let cancelled_by = state.runs.unregister(&job.id);
    state.metrics.running.dec();
    let finished = result.unwrap_or_else(|e| {
        tracing::error!(error = %e, run = %job.id, "the run's task failed");
        Finished::api(ExecEnd::SpawnFailed("internal error".into()), "", started)
    });
    count(state, &job, &finished);
    let audit_id = record(state, &job, &finished, cancelled_by.as_deref()).await;
    remember(state, &job, &finished);
    let status = messages::Status::Done {
        end: finished.result.end.clone(),
        timeout: job.spec.timeout(),
        cancelled_by,
        outcome: finished.outcome.clone(),
    };
    let final_msg = messages::run_message(&job, status, started.elapsed(), &[]);
    let output_msg = messages::output_message(&finished, audit_id.as_deref());
    // A read claimed from a stalled replica may finish twice; its result is posted once.
    if let Some(shared) = state.runs.shared()
        && !shared.claim_post(&job.id).await
    {
        tracing::info!(run = %job.id, "result already posted by another replica");
        return;
    }
    deliver(state, &job, ts.as_deref(), private, final_msg, output_msg).await;
}

/// The run message with its Cancel button: in the channel, or to the requester alone through
/// the response_url (five uses, so no progress updates there). The channel message's ts, if any.
async fn post_running(state: &Ctx, job: &Job, started: Instant, private: bool) -> Option<String> {
    let msg = messages::run_message(job, messages::Status::Running, started.elapsed(), &[]);
    if private {
        to_requester(state, job, &msg, false).await;
        return None;
    }
    match state
        .slack
        .post(&job.channel, job.thread_ts.as_deref(), &msg)
        .await
    {
        Ok(ts) => Some(ts),
        Err(e) => {
            tracing::warn!(error = %e, run = %job.id, "could not post the run message; results go to response_url");
            None
        }
    }
}

/// Wait for the work to end, updating the channel message with the output's tail meanwhile.
async fn follow(
    state: &Ctx,
    job: &Job,
    started: Instant,
    ts: Option<&str>,
    mut progress: tokio::sync::watch::Receiver<slipway_infra::exec::Progress>,
    mut done: tokio::task::JoinHandle<Finished>,
) -> Result<Finished, tokio::task::JoinError> {
    let interval = state.config.execution.progress_interval;
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(200)));
    tick.tick().await;
    loop {
        tokio::select! {
            r = &mut done => return r,
            _ = tick.tick() => {
                if let Some(ts) = ts {
                    let tail = progress.borrow_and_update().tail.clone();
                    let msg = messages::run_message(job, messages::Status::Running, started.elapsed(), &tail);
                    if let Err(e) = state.slack.update(&job.channel, ts, &msg).await {
                        tracing::debug!(error = %e, "progress update failed");
                    }
                }
            }
        }
    }
}

/// The run among its requester's recent ones (their App Home lists them).
fn remember(state: &Ctx, job: &Job, finished: &Finished) {
    let outcome = (finished.outcome.clone())
        .unwrap_or_else(|| finished.result.end.describe(job.spec.timeout()));
    let run = crate::recent::RecentRun {
        text: job.text.clone(),
        target: job.target.clone(),
        outcome,
        at: state.clock.now(),
    };
    state.recent.ran(&job.requester.user_id, run);
}

/// The executions counter, by tier and outcome.
fn count(state: &Ctx, job: &Job, finished: &Finished) {
    let outcome = match &finished.result.end {
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
}

/// The execution's audit record (redacted excerpt, digest, how it ended); its event id, which
/// the output message names, if it was written.
async fn record(
    state: &Ctx,
    job: &Job,
    finished: &Finished,
    cancelled_by: Option<&str>,
) -> Option<String> {
    let result = &finished.result;
    let mut details = serde_json::json!({
        "run_id": job.id,
        "decision_event_id": job.decision_audit_id,
        "end": finished.outcome.clone().unwrap_or_else(|| result.end.describe(job.spec.timeout())),
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
    state
        .record(audit, "the execution")
        .await
        .ok()
        .map(|r| r.event_id)
}

/// The outcome and the output: the channel message updated and the output in its thread, or
/// both through the response_url (with the Share button when private).
async fn deliver(
    state: &Ctx,
    job: &Job,
    ts: Option<&str>,
    private: bool,
    final_msg: Message,
    output_msg: Message,
) {
    if let Some(ts) = ts {
        if let Err(e) = state.slack.update(&job.channel, ts, &final_msg).await {
            tracing::warn!(error = %e, "final update failed");
        }
        let thread = job.thread_ts.as_deref().unwrap_or(ts);
        if let Err(e) = state
            .slack
            .post(&job.channel, Some(thread), &output_msg)
            .await
        {
            tracing::warn!(error = %e, "posting the output failed");
        }
        return;
    }
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
    to_requester(state, job, &msg, private).await;
}

/// A message for the requester alone: through the command's `response_url`, or, for a command
/// from an `@slipway` mention (which has none), as an ephemeral message in its thread.
async fn to_requester(state: &Ctx, job: &Job, msg: &Message, replace_original: bool) {
    match job.thread_ts.as_deref() {
        Some(thread) if job.response_url.is_empty() => {
            let user = &job.requester.user_id;
            let posted = state
                .slack
                .post_ephemeral(&job.channel, user, Some(thread), msg);
            if let Err(e) = posted.await {
                tracing::warn!(error = %e, "an ephemeral reply in a thread failed");
            }
        }
        _ => respond(state, &job.response_url, msg, replace_original).await,
    }
}

/// Whether a run's messages go to the requester alone: the policy says so (protected resources
/// by default), or the output is protected and the channel is shared with another organisation.
async fn is_private(state: &Ctx, job: &Job) -> bool {
    if job.visibility == Visibility::Ephemeral {
        return true;
    }
    job.protected && !super::share::channel_is_safe(state, &job.channel).await
}

async fn respond(state: &Ctx, url: &str, msg: &Message, replace_original: bool) {
    if url.is_empty() {
        return;
    }
    if let Err(e) = state.slack.respond(url, msg, replace_original).await {
        tracing::warn!(error = %e, "response_url failed");
    }
}
