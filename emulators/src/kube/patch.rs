//! PATCH: JSON merge patch (strategic merge patch is treated as merge patch: lists are replaced,
//! not merged by key), JSON patch (add/replace/remove/test), server-side apply
//! (`application/apply-patch+yaml`, creates or merges), and the `scale` subresource.
//! `dryRun=All` answers with the result without storing it.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::handler::scale_of;
use super::resources::{Resource, settle_deployment};
use super::{Shared, lock};

pub(crate) struct TargetInfo {
    pub(crate) resource: &'static Resource,
    pub(crate) ns: String,
    pub(crate) name: String,
}

impl TargetInfo {
    fn key(&self) -> super::Key {
        (
            self.resource.name.to_string(),
            self.ns.clone(),
            self.name.clone(),
        )
    }
}

fn respond(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn fail(code: StatusCode, reason: &str, message: &str) -> Response {
    let (code, body) = super::tokens::failure(code, reason, message, None);
    respond(code, &body)
}

fn not_found(t: &TargetInfo) -> Response {
    let group = if t.resource.group.is_empty() {
        String::new()
    } else {
        format!(".{}", t.resource.group)
    };
    fail(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{}{group} \"{}\" not found", t.resource.name, t.name),
    )
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// RFC 6902 JSON patch, operations `add`, `replace`, `remove` and `test`.
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation is missing \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("operation is missing \"path\"")?;
        let (parent_path, last) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("invalid path {path:?}"))?;
        let last = unescape(last);
        if kind == "test" {
            let want = op.get("value").unwrap_or(&Value::Null);
            if target.pointer(path) != Some(want) {
                return Err(format!("testing value {path} failed"));
            }
            continue;
        }
        let parent = target
            .pointer_mut(parent_path)
            .ok_or_else(|| format!("path {parent_path:?} does not exist"))?;
        let value = op.get("value").cloned();
        match (kind, parent) {
            ("add" | "replace", Value::Object(map)) => {
                if kind == "replace" && !map.contains_key(&last) {
                    return Err(format!(
                        "replace operation does not apply: doc is missing key: {path}"
                    ));
                }
                map.insert(last, value.ok_or("operation is missing \"value\"")?);
            }
            ("remove", Value::Object(map)) => {
                map.remove(&last).ok_or_else(|| {
                    format!("remove operation does not apply: doc is missing key: {path}")
                })?;
            }
            (_, Value::Array(items)) => {
                let index = if last == "-" {
                    items.len()
                } else {
                    last.parse::<usize>()
                        .map_err(|_| format!("invalid index in {path:?}"))?
                };
                match kind {
                    "add" if index <= items.len() => {
                        items.insert(index, value.ok_or("operation is missing \"value\"")?);
                    }
                    "replace" if index < items.len() => {
                        items[index] = value.ok_or("operation is missing \"value\"")?;
                    }
                    "remove" if index < items.len() => {
                        items.remove(index);
                    }
                    _ => return Err(format!("index out of range in {path:?}")),
                }
            }
            (other, _) => {
                return Err(format!(
                    "unsupported or inapplicable operation {other:?} at {path:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Why a patched object cannot be stored, if it can't (a patch may set `metadata` to a string…).
fn shape_error(obj: &Value) -> Option<String> {
    if !obj.is_object() {
        return Some("the object must be a JSON object".into());
    }
    ["metadata", "spec", "status"]
        .into_iter()
        .find(|k| obj.get(*k).is_some_and(|v| !v.is_object()))
        .map(|k| format!("{k}: Invalid value: must be an object"))
}

/// Stores (unless dry run) the changed object: bumps generation on spec changes, settles
/// deployment status.
fn commit(
    state: &Shared,
    t: &TargetInfo,
    before: Option<&Value>,
    mut obj: Value,
    dry_run: bool,
) -> Response {
    if let Some(problem) = shape_error(&obj) {
        let (kind, group) = (t.resource.kind, t.resource.group);
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let message = format!("{qualified} \"{}\" is invalid: {problem}", t.name);
        return fail(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message);
    }
    let created = before.is_none();
    obj["metadata"]["name"] = json!(t.name);
    if t.resource.namespaced {
        obj["metadata"]["namespace"] = json!(t.ns);
    }
    obj["kind"] = json!(t.resource.kind);
    obj["apiVersion"] = json!(t.resource.api_version());
    let generation = before
        .and_then(|b| b.pointer("/metadata/generation"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let spec_changed = before.is_none_or(|b| b.get("spec") != obj.get("spec"));
    obj["metadata"]["generation"] = json!(if spec_changed {
        generation + 1
    } else {
        generation.max(1)
    });
    let mut st = lock(state);
    if t.resource.name == "deployments" {
        if spec_changed && !dry_run {
            super::rollout::begin(&mut st, &t.ns, &t.name, &mut obj);
        } else {
            settle_deployment(&mut obj);
        }
    }
    let stored = if dry_run {
        let n = st.counter + 1;
        obj["metadata"]["resourceVersion"] = json!(n.to_string());
        if obj["metadata"].get("creationTimestamp").is_none() {
            obj["metadata"]["creationTimestamp"] =
                json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        obj
    } else {
        st.put(t.resource.name, obj)
    };
    respond(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &stored,
    )
}

pub(crate) fn patch(
    state: &Shared,
    t: &TargetInfo,
    headers: &HeaderMap,
    body: &Bytes,
    dry_run: Option<&str>,
) -> Response {
    let dry_run = dry_run == Some("All");
    let existing = lock(state).objects.get(&t.key()).cloned();
    let ctype = content_type(headers);
    let text = String::from_utf8_lossy(body);
    match ctype.as_str() {
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => {
            let Some(before) = existing else {
                return not_found(t);
            };
            let patch: Value = match serde_json::from_str(&text) {
                Ok(p) => p,
                Err(e) => {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("error decoding patch: {e}"),
                    );
                }
            };
            let mut obj = before.clone();
            if ctype == "application/json-patch+json" {
                if let Err(e) = json_patch(&mut obj, &patch) {
                    return fail(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
                }
            } else {
                if !patch.is_object() {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "error decoding patch: expected a JSON object",
                    );
                }
                merge_patch(&mut obj, &patch);
            }
            commit(state, t, Some(&before), obj, dry_run)
        }
        "application/apply-patch+yaml" => {
            let applied: Value = match serde_saphyr::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("error decoding YAML: {e}"),
                    );
                }
            };
            if !applied.is_object() {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "error decoding YAML: expected an object",
                );
            }
            let name = applied.pointer("/metadata/name").and_then(Value::as_str);
            if name.is_some_and(|n| n != t.name) {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                );
            }
            if applied
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k != t.resource.kind)
            {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the kind of the object does not match the URL",
                );
            }
            let mut obj = existing
                .clone()
                .unwrap_or_else(|| json!({ "metadata": {} }));
            merge_patch(&mut obj, &applied);
            commit(state, t, existing.as_ref(), obj, dry_run)
        }
        other => fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ),
        ),
    }
}

