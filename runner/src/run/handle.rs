//! The per-change driver: the re-run check, then verify → execute → report for one change file.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use super::command::run_change;
use super::finish::Report;
use super::{Change, Ctx};
use crate::report::{self, Outcome, Previous};
use crate::verify::{self, PolicyCheck};

/// What a verified change needs to run.
struct Verified {
    cr: ChangeRequest,
    pr: Pr,
    check: PolicyCheck,
    quorum: slipway_core::approval::Quorum,
}

/// Verify, execute and report one change file.
pub(super) async fn handle(
    ctx: &Ctx,
    change: &Change,
    pulls: Result<&[Pr], String>,
    superseded_by: Option<String>,
) -> Outcome {
    let cr = change.parsed.as_ref().ok();
    let stem = verify::id_from_path(&change.path).unwrap_or_default();
    let pr = pulls
        .as_ref()
        .ok()
        .and_then(|p| {
            verify::merged_pr(
                p,
                &ctx.env.sha,
                &ctx.default_branch,
                stem,
                cr.and_then(|c| c.supersedes.as_deref()),
            )
        })
        .cloned();
    let unverified = Report {
        ctx,
        change,
        cr,
        pr: pr.as_ref(),
        started: Instant::now(),
    };

    // A re-run sees its own earlier result and stops there.
    if let Some(pr) = &pr {
        let early = match ctx.gh.comments(ctx.repo(), pr.number).await {
            Err(e) => Some(Outcome::Failed(format!(
                "can't read PR #{}'s comments to check for an earlier run, so nothing was done (fails closed): {e}",
                pr.number
            ))),
            Ok(comments) => match report::previous(&comments, stem) {
                Previous::Done(headline) => Some(Outcome::AlreadyDone(format!(
                    "a previous run already handled it ({headline}); see PR #{}: nothing was done again",
                    pr.number
                ))),
                Previous::Started => return unverified.end(Outcome::Interrupted, &[]).await,
                Previous::None => None,
            },
        };
        if let Some(early) = early {
            // Only the audit hears of it: the PR already has the result (or can't be read). A
            // failed audit write is reported on stderr; the outcome stands.
            let _ = unverified.record(&early, None, &[], &json!({})).await;
            return early;
        }
    }

    let verified = verify_change(ctx, change, pulls.map(|_| pr.clone()), superseded_by).await;
    let Verified {
        cr,
        pr,
        check,
        quorum,
    } = match verified {
        Ok(v) => v,
        Err(reason) => return unverified.end(Outcome::Refused(reason), &[]).await,
    };
    let report = Report {
        cr: Some(&cr),
        pr: Some(&pr),
        ..unverified
    };

    // Nothing runs before the PR says so (so a re-run can tell) and the audit has it on disk.
    let started_body = report::started_body(&cr, &ctx.env.run_url(), &ctx.env.sha);
    let blocked = if let Err(e) = ctx.gh.comment(ctx.repo(), pr.number, &started_body).await {
        Some(format!(
            "can't comment on PR #{} to record the start, so a re-run couldn't tell it ran: nothing was done: {e}",
            pr.number
        ))
    } else {
        let description = format!("{}: executing", cr.id);
        let _ = ctx
            .gh
            .set_status(
                ctx.repo(),
                &ctx.env.sha,
                "pending",
                report::STATUS_CONTEXT,
                &description,
                Some(&ctx.env.run_url()),
            )
            .await;
        let details = json!({"decision_rule": check.rule, "decision": check.reason, "workflow_ref": ctx.env.workflow_ref});
        report
            .record(&Outcome::Started, None, &quorum.approvals, &details)
            .await
            .err()
            .map(|e| format!("the audit spool refused the start record, so nothing was done: {e}"))
    };
    if let Some(why) = blocked {
        return report.end(Outcome::Failed(why), &quorum.approvals).await;
    }

    let (granted, execution) = run_change(ctx, &cr, &check).await;
    let outcome = match &execution {
        Ok(ex) => Outcome::from_verdict(&ex.verdict),
        Err(why) => Outcome::Failed(why.clone()),
    };
    let mut notes = Vec::new();
    if let Some(role) = &granted.assumed_role {
        notes.push(format!(
            "Credentials: role session `{role}` from the job's OIDC token."
        ));
    }
    report
        .finish(
            &outcome,
            execution.as_ref().ok(),
            &quorum.approvals,
            &granted,
            notes,
        )
        .await;
    outcome
}

/// Every check; `Err` is the refusal reason.
async fn verify_change(
    ctx: &Ctx,
    change: &Change,
    pr: Result<Option<Pr>, String>,
    superseded_by: Option<String>,
) -> Result<Verified, String> {
    let cr = change
        .parsed
        .clone()
        .map_err(|e| format!("{}: {e}", change.path))?;
    let stem = verify::id_from_path(&change.path).unwrap_or_default();
    if cr.id != stem {
        return Err(format!(
            "{} holds change `{}`: the file name and the id must match",
            change.path, cr.id
        ));
    }
    if !ctx
        .env
        .git_ref
        .eq_ignore_ascii_case(&format!("refs/heads/{}", ctx.default_branch))
    {
        return Err(format!(
            "the push was to `{}`, not the default branch `{}`: the runner only executes what was merged into the default branch",
            ctx.env.git_ref, ctx.default_branch
        ));
    }
    let pr = pr?.ok_or_else(|| {
        format!(
            "it reached `{}` by a direct push ({}), not through a merged pull request from `slipway/{}`: only reviewed, merged change requests run",
            ctx.default_branch,
            ctx.env.sha.get(..7).unwrap_or_default(),
            cr.id
        )
    })?;
    if let Some(newer) = superseded_by {
        return Err(format!(
            "PR #{} also adds `{newer}`, a newer request for the same change; only that one is executed",
            pr.number
        ));
    }
    // Expiry is judged as of the merge (one deadline rule): a job that runs late doesn't
    // expire a request that was approved and merged in time.
    let judged = pr.merged_at.unwrap_or_else(Utc::now);
    slipway_core::change::verify(&cr, &ctx.keys, judged).map_err(|e| e.to_string())?;
    verify::check_protected_paths(&ctx.changed)?;
    verify::check_merge_scope(&ctx.changed, &ctx.declared)?;
    if let Some(cfg) = &ctx.config_in_repo
        && ctx.changed.iter().any(|c| c == cfg)
    {
        return Err(format!(
            "the same merge changed the runner's config `{cfg}` (its keys and roles): merge config changes on their own, then request the change again"
        ));
    }
    verify::check_rendered_files(&cr, &|p| ctx.read(p))?;
    let policy = ctx.policy.as_ref().map_err(Clone::clone)?;
    let check = verify::check_policy(policy, &cr, ctx)?;
    let reviews = ctx
        .gh
        .reviews(ctx.repo(), pr.number)
        .await
        .map_err(|e| format!("can't read PR #{}'s reviews (fails closed): {e}", pr.number))?;
    let quorum = verify::check_quorum(
        policy,
        &cr,
        &pr,
        &verify::review_inputs(
            &reviews,
            &ctx.keys,
            &ctx.repo().to_string(),
            pr.number,
            cr.expires_at,
        ),
        check.requirement.as_ref(),
        Utc::now(),
    )?;
    Ok(Verified {
        cr,
        pr,
        check,
        quorum,
    })
}
