//! Phase three: tell everyone how a change ended. The lock release, the PR comment, the
//! `slipway/execution` status and the audit record, or only the audit record when the PR
//! already carries the result.

pub mod comment;
pub mod evidence;
mod record;

use chrono::Utc;
use serde_json::json;
use slipway_core::approval::Counted;
use slipway_core::change::{ChangeRequest, lock_slug};
use slipway_infra::github::{Pr, fit_github_body};

use crate::job::{Job, Subject};
use crate::outcome::{Ended, Outcome, Ran};
use comment::{ResultComment, STATUS_CONTEXT};

/// Report how one change ended, and hand its outcome back.
pub async fn report(job: &Job, subject: &Subject<'_>, ended: Ended) -> Outcome {
    if ended.audit_only {
        // A failed audit write is reported on stderr; the outcome stands.
        let _ = record(job, subject, &ended.outcome, None, &[], &json!({})).await;
        return ended.outcome;
    }
    let mut notes = Vec::new();
    if let Some(role) = &ended.granted.assumed_role {
        notes.push(format!(
            "Credentials: role session `{role}` from the job's OIDC token."
        ));
    }
    if let Some(account) = &ended.granted.google_account {
        notes.push(format!(
            "Credentials: a short-lived Google token for `{account}`, by Workload Identity Federation from the job's OIDC token."
        ));
    }
    // Locks are released on success and failure alike, but only a lock this change holds.
    if let (Some(cr), Some(pr)) = (subject.cr, &subject.pr) {
        notes.push(release_lock(job, cr, pr).await);
    }
    comment_and_status(job, subject, &ended, &notes).await;
    let granted = &ended.granted;
    let details = json!({
        "assumed_role": granted.assumed_role,
        "google_account": granted.google_account,
        "oidc": granted.claims.as_ref().map(|c| json!({"sub": c.sub, "job_workflow_ref": c.job_workflow_ref, "repository_id": c.repository_id, "actor": c.actor, "runner_environment": c.runner_environment})),
        "notes": notes,
        "workflow_ref": job.env.workflow_ref,
    });
    let _ = record(
        job,
        subject,
        &ended.outcome,
        ended.ran.as_ref(),
        &ended.approvals,
        &details,
    )
    .await;
    ended.outcome
}

/// The result comment on the PR (if there is one) and the commit status on the merge.
async fn comment_and_status(job: &Job, subject: &Subject<'_>, ended: &Ended, notes: &[String]) {
    let id = subject.id();
    let body = comment::result_body(&ResultComment {
        id: &id,
        command: subject
            .cr
            .map_or("(unreadable change request)", |c| c.command.text.as_str()),
        outcome: &ended.outcome,
        ran: ended.ran.as_ref(),
        duration: subject.started.elapsed(),
        run_url: &job.env.run_url(),
        merge_sha: &job.env.sha,
        notes,
    });
    if let Some(pr) = &subject.pr
        && let Err(e) = job
            .gh
            .comment(job.repo(), pr.number, &fit_github_body(&body))
            .await
    {
        eprintln!("slipway-runner: commenting on PR #{}: {e}", pr.number);
    }
    if let Err(e) = job
        .gh
        .set_status(
            job.repo(),
            &job.env.sha,
            ended.outcome.status_state(),
            STATUS_CONTEXT,
            &comment::status_description(&id, &ended.outcome),
            Some(&job.env.run_url()),
        )
        .await
    {
        eprintln!("slipway-runner: setting the {STATUS_CONTEXT} status: {e}");
    }
}

/// The audit record alone; an error is also reported on stderr. `execute` writes the start's
/// record through it before anything runs.
pub async fn record(
    job: &Job,
    subject: &Subject<'_>,
    outcome: &Outcome,
    ran: Option<&Ran>,
    approvals: &[Counted],
    details: &serde_json::Value,
) -> Result<(), String> {
    let change = subject.change;
    let oidc_subject = details
        .pointer("/oidc/sub")
        .and_then(serde_json::Value::as_str);
    let id = subject
        .cr
        .map_or_else(|| change.path.clone(), |c| c.id.clone());
    let rec = record::audit_record(&record::AuditInput {
        event_id: &format!("{id}-{}-{}", job.env.run_id, outcome.word()),
        now: Utc::now(),
        path: &change.path,
        cr: subject.cr,
        pr: subject.pr.as_ref(),
        repo: &job.repo().to_string(),
        merge_sha: &job.env.sha,
        outcome,
        ran,
        duration: subject.started.elapsed(),
        run_id: &job.env.run_id,
        oidc_subject,
        approvals,
        details,
    });
    job.audit.record(rec).await.map(|_| ()).map_err(|e| {
        eprintln!(
            "slipway-runner: writing the audit record for {}: {e}",
            change.path
        );
        e
    })
}

/// Delete `refs/slipway/locks/<slug>` if this change holds it: it points at the PR's head, or at
/// a commit the bridge made for this request.
async fn release_lock(job: &Job, cr: &ChangeRequest, pr: &Pr) -> String {
    let refname = format!("refs/slipway/locks/{}", lock_slug(&cr.resource));
    let target = match job.lock_gh.get_ref(job.repo(), &refname).await {
        Ok(None) => return format!("Lock `{refname}`: already released."),
        Ok(Some(t)) => t,
        Err(e) => {
            return format!(
                "Lock `{refname}`: couldn't be read ({e}); release it by hand if no other change holds it."
            );
        }
    };
    let ours = target.eq_ignore_ascii_case(&pr.head_sha)
        || {
            let ids: Vec<String> = std::iter::once(cr.id.clone())
                .chain(cr.supersedes.clone())
                .map(|i| format!("Slipway-Change: {i}"))
                .collect();
            matches!(job.lock_gh.commit_message(job.repo(), &target).await, Ok(Some(m)) if ids.iter().any(|i| m.contains(i.as_str())))
        };
    if !ours {
        return format!(
            "Lock `{refname}`: left in place, it is held by another change (it points at {target})."
        );
    }
    match job.lock_gh.delete_ref(job.repo(), &refname).await {
        Ok(()) => format!("Lock `{refname}`: released."),
        Err(e) => format!(
            "Lock `{refname}`: could not be released ({e}); the workflow's token needs `contents: write` for it (pass SLIPWAY_LOCK_TOKEN), or delete the ref by hand."
        ),
    }
}
