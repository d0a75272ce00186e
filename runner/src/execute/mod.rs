//! Phase two: run a verified change. First the claim (the PR's "starting" comment, so a re-run
//! can tell, and the start's audit record: nothing runs before both), then credentials for the
//! signed execution target, then terraform, kubectl or the deploy through [`tools`].

mod place;
mod rollout;
mod tools;

use std::time::Instant;

use serde_json::json;
use slipway_core::change::ChangeRequest;
use slipway_core::command::{Family, Target};
use slipway_infra::sync::lock;

use crate::credentials::{self, Granted};
use crate::job::{Job, Subject};
use crate::outcome::{Ended, Outcome, Ran};
use crate::report::{self, comment};
use crate::verify::{PolicyCheck, Verified};
use place::{Place, where_to_run};
use tools::Runner;

/// Execute one verified change; how it ended, for `report`.
pub async fn execute(job: &Job, subject: &Subject<'_>, v: &Verified) -> Ended {
    let approvals = v.quorum.approvals.clone();
    if let Err(why) = claim(job, subject, v).await {
        return Ended::before_running(Outcome::Failed(why), approvals);
    }
    let (granted, ran) = run(job, &v.cr, &v.check).await;
    Ended {
        outcome: match &ran {
            Ok(ran) => Outcome::from_verdict(&ran.verdict),
            Err(why) => Outcome::Failed(why.clone()),
        },
        ran: ran.ok(),
        approvals,
        granted,
        audit_only: false,
    }
}

/// Nothing runs before the PR says so (so a re-run can tell) and the audit has it on disk.
async fn claim(job: &Job, subject: &Subject<'_>, v: &Verified) -> Result<(), String> {
    let (cr, pr) = (&v.cr, &v.pr);
    let started_body = comment::started_body(cr, &job.env.run_url(), &job.env.sha);
    if let Err(e) = job.gh.comment(job.repo(), pr.number, &started_body).await {
        return Err(format!(
            "can't comment on PR #{} to record the start, so a re-run couldn't tell it ran: nothing was done: {e}",
            pr.number
        ));
    }
    let description = format!("{}: executing", cr.id);
    let _ = job
        .gh
        .set_status(
            job.repo(),
            &job.env.sha,
            "pending",
            comment::STATUS_CONTEXT,
            &description,
            Some(&job.env.run_url()),
        )
        .await;
    let details = json!({"decision_rule": v.check.rule, "decision": v.check.reason, "workflow_ref": job.env.workflow_ref});
    report::record(
        job,
        subject,
        &Outcome::Started,
        None,
        &v.quorum.approvals,
        &details,
    )
    .await
    .map_err(|e| format!("the audit spool refused the start record, so nothing was done: {e}"))
}

/// Credentials, then the command. `Err` is a failure before anything ran.
async fn run(job: &Job, cr: &ChangeRequest, check: &PolicyCheck) -> (Granted, Result<Ran, String>) {
    let scratch = job.scratch.path().join(&cr.id);
    if let Err(e) = std::fs::create_dir_all(scratch.join("home")) {
        return (
            Granted::default(),
            Err(format!("creating {}: {e}", scratch.display())),
        );
    }
    let Place {
        role,
        google,
        cluster,
    } = match where_to_run(job, cr, check) {
        Ok(w) => w,
        Err(e) => return (Granted::default(), Err(format!("{e}; nothing was changed"))),
    };
    let (mut granted, gcp) = match grant(job, cr, role.as_deref(), google.as_deref()).await {
        Ok(g) => g,
        Err(e) => {
            let e = e.trim_end_matches('.');
            let why = format!("no credentials: {e}; nothing was changed");
            return (Granted::default(), Err(why));
        }
    };
    if let (Family::Tf, Some(g)) = (&cr.command.family, &gcp) {
        granted.env.extend(g.terraform_env());
    }
    let google_token = gcp.as_ref().map(|g| g.token.token.clone());
    let runner = Runner {
        tools: &job.cfg.tools,
        scratch,
        deadline: Instant::now() + check.timeout,
        timeout: check.timeout,
        output_cap: check.output_cap,
        extra_env: granted.env.clone(),
    };
    let ran = match (&cr.command.family, cluster) {
        (Family::Tf, _) => terraform(job, cr, check, &runner).await,
        (Family::Kubectl | Family::Deploy, Some((alias, c))) => {
            kube(job, cr, &runner, &alias, c, google_token.as_deref()).await
        }
        _ => Err("nothing to run".to_string()),
    };
    (granted, ran)
}

