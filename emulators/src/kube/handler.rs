//! Request routing: discovery, get/list (JSON or Table), pod logs, scale, PATCH/apply, and
//! `Status` errors, as kube-apiserver answers them.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::resources::{self, Resource};
use super::selector::Selector;
use super::table;
use super::tokens::{self, Caller};
use super::{RecordedRequest, Shared, TokenCheck, lock};

/// Who the bearer token is: an issued ServiceAccount token (refused when expired or for another
/// audience), else a fixed token or one the check accepts. `None` is a 401.
fn authenticate(state: &Shared, bearer: Option<&str>) -> Option<Caller> {
    let t = bearer?;
    let (issued, open, known, check) = {
        let st = lock(state);
        (
            st.accounts.authenticate(t),
            st.tokens.is_empty() && st.token_check.is_none(),
            st.tokens.contains(t),
            st.token_check.clone(),
        )
    };
    match issued {
        Some(caller) => caller.ok(),
        None => (open || known || check.is_some_and(|TokenCheck(f)| f(t))).then_some(Caller::Admin),
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A `Status` failure, as kube-apiserver sends it.
fn status(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Response {
    let (code, body) = tokens::failure(code, reason, message, details);
    json_response(code, &body)
}

fn not_found_path() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn not_found(r: &Resource, name: &str) -> Response {
    let group = if r.group.is_empty() {
        String::new()
    } else {
        format!(".{}", r.group)
    };
    let message = format!("{}{group} \"{name}\" not found", r.name);
    let mut details = json!({ "name": name, "kind": r.name });
    if !r.group.is_empty() {
        details["group"] = json!(r.group);
    }
    status(StatusCode::NOT_FOUND, "NotFound", &message, Some(details))
}

fn bad_request(message: &str) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn method_not_allowed() -> Response {
    status(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

/// What a resource path names.
struct Target {
    resource: &'static Resource,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

enum Parsed {
    Target(Target),
    Unknown,
    NotResource,
}

fn parse_target(path: &str) -> Parsed {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", group, "v1", rest @ ..] if !rest.is_empty() => (*group, rest),
        _ => return Parsed::NotResource,
    };
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_string());
    let (ns, resource, name, sub, extra) = if rest.len() >= 3 && rest[0] == "namespaces" {
        (
            Some(rest[1].to_string()),
            rest[2],
            owned(rest.get(3)),
            owned(rest.get(4)),
            rest.len() > 5,
        )
    } else {
        (
            None,
            rest[0],
            owned(rest.get(1)),
            owned(rest.get(2)),
            rest.len() > 3,
        )
    };
    match Resource::find(group, resource) {
        Some(r) if !extra && (r.namespaced || ns.is_none()) => Parsed::Target(Target {
            resource: r,
            ns,
            name,
            sub,
        }),
        _ => Parsed::Unknown,
    }
}

/// The namespace a request is about, for slow-namespace delays.
fn namespace_of(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let i = segs.iter().position(|s| *s == "namespaces")?;
    segs.get(i + 1).map(|s| (*s).to_string())
}

fn query(uri: &Uri) -> Map<String, Value> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(crate) async fn handle(
    AxState(state): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = uri.path();
    let (context, path) = match raw.strip_prefix("/clusters/") {
        Some(rest) => {
            let (ctx, p) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(ctx.to_string()), format!("/{p}"))
        }
        None => (None, raw.to_string()),
    };
    let bearer = header_str(&headers, header::AUTHORIZATION)
        .and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
        .filter(|t| !t.is_empty());
    let caller = authenticate(&state, bearer.as_deref());
    let delay = {
        let mut st = lock(&state);
        let full = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        st.requests.push(RecordedRequest {
            method: method.to_string(),
            path: full,
            had_bearer: bearer.is_some(),
            context,
            accept: header_str(&headers, header::ACCEPT),
            content_type: header_str(&headers, header::CONTENT_TYPE),
            user: match &caller {
                Some(Caller::Account { username, .. }) => Some(username.clone()),
                _ => None,
            },
        });
        super::rollout::advance(&mut st);
        namespace_of(&path).and_then(|ns| st.slow.get(&ns).copied())
    };
    match path.trim_end_matches('/') {
        "/version" => return json_response(StatusCode::OK, &resources::version()),
        "/healthz" | "/livez" | "/readyz" => return (StatusCode::OK, "ok").into_response(),
        _ => {}
    }
    let Some(caller) = caller else {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            None,
        );
    };
    let dry_run = query(&uri).get("dryRun").is_some_and(|v| v == "All")
        || serde_json::from_slice::<Value>(&body).is_ok_and(|o| {
            o["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"))
        });
    if method == Method::POST
        && path.trim_end_matches('/') == "/apis/authentication.k8s.io/v1/tokenreviews"
        && matches!(caller, Caller::Admin)
    {
        let (code, answer) = lock(&state).accounts.review(&body);
        return json_response(code, &answer);
    }
    if let Some((code, refusal)) = tokens::authorize(&caller, &method, &path, dry_run) {
        return json_response(code, &refusal);
    }
    if let (
        &Method::POST,
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ],
    ) = (
        &method,
        path.trim_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        let (code, answer) = lock(&state).accounts.request(ns, name, &body);
        return json_response(code, &answer);
    }
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    route(&state, &method, &uri, &path, &headers, &body)
}

