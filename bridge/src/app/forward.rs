//! The runner's evidence comment (`<!-- slipway-records:v1 -->`, see the runner's
//! `report::evidence`): its records, verified against the runner's key in `audit.writers`, go
//! to the forward queue that the bridge-side sinks drain. They are never appended to the
//! bridge's own chain.

use base64::Engine as _;
use serde::Deserialize;
use slipway_core::audit::{AuditRecord, Checkpoint, verify_segment};

use super::AppState;

/// The runner's marker (`slipway_runner::report::evidence::MARKER`).
pub const MARKER: &str = "<!-- slipway-records:v1 -->";

/// Only runner writers may be forwarded: a runner key must never vouch for another writer.
const RUNNER_WRITERS: &str = "runner:";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Evidence {
    records: Vec<AuditRecord>,
    checkpoint: Checkpoint,
}

/// The payload between the marker's code fences.
fn payload(body: &str) -> Result<Evidence, String> {
    let after = body.split_once(MARKER).ok_or("no marker")?.1;
    let start = after.find("```\n").ok_or("no payload")? + 4;
    let end = after[start..].find("\n```").ok_or("the payload is cut")? + start;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(after[start..end].trim())
        .map_err(|_| "the payload is not base64")?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the payload doesn't parse: {e}"))
}

/// Verifies and queues the records of a comment the configured runner login made.
pub async fn accept(state: &AppState, body: &str) {
    let Some(queue) = state.audit_sinks.forward.clone() else {
        return;
    };
    let Some(writers) = state.config.audit.writers.clone() else {
        tracing::warn!(
            "the runner's audit records can't be forwarded: audit.writers doesn't list the \
             runner's key to check them with"
        );
        return;
    };
    let checked = payload(body).and_then(|e| {
        verify_segment(&e.records, &e.checkpoint, &writers, RUNNER_WRITERS).map(|()| e.records)
    });
    let records = match checked {
        Ok(r) => r,
        Err(why) => {
            state.metrics.request("github_webhook", "evidence_refused");
            tracing::warn!(why = %why, "refused the runner's evidence comment: its records are not forwarded");
            return;
        }
    };
    let writer = records.last().map(|r| r.writer.clone()).unwrap_or_default();
    match tokio::task::spawn_blocking(move || queue.append(&records)).await {
        Ok(Ok(n)) => {
            state.metrics.request("github_webhook", "evidence");
            tracing::info!(writer = %writer, new = n, "the runner's audit records are queued for the sinks");
        }
        Ok(Err(e)) => tracing::error!(error = %e, "queueing the runner's audit records failed"),
        Err(e) => tracing::error!(error = %e, "queueing the runner's audit records failed"),
    }
}
