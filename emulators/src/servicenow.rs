//! A stateful emulator of ServiceNow's Table API for `change_request`, limited to what the
//! audit sink calls: create (`POST /api/now/table/change_request`), update
//! (`PATCH /api/now/table/change_request/{sys_id}`) with `work_notes` appended to the journal,
//! read (`GET …/{sys_id}`), and list with an encoded query (`GET …?sysparm_query=a=b^c=d`,
//! equality terms only), which the CAB gate uses. A new change's `approval` is
//! `not requested`, as in ServiceNow; a test sets the CAB's decision. Answers are `{"result": {...}}`; errors are ServiceNow's
//! `{"error": {"message", "detail"}, "status": "failure"}`. `state` takes the change model's
//! values only (`-5` New … `3` Closed, `4` Canceled), as a data policy would enforce.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::servicenow::ServiceNowEmulator;
//! let snow = ServiceNowEmulator::start("slipway", "pw").await;
//! assert!(snow.changes().is_empty());
//! # }
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// The change model's `state` values.
pub const STATES: [&str; 8] = ["-5", "-4", "-3", "-2", "-1", "0", "3", "4"];

/// A change request as stored: its fields, and the work notes in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub sys_id: String,
    pub number: String,
    pub fields: Map<String, Value>,
    pub work_notes: Vec<String>,
}

#[derive(Debug, Default)]
struct Store {
    basic: String,
    changes: Vec<Change>,
    fail: Option<u16>,
}

type Shared = Arc<Mutex<Store>>;

fn lock(state: &Shared) -> MutexGuard<'_, Store> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running emulator. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ServiceNowEmulator {
    inner: Arc<(Server, Shared)>,
}

impl ServiceNowEmulator {
    /// Starts on `127.0.0.1:0`, accepting basic auth `user:password`.
    pub async fn start(user: &str, password: &str) -> ServiceNowEmulator {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let state: Shared = Arc::new(Mutex::new(Store {
            basic: format!("Basic {basic}"),
            ..Store::default()
        }));
        let router = Router::new()
            .route("/api/now/table/change_request", post(create).get(list))
            .route(
                "/api/now/table/change_request/{sys_id}",
                get(read).patch(update),
            )
            .with_state(state.clone());
        let server = Server::start(router, CancellationToken::new(), None).await;
        ServiceNowEmulator {
            inner: Arc::new((server, state)),
        }
    }

    /// `http://127.0.0.1:PORT` (the instance URL).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.0.addr())
    }

    /// Every change request, in creation order.
    pub fn changes(&self) -> Vec<Change> {
        lock(&self.inner.1).changes.clone()
    }

    /// Sets the `approval` of the change whose `correlation_id` is `id` (a CAB's decision:
    /// `requested`, `approved`, `rejected`); `false` if there is none.
    pub fn set_approval(&self, id: &str, approval: &str) -> bool {
        let mut st = lock(&self.inner.1);
        let found = st
            .changes
            .iter_mut()
            .find(|c| c.fields.get("correlation_id").and_then(Value::as_str) == Some(id));
        found.is_some_and(|c| {
            c.fields.insert("approval".into(), json!(approval));
            true
        })
    }

    /// Files a change by hand, as a person in ServiceNow would, with these fields.
    pub fn file_by_hand(&self, fields: Map<String, Value>) {
        lock(&self.inner.1).file(fields, Vec::new());
    }

    /// While `Some`, every request is answered with that status and ServiceNow's error body.
    pub fn fail_with(&self, status: Option<u16>) {
        lock(&self.inner.1).fail = status;
    }
}

/// ServiceNow's error body.
fn error(status: StatusCode, message: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

/// Auth and the failure switch; then the JSON object body (for writes).
fn admit(st: &Store, headers: &HeaderMap) -> Option<Response> {
    if let Some(code) = st.fail {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Some(error(
            status,
            "Service Unavailable",
            "The instance is hibernating or under maintenance",
        ));
    }
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    if given != Some(st.basic.as_str()) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            "Required to provide Auth information",
        ));
    }
    None
}

