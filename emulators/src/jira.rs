//! A stateful emulator of the Jira REST API v2, limited to what the audit sink calls: create an
//! issue, comment on it, read it back, list and perform its transitions. The workflow is Jira's
//! simplified one (`To Do`, `In Progress`, `Done`; each transition named after its target
//! status, offered from every other status). Validation and error bodies follow Jira's
//! (`{"errorMessages": […], "errors": {field: message}}`), so a wrong project key or a missing
//! summary fails here the way it would against a real site.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::jira::{JiraEmulator, JiraLogin};
//! let jira = JiraEmulator::start("OPS", JiraLogin::Bearer("pat-1".into())).await;
//! // point the sink at jira.base_url(); then inspect jira.issues()
//! assert!(jira.issues().is_empty());
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
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// The credentials the emulator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JiraLogin {
    /// Jira Cloud style: `Authorization: Basic base64(user:token)`.
    Basic { user: String, token: String },
    /// Data Center personal access token: `Authorization: Bearer <token>`.
    Bearer(String),
}

/// An issue as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    pub description: Option<String>,
    pub labels: Vec<String>,
    pub comments: Vec<Comment>,
    /// The workflow status, `To Do` when created.
    pub status: String,
}

/// The simplified workflow: (transition id, name = target status, status id).
const WORKFLOW: [(&str, &str, &str); 3] = [
    ("11", "To Do", "10000"),
    ("21", "In Progress", "3"),
    ("31", "Done", "10001"),
];

/// A comment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: String,
    pub body: String,
}

#[derive(Debug, Default)]
struct Store {
    base_url: String,
    project: String,
    login: Option<JiraLogin>,
    issues: Vec<Issue>,
    counter: u64,
    down: bool,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Store>>;

fn lock(state: &Shared) -> MutexGuard<'_, Store> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
}

/// A running Jira emulator. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct JiraEmulator {
    inner: Arc<Inner>,
}

impl JiraEmulator {
    /// Starts on `127.0.0.1:0` with one project, accepting `login`.
    pub async fn start(project: &str, login: JiraLogin) -> JiraEmulator {
        let state: Shared = Arc::new(Mutex::new(Store {
            project: project.to_string(),
            login: Some(login),
            ..Store::default()
        }));
        let router = Router::new()
            .route("/rest/api/2/issue", post(create_issue))
            .route("/rest/api/2/issue/{key}", get(get_issue))
            .route("/rest/api/2/issue/{key}/comment", post(add_comment))
            .route(
                "/rest/api/2/issue/{key}/transitions",
                get(get_transitions).post(do_transition),
            )
            .with_state(state.clone());
        let server = Server::start(router, CancellationToken::new(), None).await;
        lock(&state).base_url = format!("http://{}", server.addr());
        JiraEmulator {
            inner: Arc::new(Inner { server, state }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.state)
    }

    /// `http://127.0.0.1:PORT` (the site root; the API is under `/rest/api/2`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// Every issue, in creation order.
    pub fn issues(&self) -> Vec<Issue> {
        self.state().issues.clone()
    }

    /// While down, every request is answered 503, as during a Jira outage.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Every request as `"METHOD /path -> status"`, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }
}

fn error(status: StatusCode, messages: &[&str], errors: &Value) -> Response {
    (
        status,
        axum::Json(json!({"errorMessages": messages, "errors": errors})),
    )
        .into_response()
}

/// Auth, outage and request log, common to every route. `Some` is the refusal to send.
fn admit(st: &mut Store, headers: &HeaderMap, method: &str, path: &str) -> Option<Response> {
    let answer = |st: &mut Store, status: StatusCode| {
        st.requests
            .push(format!("{method} {path} -> {}", status.as_u16()));
    };
    if st.down {
        answer(st, StatusCode::SERVICE_UNAVAILABLE);
        return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let ok = match &st.login {
        Some(JiraLogin::Bearer(token)) => given == format!("Bearer {token}"),
        Some(JiraLogin::Basic { user, token }) => {
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
            given == format!("Basic {expected}")
        }
        None => false,
    };
    if !ok {
        answer(st, StatusCode::UNAUTHORIZED);
        return Some(error(
            StatusCode::UNAUTHORIZED,
            &["You are not authenticated. Authentication required to perform this operation."],
            &json!({}),
        ));
    }
    answer(st, StatusCode::OK);
    None
}

fn parse_json(body: &Bytes) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

/// A POST admitted (see [`admit`]) with a JSON object body, or the answer refusing it.
fn post_json(
    st: &mut Store,
    headers: &HeaderMap,
    path: &str,
    body: &Bytes,
) -> Result<Value, Box<Response>> {
    if let Some(r) = admit(st, headers, "POST", path) {
        return Err(Box::new(r));
    }
    parse_json(body).ok_or_else(|| Box::new(bad_json()))
}

fn bad_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &["Unexpected character in the request body: it must be a JSON object."],
        &json!({}),
    )
}

