//! The Roll back button under a runner report of a failed rollout. A click becomes an ordinary
//! `/deploy <service> <env> <previous version> --apply` made by the clicker: the same policy,
//! approvals and audit as a typed command, so the button grants nobody anything.
//!
//! Nothing in the click is trusted beyond the PR number: the PR must be merged, the configured
//! runner login must have reported the failed rollout on it, its change request must verify
//! (signature, files), and the version to go back to is read from the GitOps repository at the
//! merge's first parent, the state before the failed change.

use std::sync::Arc;

use git2::Oid;
use serde::Deserialize;
use slipway_core::audit::{Actor, AuditRecord, EventKind, PullRequest};
use slipway_core::command::deploy::Deploy;
use slipway_core::command::{Command, parse};

use super::AppState;
use crate::change::ChangeService;
use crate::slack::events::{BlockAction, SlashCommand};

/// The button's action id.
pub const ACTION: &str = "slipway_rollback";

/// What the runner's report carries when the rollout failed.
pub const FAILED_MARKER: &str = "<!-- slipway-rollout:failed -->";

/// The Roll back button for PR `number`'s failed rollout.
pub fn button(number: u64) -> serde_json::Value {
    serde_json::json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "action_id": ACTION,
            "style": "danger",
            "text": { "type": "plain_text", "text": "Roll back" },
            "value": number.to_string(),
        }],
    })
}

/// What a rollback goes back to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    deploy: Deploy,
    /// The failed change's id.
    failed: String,
    merge_sha: String,
}

/// A click: checks, the rollback record, then the `/deploy` as the clicker. The reply goes to
/// the clicker only.
pub async fn clicked(state: &AppState, svc: &Arc<ChangeService>, action: &BlockAction) -> String {
    let Ok(number) = action.value.parse::<u64>() else {
        return ":no_entry: That Roll back button is malformed.".into();
    };
    let target = match target(svc, number).await {
        Ok(t) => t,
        Err(why) => return format!(":no_entry: {why}"),
    };
    if state
        .record(record(state, svc, action, number, &target), "the roll back")
        .await
        .is_err()
    {
        return format!(
            "Slipway can't write its audit trail right now, so nothing was rolled back. Please \
             tell {}.",
            state.policy().support()
        );
    }
    let d = &target.deploy;
    let version = d.version.clone().unwrap_or_default();
    let cmd = SlashCommand {
        command: "/deploy".into(),
        text: format!("{} {} {version} --apply", d.service, d.env),
        user: action.user.clone(),
        user_name: String::new(),
        channel_id: action.channel_id.clone().unwrap_or_default(),
        response_url: action.response_url.clone().unwrap_or_default(),
        trigger_id: action.trigger_id.clone(),
    };
    match super::commands::handle(state, cmd, None).await {
        Ok(reply) => reply
            .0
            .get("text")
            .and_then(serde_json::Value::as_str)
            .map_or_else(
                || "The roll back was asked for.".to_string(),
                |t| format!("Rolling {} in {} back to {version}: {t}", d.service, d.env),
            ),
        Err(_) => "That click was already handled.".into(),
    }
}

fn record(
    state: &AppState,
    svc: &ChangeService,
    action: &BlockAction,
    number: u64,
    t: &Target,
) -> AuditRecord {
    AuditRecord::new(EventKind::Rollback, state.ids.next(), state.clock.now())
        .with_actor(Actor {
            slack_user_id: Some(action.user.user_id.clone()),
            ..Actor::default()
        })
        .with_change_id(t.failed.clone())
        .with_pr(PullRequest {
            repo: svc.cfg.repo.to_string(),
            number,
            head_sha: None,
            merge_sha: Some(t.merge_sha.clone()),
        })
        .with_details(serde_json::json!({
            "service": t.deploy.service,
            "env": t.deploy.env,
            "to_version": t.deploy.version,
        }))
}

/// The checks, and the version before the failed change.
async fn target(svc: &ChangeService, number: u64) -> Result<Target, String> {
    let repo = &svc.cfg.repo;
    let gh = svc.gh();
    let pr = gh
        .get_pr(repo, number)
        .await
        .map_err(|_| format!("GitHub didn't answer about PR #{number}; try again shortly."))?;
    let merge_sha = pr
        .merge_commit_sha
        .clone()
        .filter(|_| pr.merged)
        .ok_or_else(|| format!("PR #{number} was not merged, so there is nothing to roll back."))?;
    let comments = gh
        .comments(repo, number)
        .await
        .map_err(|_| format!("GitHub didn't answer about PR #{number}; try again shortly."))?;
    let reported = comments.iter().any(|c| {
        c.author.eq_ignore_ascii_case(&svc.cfg.runner_login) && c.body.contains(FAILED_MARKER)
    });
    if !reported {
        return Err(format!(
            "The runner has not reported a failed rollout on PR #{number}, so Slipway offers no \
             roll back there. Use `/deploy` with the version you want."
        ));
    }
    let cr = svc.merged_change(&pr).await.map_err(|e| {
        format!("PR #{number}'s change request doesn't verify, so it can't be rolled back: {e}")
    })?;
    let text = cr.command.text.trim_start_matches("/deploy").trim();
    let Ok(parsed) = parse("/deploy", text) else {
        return Err(format!(
            "PR #{number} is not a `/deploy`: only deploys roll back from here."
        ));
    };
    let Command::Deploy(mut deploy) = parsed.command else {
        return Err(format!(
            "PR #{number} is not a `/deploy`: only deploys roll back from here."
        ));
    };
    let image = svc
        .cfg
        .services
        .get(&deploy.service)
        .map(|s| s.image.clone())
        .ok_or_else(|| format!("service `{}` is no longer configured.", deploy.service))?;
    deploy.version = Some(previous_version(svc, &merge_sha, &deploy, &image).await?);
    Ok(Target {
        deploy,
        failed: cr.id,
        merge_sha,
    })
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
