//! Publishing the signed identity snapshot the runner judges quorums with: the directory's
//! people (subject, linked Slack IDs, GitHub login, groups, active), signed with the
//! change-request key and committed to `slipway/identities` in the GitOps repository. Once at
//! start, again after each change of who people are (debounced), and at least every
//! [`HEARTBEAT`], so the runner can refuse a snapshot older than its bound.

use std::sync::Arc;
use std::time::Duration;

use slipway_core::change::people::{
    SNAPSHOT_BRANCH, SNAPSHOT_FILE, SNAPSHOT_VERSION, Snapshot, SnapshotPerson,
};
use slipway_core::policy::model::ProviderKind;
use slipway_infra::gitops::{Author, FileChange};
use slipway_infra::sync::lock;

use super::ChangeService;
use crate::ctx::{Ctx, CtxInner};
use crate::error::Failure;

/// How often an unchanged snapshot is signed again (the runner accepts one up to 24 h old).
pub const HEARTBEAT: Duration = Duration::from_secs(6 * 3600);

/// Changes arriving together (a SCIM push of a group) make one snapshot.
const DEBOUNCE: Duration = Duration::from_secs(1);

impl ChangeService {
    /// The publisher task; it ends with the context.
    pub fn start_people_publisher(self: &Arc<Self>, ctx: &Ctx) {
        let (svc, weak, changed) = (self.clone(), ctx.downgrade(), ctx.people.changes());
        tokio::spawn(async move {
            loop {
                let Some(ctx) = Ctx::upgrade(&weak) else {
                    return;
                };
                // One replica publishes the snapshot, under a fence checked just before.
                if ctx.leader.lead().await.is_some()
                    && let Err(e) = svc.publish_people(&ctx).await
                {
                    e.log("identity-snapshot", "publishing the identity snapshot");
                }
                drop(ctx);
                tokio::select! {
                    () = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                    () = tokio::time::sleep(HEARTBEAT) => {}
                }
            }
        });
    }

    /// Commit a new snapshot if the people changed or the last one is due; `true` when pushed.
    pub async fn publish_people(&self, ctx: &CtxInner) -> Result<bool, Failure> {
        let Some((provider, people)) = people_of(ctx)? else {
            return Ok(false);
        };
        let creds = self
            .git_credentials()
            .await
            .map_err(|e| Failure::upstream("Getting a GitHub token", e))?;
        let now = ctx.clock.now();
        let (mirror, key, key_id) = (
            self.mirror.clone(),
            self.signer.get().key.clone(),
            self.signer.get().id.clone(),
        );
        let publishing = "Publishing the identity snapshot";
        tokio::task::spawn_blocking(move || {
            let m = lock(&mirror);
            let head = m.fetch(Some(&creds))?;
            let tip = m.branch(SNAPSHOT_BRANCH)?;
            let last = match tip {
                Some(t) => m.read_file(t, SNAPSHOT_FILE)?,
                None => None,
            };
            let last = last.and_then(|b| Snapshot::from_json(&String::from_utf8_lossy(&b)).ok());
            let fresh = chrono::Duration::from_std(HEARTBEAT).unwrap_or_default();
            if last.is_some_and(|l| {
                l.provider == provider && l.people == people && now - l.generated_at < fresh
            }) {
                return Ok(false);
            }
            let snapshot = Snapshot {
                version: SNAPSHOT_VERSION,
                generated_at: now,
                provider,
                people,
                signature: None,
            }
            .signed(&key, &key_id);
            let author = Author {
                name: "Slipway".into(),
                email: "slipway@users.noreply.github.com".into(),
                unix_time: now.timestamp(),
            };
            let file = FileChange::Upsert {
                path: SNAPSHOT_FILE.into(),
                content: snapshot.to_json().into_bytes(),
            };
            let message = format!("identities: snapshot of {}", now.to_rfc3339());
            let commit = m.commit(tip.unwrap_or(head), &[file], &message, &author)?;
            m.push(commit, SNAPSHOT_BRANCH, false, Some(&creds))?;
            Ok::<_, slipway_infra::gitops::GitError>(true)
        })
        .await
        .map_err(|e| Failure::upstream_error(publishing, &e))?
        .map_err(|e| Failure::upstream_error(publishing, &e))
    }
}

/// The directory's people as the runner needs them, or `None` with `provider: static`.
fn people_of(ctx: &CtxInner) -> Result<Option<(String, Vec<SnapshotPerson>)>, Failure> {
    let policy = ctx.policy();
    if policy.provider() == ProviderKind::Static {
        return Ok(None);
    }
    let entries = crate::identity::listing::list(
        &policy,
        ctx.directory.as_deref(),
        ctx.people.links().as_ref(),
    )
    .map_err(|e| Failure::upstream("Reading the directory", e))?;
    let people = entries
        .into_iter()
        .filter(|e| e.source == policy.provider().as_str())
        .map(|e| SnapshotPerson {
            active: e.active && e.slack_deactivated.is_empty(),
            subject: e.subject,
            slack: e.slack,
            github: e.github,
            groups: e.groups,
        })
        .collect();
    Ok(Some((policy.provider().as_str().to_string(), people)))
}
