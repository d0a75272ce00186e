//! Reporting a finished (or refused) change: the PR comment, the status, the audit record and
//! the lock release.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use slipway_core::approval::Counted;
use slipway_core::change::{ChangeRequest, lock_slug};
use slipway_infra::github::{Pr, fit_github_body};

use super::{Change, Ctx};
use crate::apply::Execution;
use crate::credentials::Granted;
use crate::report::{self, Outcome};
use crate::verify;

/// One change's reporting context: what every report of it (comment, status, audit record)
/// names, gathered once so each exit path of `handle` says only what differs.
pub(super) struct Report<'a> {
    pub ctx: &'a Ctx,
    pub change: &'a Change,
    pub cr: Option<&'a ChangeRequest>,
    pub pr: Option<&'a Pr>,
    pub started: Instant,
}

impl Report<'_> {
    /// Report an outcome reached without executing anything, and hand it back.
    pub async fn end(&self, outcome: Outcome, approvals: &[Counted]) -> Outcome {
        self.finish(&outcome, None, approvals, &Granted::default(), Vec::new())
            .await;
        outcome
    }

    /// Comment, status, audit and lock release for a finished (or refused) change.
    pub async fn finish(
        &self,
        outcome: &Outcome,
        execution: Option<&Execution>,
        approvals: &[Counted],
        granted: &Granted,
        mut notes: Vec<String>,
    ) {
        let Self { ctx, cr, pr, .. } = *self;
        let id = cr.map_or_else(
            || {
                verify::id_from_path(&self.change.path)
                    .unwrap_or(&self.change.path)
                    .to_string()
            },
            |c| c.id.clone(),
        );
        // Locks are released on success and failure alike, but only a lock this change holds.
        if let (Some(cr), Some(pr)) = (cr, pr) {
            notes.push(release_lock(ctx, cr, pr).await);
        }
        let command = cr.map_or("(unreadable change request)", |c| c.command.text.as_str());
        let body = report::result_body(&report::Result {
            id: &id,
            command,
            outcome,
            execution,
            duration: self.started.elapsed(),
            run_url: &ctx.env.run_url(),
            merge_sha: &ctx.env.sha,
            notes: &notes,
        });
        if let Some(pr) = pr
            && let Err(e) = ctx
                .gh
                .comment(ctx.repo(), pr.number, &fit_github_body(&body))
                .await
        {
            eprintln!("slipway-runner: commenting on PR #{}: {e}", pr.number);
        }
        if let Err(e) = ctx
            .gh
            .set_status(
                ctx.repo(),
                &ctx.env.sha,
                outcome.status_state(),
                report::STATUS_CONTEXT,
                &report::status_description(&id, outcome),
                Some(&ctx.env.run_url()),
            )
            .await
        {
            eprintln!(
                "slipway-runner: setting the {} status: {e}",
                report::STATUS_CONTEXT
            );
        }
        let details = json!({
            "assumed_role": granted.assumed_role,
            "oidc": granted.claims.as_ref().map(|c| json!({"sub": c.sub, "job_workflow_ref": c.job_workflow_ref, "repository_id": c.repository_id, "actor": c.actor, "runner_environment": c.runner_environment})),
            "notes": notes,
            "workflow_ref": ctx.env.workflow_ref,
        });
        let _ = self.record(outcome, execution, approvals, &details).await;
    }

    /// The audit record alone; an error is also reported on stderr.
    pub async fn record(
        &self,
        outcome: &Outcome,
        execution: Option<&Execution>,
        approvals: &[Counted],
        details: &serde_json::Value,
    ) -> Result<(), String> {
        let Self {
            ctx,
            change,
            cr,
            pr,
            ..
        } = *self;
        let oidc_subject = details
            .pointer("/oidc/sub")
            .and_then(serde_json::Value::as_str);
        let id = cr.map_or_else(|| change.path.clone(), |c| c.id.clone());
        let rec = report::audit_record(&report::AuditInput {
            event_id: &format!("{id}-{}-{}", ctx.env.run_id, outcome.word()),
            now: Utc::now(),
            path: &change.path,
            cr,
            pr,
            repo: &ctx.repo().to_string(),
            merge_sha: &ctx.env.sha,
            outcome,
            execution,
            duration: self.started.elapsed(),
            run_id: &ctx.env.run_id,
            oidc_subject,
            approvals,
            details,
        });
        ctx.audit.record(rec).await.map(|_| ()).map_err(|e| {
            eprintln!(
                "slipway-runner: writing the audit record for {}: {e}",
                change.path
            );
            e
        })
    }
}

/// Delete `refs/slipway/locks/<slug>` if this change holds it: it points at the PR's head, or at
/// a commit the bridge made for this request.
async fn release_lock(ctx: &Ctx, cr: &ChangeRequest, pr: &Pr) -> String {
    let refname = format!("refs/slipway/locks/{}", lock_slug(&cr.resource));
    let target = match ctx.lock_gh.get_ref(ctx.repo(), &refname).await {
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
            matches!(ctx.lock_gh.commit_message(ctx.repo(), &target).await, Ok(Some(m)) if ids.iter().any(|i| m.contains(i.as_str())))
        };
    if !ours {
        return format!(
            "Lock `{refname}`: left in place, it is held by another change (it points at {target})."
        );
    }
    match ctx.lock_gh.delete_ref(ctx.repo(), &refname).await {
        Ok(()) => format!("Lock `{refname}`: released."),
        Err(e) => format!(
            "Lock `{refname}`: could not be released ({e}); the workflow's token needs `contents: write` for it (pass SLIPWAY_LOCK_TOKEN), or delete the ref by hand."
        ),
    }
}
