//! The `/Users` and `/Groups` handlers: create, read, replace, PATCH, delete, list and search.
//! Each write is one store transaction, then one audit record (`provisioning`) before the
//! answer; a write the audit spool can't take answers 500, so the provider retries.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use slipway_core::audit::{AuditRecord, EventKind};

use super::filter::{Filter, parse_filter};
use super::matcher::{Scope, get_ci, matches};
use super::record::{self, Record};
use super::render::{self, Projection};
use super::schema::Kind;
use super::{BaseUrl, MAX_RESULTS, MAX_SCIM_BODY, ScimError, normalize, patch, scim_json};
use crate::app::AppState;
use crate::identity::{DirectoryError, DirectoryStore};

type Body = Result<Bytes, BytesRejection>;

/// How often a write is retried when another write to the same resource got in between.
const WRITE_ATTEMPTS: usize = 5;

fn directory(state: &AppState) -> Result<Arc<dyn DirectoryStore>, ScimError> {
    state.directory.clone().ok_or(ScimError::Internal)
}

fn kind_of(segment: &str) -> Result<Kind, ScimError> {
    Kind::from_endpoint(segment)
        .ok_or_else(|| ScimError::NotFound(format!("no resource type at /{segment}")))
}

fn not_found(kind: Kind, id: &str) -> ScimError {
    ScimError::NotFound(format!("{} {id} not found", kind.name()))
}

fn json_body(body: Body) -> Result<Value, ScimError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ScimError::TooLarge(MAX_SCIM_BODY)
        } else {
            ScimError::InvalidSyntax("the request body could not be read".into())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ScimError::InvalidSyntax(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Count the outcome, and answer.
fn done(state: &AppState, result: Result<Response, ScimError>) -> Response {
    match result {
        Ok(resp) => {
            state.metrics.request("scim", "ok");
            resp
        }
        Err(e) => {
            let outcome = if e.status().is_server_error() {
                "failed"
            } else {
                "refused"
            };
            state.metrics.request("scim", outcome);
            e.into_response()
        }
    }
}

/// A list or search request's parameters.
struct Query {
    filter: Option<Filter>,
    start: usize,
    count: usize,
    projection: Projection,
}

/// `startIndex` (1-based; less than 1 is 1) or `count` (0 to [`MAX_RESULTS`]).
fn number(name: &str, v: Option<&Value>, default: usize, min: i64) -> Result<usize, ScimError> {
    let n = match v {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let n = n.ok_or_else(|| ScimError::InvalidValue(format!("{name} must be an integer")))?;
    Ok(usize::try_from(n.max(min)).unwrap_or(default))
}

impl Query {
    /// From parameters named in any case (URL query or a `.search` body).
    fn from(get: impl Fn(&str) -> Option<Value>) -> Result<Query, ScimError> {
        let text = |name: &str| -> Option<String> {
            match get(name)? {
                Value::String(s) => Some(s),
                Value::Array(list) => Some(
                    list.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
        };
        let filter = match text("filter") {
            Some(f) if !f.trim().is_empty() => Some(parse_filter(f.trim())?),
            _ => None,
        };
        Ok(Query {
            filter,
            start: number("startIndex", get("startIndex").as_ref(), 1, 1)?,
            count: number("count", get("count").as_ref(), MAX_RESULTS, 0)?.min(MAX_RESULTS),
            projection: Projection::parse(
                text("attributes").as_deref(),
                text("excludedAttributes").as_deref(),
            )?,
        })
    }

    fn from_url(raw: Option<&str>) -> Result<Query, ScimError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| ScimError::InvalidSyntax("the query string does not parse".into()))?;
        Query::from(|name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| Value::String(v.clone()))
        })
    }
}

/// A page of the resources of `kinds` that match.
fn search(state: &AppState, kinds: &[Kind], q: &Query, base: &str) -> Result<Response, ScimError> {
    let store = directory(state)?;
    let mut matched = Vec::new();
    for &kind in kinds {
        for served in record::served_all(&*store, kind, base)? {
            if q.filter
                .as_ref()
                .is_none_or(|f| matches(f, &served, Scope::Resource(kind)))
            {
                matched.push((kind, served));
            }
        }
    }
    let total = matched.len();
    let page: Vec<Value> = matched
        .into_iter()
        .skip(q.start - 1)
        .take(q.count)
        .map(|(kind, v)| q.projection.apply(kind, v))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &render::list(total, q.start, page),
    ))
}

