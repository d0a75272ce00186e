//! Grafana Loki: every audit record as one log line (the record's JSON), pushed through
//! `POST /loki/api/v1/push`, so the trail can be searched with LogQL beside the rest of the logs.
//!
//! Labels are few and stable, so the number of streams stays small: `app="slipway"`, `writer`,
//! `event` (the record kind), `family` (the command family, `none` without a command) and
//! `decision` (the policy outcome, `none` without one). Ids stay in the line, never in labels.
//!
//! Loki 2.4 refuses a line older than the newest of its stream. A spool holds one writer's
//! chain, appended in time order, so each stream (a subset of one writer's records) is pushed in
//! order; a record whose time went backwards (a clock step) is sent at its predecessor's time.
//! A replay after a crash sends the same timestamp and line again, which Loki drops as a
//! duplicate, so delivery stays harmless to repeat.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use slipway_core::audit::AuditRecord;

use super::http::{Http, status_error};
use super::{Delivery, Sink, SinkError};

/// The Loki sink's spool cursor.
pub const CURSOR: &str = "loki";

/// The `app` label of every stream.
pub const APP: &str = "slipway";

/// How to authenticate to Loki (or the gateway in front of it): `Basic` with a user and password
/// (Grafana Cloud: the instance id and an API token), or a `Bearer` token.
pub use super::Auth as LokiAuth;

/// Where to push.
#[derive(Debug, Clone)]
pub struct LokiSettings {
    /// The base URL, e.g. `https://logs.example` (the sink adds `/loki/api/v1/push`).
    pub url: String,
    /// `X-Scope-OrgID`, for a multi-tenant Loki.
    pub tenant: Option<String>,
    pub auth: Option<LokiAuth>,
    pub timeout: Duration,
}

/// writer → (seq, timestamp in ns) of its newest record pushed.
type Newest = BTreeMap<String, (u64, i64)>;

/// See the module docs.
pub struct LokiSink {
    push_url: String,
    tenant: Option<String>,
    auth: Option<LokiAuth>,
    http: Http,
    /// Per writer, the seq and timestamp (ns) of the newest record pushed, so a clock step never
    /// sends a line back in time.
    newest: Mutex<Newest>,
}

