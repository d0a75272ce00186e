//! Jira tickets for change requests (REST API v2): an issue for each change request (audit
//! records of kind `change_request`), and a comment on it for each outcome (`merge`,
//! `execution`, `expiry`, `rejection` records with the same `change_id`). Other records are
//! skipped. Before its comment, a record whose kind has a configured transition (`transitions`,
//! by kind) moves the issue through the transition of that name, when the issue's status offers
//! it; one not offered (the issue is already there, as after a crash) is skipped.
//!
//! Which issue belongs to which change is kept in a small JSON file beside the spool, written
//! atomically before the cursor moves. Each comment carries a `slipway-event:<event id>` marker
//! (the description a `slipway-opened-by:` one), and the issue is read back before commenting,
//! so a record replayed after a crash is not posted twice. The
//! one window left: a crash between Jira creating an issue and the map file being written
//! creates a second issue for that change on restart.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use slipway_core::audit::{AuditRecord, EventKind};

use super::http::{Http, Response, status_error};
use super::{Delivery, Sink, SinkError};

/// The Jira sink's spool cursor.
pub const CURSOR: &str = "jira";

/// Jira caps summaries at 255 characters.
const MAX_SUMMARY: usize = 255;
/// Output excerpts in comments are kept short; the full record is in the audit trail.
const MAX_EXCERPT: usize = 2000;

/// How to authenticate: Jira Cloud takes `Basic` (account email and API token), Jira Data
/// Center `Bearer` (a personal access token).
pub use super::Auth as JiraAuth;

/// Where and how to file issues.
#[derive(Debug, Clone)]
pub struct JiraSettings {
    /// The site, e.g. `https://acme.atlassian.net` (no trailing `/rest/...`).
    pub url: String,
    /// The project key, e.g. `OPS`.
    pub project: String,
    /// The issue type name, e.g. `Task`.
    pub issue_type: String,
    pub auth: JiraAuth,
    /// The change → issue key map (JSON), kept beside the spool.
    pub issues_file: PathBuf,
    /// Record kind → the name of the workflow transition its record performs (e.g. `merge` →
    /// `In Progress`, `execution` → `Done`).
    pub transitions: HashMap<EventKind, String>,
    pub timeout: Duration,
}

/// See the module docs.
pub struct JiraSink {
    settings: JiraSettings,
    http: Http,
    /// change id → issue key; mirrors `settings.issues_file`.
    issues: Mutex<BTreeMap<String, String>>,
}

