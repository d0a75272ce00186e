//! `slipway-runner execute`: open the job, then verify → execute → report each change the merge
//! added, then the job summary and the audit flush. This module only sequences the phases.

use std::fmt::Write as _;

use slipway_infra::github::Pr;

use crate::credentials::{self, Granted};
use crate::job::{self, Change, Job, Options, Subject};
use crate::outcome::Outcome;
use crate::{audit, execute, report, verify};

/// The whole job; the exit code.
pub async fn execute(opts: Options) -> u8 {
    let (job, changes) = match job::open(&opts).await {
        Ok(opened) => opened,
        Err(early) => return early.exit(),
    };
    let pulls = job
        .gh
        .pulls_for_commit(job.repo(), &job.env.sha)
        .await
        .map_err(|e| {
            format!(
                "can't ask GitHub which PR merged {} (fails closed): {e}",
                job.env.sha
            )
        });
    let newest = job::newest_per_pr(&job, &changes, pulls.as_deref().unwrap_or_default());
    let mut code = 0;
    // A re-run that found every change already handled did nothing worth a PR comment: its
    // records still reach S3.
    let mut acted = false;
    let mut summary = String::from("## slipway-runner\n\n");
    for (change, superseded_by) in changes.iter().zip(newest) {
        let outcome = one(&job, change, pulls.as_deref(), superseded_by).await;
        let reason = outcome
            .reason()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        println!(
            "slipway-runner: {}: {}{reason}",
            change.path,
            outcome.word()
        );
        let _ = writeln!(
            summary,
            "- `{}`: **{}**{reason}",
            change.path,
            outcome.word()
        );
        if !outcome.ok() {
            code = 1;
        }
        acted |= !matches!(outcome, Outcome::AlreadyDone(_));
    }
    write_summary(&job, &summary);
    if !flush_audit(&job).await {
        code = 1;
    }
    if acted {
        report::evidence::post(&job, pulls.as_deref().unwrap_or_default()).await;
    }
    code
}

/// One change: verify → execute → report.
async fn one(
    job: &Job,
    change: &Change,
    pulls: Result<&[Pr], &String>,
    superseded_by: Option<String>,
) -> Outcome {
    let subject = Subject::locate(job, change, pulls.ok());
    let ended =
        match verify::verify(job, &subject, pulls.map_err(Clone::clone), superseded_by).await {
            Ok(verified) => execute::execute(job, &subject, &verified).await,
            Err(ended) => ended,
        };
    report::report(job, &subject, ended).await
}

/// Append the summary to the job's page (`GITHUB_STEP_SUMMARY`), if Actions gave one.
fn write_summary(job: &Job, summary: &str) {
    use std::io::Write as _;
    if let Some(path) = &job.env.step_summary
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
    {
        let _ = f.write_all(summary.as_bytes());
    }
}

/// Mirror the job's audit records to S3 before the machine goes away; `false` if that failed.
async fn flush_audit(job: &Job) -> bool {
    let Some(s3) = &job.cfg.audit.s3 else {
        println!(
            "slipway-runner: audit records are in {} (no audit.s3 configured: upload that directory, or configure the S3 mirror)",
            job.spool.display()
        );
        return true;
    };
    let creds = match credentials::for_role(
        &job.aws,
        &job.cfg,
        &job.region,
        s3.role_arn.as_deref(),
        &format!("slipway-audit-{}", job.env.run_id),
        &job.default_branch,
    )
    .await
    {
        Ok(g) => sdk_credentials(&g),
        Err(e) => {
            eprintln!("slipway-runner: audit mirror credentials: {e}");
            return false;
        }
    };
    match audit::flush(&job.audit, s3, creds).await {
        Ok(n) => {
            println!(
                "slipway-runner: {n} audit record(s) mirrored to s3://{}",
                s3.bucket
            );
            true
        }
        Err(e) => {
            eprintln!("slipway-runner: {e}");
            false
        }
    }
}

/// An assumed role's credentials for the S3 client (`None`: the SDK's default chain).
fn sdk_credentials(g: &Granted) -> Option<aws_sdk_s3::config::Credentials> {
    let get = |k: &str| g.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    g.assumed_role.as_ref()?;
    Some(aws_sdk_s3::config::Credentials::new(
        get("AWS_ACCESS_KEY_ID")?,
        get("AWS_SECRET_ACCESS_KEY")?,
        get("AWS_SESSION_TOKEN"),
        None,
        "slipway-runner-sts",
    ))
}