/// One resource as the answer, with its `ETag` (and `Location` when created).
fn respond(
    store: &dyn DirectoryStore,
    rec: &Record,
    base: &str,
    projection: &Projection,
    status: StatusCode,
) -> Result<Response, ScimError> {
    let served = record::served(store, rec, base)?;
    let location = served["meta"]["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut resp = scim_json(status, &projection.apply(rec.kind(), served));
    let headers = resp.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&render::etag(rec.version())) {
        headers.insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(loc) = HeaderValue::from_str(&location)
    {
        headers.insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn audit(state: &AppState, action: &str, rec: &Record) -> Result<(), ScimError> {
    let mut details = rec.summary();
    details["source"] = "scim".into();
    details["action"] = action.into();
    details["resource_type"] = rec.kind().name().into();
    let record = AuditRecord::new(EventKind::Provisioning, state.ids.next(), state.clock.now())
        .with_details(details);
    state
        .record(record, "a SCIM change")
        .await
        .map_err(|_| ScimError::Internal)?;
    state.people.touch();
    if let Record::User(user) = rec {
        link_provisioned(state, user.id.clone());
    }
    Ok(())
}

/// With `slack_match: email`, tie a provisioned (or changed) person to the Slack account Slack
/// finds for their primary email, after the answer: their first command then needs no lookup.
fn link_provisioned(state: &AppState, person_id: String) {
    let Some(store) = state.directory.clone() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        use crate::identity::Directory as _;
        let person = match crate::identity::StoreDirectory(store).person(&person_id) {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading a provisioned person");
                return;
            }
        };
        let policy = state.policy();
        if let Some((slack_id, link)) = state.people.link_provisioned(&policy, &person).await {
            let user = slipway_core::policy::SlackUser::new(slack_id);
            let source = crate::identity::Origin::Directory(person.source).as_str();
            let _ = state
                .record_link(&user, source, &link, Some(&person.identity()))
                .await;
        }
    });
}