/// The body's fields, or ServiceNow's refusal of them.
fn fields(body: &Bytes) -> Result<Map<String, Value>, Box<Response>> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "The payload is not valid JSON.",
        )));
    };
    if let Some(state) = fields.get("state")
        && !state.as_str().is_some_and(|s| STATES.contains(&s))
    {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "Operation Failed",
            &format!("Data Policy Exception: State {state} is not a valid change request state"),
        )));
    }
    Ok(fields)
}

fn answer(status: StatusCode, c: &Change) -> Response {
    let mut result = c.fields.clone();
    result.insert("sys_id".into(), json!(c.sys_id));
    result.insert("number".into(), json!(c.number));
    result.insert("work_notes".into(), json!(""));
    (status, axum::Json(json!({ "result": result }))).into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )
}

async fn create(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = lock(&state);
    let mut fields = match admit(&st, &headers).map_or_else(|| fields(&body), |r| Err(Box::new(r)))
    {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let notes: Vec<String> = fields
        .remove("work_notes")
        .and_then(|v| v.as_str().map(str::to_string))
        .into_iter()
        .collect();
    fields.entry("state").or_insert(json!("-5"));
    fields.entry("approval").or_insert(json!("not requested"));
    answer(StatusCode::CREATED, st.file(fields, notes))
}

impl Store {
    /// A new change with the next `sys_id` and number.
    fn file(&mut self, fields: Map<String, Value>, work_notes: Vec<String>) -> &Change {
        let n = self.changes.len() + 1;
        self.changes.push(Change {
            sys_id: format!("{n:032x}"),
            number: format!("CHG{:07}", 30_000 + n),
            fields,
            work_notes,
        });
        &self.changes[n - 1]
    }
}

async fn update(
    State(state): State<Shared>,
    Path(sys_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&state);
    let mut fields = match admit(&st, &headers).map_or_else(|| fields(&body), |r| Err(Box::new(r)))
    {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let Some(change) = st.changes.iter_mut().find(|c| c.sys_id == sys_id) else {
        return not_found();
    };
    if let Some(note) = fields
        .remove("work_notes")
        .and_then(|v| v.as_str().map(str::to_string))
    {
        change.work_notes.push(note);
    }
    change.fields.extend(fields);
    answer(StatusCode::OK, change)
}

async fn read(
    State(state): State<Shared>,
    Path(sys_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&state);
    if let Some(r) = admit(&st, &headers) {
        return r;
    }
    match st.changes.iter().find(|c| c.sys_id == sys_id) {
        Some(c) => answer(StatusCode::OK, c),
        None => not_found(),
    }
}

/// `GET /api/now/table/change_request?sysparm_query=field=value[^field=value…]`: the matching
/// changes, `sysparm_fields` (comma-separated) picking the fields, at most `sysparm_limit`.
async fn list(
    State(state): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let st = lock(&state);
    if let Some(r) = admit(&st, &headers) {
        return r;
    }
    let terms: Vec<(&str, &str)> = q
        .get("sysparm_query")
        .map(|s| s.split('^').filter_map(|t| t.split_once('=')).collect())
        .unwrap_or_default();
    let limit = q
        .get("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000usize);
    let wanted: Option<Vec<&str>> = q.get("sysparm_fields").map(|f| f.split(',').collect());
    let result: Vec<Value> = st
        .changes
        .iter()
        .filter(|c| {
            terms.iter().all(|(k, v)| {
                let field = match *k {
                    "number" => Some(c.number.as_str()),
                    "sys_id" => Some(c.sys_id.as_str()),
                    k => c.fields.get(k).and_then(Value::as_str),
                };
                field == Some(*v)
            })
        })
        .take(limit)
        .map(|c| {
            let mut all = c.fields.clone();
            all.insert("sys_id".into(), json!(c.sys_id));
            all.insert("number".into(), json!(c.number));
            match &wanted {
                Some(w) => Value::Object(
                    all.into_iter()
                        .filter(|(k, _)| w.contains(&k.as_str()))
                        .collect(),
                ),
                None => Value::Object(all),
            }
        })
        .collect();
    axum::Json(json!({ "result": result })).into_response()
}