/// The `Authorization` header carries the token: never printed.
impl std::fmt::Debug for JiraSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraSink")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl JiraSink {
    /// Loads the issue map (a missing file is an empty map).
    pub fn new(settings: JiraSettings) -> Result<JiraSink, String> {
        let issues = load_map(
            &settings.issues_file,
            "a Jira issue map",
            "new issues for changes already filed",
        )?;
        let http = Http::new(settings.timeout)?;
        Ok(JiraSink {
            settings,
            http,
            issues: Mutex::new(issues),
        })
    }

    fn base(&self) -> &str {
        self.settings.url.trim_end_matches('/')
    }

    fn issue_key(&self, change_id: &str) -> Option<String> {
        crate::sync::lock(&self.issues).get(change_id).cloned()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, SinkError> {
        let url = format!("{}{path}", self.base());
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let auth = self.settings.auth.header();
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ];
        self.http.send(method, &url, &headers, body).await
    }

    async fn deliver_one(&self, record: &AuditRecord) -> Result<(), SinkError> {
        let Some(change_id) = record.change_id.as_deref() else {
            return Ok(());
        };
        let outcome = match record.kind {
            EventKind::ChangeRequest => None,
            EventKind::Merge
            | EventKind::Execution
            | EventKind::Expiry
            | EventKind::Rejection
            | EventKind::Rollback => Some(outcome_comment(record)),
            _ => return Ok(()),
        };
        let key = if let Some(key) = self.issue_key(change_id) {
            key
        } else {
            // A change request's first record opens the issue. An outcome whose request this
            // sink never saw (e.g. written by another writer) opens one too, so it is not lost.
            let key = self.create_issue(change_id, record).await?;
            if outcome.is_none() {
                return Ok(());
            }
            key
        };
        let body = outcome.unwrap_or_else(|| update_comment(record));
        self.comment_once(&key, record, body).await
    }

    /// Performs the transition called `name` if the issue's status offers it.
    async fn transition(&self, key: &str, name: &str) -> Result<(), SinkError> {
        let path = format!("/rest/api/2/issue/{key}/transitions");
        let resp = self.call(Method::GET, &path, None).await?;
        if !(200..300).contains(&resp.status) {
            return Err(status_error(
                &format!("Jira: reading the transitions of issue {key}"),
                &resp,
            ));
        }
        let offered: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let id = offered
            .get("transitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .and_then(|t| t.get("id").and_then(Value::as_str));
        let Some(id) = id else {
            tracing::info!(
                issue = key,
                transition = name,
                "Jira issue's status doesn't offer the transition; skipped"
            );
            return Ok(());
        };
        let body = json!({"transition": {"id": id}});
        let resp = self.call(Method::POST, &path, Some(&body)).await?;
        if (200..300).contains(&resp.status) {
            Ok(())
        } else {
            Err(status_error(
                &format!("Jira: transition {name:?} of issue {key}"),
                &resp,
            ))
        }
    }

    async fn create_issue(
        &self,
        change_id: &str,
        record: &AuditRecord,
    ) -> Result<String, SinkError> {
        let body = json!({
            "fields": {
                "project": {"key": self.settings.project},
                "issuetype": {"name": self.settings.issue_type},
                "summary": summary(change_id, record),
                "description": description(record),
                "labels": ["slipway", label(change_id)],
            }
        });
        let resp = self
            .call(Method::POST, "/rest/api/2/issue", Some(&body))
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(status_error(
                &format!(
                    "Jira: creating the issue for change {change_id} in project {}",
                    self.settings.project
                ),
                &resp,
            ));
        }
        let created: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let Some(key) = created.get("key").and_then(Value::as_str) else {
            return Err(SinkError::Config(format!(
                "Jira answered the issue creation for change {change_id} without an issue key: {}",
                resp.text()
            )));
        };
        self.remember(change_id, key)?;
        Ok(key.to_string())
    }

    /// Adds the map entry and rewrites the file atomically.
    fn remember(&self, change_id: &str, key: &str) -> Result<(), SinkError> {
        let mut issues = crate::sync::lock(&self.issues);
        issues.insert(change_id.to_string(), key.to_string());
        write_atomic(&self.settings.issues_file, &issues).map_err(|e| {
            SinkError::Config(format!(
                "Jira issue {key} was created for change {change_id} but {} could not be written: {e}",
                self.settings.issues_file.display()
            ))
        })
    }

    async fn comment_once(
        &self,
        key: &str,
        record: &AuditRecord,
        body: String,
    ) -> Result<(), SinkError> {
        let marker = marker(record);
        let resp = self
            .call(
                Method::GET,
                &format!("/rest/api/2/issue/{key}?fields=comment,description"),
                None,
            )
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(status_error(&format!("Jira: reading issue {key}"), &resp));
        }
        let issue: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        // A change request record that opened the issue is marked in the description (an
        // outcome that opened it still needs its comment).
        let opened_it = record.kind == EventKind::ChangeRequest
            && issue
                .pointer("/fields/description")
                .and_then(Value::as_str)
                .is_some_and(|d| d.contains(&opened_by(record)));
        let already = opened_it
            || issue
                .pointer("/fields/comment/comments")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("body")
                            .and_then(Value::as_str)
                            .is_some_and(|b| b.contains(&marker))
                    })
                });
        if already {
            return Ok(());
        }
        // Before the comment, which marks the record done: a replay after a crash in between
        // finds the issue already moved, and the transition no longer offered.
        if let Some(name) = self.settings.transitions.get(&record.kind) {
            self.transition(key, name).await?;
        }
        let body = json!({ "body": format!("{body}\n\n{marker}") });
        let resp = self
            .call(
                Method::POST,
                &format!("/rest/api/2/issue/{key}/comment"),
                Some(&body),
            )
            .await?;
        if (200..300).contains(&resp.status) {
            Ok(())
        } else {
            Err(status_error(
                &format!("Jira: commenting on issue {key}"),
                &resp,
            ))
        }
    }
}

