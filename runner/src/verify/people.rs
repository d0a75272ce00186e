//! The identity snapshot in force at the merge, when the policy takes people from an identity
//! provider: the newest signed snapshot on `slipway/identities` generated at or before the merge,
//! and not older than [`MAX_AGE`] (the bridge signs a new one at least every few hours, so an
//! old one can't be put back to revive a leaver).

use chrono::{DateTime, Utc};
use slipway_core::change::people::{SNAPSHOT_BRANCH, SNAPSHOT_FILE, Snapshot, in_force_at};
use slipway_core::policy::Policy;
use slipway_core::policy::model::ProviderKind;

use crate::job::Job;

/// How old the snapshot in force may be at the merge.
pub const MAX_AGE_HOURS: i64 = 24;

/// `None` when the policy lists everyone itself (`provider: static`).
pub async fn at_merge(
    job: &Job,
    policy: &Policy,
    merged_at: DateTime<Utc>,
) -> Result<Option<Snapshot>, String> {
    if policy.provider() == ProviderKind::Static {
        return Ok(None);
    }
    let repo = job.repo();
    let shas = job
        .gh
        .branch_commits(repo, SNAPSHOT_BRANCH)
        .await
        .map_err(|e| {
            format!("can't list the identity snapshots on `{SNAPSHOT_BRANCH}` (fails closed): {e}")
        })?;
    let mut verified = Vec::new();
    for sha in shas {
        let Some(text) = job
            .gh
            .file_at(repo, SNAPSHOT_FILE, &sha)
            .await
            .map_err(|e| {
                format!("can't read the identity snapshot at {sha} (fails closed): {e}")
            })?
        else {
            continue;
        };
        // Only snapshots the bridge signed count; anything else on the branch is ignored.
        let Ok(snapshot) = Snapshot::from_json(&text) else {
            continue;
        };
        if snapshot.verify(&job.keys).is_err() {
            continue;
        }
        let before_merge = snapshot.generated_at <= merged_at;
        verified.push(snapshot);
        if before_merge {
            break;
        }
    }
    in_force_at(&verified, merged_at, chrono::Duration::hours(MAX_AGE_HOURS))
        .cloned()
        .map(Some)
        .map_err(|e| format!("the quorum can't be judged: {e}"))
}
