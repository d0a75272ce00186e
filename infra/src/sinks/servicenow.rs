//! ServiceNow change management through the Table API: a Change Request
//! (`POST /api/now/table/change_request`) for each change, opened by its first record, and for
//! each later record of that change a work note, with the state its kind maps to (`states`,
//! e.g. `merge` → `-1` Implement) in the same `PATCH`. Outcome records (`execution`, `expiry`,
//! `rejection`) also set `close_code` (`successful` for an execution the runner reports
//! `executed` or `already-done`, or, without a runner's outcome, one that exited 0; else
//! `unsuccessful`) and `close_notes`; map them to the closed state (`3`) to close the change.
//!
//! The change → `sys_id` map is a JSON file beside the spool, like Jira's issue map. A replay
//! after a crash sets the same state again and may repeat a work note (journal entries can't be
//! read back through `change_request`); each note carries `slipway-event:<event id>` to tell.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use hyper::Method;
use serde_json::{Map, Value, json};
use slipway_core::audit::{AuditRecord, EventKind};

use super::http::{Http, Response, status_error};
use super::{Auth, Delivery, Sink, SinkError};

/// The ServiceNow sink's spool cursor.
pub const CURSOR: &str = "servicenow";

/// Where and how to file changes.
#[derive(Debug, Clone)]
pub struct ServiceNowSettings {
    /// The instance, e.g. `https://acme.service-now.com`.
    pub url: String,
    pub auth: Auth,
    /// Record kind → the `state` value it moves the change to.
    pub states: HashMap<EventKind, String>,
    /// The change → `sys_id` map (JSON), kept beside the spool.
    pub changes_file: PathBuf,
    pub timeout: Duration,
    /// Hold merges until the change request is CAB-approved (read by the bridge's approvals,
    /// through [`super::servicenow_cab::CabGate`], not by the sink).
    pub cab_gate: bool,
}

/// See the module docs.
pub struct ServiceNowSink {
    settings: ServiceNowSettings,
    http: Http,
    changes: Mutex<BTreeMap<String, String>>,
}

/// The `Authorization` header carries the credentials: never printed.
impl std::fmt::Debug for ServiceNowSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowSink")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ServiceNowSink {
    /// Loads the change map (a missing file is an empty map).
    pub fn new(settings: ServiceNowSettings) -> Result<ServiceNowSink, String> {
        let changes = super::jira::load_map(
            &settings.changes_file,
            "a ServiceNow change map",
            "new change requests for changes already filed",
        )?;
        Ok(ServiceNowSink {
            http: Http::new(settings.timeout)?,
            settings,
            changes: Mutex::new(changes),
        })
    }

    async fn call(&self, method: Method, path: &str, body: &Value) -> Result<Response, SinkError> {
        let url = format!("{}{path}", self.settings.url.trim_end_matches('/'));
        let auth = self.settings.auth.header();
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ];
        let body = serde_json::to_vec(body).unwrap_or_default();
        let resp = self.http.send(method, &url, &headers, Some(body)).await?;
        if (200..300).contains(&resp.status) {
            Ok(resp)
        } else {
            Err(status_error(&format!("ServiceNow {path}"), &resp))
        }
    }

    async fn deliver_one(&self, record: &AuditRecord) -> Result<(), SinkError> {
        let Some(change_id) = record.change_id.as_deref() else {
            return Ok(());
        };
        let known = crate::sync::lock(&self.changes).get(change_id).cloned();
        let Some(sys_id) = known else {
            return self.create(change_id, record).await;
        };
        let mut fields = Map::new();
        fields.insert("work_notes".into(), json!(note(record)));
        if let Some(state) = self.settings.states.get(&record.kind) {
            fields.insert("state".into(), json!(state));
        }
        if let Some(code) = close_code(record) {
            fields.insert("close_code".into(), json!(code));
            fields.insert("close_notes".into(), json!(note(record)));
        }
        let path = format!("/api/now/table/change_request/{sys_id}");
        self.call(Method::PATCH, &path, &Value::Object(fields))
            .await
            .map(drop)
    }

    async fn create(&self, change_id: &str, record: &AuditRecord) -> Result<(), SinkError> {
        let what = record
            .command
            .as_ref()
            .map_or_else(|| format!("{:?}", record.kind), |c| c.text.clone());
        let mut body = json!({
            "short_description": format!("Slipway change {change_id}: {what}")
                .chars()
                .take(160)
                .collect::<String>(),
            "description": serde_json::to_string_pretty(record).unwrap_or_default(),
            "work_notes": note(record),
            // How the CAB gate finds it again (see `CabGate`).
            "correlation_id": change_id,
            "correlation_display": "Slipway",
        });
        if let Some(state) = self.settings.states.get(&record.kind) {
            body["state"] = json!(state);
        }
        let resp = self
            .call(Method::POST, "/api/now/table/change_request", &body)
            .await?;
        let created: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let Some(sys_id) = created.pointer("/result/sys_id").and_then(Value::as_str) else {
            return Err(SinkError::Config(format!(
                "ServiceNow created the change request for {change_id} without a sys_id: {}",
                resp.text()
            )));
        };
        let mut changes = crate::sync::lock(&self.changes);
        changes.insert(change_id.to_string(), sys_id.to_string());
        super::jira::write_atomic(&self.settings.changes_file, &changes).map_err(|e| {
            SinkError::Config(format!(
                "ServiceNow change {sys_id} was created for {change_id} but {} could not be \
                 written: {e}",
                self.settings.changes_file.display()
            ))
        })
    }
}