async fn create_issue(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = lock(&state);
    if let Some(r) = admit(&mut st, &headers, "POST", "/rest/api/2/issue") {
        return r;
    }
    let Some(body) = parse_json(&body) else {
        return bad_json();
    };
    let fields = body.get("fields").cloned().unwrap_or(Value::Null);
    let text = |ptr: &str| {
        fields
            .pointer(ptr)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut errors = serde_json::Map::new();
    let project = text("/project/key").unwrap_or_default();
    if project != st.project {
        errors.insert("project".into(), json!("valid project is required"));
    }
    let issue_type = text("/issuetype/name").unwrap_or_default();
    if issue_type.is_empty() {
        errors.insert("issuetype".into(), json!("valid issue type is required"));
    }
    let summary = text("/summary").unwrap_or_default();
    if summary.trim().is_empty() {
        errors.insert(
            "summary".into(),
            json!("You must specify a summary of the issue."),
        );
    } else if summary.chars().count() > 255 || summary.contains('\n') {
        errors.insert(
            "summary".into(),
            json!("Summary must be less than 255 characters and on one line."),
        );
    }
    let labels: Vec<String> = fields
        .get("labels")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if labels.iter().any(|l| l.contains(' ') || l.is_empty()) {
        errors.insert("labels".into(), json!("Labels cannot contain spaces."));
    }
    if !errors.is_empty() {
        return error(StatusCode::BAD_REQUEST, &[], &Value::Object(errors));
    }
    st.counter += 1;
    let n = st.counter;
    let key = format!("{project}-{n}");
    let id = (10_000 + n).to_string();
    st.issues.push(Issue {
        id: id.clone(),
        key: key.clone(),
        project,
        issue_type,
        summary,
        description: text("/description"),
        labels,
        comments: Vec::new(),
        status: "To Do".into(),
    });
    let link = format!("{}/rest/api/2/issue/{id}", st.base_url);
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "key": key, "self": link})),
    )
        .into_response()
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        &["Issue does not exist or you do not have permission to see it."],
        &json!({}),
    )
}

fn comment_json(base: &str, issue: &Issue, c: &Comment) -> Value {
    json!({
        "self": format!("{base}/rest/api/2/issue/{}/comment/{}", issue.id, c.id),
        "id": c.id,
        "body": c.body,
        "author": {"name": "slipway", "displayName": "Slipway"},
    })
}

async fn get_issue(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&state);
    if let Some(r) = admit(
        &mut st,
        &headers,
        "GET",
        &format!("/rest/api/2/issue/{key}"),
    ) {
        return r;
    }
    let Some(issue) = st.issues.iter().find(|i| i.key == key || i.id == key) else {
        return not_found();
    };
    let comments: Vec<Value> = issue
        .comments
        .iter()
        .map(|c| comment_json(&st.base_url, issue, c))
        .collect();
    let body = json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("{}/rest/api/2/issue/{}", st.base_url, issue.id),
        "fields": {
            "project": {"key": issue.project},
            "issuetype": {"name": issue.issue_type},
            "summary": issue.summary,
            "description": issue.description,
            "labels": issue.labels,
            "status": {"name": issue.status},
            "comment": {
                "comments": comments,
                "maxResults": comments.len(),
                "total": comments.len(),
                "startAt": 0,
            },
        },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn add_comment(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&state);
    let body = match post_json(
        &mut st,
        &headers,
        &format!("/rest/api/2/issue/{key}/comment"),
        &body,
    ) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let Some(text) = body
        .get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            &[],
            &json!({"comment": "Comment body can not be empty!"}),
        );
    };
    st.counter += 1;
    let id = (20_000 + st.counter).to_string();
    let base = st.base_url.clone();
    let Some(issue) = st.issues.iter_mut().find(|i| i.key == key || i.id == key) else {
        return not_found();
    };
    let comment = Comment {
        id,
        body: text.to_string(),
    };
    issue.comments.push(comment.clone());
    let issue = issue.clone();
    (
        StatusCode::CREATED,
        axum::Json(comment_json(&base, &issue, &comment)),
    )
        .into_response()
}

