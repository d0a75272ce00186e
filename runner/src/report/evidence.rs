//! The job's audit records, as they are, in a comment on the change's PR: the bridge forwards
//! them to its own sinks (Jira, ServiceNow, Loki, the webhook) without re-chaining them. The
//! runner's S3 mirror stays the record of record; this is the route to the other sinks.
//!
//! The records travel with the writer's signed checkpoint over the last one: the bridge accepts
//! them only if that checkpoint verifies with the runner's key in `audit.writers`, so a comment
//! anyone writes with this marker is refused.

use base64::Engine as _;
use slipway_core::audit::{AuditRecord, Checkpoint};
use slipway_infra::github::Pr;

use crate::job::Job;

/// Starts the comment; the bridge looks for it.
pub const MARKER: &str = "<!-- slipway-records:v1 -->";

/// GitHub takes 65 536 characters in a comment; leave room for the wrapping.
const MAX_PAYLOAD: usize = 60_000;

/// The comment for `records` and their `checkpoint`; `None` when it wouldn't fit.
pub fn body(records: &[AuditRecord], checkpoint: &Checkpoint) -> Option<String> {
    let payload = serde_json::json!({ "records": records, "checkpoint": checkpoint });
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&payload).ok()?);
    (encoded.len() <= MAX_PAYLOAD).then(|| {
        format!(
            "{MARKER}\n<details><summary>slipway-runner: this job's {} audit record(s), signed, \
             for Slipway's evidence sinks</summary>\n\n```\n{encoded}\n```\n</details>\n",
            records.len()
        )
    })
}

/// Posts the job's records on each change PR the merge closed. Failures are reported on stderr:
/// the records are in the spool and in S3 whatever happens here.
pub async fn post(job: &Job, pulls: &[Pr]) {
    let records = match job.audit.log().read_after(0, 100_000) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return,
        Err(e) => {
            eprintln!("slipway-runner: reading the audit spool for the evidence comment: {e}");
            return;
        }
    };
    let Some(checkpoint) = job.audit.latest_checkpoint() else {
        eprintln!("slipway-runner: the audit spool has no signed checkpoint; no evidence comment");
        return;
    };
    let Some(text) = body(&records, &checkpoint) else {
        eprintln!(
            "slipway-runner: {} audit record(s) are too large for a PR comment; the bridge's \
             sinks won't get them (S3 has them)",
            records.len()
        );
        return;
    };
    for pr in pulls
        .iter()
        .filter(|p| p.head_ref.starts_with("slipway/cr-"))
    {
        if let Err(e) = job.gh.comment(job.repo(), pr.number, &text).await {
            eprintln!(
                "slipway-runner: the evidence comment on PR #{}: {e}",
                pr.number
            );
        }
    }
}
