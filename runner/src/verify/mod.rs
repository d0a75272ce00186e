//! Phase one of a change: may it run? A re-run stops at its own earlier result; otherwise every
//! check is made again from the merged commit: the signature and expiry, the merged PR, what the
//! merge changed, the rendered files, the policy before the merge and the quorum on the PR's
//! final head. `Err` is how the change ended without running, for `report`.

mod checks;
mod people;
mod policy;
mod quorum;

use chrono::Utc;
use slipway_core::approval::Quorum;
use slipway_core::change::ChangeRequest;
use slipway_core::policy::FreezeCheck;
use slipway_infra::github::Pr;

pub use self::policy::PolicyCheck;
use crate::job::{Job, Subject};
use crate::outcome::{Ended, Outcome};
use crate::report::comment::{Previous, previous};

/// A change that passed every check: what `execute` needs to run it.
#[derive(Debug)]
pub struct Verified {
    pub cr: ChangeRequest,
    pub pr: Pr,
    pub check: PolicyCheck,
    pub quorum: Quorum,
}

/// Verify one change. `pulls` are the PRs GitHub lists for the merge (or why they can't be
/// read); `superseded_by` names a newer request of the same PR, if there is one.
pub async fn verify(
    job: &Job,
    subject: &Subject<'_>,
    pulls: Result<&[Pr], String>,
    superseded_by: Option<String>,
) -> Result<Verified, Ended> {
    if let Some(pr) = &subject.pr {
        earlier_run(job, pr, subject.stem).await?;
    }
    let pr = pulls.map(|_| subject.pr.clone());
    checks(job, subject, pr, superseded_by)
        .await
        .map_err(|reason| Ended::before_running(Outcome::Refused(reason), Vec::new()))
}

/// A re-run sees its own earlier result and stops there. Only the audit hears of a finished
/// one (the PR already has the result, or can't be read); an interrupted one is reported.
async fn earlier_run(job: &Job, pr: &Pr, stem: &str) -> Result<(), Ended> {
    let comments = job.gh.comments(job.repo(), pr.number).await.map_err(|e| {
        Ended::audit_only(Outcome::Failed(format!(
            "can't read PR #{}'s comments to check for an earlier run, so nothing was done (fails closed): {e}",
            pr.number
        )))
    })?;
    match previous(&comments, stem) {
        Previous::Done(headline) => Err(Ended::audit_only(Outcome::AlreadyDone(format!(
            "a previous run already handled it ({headline}); see PR #{}: nothing was done again",
            pr.number
        )))),
        Previous::Started => Err(Ended::before_running(Outcome::Interrupted, Vec::new())),
        Previous::None => Ok(()),
    }
}

/// Every check; `Err` is the refusal reason.
async fn checks(
    job: &Job,
    subject: &Subject<'_>,
    pr: Result<Option<Pr>, String>,
    superseded_by: Option<String>,
) -> Result<Verified, String> {
    let change = subject.change;
    let cr = change
        .parsed
        .clone()
        .map_err(|e| format!("{}: {e}", change.path))?;
    if cr.id != subject.stem {
        return Err(format!(
            "{} holds change `{}`: the file name and the id must match",
            change.path, cr.id
        ));
    }
    let pr = merged_through(job, &cr, pr, superseded_by)?;
    // Expiry is judged as of the merge (one deadline rule): a job that runs late doesn't
    // expire a request that was approved and merged in time.
    let judged = pr.merged_at.unwrap_or_else(Utc::now);
    slipway_core::change::verify(&cr, &job.keys, judged).map_err(|e| e.to_string())?;
    merge_contents(job, &cr)?;
    let policy = job.policy.as_ref().map_err(Clone::clone)?;
    let check = policy::check_policy(policy, &cr, job)?;
    not_frozen(policy, &cr, &check.object_resources, Utc::now())?;
    let quorum = approvals(job, policy, &cr, &pr, &check).await?;
    Ok(Verified {
        cr,
        pr,
        check,
        quorum,
    })
}