fn route(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let trimmed = path.trim_end_matches('/');
    if method == Method::GET {
        match trimmed {
            "/api" => {
                return json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443" }],
                    }),
                );
            }
            "/apis" => return json_response(StatusCode::OK, &resources::api_group_list()),
            "/api/v1" => return json_response(StatusCode::OK, &resources::resource_list("")),
            other => {
                if let Some(group) = other
                    .strip_prefix("/apis/")
                    .and_then(|g| g.strip_suffix("/v1"))
                    .filter(|g| resources::groups().contains(g))
                {
                    return json_response(StatusCode::OK, &resources::resource_list(group));
                }
            }
        }
    }
    let target = match parse_target(path) {
        Parsed::Target(t) => t,
        Parsed::Unknown | Parsed::NotResource => return not_found_path(),
    };
    let params = query(uri);
    let param = |k: &str| params.get(k).and_then(Value::as_str);
    let wants_table = header_str(headers, header::ACCEPT).is_some_and(|a| a.contains("as=Table"));
    match (
        method.clone(),
        target.name.as_deref(),
        target.sub.as_deref(),
    ) {
        (Method::GET, None, None) => {
            if matches!(param("watch"), Some("true" | "1")) {
                return watch(state, &target, &param);
            }
            list(
                state,
                &target,
                param("labelSelector"),
                param("fieldSelector"),
                wants_table,
                param("includeObject"),
            )
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let st = lock(state);
            match st.objects.get(&key(&target, name)) {
                None => not_found(target.resource, name),
                Some(obj) if wants_table => json_response(
                    StatusCode::OK,
                    &table_of(
                        target.resource.name,
                        std::slice::from_ref(obj),
                        param("includeObject"),
                    ),
                ),
                Some(obj) => json_response(StatusCode::OK, obj),
            }
        }
        (Method::GET, Some(name), Some("log")) if target.resource.name == "pods" => {
            pod_log(state, &target, name, param("tailLines"))
        }
        (Method::GET, Some(name), Some("scale")) if has_scale(&target) => {
            let st = lock(state);
            match st.objects.get(&key(&target, name)) {
                None => not_found(target.resource, name),
                Some(obj) => json_response(StatusCode::OK, &scale_of(obj)),
            }
        }
        (Method::PATCH, Some(name), None | Some("status")) => super::patch::patch(
            state,
            &target_info(&target, name),
            headers,
            body,
            param("dryRun"),
        ),
        (Method::PATCH | Method::PUT, Some(name), Some("scale")) if has_scale(&target) => {
            super::patch::scale(
                state,
                &target_info(&target, name),
                method == Method::PUT,
                headers,
                body,
                param("dryRun"),
            )
        }
        (Method::DELETE, Some(name), None) => delete(state, &target, name, param("dryRun"), body),
        (Method::GET, _, _) => not_found_path(),
        _ => method_not_allowed(),
    }
}