/// The `Authorization` header carries the credentials: never printed.
impl std::fmt::Debug for LokiSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LokiSink")
            .field("push_url", &self.push_url)
            .field("tenant", &self.tenant)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl LokiSink {
    pub fn new(settings: LokiSettings) -> Result<LokiSink, String> {
        let http = Http::new(settings.timeout)?;
        Ok(LokiSink {
            push_url: format!("{}/loki/api/v1/push", settings.url.trim_end_matches('/')),
            tenant: settings.tenant,
            auth: settings.auth,
            http,
            newest: Mutex::new(BTreeMap::new()),
        })
    }

    /// The push body for `records`, one stream per label set, each in record order, and the
    /// newest timestamp per writer it holds.
    fn body(&self, records: &[AuditRecord]) -> Result<(Value, Newest), SinkError> {
        let mut newest = crate::sync::lock(&self.newest).clone();
        let mut streams: Vec<(BTreeMap<&'static str, String>, Vec<Value>)> = Vec::new();
        for record in records {
            let line = serde_json::to_string(record)
                .map_err(|e| SinkError::Config(format!("cannot encode record: {e}")))?;
            let time = record.time.timestamp_nanos_opt().unwrap_or(0);
            // Only a predecessor counts: a retried or replayed record gets the same time again.
            let ts = match newest.get(&record.writer) {
                Some(&(seq, last)) if seq < record.seq => time.max(last),
                _ => time,
            };
            newest.insert(record.writer.clone(), (record.seq, ts));
            let labels = labels(record);
            let value = json!([ts.to_string(), line]);
            match streams.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, values)) => values.push(value),
                None => streams.push((labels, vec![value])),
            }
        }
        let streams: Vec<Value> = streams
            .into_iter()
            .map(|(stream, values)| json!({"stream": stream, "values": values}))
            .collect();
        Ok((json!({ "streams": streams }), newest))
    }

    /// `auth` is the `Authorization` value, read at each request (it may have rotated).
    fn headers<'a>(&'a self, auth: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
        let mut headers = vec![("user-agent", "slipway-audit")];
        if let Some(tenant) = &self.tenant {
            headers.push(("x-scope-orgid", tenant.as_str()));
        }
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        headers
    }

    async fn push(&self, records: &[AuditRecord]) -> Result<(), SinkError> {
        let (value, newest) = self.body(records)?;
        let body = serde_json::to_vec(&value)
            .map_err(|e| SinkError::Config(format!("cannot encode the push: {e}")))?;
        let auth = self.auth.as_ref().map(LokiAuth::header);
        let mut headers = self.headers(auth.as_deref());
        headers.push(("content-type", "application/json"));
        let resp = self
            .http
            .send(Method::POST, &self.push_url, &headers, Some(body))
            .await?;
        if (200..300).contains(&resp.status) {
            *crate::sync::lock(&self.newest) = newest;
            return Ok(());
        }
        let what = format!("Loki push to {}", self.push_url);
        if resp.status == 400 && resp.text().contains("out of order") {
            // A replay after a lost cursor: Loki keeps the new lines and refuses the ones it
            // holds already. Read them back rather than trust the refusal.
            return self.confirm(&lines(&value)).await.map_err(|missing| {
                SinkError::Conflict(format!(
                    "{what}: Loki refused {missing} as out of order and does not hold it                      ({}): another writer pushes under this writer's labels, or Loki accepts                      no old lines; the records wait in the spool",
                    resp.text()
                ))
            });
        }
        Err(status_error(&what, &resp))
    }

    /// Whether Loki holds every line of the push; `Err` names the first one it lacks.
    async fn confirm(&self, pushed: &[(String, i64, String)]) -> Result<(), String> {
        for (selector, ts, line) in pushed {
            let query = serde_urlencoded::to_string([
                ("query", selector.as_str()),
                ("start", &ts.to_string()),
                ("end", &(ts + 1).to_string()),
                ("direction", "forward"),
                ("limit", "1000"),
            ])
            .unwrap_or_default();
            let url = self
                .push_url
                .replace("/push", &format!("/query_range?{query}"));
            let held = match self.get(&url).await {
                Some(answer) => answer
                    .pointer("/data/result")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.get("values").and_then(Value::as_array))
                    .flatten()
                    .any(|v| v.get(1).and_then(Value::as_str) == Some(line.as_str())),
                None => false,
            };
            if !held {
                return Err(format!("the line at {ts} ns in {selector}"));
            }
        }
        Ok(())
    }

    async fn get(&self, url: &str) -> Option<Value> {
        let auth = self.auth.as_ref().map(LokiAuth::header);
        let resp = self
            .http
            .send(Method::GET, url, &self.headers(auth.as_deref()), None)
            .await
            .ok()?;
        (resp.status == 200).then(|| serde_json::from_slice(&resp.body).ok())?
    }
}

/// Each line of a push body as (stream selector, timestamp, line), in push order per stream.
fn lines(body: &Value) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for stream in body["streams"].as_array().into_iter().flatten() {
        let labels: Vec<String> = stream["stream"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let selector = format!("{{{}}}", labels.join(","));
        for v in stream["values"].as_array().into_iter().flatten() {
            let ts = v[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
            out.push((
                selector.clone(),
                ts,
                v[1].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

/// The stream labels of `record`: stable values only, see the module docs.
pub fn labels(record: &AuditRecord) -> BTreeMap<&'static str, String> {
    let name = |v: Option<Value>| {
        v.and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "none".into())
    };
    let family = record
        .command
        .as_ref()
        .and_then(|c| c.family)
        .and_then(|f| serde_json::to_value(f).ok());
    BTreeMap::from([
        ("app", APP.to_string()),
        ("writer", record.writer.clone()),
        ("event", name(serde_json::to_value(record.kind).ok())),
        ("family", name(family)),
        (
            "decision",
            record
                .decision
                .as_ref()
                .map_or_else(|| "none".into(), |d| d.outcome.as_str().to_string()),
        ),
    ])
}

impl Sink for LokiSink {
    fn name(&self) -> &'static str {
        "loki"
    }

    fn cursor(&self) -> &'static str {
        CURSOR
    }

    /// One push per batch: Loki takes all of it or (on an error) the batch is sent again.
    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        match self.push(records).await {
            Ok(()) => Delivery {
                delivered: records.len(),
                error: None,
            },
            Err(e) => Delivery {
                delivered: 0,
                error: Some(e),
            },
        }
    }
}

#[cfg(test)]
mod tests;
