//! One sync: read the whole directory from Google (users, admin-created groups, each group's
//! members), and only when every page of it arrived, apply it ([`apply`]), mark the sync, and
//! audit it: one `provisioning` record per run with the counts, and one per user the run
//! deactivated or deleted, so a leaver's cut-off is in the trail. A run that fails anywhere
//! before the apply changes nothing; it is logged and counted, and the directory stays as the
//! last good run left it.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};
use slipway_core::audit::{AuditRecord, EventKind};
use slipway_infra::audit_writer::AuditWriter;

use super::GoogleError;
use super::api::DirectoryApi;
use super::apply::{Report, apply};
use super::model::Snapshot;
use crate::clock::{Clock, Ids};
use crate::identity::{DirectoryStore, DirectoryUser, Source};
use crate::metrics::{GoogleMetrics, OutcomeLabels};

/// At most this many skip reasons go into a run's audit record.
const MAX_REASONS: usize = 50;

/// What one sync needs.
#[derive(Debug)]
pub struct Syncer {
    pub api: Arc<DirectoryApi>,
    pub store: Arc<dyn DirectoryStore>,
    pub audit: AuditWriter,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    pub metrics: GoogleMetrics,
    /// The bridge's `audit_failures`.
    pub audit_failures: Counter,
    /// Woken after each good sync (the identity snapshot follows the directory).
    pub changed: Arc<tokio::sync::Notify>,
}

impl Syncer {
    /// Everything Google lists, or the first error.
    pub async fn fetch(&self) -> Result<Snapshot, GoogleError> {
        let users = self.api.users().await?;
        if users.is_empty() {
            return Err(GoogleError::EmptyDirectory);
        }
        let mut snapshot = Snapshot {
            users,
            ..Snapshot::default()
        };
        for group in self.api.groups().await? {
            if !group.admin_created {
                snapshot.left_out.push(format!(
                    "group {} ({}): made by a user in Google Groups, not by an admin",
                    group.name, group.email
                ));
                continue;
            }
            let members = self.api.members(&group.id).await?;
            snapshot.groups.push((group, members));
        }
        Ok(snapshot)
    }

    /// One run: fetch, apply, mark, audit, count. The error (already logged and counted) is
    /// returned for the caller's schedule.
    pub async fn run_once(&self) -> Result<Report, GoogleError> {
        let started = std::time::Instant::now();
        let result = match self.fetch().await {
            Ok(snapshot) => {
                let now = self.clock.unix();
                apply(&*self.store, &snapshot, now)
                    .and_then(|report| {
                        self.store.record_sync(Source::Google, now)?;
                        Ok(report)
                    })
                    .map_err(GoogleError::from)
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(report) => {
                self.metrics
                    .syncs
                    .get_or_create(&OutcomeLabels { outcome: "ok" })
                    .inc();
                self.metrics.last_success.set(self.clock.unix());
                tracing::info!(
                    users = ?report.users, groups = ?report.groups,
                    ms = started.elapsed().as_millis(), "Google directory synced"
                );
                self.audit_run(report).await;
                self.changed.notify_one();
            }
            Err(e) => {
                self.metrics.failed(e.reason());
                tracing::error!(error = %e, "Google directory sync failed; the directory is kept as the last good sync left it");
            }
        }
        result
    }

    async fn record(&self, details: Value, what: &str) {
        let record = AuditRecord::new(EventKind::Provisioning, self.ids.next(), self.clock.now())
            .with_details(details);
        if let Err(e) = self.audit.record(record).await {
            self.audit_failures.inc();
            tracing::error!(error = %e, "could not record {what}");
        }
    }

    /// The per-user records (deactivations, deletions), then the run's.
    async fn audit_run(&self, report: &Report) {
        for (action, users) in [
            ("deactivate", &report.deactivated),
            ("delete", &report.deleted),
        ] {
            for user in users {
                self.record(user_details(action, user), "a Google deprovisioning")
                    .await;
            }
        }
        let details = json!({
            "source": "google",
            "action": "sync",
            "users": report.users,
            "groups": report.groups,
            "skipped": report.skipped.iter().take(MAX_REASONS).collect::<Vec<_>>(),
        });
        self.record(details, "a Google sync").await;
    }
}

/// Names and flags, never emails beyond the user name (as SCIM's records).
fn user_details(action: &str, u: &DirectoryUser) -> Value {
    json!({
        "source": "google",
        "action": action,
        "resource_type": "User",
        "id": u.id,
        "user_name": u.user_name,
        "active": u.active && action != "delete",
        "github_login": u.github_login,
    })
}