/// The change came through a merged PR into the default branch, and is that PR's newest.
fn merged_through(
    job: &Job,
    cr: &ChangeRequest,
    pr: Result<Option<Pr>, String>,
    superseded_by: Option<String>,
) -> Result<Pr, String> {
    if !job
        .env
        .git_ref
        .eq_ignore_ascii_case(&format!("refs/heads/{}", job.default_branch))
    {
        return Err(format!(
            "the push was to `{}`, not the default branch `{}`: the runner only executes what was merged into the default branch",
            job.env.git_ref, job.default_branch
        ));
    }
    let pr = pr?.ok_or_else(|| {
        format!(
            "it reached `{}` by a direct push ({}), not through a merged pull request from `slipway/{}`: only reviewed, merged change requests run",
            job.default_branch,
            job.env.sha.get(..7).unwrap_or_default(),
            cr.id
        )
    })?;
    if let Some(newer) = superseded_by {
        return Err(format!(
            "PR #{} also adds `{newer}`, a newer request for the same change; only that one is executed",
            pr.number
        ));
    }
    Ok(pr)
}

/// The merge changed nothing protected, nothing undeclared, not the runner's config, and every
/// rendered file is as signed.
fn merge_contents(job: &Job, cr: &ChangeRequest) -> Result<(), String> {
    checks::check_protected_paths(&job.changed)?;
    checks::check_merge_scope(&job.changed, &job.declared)?;
    if let Some(cfg) = &job.config_in_repo
        && job.changed.iter().any(|c| c == cfg)
    {
        return Err(format!(
            "the same merge changed the runner's config `{cfg}` (its keys and roles): merge config changes on their own, then request the change again"
        ));
    }
    checks::check_rendered_files(cr, &|p| job.read(p))
}

/// No freeze window of the policy is in force now (as it executes, not as it merged) over the
/// change's resource or an object of its manifest, unless the signed request overrides that
/// very window and its requester is one the window lets override it.
fn not_frozen(
    policy: &slipway_core::policy::Policy,
    cr: &ChangeRequest,
    objects: &[String],
    now: chrono::DateTime<Utc>,
) -> Result<(), String> {
    match policy.check_change_freeze(cr, objects, now) {
        FreezeCheck::Open | FreezeCheck::Overridden(_) => Ok(()),
        FreezeCheck::Frozen(f) => Err(format!(
            "`{}` is frozen by window `{}` until {} ({}), and the change request carries no override of it: nothing runs during the window; request the change again after it ends, or with `--override-freeze \"<reason>\"` if you may override it",
            f.resource,
            f.window.name,
            f.ends_at.format("%Y-%m-%d %H:%M UTC"),
            f.window.reason
        )),
        FreezeCheck::NotAllowed(f) => Err(format!(
            "the change request overrides freeze window `{}` over `{}`, but its requester {} is not one the window lets override it under the policy in force: nothing runs during the window",
            f.window.name, f.resource, cr.requester.subject,
        )),
    }
}

/// The quorum of GitHub's reviews on the PR, under the signed rule and the current one.
async fn approvals(
    job: &Job,
    policy: &slipway_core::policy::Policy,
    cr: &ChangeRequest,
    pr: &Pr,
    check: &PolicyCheck,
) -> Result<Quorum, String> {
    let reviews = job
        .gh
        .reviews(job.repo(), pr.number)
        .await
        .map_err(|e| format!("can't read PR #{}'s reviews (fails closed): {e}", pr.number))?;
    let inputs = quorum::review_inputs(
        &reviews,
        &job.keys,
        &job.repo().to_string(),
        pr.number,
        cr.expires_at,
    );
    let people = people::at_merge(job, policy, pr.merged_at.unwrap_or_else(Utc::now)).await?;
    quorum::check_quorum(
        policy,
        people.as_ref(),
        cr,
        pr,
        &inputs,
        check.requirement.as_ref(),
        Utc::now(),
    )
}
