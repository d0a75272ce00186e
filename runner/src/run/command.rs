//! Running one verified change: its credentials, then terraform, kubectl or the deploy.

use std::time::Instant;

use slipway_core::change::ChangeRequest;
use slipway_core::command::{Family, Target};

use super::{Ctx, lock};
use crate::apply::{Execution, Runner};
use crate::credentials::{self, Granted};
use crate::verify::PolicyCheck;

type Place<'a> = (
    Option<String>,
    Option<(String, &'a crate::config::ClusterConfig)>,
);

/// The role and the cluster a change runs with: the signed execution target, mapped to
/// credentials by the runner's own configuration. Nothing in the merged commit can move it.
fn where_to_run<'a>(
    ctx: &'a Ctx,
    cr: &ChangeRequest,
    check: &PolicyCheck,
) -> Result<Place<'a>, String> {
    let exec = cr.execution.as_ref().ok_or(
        "the change request signs no execution target (it was made by an older bridge); request it again",
    )?;
    let cluster = |alias: &str| {
        ctx.cfg
            .clusters
            .get(alias)
            .map(|c| (c.role_arn.clone(), Some((alias.to_string(), c))))
            .ok_or_else(|| {
                format!(
                    "cluster `{alias}` has no credentials in the runner config (clusters.{alias})"
                )
            })
    };
    match (&cr.command.family, &check.target) {
        (Family::Tf, Target::Stack { stack }) if exec.stack.as_deref() == Some(stack.as_str()) => {
            Ok((
                ctx.cfg.stacks.get(stack).and_then(|s| s.role_arn.clone()),
                None,
            ))
        }
        (
            Family::Kubectl,
            Target::Cluster {
                cluster: Some(alias),
                ..
            },
        ) if exec.cluster.as_deref() == Some(alias.as_str()) => cluster(alias),
        (Family::Deploy, Target::Service { .. }) => {
            let alias = exec
                .cluster
                .as_deref()
                .ok_or("the change request signs no cluster for this deploy")?;
            cluster(alias)
        }
        (Family::Tf | Family::Kubectl, target) => Err(format!(
            "the signed execution target ({exec:?}) is not {}",
            target.describe()
        )),
        (family, target) => Err(format!(
            "a {} change on {} can't be executed by this runner",
            family.as_str(),
            target.describe()
        )),
    }
}

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
    let (role, cluster) = match where_to_run(ctx, cr, check) {
        Ok(w) => w,
        Err(e) => return (Granted::default(), Err(format!("{e}; nothing was changed"))),
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
        (Family::Kubectl | Family::Deploy, Some((alias, c))) => {
            let built = crate::kubeconfig::build(&alias, c, &ctx.env.workspace, &scratch, &|k| {
                std::env::var(k).ok()
            });
            match built {
                Err(e) => Err(format!("{e}; nothing was changed")),
                Ok(kube) if cr.command.family == Family::Kubectl => {
                    Ok(runner.kubectl(cr, &kube, &ctx.env.workspace).await)
                }
                Ok(kube) => {
                    let dir = cr.command.argv.last().cloned().unwrap_or_default();
                    Ok(runner
                        .deploy(
                            cr,
                            ctx.cfg.deploy.command.as_deref(),
                            &kube,
                            &dir,
                            &ctx.env.workspace,
                        )
                        .await)
                }
            }
        }
        _ => Err("nothing to run".to_string()),
    };
    (granted, execution)
}
