//! The workers of a replica that shares its queue through Redis (see `exec::queue::shared`):
//! take a read from the stream, judge it again and build it here, run it with heartbeats that
//! keep it ours, post its result once, acknowledge it. Plus the replica's liveness beat, which
//! also reports change steps whose replica died.
//!
//! While Redis is away the workers back off and retry; they resume on their own when it is back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::ctx::Ctx;
use crate::exec::queue::shared::{Delivery, Shared};
use crate::exec::queue::{Job, WireJob};
use crate::slack::client::Message;

/// Turns a queued command back into a job on this replica: the ingress judges it again under
/// the policy in force here and builds its work (or says, in a sentence, why it won't run).
pub type Rebuild =
    Arc<dyn Fn(WireJob) -> Pin<Box<dyn Future<Output = Result<Job, String>> + Send>> + Send + Sync>;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Start the stream workers, the cancel listener and the liveness beat (shared state only).
pub fn start(state: &Ctx, rebuild: &Rebuild) {
    let Some(shared) = state.runs.shared().cloned() else {
        return;
    };
    state.runs.start_cancel_listener();
    start_liveness(state, shared.clone());
    for _ in 0..state.config.execution.workers {
        let (state, shared, rebuild) = (state.clone(), shared.clone(), rebuild.clone());
        tokio::spawn(async move { worker(&state, &shared, &rebuild).await });
    }
}

/// One worker: its own connection (a blocking read must not stall the shared one), retried
/// with backoff while Redis is away.
async fn worker(state: &Ctx, shared: &Shared, rebuild: &Rebuild) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match shared.worker_connection().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!(error = %e, "queue worker can't reach Redis; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        match shared.next(c).await {
            Ok(None) => backoff = FIRST_BACKOFF,
            Ok(Some(d)) => {
                backoff = FIRST_BACKOFF;
                take(state, shared, rebuild, d).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the shared queue failed; retrying");
                conn = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Run one delivery to its end and acknowledge it.
async fn take(state: &Ctx, shared: &Shared, rebuild: &Rebuild, d: Delivery) {
    let Some(wire) = d.job else {
        tracing::warn!(entry = %d.entry, "dropping an unreadable queue entry");
        let _ = shared.done(&d.entry, "", "").await;
        return;
    };
    let (id, user) = (wire.id.clone(), wire.user_id.clone());
    // Finished and posted before its replica died: nothing to run again.
    if d.retried && shared.posted(&id).await {
        finish(shared, &d.entry, &id, &user).await;
        return;
    }
    if d.retried {
        tracing::warn!(run = %id, "claimed a read from a replica that stopped; running it again");
        interrupted(state, shared, &id, &wire.channel).await;
    }
    // Registered (for Cancel anywhere) and kept ours before anything is posted.
    shared.heartbeat(&d.entry, &id, &user, &user).await;
    let beat = heartbeats(
        state,
        shared.clone(),
        d.entry.clone(),
        id.clone(),
        user.clone(),
    );
    let response_url = wire.response_url.clone();
    match rebuild(wire).await {
        Ok(mut job) => {
            job.retried = d.retried;
            super::runs::run_job(state, job).await;
        }
        Err(why) => {
            let msg = Message::text(format!(":warning: {why} Nothing was run."));
            if !response_url.is_empty()
                && let Err(e) = state.slack.respond(&response_url, &msg, false).await
            {
                tracing::warn!(error = %e, "response_url failed");
            }
        }
    }
    beat.abort();
    finish(shared, &d.entry, &id, &user).await;
}

/// The first attempt's run message (its Cancel button now reaches nothing) says what became of
/// it.
async fn interrupted(state: &Ctx, shared: &Shared, id: &str, channel: &str) {
    let Some(ts) = shared.message_of(id).await else {
        return;
    };
    let text = ":warning: Interrupted: the Slipway replica running this stopped. \
                It was retried on another replica; see the new message below.";
    let mut msg = Message::text(text);
    msg.blocks = vec![serde_json::json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": text},
    })];
    if let Err(e) = state.slack.update(channel, &ts, &msg).await {
        tracing::warn!(error = %e, run = %id, "could not mark the interrupted run message");
    }
}

/// Keep the entry ours every third of the claim timeout until aborted, and stop the run if a
/// Cancel was recorded for it that the pub/sub channel did not bring.
fn heartbeats(
    state: &Ctx,
    shared: Shared,
    entry: String,
    id: String,
    user: String,
) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let every = shared.claim_timeout / 3;
        loop {
            tokio::time::sleep(every).await;
            let beat = shared.heartbeat(&entry, &id, &user, &user).await;
            if !beat.ours {
                tracing::warn!(run = %id, "could not renew a running read's claim");
            }
            if let Some(by) = beat.cancelled_by {
                state.runs.cancel_relayed(&id, &by);
            }
        }
    })
}

/// Acknowledge, retrying a little: an entry left pending is run again elsewhere later (and
/// its result, already posted, is not posted twice).
async fn finish(shared: &Shared, entry: &str, id: &str, user: &str) {
    let mut backoff = FIRST_BACKOFF;
    for _ in 0..5 {
        match shared.done(entry, id, user).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, run = %id, "acknowledging a read failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A consumer idle this long (or twenty claim timeouts, if longer) with nothing pending
/// belongs to a replica that stopped.
const CONSUMER_IDLE_MIN: std::time::Duration = std::time::Duration::from_secs(3600);

/// Say this replica is alive every third of the claim timeout, and report the change steps
/// of replicas that aren't.
fn start_liveness(state: &Ctx, shared: Shared) {
    let state = state.clone();
    tokio::spawn(async move {
        let every = shared.claim_timeout / 3;
        loop {
            if let Err(e) = shared.alive().await {
                tracing::debug!(error = %e, "liveness beat failed");
            }
            match shared.orphaned_changes().await {
                Ok(orphans) => {
                    for o in orphans {
                        report_interrupted(&state, &o.report_to).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "checking for interrupted change steps"),
            }
            if let Ok(n) = shared.waiting().await {
                state
                    .metrics
                    .shared_queue_waiting
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            // A stopped replica's consumer, once its reads were claimed by others.
            let idle = (shared.claim_timeout * 20).max(CONSUMER_IDLE_MIN);
            if let Ok(n) = shared.prune_consumers(idle).await
                && n > 0
            {
                tracing::info!(
                    consumers = n,
                    "removed the queue consumers of stopped replicas"
                );
            }
            tokio::time::sleep(every).await;
        }
    });
}

async fn report_interrupted(state: &Ctx, url: &str) {
    if url.is_empty() {
        return;
    }
    let msg = Message::text(
        ":warning: Your change step was interrupted: the Slipway replica running it stopped. \
         Nothing more will be done for it (it is never run twice); run the command again.",
    );
    if let Err(e) = state.slack.respond(url, &msg, false).await {
        tracing::warn!(error = %e, "response_url failed");
    }
}