impl Sink for ServiceNowSink {
    fn name(&self) -> &'static str {
        "servicenow"
    }

    fn cursor(&self) -> &'static str {
        CURSOR
    }

    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        Delivery::in_order(records, |r| self.deliver_one(r)).await
    }
}

/// `successful` / `unsuccessful` for an outcome record; `None` for the steps before it. A
/// runner's execution record names its outcome (`details.outcome`), which wins over the exit
/// code: a deploy whose apply exited 0 but whose rollout failed is `failed`, and `started` is
/// no outcome yet.
fn close_code(record: &AuditRecord) -> Option<&'static str> {
    match record.kind {
        EventKind::Execution => {
            let outcome = record
                .details
                .as_ref()
                .and_then(|d| d.get("outcome"))
                .and_then(Value::as_str);
            let ok = match outcome {
                Some("started") => return None,
                Some(o) => matches!(o, "executed" | "already-done"),
                None => record.output.as_ref().and_then(|o| o.exit_code) == Some(0),
            };
            Some(if ok { "successful" } else { "unsuccessful" })
        }
        EventKind::Expiry | EventKind::Rejection => Some("unsuccessful"),
        _ => None,
    }
}

/// The work note of one step: what happened, who, and the record's place in the trail.
fn note(record: &AuditRecord) -> String {
    let kind = serde_json::to_value(record.kind).unwrap_or_default();
    let mut n = format!("Slipway: {}", kind.as_str().unwrap_or("event"));
    if let Some(who) = record.actor.as_ref().and_then(|a| {
        a.subject
            .clone()
            .or_else(|| a.github_login.clone())
            .or_else(|| a.slack_user_id.clone())
    }) {
        let _ = write!(n, " by {who}");
    }
    if let Some(o) = &record.output {
        match o.exit_code {
            Some(code) => {
                let _ = write!(n, ", exit code {code}");
            }
            None => n.push_str(", killed or timed out"),
        }
    }
    if let Some(sha) = record.pr.as_ref().and_then(|p| p.merge_sha.as_deref()) {
        let _ = write!(n, ", merge {sha}");
    }
    let _ = write!(
        n,
        ".\n{} seq {} at {}\nslipway-event:{}",
        record.writer,
        record.seq,
        record.time.to_rfc3339(),
        record.event_id
    );
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use slipway_core::audit::Output;

    fn execution(exit: Option<i32>, outcome: Option<&str>) -> AuditRecord {
        let mut r = AuditRecord::new(EventKind::Execution, "e", DateTime::UNIX_EPOCH)
            .with_output(Output::new(String::new(), b"", exit, 1, false));
        if let Some(o) = outcome {
            r = r.with_details(json!({ "outcome": o }));
        }
        r
    }

    #[test]
    fn the_runners_outcome_decides_the_close_code_over_the_exit_code() {
        // A clean apply whose rollout failed.
        assert_eq!(
            close_code(&execution(Some(0), Some("failed"))),
            Some("unsuccessful")
        );
        assert_eq!(close_code(&execution(None, Some("started"))), None);
        assert_eq!(
            close_code(&execution(Some(0), Some("executed"))),
            Some("successful")
        );
        assert_eq!(
            close_code(&execution(Some(0), Some("already-done"))),
            Some("successful")
        );
        // Without a runner's outcome, the exit code.
        assert_eq!(close_code(&execution(Some(0), None)), Some("successful"));
        assert_eq!(close_code(&execution(Some(2), None)), Some("unsuccessful"));
    }
}
