//! The demo's audit sinks beside S3: Jira, ServiceNow and Loki, each an emulator the bridge
//! delivers the trail to (its `audit:` section names them as a production config would, with
//! loopback URLs), and what each of them holds of a story of changes.

use slipway_core::audit::{AuditRecord, EventKind};
use slipway_emulators::jira::{Issue, JiraEmulator, JiraLogin};
use slipway_emulators::loki::LokiEmulator;
use slipway_emulators::servicenow::{Change, ServiceNowEmulator};

/// The Jira project the issues are filed in.
pub const JIRA_PROJECT: &str = "OPS";
const JIRA_USER: &str = "slipway@acme.example";
const JIRA_TOKEN: &str = "demo-jira-api-token";
const SERVICENOW_USER: &str = "slipway";
const SERVICENOW_PASSWORD: &str = "demo-servicenow-password";

/// The three emulators.
#[derive(Debug)]
pub struct Sinks {
    pub jira: JiraEmulator,
    pub servicenow: ServiceNowEmulator,
    pub loki: LokiEmulator,
}

impl Sinks {
    pub async fn start() -> Sinks {
        let login = JiraLogin::Basic {
            user: JIRA_USER.into(),
            token: JIRA_TOKEN.into(),
        };
        Sinks {
            jira: JiraEmulator::start(JIRA_PROJECT, login).await,
            servicenow: ServiceNowEmulator::start(SERVICENOW_USER, SERVICENOW_PASSWORD).await,
            loki: LokiEmulator::start().await,
        }
    }

    /// The `jira`, `servicenow` and `loki` entries of the bridge's `audit:` section, indented
    /// to go under it.
    pub fn config_yaml(&self) -> String {
        format!(
            "  jira:\n    url: {}\n    project: {JIRA_PROJECT}\n    user: {JIRA_USER}\n    \
             token: {JIRA_TOKEN}\n  servicenow:\n    url: {}\n    user: {SERVICENOW_USER}\n    \
             password: {SERVICENOW_PASSWORD}\n  loki:\n    url: {}\n",
            self.jira.base_url(),
            self.servicenow.base_url(),
            self.loki.base_url()
        )
    }

    /// What the sinks lack of `records` (the story of some changes, as the spools have it):
    /// each change's Jira issue, with a comment for each merge, run and roll back; its
    /// ServiceNow change request, with a work note for each record; and each record, as it was
    /// sealed, as a line in Loki. Empty when every sink holds the whole story.
    pub fn gaps(&self, records: &[AuditRecord]) -> Vec<String> {
        let mut ids: Vec<&str> = records
            .iter()
            .filter_map(|r| r.change_id.as_deref())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let (issues, changes) = (self.jira.issues(), self.servicenow.changes());
        let mut gaps = Vec::new();
        for id in ids {
            let story: Vec<&AuditRecord> = records
                .iter()
                .filter(|r| r.change_id.as_deref() == Some(id))
                .collect();
            gaps.extend(jira_gaps(&issues, id, &story));
            gaps.extend(servicenow_gaps(&changes, id, &story));
        }
        let lines: Vec<AuditRecord> = self
            .loki
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_str(&l.line).ok())
            .collect();
        gaps.extend(
            lacks(&lines, records)
                .into_iter()
                .map(|g| format!("Loki: {g}")),
        );
        gaps
    }
}

/// The marker each sink leaves with a record it delivered.
fn marker(r: &AuditRecord) -> String {
    format!("slipway-event:{}", r.event_id)
}

fn jira_gaps(issues: &[Issue], id: &str, story: &[&AuditRecord]) -> Vec<String> {
    let label = format!("slipway-change-{id}");
    let Some(issue) = issues.iter().find(|i| i.labels.contains(&label)) else {
        return vec![format!("Jira: no issue for {id}")];
    };
    story
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                EventKind::Merge | EventKind::Execution | EventKind::Rollback
            )
        })
        .filter(|r| !issue.comments.iter().any(|c| c.body.contains(&marker(r))))
        .map(|r| {
            format!(
                "Jira: {} has no comment for {:?} {}",
                issue.key, r.kind, r.event_id
            )
        })
        .collect()
}

fn servicenow_gaps(changes: &[Change], id: &str, story: &[&AuditRecord]) -> Vec<String> {
    let filed = changes.iter().find(|c| {
        c.fields["short_description"]
            .as_str()
            .is_some_and(|d| d.contains(id))
    });
    let Some(change) = filed else {
        return vec![format!("ServiceNow: no change request for {id}")];
    };
    story
        .iter()
        .filter(|r| !change.work_notes.iter().any(|n| n.contains(&marker(r))))
        .map(|r| {
            format!(
                "ServiceNow: {} has no work note for {:?} {}",
                change.number, r.kind, r.event_id
            )
        })
        .collect()
}

/// The records of `records` that `seen` doesn't hold as they were sealed (same writer, place
/// in its chain and hash).
pub fn lacks(seen: &[AuditRecord], records: &[AuditRecord]) -> Vec<String> {
    records
        .iter()
        .filter(|r| {
            !seen
                .iter()
                .any(|s| s.writer == r.writer && s.seq == r.seq && s.hash == r.hash)
        })
        .map(|r| format!("{:?} {}#{}", r.kind, r.writer, r.seq))
        .collect()
}