impl Sink for JiraSink {
    fn name(&self) -> &'static str {
        "jira"
    }

    fn cursor(&self) -> &'static str {
        CURSOR
    }

    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        Delivery::in_order(records, |r| self.deliver_one(r)).await
    }
}

/// A change → ticket map written by [`write_atomic`]; a missing file is an empty map. `what` and
/// `loss` (what removing the file costs) go into the error that says how to fix a damaged one.
pub(super) fn load_map(
    path: &Path,
    what: &str,
    loss: &str,
) -> Result<BTreeMap<String, String>, String> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not {what} ({e}); fix or remove it (removing it makes {loss})",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub(super) fn write_atomic(path: &Path, issues: &BTreeMap<String, String>) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut body = serde_json::to_vec_pretty(issues).map_err(std::io::Error::other)?;
    body.push(b'\n');
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&body)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Jira labels may not contain spaces.
fn label(change_id: &str) -> String {
    let id: String = change_id
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("slipway-change-{id}")
}

fn marker(record: &AuditRecord) -> String {
    format!("slipway-event:{}", record.event_id)
}

fn opened_by(record: &AuditRecord) -> String {
    format!("slipway-opened-by:{}", record.event_id)
}

fn summary(change_id: &str, record: &AuditRecord) -> String {
    let what = record
        .command
        .as_ref()
        .map_or_else(|| format!("{:?}", record.kind), |c| c.text.clone());
    let text = format!("Slipway change {change_id}: {what}");
    let text = text.replace(['\n', '\r'], " ");
    text.chars().take(MAX_SUMMARY).collect()
}

