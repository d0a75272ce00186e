//! `/tf apply <stack>`: the stack's code must have reached the default branch through a merged
//! PR (not a direct push); then `terraform plan -out` runs with read credentials on a fresh
//! export of the default branch head, and the plan's digest is pinned in the change request.
//! The runner re-plans after merge and refuses on any difference.

use std::time::Duration;

use git2::Oid;
use slipway_core::change::{Rendered, plan_digest, plan_summary};
use slipway_core::redact::redactor;
use slipway_infra::exec::{ExecSpec, run_to_end};

use super::pending::Pending;
use super::{ChangeService, Render};
use crate::ctx::Ctx;
use crate::exec::sandbox;

/// The saved plan's file name in the stack directory (the runner applies this name).
const PLAN_FILE: &str = slipway_core::command::tf::TF_PLAN_FILE;

use slipway_infra::sync::lock;

use crate::error::Failure;

pub async fn render_tf_apply(
    svc: &ChangeService,
    state: &Ctx,
    p: &Pending,
    stack: &str,
    head: Oid,
) -> Result<Render, Failure> {
    let stack_dir = format!("stacks/{stack}");
    let pr_number = merged_stack_pr(svc, stack, &stack_dir, head).await?;
    let (digest, summary, text) = plan_export(svc, state, p, &stack_dir, head).await?;
    let text = redactor().redact(&text);
    let summary = summary.unwrap_or_else(|| "Plan produced no summary line.".into());
    // The commit→PR listing has no `merged_by`; the full PR does.
    let full = svc
        .gh()
        .get_pr(&svc.cfg.repo, pr_number)
        .await
        .map_err(|e| Failure::upstream_error("Reading the stack's pull request", &e))?;
    let merged_by = full.merged_by.clone().unwrap_or_else(|| "unknown".into());
    Ok(Render {
        title: format!("terraform apply {stack} ({summary})"),
        files: Vec::new(),
        rendered: Rendered {
            stack_dir: Some(stack_dir),
            stack_commit: Some(head.to_string()),
            plan_sha256: Some(digest.clone()),
            plan_summary: Some(summary.clone()),
            stack_pr: Some(pr_number),
            stack_merged_by: Some(merged_by.clone()),
            ..Rendered::default()
        },
        details: format!(
            "Stack `{stack}` at `{head}`; its code arrived through PR #{pr_number} merged by {merged_by}.\n\n**{summary}** Plan digest `{digest}` is pinned: the runner re-plans after merge and refuses on any drift.\n\n```text\n{text}\n```",
        ),
        preview: format!("{summary}\n\n{text}"),
        approval: None,
        pinned_image: None,
        object_resources: Vec::new(),
    })
}

/// The number of the merged PR that brought the stack's last change to the default branch.
/// Refuses a stack last changed by a direct push: chat may apply only reviewed code.
async fn merged_stack_pr(
    svc: &ChangeService,
    stack: &str,
    stack_dir: &str,
    head: Oid,
) -> Result<u64, Failure> {
    let reading = "Reading the stack's history";
    let mirror = svc.mirror.clone();
    let dir = stack_dir.to_owned();
    let last = tokio::task::spawn_blocking(move || {
        lock(&mirror)
            .last_commit_touching(head, &dir)
            .map_err(|e| Failure::upstream_error(reading, &e))
    })
    .await
    .map_err(|e| Failure::upstream_error(reading, &e))??
    .ok_or_else(|| {
        Failure::user(format!(
            "stack `{stack}` has no directory `{stack_dir}` on the default branch"
        ))
    })?;
    let short: String = last.to_string().chars().take(7).collect();
    let pulls = svc
        .gh()
        .pulls_for_commit(&svc.cfg.repo, &last.to_string())
        .await
        .map_err(|e| {
            Failure::upstream_error(
                format!("Checking how {short} reached the default branch"),
                &e,
            )
        })?;
    let Some(pr) = pulls
        .into_iter()
        .find(|pr| pr.merged && pr.base_ref == svc.default_branch())
    else {
        return Err(Failure::user(format!(
            "stack `{stack}`'s last change ({short}) reached `{}` by a direct push, not through a merged pull request, so it can't be applied from chat. Land the stack's code through a reviewed PR first.",
            svc.default_branch()
        )));
    };
    Ok(pr.number)
}