/// PATCH (merge) or PUT on `…/{name}/scale`.
pub(crate) fn scale(
    state: &Shared,
    t: &TargetInfo,
    put: bool,
    headers: &HeaderMap,
    body: &Bytes,
    dry_run: Option<&str>,
) -> Response {
    let dry_run = dry_run == Some("All");
    let Some(before) = lock(state).objects.get(&t.key()).cloned() else {
        return not_found(t);
    };
    let incoming: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("error decoding body: {e}"),
            );
        }
    };
    let mut scale = scale_of(&before);
    if put {
        scale = incoming;
    } else {
        let ctype = content_type(headers);
        if ctype == "application/json-patch+json" {
            if let Err(e) = json_patch(&mut scale, &incoming) {
                return fail(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
            }
        } else {
            merge_patch(&mut scale, &incoming);
        }
    }
    let Some(replicas) = scale.pointer("/spec/replicas").and_then(Value::as_u64) else {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!(
                "Scale.autoscaling \"{}\" is invalid: spec.replicas: Required value",
                t.name
            ),
        );
    };
    let mut obj = before.clone();
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    obj["spec"]["replicas"] = json!(replicas);
    let resp = commit(state, t, Some(&before), obj, dry_run);
    if !resp.status().is_success() {
        return resp;
    }
    let stored = lock(state).objects.get(&t.key()).cloned().unwrap_or(before);
    let mut scale = scale_of(&stored);
    if dry_run {
        scale["spec"]["replicas"] = json!(replicas);
    }
    respond(StatusCode::OK, &scale)
}