/// `?watch=1`: stream the selected objects' changes after `resourceVersion`.
fn watch<'a>(state: &Shared, t: &Target, param: &impl Fn(&str) -> Option<&'a str>) -> Response {
    let (labels, fields) = match (
        Selector::parse(param("labelSelector")),
        Selector::parse(param("fieldSelector")),
    ) {
        (Ok(l), Ok(f)) => (l, f),
        (Err(e), _) | (_, Err(e)) => return bad_request(&e),
    };
    super::rollout::watch(
        state,
        super::rollout::Watch {
            resource: t.resource.name,
            ns: t.ns.clone(),
            fields,
            labels,
            since: param("resourceVersion")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            timeout: Duration::from_secs(
                param("timeoutSeconds")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(300),
            ),
        },
    )
}

/// DELETE: answers with the object as it was (as the API does for most kinds). A dry run
/// (`dryRun=All`, or `dryRun: ["All"]` in the `DeleteOptions` body kubectl sends) keeps it.
fn delete(
    state: &Shared,
    target: &Target,
    name: &str,
    dry_run_param: Option<&str>,
    body: &Bytes,
) -> Response {
    let options: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let dry_run = dry_run_param == Some("All")
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let mut st = lock(state);
    let k = key(target, name);
    let Some(obj) = st.objects.get(&k).cloned() else {
        return not_found(target.resource, name);
    };
    if !dry_run {
        st.objects.remove(&k);
    }
    json_response(StatusCode::OK, &obj)
}

fn has_scale(t: &Target) -> bool {
    matches!(t.resource.name, "deployments" | "replicasets")
}

fn key(t: &Target, name: &str) -> super::Key {
    (
        t.resource.name.to_string(),
        t.ns.clone().unwrap_or_default(),
        name.to_string(),
    )
}

fn target_info(t: &Target, name: &str) -> super::patch::TargetInfo {
    super::patch::TargetInfo {
        resource: t.resource,
        ns: t.ns.clone().unwrap_or_default(),
        name: name.to_string(),
    }
}

fn list(
    state: &Shared,
    t: &Target,
    labels: Option<&str>,
    fields: Option<&str>,
    wants_table: bool,
    include: Option<&str>,
) -> Response {
    let labels = match Selector::parse(labels) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let fields = match Selector::parse(fields) {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let st = lock(state);
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|((r, ns, _), _)| {
            r == t.resource.name && t.ns.as_ref().is_none_or(|want| want == ns)
        })
        .map(|(_, o)| o)
        .filter(|o| labels.matches_labels(o) && fields.matches_fields(o))
        .cloned()
        .collect();
    let rv = st.counter.to_string();
    drop(st);
    if wants_table {
        let mut table = table_of(t.resource.name, &items, include);
        table["metadata"] = json!({ "resourceVersion": rv });
        return json_response(StatusCode::OK, &table);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", t.resource.kind),
            "apiVersion": t.resource.api_version(),
            "metadata": { "resourceVersion": rv },
            "items": items,
        }),
    )
}

fn table_of(resource: &str, items: &[Value], include: Option<&str>) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({ "cells": table::cells(resource, o, now) });
            match include {
                Some("None") => {}
                Some("Object") => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(Value::Null),
                    });
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": table::columns(resource),
        "rows": rows,
    })
}

/// `autoscaling/v1 Scale` for a deployment or replicaset.
pub(crate) fn scale_of(obj: &Value) -> Value {
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": replicas },
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_u64).unwrap_or(replicas),
            "selector": selector,
        },
    })
}

fn pod_log(state: &Shared, t: &Target, name: &str, tail: Option<&str>) -> Response {
    let st = lock(state);
    let ns = t.ns.clone().unwrap_or_default();
    if !st.objects.contains_key(&key(t, name)) {
        return not_found(t.resource, name);
    }
    let text = st
        .logs
        .get(&(ns, name.to_string()))
        .cloned()
        .unwrap_or_default();
    drop(st);
    let text = match tail.and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        }
        None => text,
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}
