//! Where a change runs: the signed execution target, mapped to a role and a cluster by the
//! runner's own configuration. Nothing in the merged commit can move it.

use slipway_core::change::ChangeRequest;
use slipway_core::command::{Family, Target};

use crate::config::ClusterConfig;
use crate::job::Job;
use crate::verify::PolicyCheck;

/// The role to assume (if any) and the cluster (alias and config) a change runs with.
#[derive(Debug)]
pub struct Place<'a> {
    pub role: Option<String>,
    /// The Google service account to impersonate (a GCP stack, a GKE cluster).
    pub google: Option<String>,
    pub cluster: Option<(String, &'a ClusterConfig)>,
}

/// The place of a change whose signed execution target agrees with the policy's target.
pub fn where_to_run<'a>(
    job: &'a Job,
    cr: &ChangeRequest,
    check: &PolicyCheck,
) -> Result<Place<'a>, String> {
    let exec = cr.execution.as_ref().ok_or(
        "the change request signs no execution target (it was made by an older bridge); request it again",
    )?;
    let cluster = |alias: &str| {
        job.cfg
            .clusters
            .get(alias)
            .map(|c| Place {
                role: c.role_arn.clone(),
                google: c.gcp_service_account.clone(),
                cluster: Some((alias.to_string(), c)),
            })
            .ok_or_else(|| {
                format!(
                    "cluster `{alias}` has no credentials in the runner config (clusters.{alias})"
                )
            })
    };
    match (&cr.command.family, &check.target) {
        (Family::Tf, Target::Stack { stack }) if exec.stack.as_deref() == Some(stack.as_str()) => {
            let config = job.cfg.stacks.get(stack);
            Ok(Place {
                role: config.and_then(|s| s.role_arn.clone()),
                google: config.and_then(|s| s.gcp_service_account.clone()),
                cluster: None,
            })
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