fn if_match(headers: &HeaderMap, version: u64) -> Result<(), ScimError> {
    match headers.get(header::IF_MATCH).map(HeaderValue::to_str) {
        None => Ok(()),
        Some(Ok(tag)) if render::etag_matches(tag, version) => Ok(()),
        Some(_) => Err(ScimError::PreconditionFailed),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    base: BaseUrl,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = kind_of(&resource)
        .and_then(|kind| search(&state, &[kind], &Query::from_url(raw.as_deref())?, &base.0));
    done(&state, result)
}

/// `POST /{resource}/.search` (any other POST to a resource is not allowed).
pub async fn search_in(
    State(state): State<AppState>,
    Path((resource, id)): Path<(String, String)>,
    base: BaseUrl,
    body: Body,
) -> Response {
    let result = (|| {
        let kind = kind_of(&resource)?;
        if id != ".search" {
            return Err(ScimError::MethodNotAllowed("POST".into()));
        }
        let body = json_body(body)?;
        search(
            &state,
            &[kind],
            &Query::from(|n| get_ci(&body, n).cloned())?,
            &base.0,
        )
    })();
    done(&state, result)
}

/// `POST /.search`: users and groups at once.
pub async fn search_all(State(state): State<AppState>, base: BaseUrl, body: Body) -> Response {
    let result = json_body(body).and_then(|body| {
        let q = Query::from(|n| get_ci(&body, n).cloned())?;
        search(&state, &[Kind::User, Kind::Group], &q, &base.0)
    });
    done(&state, result)
}

pub async fn create(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    base: BaseUrl,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Response {
    let result = async {
        let kind = kind_of(&resource)?;
        let q = Query::from_url(raw.as_deref())?;
        let resource = normalize::resource(kind, &json_body(body)?)?;
        let store = directory(&state)?;
        let rec = Record::new(kind, state.ids.next(), resource, state.clock.unix());
        record::create(&*store, &rec)?;
        audit(&state, "create", &rec).await?;
        respond(&*store, &rec, &base.0, &q.projection, StatusCode::CREATED)
    };
    done(&state, result.await)
}

pub async fn fetch(
    State(state): State<AppState>,
    Path((resource, id)): Path<(String, String)>,
    base: BaseUrl,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let result = (|| {
        let kind = kind_of(&resource)?;
        let q = Query::from_url(raw.as_deref())?;
        let store = directory(&state)?;
        let rec = record::load(&*store, kind, &id)?.ok_or_else(|| not_found(kind, &id))?;
        let unchanged = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tag| render::etag_matches(tag, rec.version()));
        if unchanged {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
        respond(&*store, &rec, &base.0, &q.projection, StatusCode::OK)
    })();
    done(&state, result)
}

/// Read, change, write the successor; retried when another write got in between (unless the
/// client pinned a version with `If-Match`).
async fn update(
    state: &AppState,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    action: &str,
    change: impl Fn(&Record) -> Result<Value, ScimError>,
) -> Result<Record, ScimError> {
    let store = directory(state)?;
    for _ in 0..WRITE_ATTEMPTS {
        let current = record::load(&*store, kind, id)?.ok_or_else(|| not_found(kind, id))?;
        if_match(headers, current.version())?;
        let next = current.successor(change(&current)?, state.clock.unix());
        match record::replace(&*store, &next) {
            Ok(()) => {
                audit(state, action, &next).await?;
                return Ok(next);
            }
            Err(DirectoryError::Stale) => {}
            Err(e) => return Err(ScimError::from_store(e)),
        }
    }
    Err(ScimError::PreconditionFailed)
}

/// Read, change (replace the body, or apply the PATCH), write, answer.
async fn write(
    state: &AppState,
    (resource, id): (String, String),
    base: &str,
    (raw, headers): (Option<String>, HeaderMap),
    body: Body,
    patching: bool,
) -> Result<Response, ScimError> {
    let kind = kind_of(&resource)?;
    let q = Query::from_url(raw.as_deref())?;
    let body = json_body(body)?;
    let rec = if patching {
        update(state, kind, &id, &headers, "patch", |current| {
            let mut next = current.resource().clone();
            patch::apply(kind, &mut next, &body)?;
            Ok(next)
        })
        .await?
    } else {
        update(state, kind, &id, &headers, "replace", |_| {
            normalize::resource(kind, &body)
        })
        .await?
    };
    respond(
        &*directory(state)?,
        &rec,
        base,
        &q.projection,
        StatusCode::OK,
    )
}

/// `PUT` (replace) and `PATCH` on one resource.
pub async fn replace_or_modify(
    State(state): State<AppState>,
    method: Method,
    Path(path): Path<(String, String)>,
    base: BaseUrl,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let patching = method == Method::PATCH;
    let result = write(&state, path, &base.0, (raw, headers), body, patching).await;
    done(&state, result)
}

pub async fn delete(
    State(state): State<AppState>,
    Path((resource, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let kind = kind_of(&resource)?;
        let store = directory(&state)?;
        let current = record::load(&*store, kind, &id)?.ok_or_else(|| not_found(kind, &id))?;
        if_match(&headers, current.version())?;
        if !record::delete(&*store, kind, &id, state.clock.unix())? {
            return Err(not_found(kind, &id));
        }
        audit(&state, "delete", &current).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    done(&state, result.await)
}