fn who(record: &AuditRecord) -> String {
    record
        .actor
        .as_ref()
        .and_then(|a| {
            a.subject
                .clone()
                .or_else(|| a.github_login.clone())
                .or_else(|| a.slack_user_id.clone())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The issue body: what was asked, by whom, and what policy said. Jira wiki markup.
fn description(record: &AuditRecord) -> String {
    let mut d = String::new();
    let _ = writeln!(d, "*Requested by:* {}", who(record));
    if let Some(c) = &record.command {
        let _ = writeln!(d, "*Command:* {{noformat}}{}{{noformat}}", c.text);
        if let Some(argv) = &c.argv {
            let _ = writeln!(d, "*argv:* {{noformat}}{}{{noformat}}", argv.join(" "));
        }
    }
    if let Some(t) = record.tier {
        let _ = writeln!(d, "*Tier:* {}", serde_json::to_value(t).unwrap_or_default());
    }
    if let Some(t) = &record.target {
        let _ = writeln!(
            d,
            "*Target:* {}",
            serde_json::to_string(t).unwrap_or_default()
        );
    }
    if let Some(dec) = &record.decision {
        let _ = writeln!(
            d,
            "*Decision:* {} ({}): {}",
            dec.outcome.as_str(),
            dec.rule,
            dec.reason
        );
        if let Some(rule) = &dec.approval_rule {
            let _ = writeln!(d, "*Approval rule:* {rule}");
        }
    }
    if let Some(pr) = &record.pr {
        let _ = writeln!(d, "*Pull request:* {}#{}", pr.repo, pr.number);
    }
    let _ = write!(
        d,
        "*Audit:* event {} ({} seq {}, {})\n\n{}",
        record.event_id,
        record.writer,
        record.seq,
        record.time.to_rfc3339(),
        opened_by(record)
    );
    d
}

fn update_comment(record: &AuditRecord) -> String {
    let mut c = format!("Change request updated by {}.", who(record));
    if let Some(pr) = &record.pr {
        let _ = write!(c, " Pull request {}#{}", pr.repo, pr.number);
        if let Some(sha) = &pr.head_sha {
            let _ = write!(c, " at {sha}");
        }
        c.push('.');
    }
    c
}

/// The comment for an outcome record.
fn outcome_comment(record: &AuditRecord) -> String {
    let mut c = match record.kind {
        EventKind::Execution => {
            // The runner's own outcome says more than its last step's exit code: a deploy whose
            // apply exited 0 may still have failed its rollout.
            let outcome = record
                .details
                .as_ref()
                .and_then(|d| d.get("outcome"))
                .and_then(serde_json::Value::as_str);
            let mut c = match outcome {
                None | Some("executed") => String::from("*Executed*"),
                Some(o) => format!("*Execution {o}*"),
            };
            if let Some(o) = &record.output {
                match o.exit_code {
                    Some(code) => {
                        let _ = write!(c, ": exit code {code}");
                    }
                    None => c.push_str(": killed or timed out"),
                }
                let _ = write!(c, ", {} ms, output sha256 {}", o.duration_ms, o.sha256);
            }
            if let Some(r) = &record.runner {
                let _ = write!(c, ", runner run {}", r.run_id);
            }
            c.push('.');
            if let Some(o) = record.output.as_ref().filter(|o| !o.excerpt.is_empty()) {
                let excerpt: String = o.excerpt.chars().take(MAX_EXCERPT).collect();
                let _ = write!(c, "\n{{noformat}}{excerpt}{{noformat}}");
            }
            c
        }
        EventKind::Expiry => String::from("*Expired* without being executed."),
        EventKind::Rollback => format!("*Roll back* asked for by {}.", who(record)),
        EventKind::Merge => {
            let mut c = format!("*Merged* by {}", who(record));
            if let Some(sha) = record.pr.as_ref().and_then(|p| p.merge_sha.as_deref()) {
                let _ = write!(c, " as {sha}");
            }
            c.push('.');
            c
        }
        _ => {
            let mut c = format!("*Rejected* by {}", who(record));
            if let Some(d) = &record.decision {
                let _ = write!(c, ": {}", d.reason);
            }
            c.push('.');
            c
        }
    };
    if let Some(details) = &record.details {
        let _ = write!(c, "\nDetails: {{noformat}}{details}{{noformat}}");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn labels_summaries_and_auth() {
        assert_eq!(label("cr 7/x"), "slipway-change-cr_7_x");
        let rec = AuditRecord::new(EventKind::ChangeRequest, "e1", DateTime::UNIX_EPOCH);
        let long = "x".repeat(400);
        let s = summary(&long, &rec);
        assert_eq!(s.chars().count(), MAX_SUMMARY);
        let basic = JiraAuth::Basic {
            user: "bot@acme.test".into(),
            token: "t0k".into(),
        };
        assert_eq!(basic.header(), "Basic Ym90QGFjbWUudGVzdDp0MGs=");
        assert!(!format!("{basic:?}").contains("t0k"));
    }

    #[test]
    fn an_execution_comment_leads_with_the_runners_outcome() {
        let rec = |outcome: &str| {
            AuditRecord::new(EventKind::Execution, "e1", DateTime::UNIX_EPOCH)
                .with_details(serde_json::json!({ "outcome": outcome }))
        };
        assert!(outcome_comment(&rec("failed")).starts_with("*Execution failed*"));
        assert!(outcome_comment(&rec("executed")).starts_with("*Executed*"));
    }

    #[test]
    fn a_damaged_issue_map_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jira-issues.json");
        fs::write(&file, "not json").unwrap();
        let err = JiraSink::new(JiraSettings {
            url: "http://127.0.0.1:9".into(),
            project: "OPS".into(),
            issue_type: "Task".into(),
            auth: JiraAuth::Bearer { token: "x".into() },
            issues_file: file,
            transitions: HashMap::new(),
            timeout: Duration::from_secs(1),
        })
        .unwrap_err();
        assert!(err.contains("not a Jira issue map"), "{err}");
    }
}
