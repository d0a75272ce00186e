//! Cloud Logging (`logging.v2` discovery document), under `/logging/v2/`:
//! `projects.sinks.list` and `.get`, and `entries.list` (`POST entries:list`, which `gcloud
//! logging read` sends with `resourceNames`, `filter`, `orderBy` and `pageSize`).
//!
//! The filter is the subset gcloud writes and people type: comparisons joined by `AND` on
//! `timestamp`, `severity` (by level), `logName`, `resource.type` and `textPayload` (`:` is
//! "contains"); anything else is a 400 naming the term, never a silent match. Pages are
//! `pageSize` entries, `nextPageToken` an offset.

use std::cmp::Ordering;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::{Reply, authenticate, bad_request, not_found, ok, read_project};
use super::state::{CREATED_UTC, Kind, Shared, State as Gcp, lock};
use crate::google::oauth::ApiError;

const SEVERITIES: [&str; 9] = [
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
];

/// A sink exporting `filter` to `destination` (`storage.googleapis.com/<bucket>`, …).
pub(crate) fn sink(project_number: u64, name: &str, destination: &str, filter: &str) -> Value {
    json!({
        "name": name,
        "destination": destination,
        "filter": filter,
        "writerIdentity": format!("serviceAccount:service-{project_number}@gcp-sa-logging.iam.gserviceaccount.com"),
        "createTime": CREATED_UTC,
        "updateTime": CREATED_UTC,
    })
}

/// A text entry in `projects/{project}/logs/{log_id}` at `timestamp` (RFC 3339).
pub(crate) fn entry(
    project: &str,
    log_id: &str,
    severity: &str,
    text: &str,
    timestamp: &str,
    insert_id: &str,
) -> Value {
    json!({
        "logName": format!("projects/{project}/logs/{}", log_id.replace('/', "%2F")),
        "resource": {"type": "global", "labels": {"project_id": project}},
        "textPayload": text,
        "timestamp": timestamp,
        "receiveTimestamp": timestamp,
        "severity": severity.to_ascii_uppercase(),
        "insertId": insert_id,
    })
}

/// `GET projects/{p}/sinks`.
pub(crate) async fn sinks_list(
    State(s): State<Shared>,
    Path(project): Path<String>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "logging.sinks.list")?;
    Ok(ok(&json!({"sinks": st.list(Kind::Sink, &p.id, None)})))
}

/// `GET projects/{p}/sinks/{sink}`.
pub(crate) async fn sink_get(
    State(s): State<Shared>,
    Path((project, sink)): Path<(String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "logging.sinks.get")?;
    let found = st
        .get(Kind::Sink, &p.id, "", &sink)
        .ok_or_else(|| not_found(&format!("Sink {sink} does not exist")))?;
    Ok(ok(found))
}

/// One comparison of a filter.
struct Term {
    field: String,
    op: &'static str,
    value: String,
}

fn parse_term(text: &str) -> Option<Term> {
    const OPS: [&str; 7] = [">=", "<=", "!=", "=", ">", "<", ":"];
    let (at, op) = OPS
        .iter()
        .filter_map(|op| text.find(op).map(|i| (i, *op)))
        .min_by_key(|(i, op)| (*i, std::cmp::Reverse(op.len())))?;
    let field = text[..at].trim().to_string();
    let raw = text[at + op.len()..].trim();
    let value = raw
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .map_or_else(|| raw.to_string(), |v| v.replace("\\\"", "\""));
    (!field.is_empty()).then_some(Term { field, op, value })
}

fn parse_filter(filter: &str) -> Result<Vec<Term>, String> {
    filter
        .split(" AND ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let unsupported = || {
                format!(
                    "Unsupported filter term (this emulator reads comparisons of timestamp, \
                     severity, logName, resource.type and textPayload joined by AND): {t}"
                )
            };
            let boolean = t.contains(" OR ")
                || t.starts_with("NOT ")
                || t.starts_with('-')
                || t.contains('(');
            let term = parse_term(t).filter(|_| !boolean).ok_or_else(unsupported)?;
            let known = [
                "timestamp",
                "severity",
                "logName",
                "resource.type",
                "textPayload",
            ];
            let level_ok = term.field != "severity"
                || SEVERITIES
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&term.value));
            if known.contains(&term.field.as_str()) && level_ok {
                Ok(term)
            } else {
                Err(unsupported())
            }
        })
        .collect()
}

fn compare(term: &Term, entry: &Value) -> bool {
    let text = |k: &str| {
        entry
            .pointer(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ordering = match term.field.as_str() {
        "severity" => {
            let level = |s: &str| SEVERITIES.iter().position(|x| x.eq_ignore_ascii_case(s));
            level(&text("/severity")).cmp(&level(&term.value))
        }
        "timestamp" => {
            let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
            at(&text("/timestamp")).cmp(&at(&term.value))
        }
        "textPayload" if term.op == ":" => return text("/textPayload").contains(&term.value),
        "textPayload" => text("/textPayload").as_str().cmp(term.value.as_str()),
        "logName" => text("/logName").as_str().cmp(term.value.as_str()),
        _ => text("/resource/type").as_str().cmp(term.value.as_str()),
    };
    match term.op {
        ">=" => ordering != Ordering::Less,
        "<=" => ordering != Ordering::Greater,
        ">" => ordering == Ordering::Greater,
        "<" => ordering == Ordering::Less,
        "!=" => ordering != Ordering::Equal,
        _ => ordering == Ordering::Equal,
    }
}

/// The project ids of `resourceNames`, each readable by the caller.
fn readable_projects(st: &Gcp, h: &HeaderMap, req: &Value) -> Result<Vec<String>, ApiError> {
    let names = req.get("resourceNames").and_then(Value::as_array);
    names
        .into_iter()
        .flatten()
        .map(|name| {
            let p = name
                .as_str()
                .and_then(|n| n.strip_prefix("projects/"))
                .ok_or_else(|| bad_request("Only projects/<id> resource names are served."))?;
            Ok(read_project(st, h, p, "logging.logEntries.list")?
                .id
                .clone())
        })
        .collect()
}

/// One page of `found`: `pageSize` entries from the offset `pageToken` holds.
fn page(found: &[&Value], req: &Value) -> Value {
    let size = req
        .get("pageSize")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .map_or(1000, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let start: usize = req
        .get("pageToken")
        .and_then(Value::as_str)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let entries: Vec<&Value> = found.iter().skip(start).take(size).copied().collect();
    let mut out = json!({"entries": entries});
    if start.saturating_add(size) < found.len() {
        out["nextPageToken"] = json!((start + size).to_string());
    }
    out
}

/// `POST entries:list`.
pub(crate) async fn entries_list(
    State(s): State<Shared>,
    Path(verb): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Reply {
    if verb != "entries:list" {
        return Err(not_found("Method not found."));
    }
    let st = lock(&s);
    authenticate(&st, &h)?;
    let req: Value =
        serde_json::from_slice(&body).map_err(|_| bad_request("Invalid JSON payload received."))?;
    let text = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
    let terms = parse_filter(text("filter")).map_err(|m| bad_request(&m))?;
    let projects = readable_projects(&st, &h, &req)?;
    let mut found: Vec<&Value> = st
        .entries
        .iter()
        .filter(|(p, e)| projects.contains(p) && terms.iter().all(|t| compare(t, e)))
        .map(|(_, e)| e)
        .collect();
    if text("orderBy").ends_with("desc") {
        found.reverse();
    }
    Ok(ok(&page(&found, &req)))
}