/// The change's cloud credentials: an AWS role session and, for a GCP stack or a GKE cluster,
/// a Google token by Workload Identity Federation.
async fn grant(
    job: &Job,
    cr: &ChangeRequest,
    role: Option<&str>,
    google: Option<&str>,
) -> Result<(Granted, Option<credentials::gcp::GcpGrant>), String> {
    let session = format!("slipway-{}", cr.id);
    let (aws, branch) = (&job.aws, &job.default_branch);
    let mut granted =
        credentials::for_role(aws, &job.cfg, &job.region, role, &session, branch).await?;
    let now = chrono::Utc::now().timestamp();
    let request = job.env.id_token_request.as_ref();
    let gcp = credentials::gcp::for_account(request, &job.cfg, google, branch, now).await?;
    if let Some(g) = &gcp {
        granted.google_account = Some(g.service_account.clone());
        granted.claims.get_or_insert_with(|| g.claims.clone());
    }
    Ok((granted, gcp))
}

/// terraform, in a fresh export of the merged commit that holds only the change's own stack.
async fn terraform(
    job: &Job,
    cr: &ChangeRequest,
    check: &PolicyCheck,
    runner: &Runner<'_>,
) -> Result<Ran, String> {
    let stack = match &check.target {
        Target::Stack { stack } => stack.clone(),
        _ => String::new(),
    };
    let stack_dir = format!("stacks/{stack}");
    if cr.rendered.stack_dir.as_deref() != Some(stack_dir.as_str()) {
        return Err(format!(
            "the change's stack_dir {:?} is not `{stack_dir}`; nothing was changed",
            cr.rendered.stack_dir
        ));
    }
    let export = runner.scratch.join("tree");
    let prefix = format!("{stack_dir}/");
    lock(&job.mirror)
        .export_filtered(job.merge, &export, |p| {
            !p.starts_with("stacks/") || p.starts_with(&prefix)
        })
        .map_err(|e| {
            format!("exporting {stack_dir} from the merged commit: {e}; nothing was changed")
        })?;
    Ok(runner.terraform(cr, &export, &stack_dir).await)
}

/// kubectl or a deploy, with the kubeconfig the runner builds for the signed cluster.
async fn kube(
    job: &Job,
    cr: &ChangeRequest,
    runner: &Runner<'_>,
    alias: &str,
    cluster: &crate::config::ClusterConfig,
    google: Option<&str>,
) -> Result<Ran, String> {
    let env = |k: &str| std::env::var(k).ok();
    let (workspace, scratch) = (&job.env.workspace, &runner.scratch);
    let kube = crate::kubeconfig::build(alias, cluster, workspace, scratch, &env, google)
        .map_err(|e| format!("{e}; nothing was changed"))?;
    if cr.command.family == Family::Kubectl {
        return Ok(runner.kubectl(cr, &kube, &job.env.workspace).await);
    }
    let dir = cr.command.argv.last().cloned().unwrap_or_default();
    let command = job.cfg.deploy.command.as_deref();
    let mut ran = runner
        .deploy(cr, command, &kube, &dir, &job.env.workspace)
        .await;
    if ran.verdict == crate::outcome::Verdict::Done {
        let timeout = job.cfg.deploy.rollout_timeout();
        rollout::wait(runner, &kube, &dir, &job.env.workspace, timeout, &mut ran).await;
    }
    Ok(ran)
}