/// Plans on a fresh export of the head: the stack plus everything outside `stacks/` (shared
/// modules), so other stacks' code can't influence the plan. The export is removed afterwards.
async fn plan_export(
    svc: &ChangeService,
    state: &Ctx,
    p: &Pending,
    stack_dir: &str,
    head: Oid,
) -> Result<(String, Option<String>, String), Failure> {
    let preparing = "Preparing the plan's working copy";
    let work = state
        .config
        .state_dir
        .join("terraform")
        .join("apply")
        .join(&p.token);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Failure::upstream_error(preparing, &e))?;
    let mirror = svc.mirror.clone();
    let (w2, sd) = (work.clone(), stack_dir.to_owned());
    tokio::task::spawn_blocking(move || {
        lock(&mirror)
            .export_filtered(head, &w2, |path| {
                !path.starts_with("stacks/") || path.starts_with(&format!("{sd}/"))
            })
            .map_err(|e| Failure::upstream_error(preparing, &e))
    })
    .await
    .map_err(|e| Failure::upstream_error(preparing, &e))??;
    let result = plan(state, &work, &work.join(stack_dir)).await;
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The dry run's environment: the bridge's base (which turns off the instance metadata
/// service, so terraform's AWS provider can't fall back to the host's role), terraform's
/// automation settings, and the configured read profile.
fn plan_env(config: &crate::config::Config, rc: &std::path::Path) -> Vec<(String, String)> {
    let mut env = crate::exec::targets::base_env_for(config);
    env.extend([
        ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
        ("TF_INPUT".to_string(), "0".to_string()),
        ("TF_CLI_CONFIG_FILE".to_string(), rc.display().to_string()),
    ]);
    if let Some(profile) = config
        .terraform
        .aws_profile
        .as_deref()
        .and_then(|a| config.aws_profile(a))
    {
        env.push(("AWS_PROFILE".into(), profile.profile.clone()));
        if let Some(f) = &profile.config_file {
            env.push(("AWS_CONFIG_FILE".into(), f.display().to_string()));
        }
        if let Some(f) = &profile.credentials_file {
            env.push((
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                f.display().to_string(),
            ));
        }
    }
    env
}

/// `terraform init`, `plan -out`, `show -json`, with the bridge's CLI config and read
/// credentials. Returns (digest, summary, plan text).
async fn plan(
    state: &Ctx,
    tree: &std::path::Path,
    dir: &std::path::Path,
) -> Result<(String, Option<String>, String), Failure> {
    let rc = crate::exec::terraform::cli_config(&state.config.state_dir)
        .map_err(|e| Failure::upstream("Preparing terraform's configuration", e))?;
    let env = plan_env(&state.config, &rc);
    let access = sandbox::terraform_run(sandbox::terraform(&state.config), tree, &rc, dir);
    let timeout = state.policy().timeout(slipway_core::command::Tier::Change);
    let bin = state.config.terraform.binary.clone();
    let spec = |args: &[&str], output_cap: usize| {
        let spec = ExecSpec {
            argv: std::iter::once(bin.clone())
                .chain(args.iter().map(|a| (*a).to_string()))
                .collect(),
            env: env.clone(),
            cwd: dir.to_path_buf(),
            timeout,
            output_cap,
            kill_grace: Duration::from_secs(5),
        };
        sandbox::wrap(&state.config, spec, &access)
    };
    for step in [
        &["init", "-input=false", "-no-color"][..],
        &[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            &format!("-out={PLAN_FILE}"),
        ],
    ] {
        let r = run_to_end(spec(step, 4 * 1024 * 1024)).await;
        if !r.end.success() {
            let last = r
                .output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .to_string();
            // The tool's own last line, about the requester's stack: theirs to read, redacted.
            return Err(Failure::user(format!(
                "`terraform {}` {}: {}",
                step[0],
                r.end.describe(timeout),
                redactor().redact(&last)
            )));
        }
    }
    let json = run_to_end(spec(&["show", "-json", PLAN_FILE], 64 * 1024 * 1024)).await;
    if !json.end.success() {
        return Err(Failure::user(format!(
            "`terraform show -json` {}",
            json.end.describe(timeout)
        )));
    }
    let digest =
        plan_digest(&json.output).map_err(|e| Failure::upstream("Reading terraform's plan", e))?;
    let text = run_to_end(spec(&["show", "-no-color", PLAN_FILE], 4 * 1024 * 1024)).await;
    let summary = plan_summary(&text.output);
    Ok((digest, summary, text.output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dry_run_never_reaches_the_instance_role() {
        let config = crate::config::Config::load_with(None, &|k| {
            (k == "SLIPWAY_SLACK_SIGNING_SECRET").then(|| "tf-apply-signing-secret".to_string())
        })
        .unwrap();
        let env = plan_env(&config, std::path::Path::new("/tmp/rc"));
        assert!(
            env.iter()
                .any(|(k, v)| k == "AWS_EC2_METADATA_DISABLED" && v == "true"),
            "{env:?}"
        );
        assert!(env.iter().any(|(k, _)| k == "TF_CLI_CONFIG_FILE"));
    }
}