/// `GET …/transitions`: the transitions offered from the issue's status.
async fn get_transitions(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = lock(&state);
    let path = format!("/rest/api/2/issue/{key}/transitions");
    if let Some(r) = admit(&mut st, &headers, "GET", &path) {
        return r;
    }
    let Some(issue) = st.issues.iter().find(|i| i.key == key || i.id == key) else {
        return not_found();
    };
    let offered: Vec<Value> = WORKFLOW
        .iter()
        .filter(|(_, name, _)| *name != issue.status)
        .map(|(id, name, status)| {
            json!({"id": id, "name": name, "to": {"id": status, "name": name},
                   "hasScreen": false, "isGlobal": true, "isInitial": false,
                   "isAvailable": true, "isConditional": false})
        })
        .collect();
    axum::Json(json!({"expand": "transitions", "transitions": offered})).into_response()
}

/// `POST …/transitions` with `{"transition": {"id": "21"}}`: 204, or Jira's 400.
async fn do_transition(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&state);
    let body = match post_json(
        &mut st,
        &headers,
        &format!("/rest/api/2/issue/{key}/transitions"),
        &body,
    ) {
        Ok(body) => body,
        Err(refusal) => return *refusal,
    };
    let Some(issue) = st.issues.iter_mut().find(|i| i.key == key || i.id == key) else {
        return not_found();
    };
    let Some(id) = body.pointer("/transition/id").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            &["Missing 'transition' identifier"],
            &json!({}),
        );
    };
    match WORKFLOW
        .iter()
        .find(|(tid, name, _)| *tid == id && *name != issue.status)
    {
        Some((_, name, _)) => {
            issue.status = (*name).to_string();
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(
            StatusCode::BAD_REQUEST,
            &[&format!(
                "Transition id '{id}' is not valid for this issue."
            )],
            &json!({}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(method: &str, url: &str, auth: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client.request(method, url).header("authorization", auth);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn issues_comments_auth_and_validation() {
        let jira = JiraEmulator::start(
            "OPS",
            JiraLogin::Basic {
                user: "bot@acme.test".into(),
                token: "t0k".into(),
            },
        )
        .await;
        let base = format!("{}/rest/api/2", jira.base_url());
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("bot@acme.test:t0k")
        );
        let issue = json!({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"},
            "summary": "Slipway change cr-1", "labels": ["slipway"]}});

        let (status, _) = call(
            "POST",
            &format!("{base}/issue"),
            "Bearer nope",
            Some(issue.clone()),
        )
        .await;
        assert_eq!(status, 401);
        let bad = json!({"fields": {"project": {"key": "NOPE"}, "issuetype": {"name": "Task"}, "summary": ""}});
        let (status, body) = call("POST", &format!("{base}/issue"), &auth, Some(bad)).await;
        assert_eq!(status, 400);
        assert!(body["errors"]["project"].is_string() && body["errors"]["summary"].is_string());

        let (status, created) = call("POST", &format!("{base}/issue"), &auth, Some(issue)).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["key"], "OPS-1");
        let (status, _) = call(
            "POST",
            &format!("{base}/issue/OPS-1/comment"),
            &auth,
            Some(json!({"body": "Executed: exit code 0"})),
        )
        .await;
        assert_eq!(status, 201);
        let (status, got) = call("GET", &format!("{base}/issue/OPS-1"), &auth, None).await;
        assert_eq!(status, 200);
        assert_eq!(got["fields"]["comment"]["total"], 1);
        assert_eq!(
            got["fields"]["comment"]["comments"][0]["body"],
            "Executed: exit code 0"
        );
        let (status, _) = call("GET", &format!("{base}/issue/OPS-9"), &auth, None).await;
        assert_eq!(status, 404);

        jira.set_down(true);
        let (status, _) = call("GET", &format!("{base}/issue/OPS-1"), &auth, None).await;
        assert_eq!(status, 503);
        assert_eq!(jira.issues().len(), 1);
        assert!(jira.requests().iter().any(|r| r.ends_with("-> 503")));
    }
}
