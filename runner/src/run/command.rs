//! Running one verified change: its credentials, then terraform, kubectl or the deploy.

use std::time::Instant;

use slipway_core::change::ChangeRequest;
use slipway_core::command::{Family, Target};

use super::{Ctx, lock};
use crate::apply::{Execution, Runner};
use crate::credentials::{self, Granted};
use crate::verify::PolicyCheck;

/// Credentials, then the command. `Err` is a failure before anything ran.
pub(super) async fn run_change(
    ctx: &Ctx,
    cr: &ChangeRequest,
    check: &PolicyCheck,
) -> (Granted, Result<Execution, String>) {
    let scratch = ctx.scratch.path().join(&cr.id);
    if let Err(e) = std::fs::create_dir_all(scratch.join("home")) {
        return (
            Granted::default(),
            Err(format!("creating {}: {e}", scratch.display())),
        );
    }
    let session = format!("slipway-{}", cr.id);
    let (role, cluster) = match (&cr.command.family, &check.target) {
        (Family::Tf, Target::Stack { stack }) => (
            ctx.cfg.stacks.get(stack).and_then(|s| s.role_arn.clone()),
            None,
        ),
        (
            Family::Kubectl,
            Target::Cluster {
                cluster: Some(alias),
                ..
            },
        ) => match ctx.cfg.clusters.get(alias) {
            Some(c) => (c.role_arn.clone(), Some((alias.clone(), c))),
            None => {
                return (
                    Granted::default(),
                    Err(format!(
                        "cluster `{alias}` has no credentials in the runner config (clusters.{alias}.kubeconfig); nothing was changed"
                    )),
                );
            }
        },
        (Family::Deploy, Target::Service { env, .. }) => {
            let Some(alias) = ctx
                .policy
                .as_ref()
                .ok()
                .and_then(|p| p.env_cluster(env))
                .map(String::from)
            else {
                return (
                    Granted::default(),
                    Err(format!(
                        "the policy maps environment `{env}` to no cluster; nothing was changed"
                    )),
                );
            };
            match ctx.cfg.clusters.get(&alias) {
                Some(c) => (c.role_arn.clone(), Some((alias, c))),
                None => {
                    return (
                        Granted::default(),
                        Err(format!(
                            "cluster `{alias}` (environment {env}) has no credentials in the runner config (clusters.{alias}.kubeconfig); nothing was changed"
                        )),
                    );
                }
            }
        }
        (family, target) => {
            return (
                Granted::default(),
                Err(format!(
                    "a {} change on {} can't be executed by this runner; nothing was changed",
                    family.as_str(),
                    target.describe()
                )),
            );
        }
    };
    let granted = match credentials::for_role(
        &ctx.aws,
        &ctx.cfg,
        &ctx.region,
        role.as_deref(),
        &session,
        &ctx.default_branch,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => {
            return (
                Granted::default(),
                Err(format!("no credentials: {e}; nothing was changed")),
            );
        }
    };
    let runner = Runner {
        tools: &ctx.cfg.tools,
        scratch: scratch.clone(),
        deadline: Instant::now() + check.timeout,
        timeout: check.timeout,
        output_cap: check.output_cap,
        extra_env: granted.env.clone(),
    };
    let execution = match (&cr.command.family, cluster) {
        (Family::Tf, _) => {
            let stack = match &check.target {
                Target::Stack { stack } => stack.clone(),
                _ => String::new(),
            };
            let stack_dir = format!("stacks/{stack}");
            if cr.rendered.stack_dir.as_deref() != Some(stack_dir.as_str()) {
                return (
                    granted,
                    Err(format!(
                        "the change's stack_dir {:?} is not `{stack_dir}`; nothing was changed",
                        cr.rendered.stack_dir
                    )),
                );
            }
            let export = scratch.join("tree");
            let exported = {
                let m = lock(&ctx.mirror);
                let prefix = format!("{stack_dir}/");
                m.export_filtered(ctx.merge, &export, |p| {
                    !p.starts_with("stacks/") || p.starts_with(&prefix)
                })
            };
            if let Err(e) = exported {
                return (
                    granted,
                    Err(format!(
                        "exporting {stack_dir} from the merged commit: {e}; nothing was changed"
                    )),
                );
            }
            Ok(runner.terraform(cr, &export, &stack_dir).await)
        }
        (Family::Kubectl, Some((alias, c))) => {
            Ok(runner.kubectl(cr, &alias, c, &ctx.env.workspace).await)
        }
        (Family::Deploy, Some((alias, c))) => {
            let dir = cr.command.argv.last().cloned().unwrap_or_default();
            Ok(runner
                .deploy(
                    cr,
                    ctx.cfg.deploy.command.as_deref(),
                    &alias,
                    c,
                    &dir,
                    &ctx.env.workspace,
                )
                .await)
        }
        _ => Err("nothing to run".to_string()),
    };
    (granted, execution)
}
