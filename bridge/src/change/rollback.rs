//! Roll backs (`--rollback-of <PR>`, which the Roll back button types): the failed deploy is
//! checked with GitHub and the repository, never taken from the request. Only a roll back that
//! redeploys exactly the version before the failed change gets the policy's
//! `rollback_approvers`; anything else is refused.
//!
//! The PR must be merged, the configured runner login must have reported the failed rollout on
//! it, its change request must verify at the merge commit, and the version is read from the
//! GitOps repository at the merge's first parent.

use git2::Oid;
use serde::Deserialize;
use slipway_core::command::deploy::Deploy;
use slipway_core::command::{Command, ParsedCommand, parse};
use slipway_core::policy::{Decision, Policy};

use super::ChangeService;
use super::pending::Pending;
use crate::error::Failure;

/// What the runner's report carries when the rollout failed.
pub const FAILED_MARKER: &str = "<!-- slipway-rollout:failed -->";

/// What a rollback goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub deploy: Deploy,
    /// The failed change's id.
    pub failed: String,
    pub merge_sha: String,
}

/// A roll back's decision: the approval lowered to the rules' `rollback_approvers`. Whether it
/// is a genuine roll back is checked before anything is rendered ([`ChangeService::vouch`]).
pub(crate) fn lowered<'a>(
    policy: &Policy,
    parsed: &ParsedCommand,
    mut d: Decision<'a>,
) -> Decision<'a> {
    if parsed.rollback_of.is_some()
        && let Some(a) = d.approval.take()
    {
        d.approval = Some(policy.rollback_requirement(&a));
    }
    d
}

impl ChangeService {
    /// A pending change that says it rolls back PR `n` must redeploy exactly what was there
    /// before that PR, for the same service and environment.
    pub(super) async fn vouch(&self, p: &Pending) -> Result<(), Failure> {
        let Ok(parsed) = parse("/deploy", p.text.trim_start_matches("/deploy").trim()) else {
            return Ok(());
        };
        let (Some(number), Command::Deploy(asked)) = (parsed.rollback_of, &p.command) else {
            return Ok(());
        };
        let t = self.rollback_target(number).await.map_err(Failure::user)?;
        if t.deploy.service != asked.service
            || t.deploy.env != asked.env
            || t.deploy.version != asked.version
        {
            return Err(Failure::user(format!(
                "this is not a roll back of PR #{number}: that PR deployed {} to {}, and the \
                 version before it is `{}`. Use the Roll back button, or leave out `--rollback-of`.",
                t.deploy.service,
                t.deploy.env,
                t.deploy.version.unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// The checks, and the version before the failed change.
    pub(crate) async fn rollback_target(&self, number: u64) -> Result<Target, String> {
        let (pr, merge_sha) = self.failed_merge(number).await?;
        let cr = self.merged_change(&pr).await.map_err(|e| {
            format!("PR #{number}'s change request doesn't verify, so it can't be rolled back: {e}")
        })?;
        let not_deploy = || format!("PR #{number} is not a `/deploy`: only deploys roll back.");
        let text = cr.command.text.trim_start_matches("/deploy").trim();
        let parsed = parse("/deploy", text).map_err(|_| not_deploy())?;
        let Command::Deploy(mut deploy) = parsed.command else {
            return Err(not_deploy());
        };
        let image = self
            .cfg
            .services
            .get(&deploy.service)
            .map(|s| s.image.clone())
            .ok_or_else(|| format!("service `{}` is no longer configured.", deploy.service))?;
        deploy.version = Some(previous_version(self, &merge_sha, &deploy, &image).await?);
        Ok(Target {
            deploy,
            failed: cr.id,
            merge_sha,
        })
    }

    /// PR `number`, merged, with the runner's own report of a failed rollout; and its merge.
    async fn failed_merge(
        &self,
        number: u64,
    ) -> Result<(slipway_infra::github::Pr, String), String> {
        let (repo, gh) = (&self.cfg.repo, self.gh());
        let unanswered = |_| format!("GitHub didn't answer about PR #{number}; try again shortly.");
        let pr = gh.get_pr(repo, number).await.map_err(unanswered)?;
        let merge_sha = pr
            .merge_commit_sha
            .clone()
            .filter(|_| pr.merged)
            .ok_or_else(|| {
                format!("PR #{number} was not merged, so there is nothing to roll back.")
            })?;
        let comments = gh.comments(repo, number).await.map_err(unanswered)?;
        let reported = comments.iter().any(|c| {
            c.author.eq_ignore_ascii_case(&self.cfg.runner_login) && c.body.contains(FAILED_MARKER)
        });
        if !reported {
            return Err(format!(
                "The runner has not reported a failed rollout on PR #{number}, so Slipway offers \
                 no roll back there. Use `/deploy` with the version you want."
            ));
        }
        Ok((pr, merge_sha))
    }
}

#[derive(Deserialize)]
struct Kustomization {
    #[serde(default)]
    images: Vec<ImageEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageEntry {
    name: String,
    new_tag: Option<String>,
    digest: Option<String>,
}

/// The image's digest (else its tag) in the service's kustomization at the merge's first
/// parent.
async fn previous_version(
    svc: &ChangeService,
    merge_sha: &str,
    d: &Deploy,
    image: &str,
) -> Result<String, String> {
    let path = format!("{}/kustomization.yaml", d.manifest_dir());
    let merge = Oid::from_str(merge_sha).map_err(|_| "the merge commit id is malformed")?;
    let creds = svc
        .git_credentials()
        .await
        .map_err(|_| "GitHub didn't give Slipway a token to read the repository; try again.")?;
    let mirror = svc.mirror.clone();
    let read = tokio::task::spawn_blocking(move || {
        let m = slipway_infra::sync::lock(&mirror);
        m.fetch(Some(&creds))?;
        let parent = m.first_parent(merge)?;
        m.read_file(parent, &path)
    })
    .await
    .map_err(|_| "reading the GitOps repository failed")?
    .map_err(|e| format!("reading the GitOps repository failed: {e}"))?;
    let before = read.ok_or_else(|| {
        format!(
            "{} {} had no kustomization before this change: there is no earlier version to go \
             back to.",
            d.service, d.env
        )
    })?;
    let k: Kustomization = serde_saphyr::from_str(&String::from_utf8_lossy(&before)).map_err(
        |_| "the earlier kustomization doesn't parse, so Slipway can't tell the version",
    )?;
    k.images
        .into_iter()
        .find(|i| i.name == image)
        .and_then(|i| i.digest.or(i.new_tag))
        .ok_or_else(|| {
            format!("the earlier kustomization pins no version of {image} to go back to.")
        })
}
