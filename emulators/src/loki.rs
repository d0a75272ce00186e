//! An emulator of Grafana Loki 2.4's HTTP API, limited to what the audit sink and its tests
//! call: `POST /loki/api/v1/push` (JSON) and `GET /loki/api/v1/query_range` with a stream
//! selector of `=` matchers and optional `|= "text"` line filters.
//!
//! It keeps Loki 2.4's ordering rules, which are what the sink must respect: per stream (one
//! label set), a line older than the stream's newest is refused as `entry out of order` (the
//! others in the push are kept, and the push answers 400 naming what was ignored), a line with
//! the newest timestamp and the same text is dropped as a duplicate, and one with the same
//! timestamp but other text is kept.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::loki::LokiEmulator;
//! let loki = LokiEmulator::start().await;
//! // point the sink at loki.base_url(); then query it over HTTP, or read loki.lines()
//! assert!(loki.lines().is_empty());
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// A stream's labels.
pub type Labels = BTreeMap<String, String>;

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub labels: Labels,
    /// Unix nanoseconds.
    pub ts: i64,
    pub line: String,
}

#[derive(Debug, Default)]
struct Store {
    /// label set → its lines in push order (so in time order).
    streams: BTreeMap<Labels, Vec<(i64, String)>>,
    /// While set, every push is answered with this status (an outage or a broken gateway).
    fail: Option<u16>,
    pushes: usize,
}

type Shared = Arc<Mutex<Store>>;

fn lock(state: &Shared) -> MutexGuard<'_, Store> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running Loki emulator. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct LokiEmulator {
    inner: Arc<(Server, Shared)>,
}

impl LokiEmulator {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> LokiEmulator {
        let state: Shared = Arc::default();
        let router = Router::new()
            .route("/loki/api/v1/push", post(push))
            .route("/loki/api/v1/query_range", get(query_range))
            .route("/ready", get(|| async { "ready" }))
            .with_state(state.clone());
        let server = Server::start(router, CancellationToken::new(), None).await;
        LokiEmulator {
            inner: Arc::new((server, state)),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.0.addr())
    }

    /// Every stored line, stream by stream (label sets in order), each stream in time order.
    pub fn lines(&self) -> Vec<Line> {
        lock(&self.inner.1)
            .streams
            .iter()
            .flat_map(|(labels, lines)| {
                lines.iter().map(|(ts, line)| Line {
                    labels: labels.clone(),
                    ts: *ts,
                    line: line.clone(),
                })
            })
            .collect()
    }

    /// While `Some`, pushes are answered with that status and stored nothing.
    pub fn fail_with(&self, status: Option<u16>) {
        lock(&self.inner.1).fail = status;
    }

    /// Pushes answered, including refused ones.
    pub fn pushes(&self) -> usize {
        lock(&self.inner.1).pushes
    }
}

/// Loki answers errors as plain text.
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

async fn push(State(state): State<Shared>, body: Bytes) -> Response {
    let mut st = lock(&state);
    st.pushes += 1;
    if let Some(code) = st.fail {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return text(
            status,
            "rpc error: code = Unavailable desc = ingester unavailable\n",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return text(
            StatusCode::BAD_REQUEST,
            "loghttp.PushRequest.Streams: ReadArray: expect [ or n, but found {\n",
        );
    };
    let Some(streams) = body.get("streams").and_then(Value::as_array) else {
        return text(
            StatusCode::BAD_REQUEST,
            "error at least one label pair is required per stream\n",
        );
    };
    let mut ignored = String::new();
    let (mut total, mut refused) = (0, 0);
    for stream in streams {
        let labels: Labels = stream
            .get("stream")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if labels.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "error at least one label pair is required per stream\n",
            );
        }
        let Some(entries) = parse_entries(stream) else {
            return text(
                StatusCode::BAD_REQUEST,
                "loghttp.PushRequest: bad entry: want [\"<unix ns>\", \"<line>\"]\n",
            );
        };
        let lines = st.streams.entry(labels.clone()).or_default();
        for (ts, line) in entries {
            total += 1;
            match lines.last() {
                Some((newest, _)) if ts < *newest => {
                    refused += 1;
                    let _ = writeln!(
                        ignored,
                        "entry with timestamp {ts} ignored, reason: 'entry out of order' for stream: {}",
                        selector(&labels)
                    );
                }
                Some((newest, text)) if ts == *newest && *text == line => {}
                _ => lines.push((ts, line)),
            }
        }
    }
    if refused > 0 {
        let _ = write!(ignored, "total ignored: {refused} out of {total}");
        return text(StatusCode::BAD_REQUEST, ignored);
    }
    StatusCode::NO_CONTENT.into_response()
}

fn parse_entries(stream: &Value) -> Option<Vec<(i64, String)>> {
    stream
        .get("values")?
        .as_array()?
        .iter()
        .map(|v| {
            let ts = v.get(0)?.as_str()?.parse::<i64>().ok()?;
            Some((ts, v.get(1)?.as_str()?.to_string()))
        })
        .collect()
}

fn selector(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// `{a="x", b="y"} |= "text" |= "more"`: the matchers and the line filters.
fn parse_query(query: &str) -> Option<(Labels, Vec<String>)> {
    let query = query.trim();
    let inner = query.strip_prefix('{')?;
    let (selector, mut rest) = inner.split_once('}')?;
    let mut matchers = Labels::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=')?;
        let v: String = serde_json::from_str(v.trim()).ok()?;
        matchers.insert(k.trim().to_string(), v);
    }
    let mut filters = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let after = rest.strip_prefix("|=")?.trim_start();
        let mut de = serde_json::Deserializer::from_str(after).into_iter::<String>();
        filters.push(de.next()?.ok()?);
        rest = &after[de.byte_offset()..];
    }
    (!matchers.is_empty()).then_some((matchers, filters))
}

async fn query_range(
    State(state): State<Shared>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let query = params.get("query").map_or("", String::as_str);
    let Some((matchers, filters)) = parse_query(query) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value: {query}\n"
            ),
        );
    };
    let forward = params.get("direction").is_some_and(|d| d == "forward");
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100);
    let bound = |name: &str, default: i64| {
        params
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(default)
    };
    // Nanoseconds; `start` inclusive, `end` exclusive, as Loki takes them.
    let (start, end) = (bound("start", 0), bound("end", i64::MAX));
    let st = lock(&state);
    let mut result = Vec::new();
    for (labels, lines) in &st.streams {
        if !matchers.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        let mut values: Vec<Value> = lines
            .iter()
            .filter(|(ts, l)| {
                (start..end).contains(ts) && filters.iter().all(|f| l.contains(f.as_str()))
            })
            .map(|(ts, l)| json!([ts.to_string(), l]))
            .collect();
        if !forward {
            values.reverse();
        }
        values.truncate(limit);
        if !values.is_empty() {
            result.push(json!({"stream": labels, "values": values}));
        }
    }
    axum::Json(json!({
        "status": "success",
        "data": {"resultType": "streams", "result": result, "stats": {}},
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_like_logql_stream_selectors() {
        let (m, f) = parse_query(r#"{app="slipway", event="merge"} |= "cr-1" |= "x""#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(f, ["cr-1", "x"]);
        assert!(parse_query("{}").is_none());
        assert!(parse_query(r#"{app="x"} | json"#).is_none());
    }
}
