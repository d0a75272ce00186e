//! Cloud Resource Manager (`cloudresourcemanager.v1` discovery document, which gcloud 528's
//! `projects describe|list|get-iam-policy` use), under `/cloudresourcemanager/v1/`:
//! `projects.list` (the projects the caller may read; `filter` is read and ignored, every
//! project being `ACTIVE`), `projects.get` (by id or number) and `projects.getIamPolicy`
//! (`POST projects/{resource}:getIamPolicy`, the policy the emulator checks reads against).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::{READ_ROLES, Reply, authenticate, granted, not_found, ok, read_project};
use super::compute::fingerprint;
use super::state::{Bindings, CREATED_UTC, Project, Shared, lock};

fn project_json(p: &Project) -> Value {
    json!({
        "projectNumber": p.number.to_string(),
        "projectId": p.id,
        "lifecycleState": "ACTIVE",
        "name": p.id,
        "createTime": CREATED_UTC,
    })
}

/// An IAM `Policy` (version 1, bindings sorted by role, members sorted).
pub(crate) fn policy_json(bindings: &Bindings) -> Value {
    let bindings: Vec<Value> = bindings
        .iter()
        .filter(|(_, members)| !members.is_empty())
        .map(|(role, members)| json!({"role": role, "members": members}))
        .collect();
    let etag = fingerprint(&Value::Array(bindings.clone()).to_string());
    let mut policy = json!({"version": 1, "etag": etag});
    if !bindings.is_empty() {
        policy["bindings"] = Value::Array(bindings);
    }
    policy
}

/// `GET projects`.
pub(crate) async fn projects_list(
    State(s): State<Shared>,
    h: HeaderMap,
    _q: Query<HashMap<String, String>>,
) -> Reply {
    let st = lock(&s);
    let token = authenticate(&st, &h)?;
    let projects: Vec<Value> = st
        .projects
        .values()
        .filter(|p| granted(&p.bindings, &READ_ROLES, token))
        .map(project_json)
        .collect();
    Ok(ok(&json!({"projects": projects})))
}

/// `GET projects/{projectId}`.
pub(crate) async fn project_get(
    State(s): State<Shared>,
    Path(project): Path<String>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "resourcemanager.projects.get")?;
    Ok(ok(&project_json(p)))
}

/// `POST projects/{resource}:getIamPolicy`.
pub(crate) async fn project_post(
    State(s): State<Shared>,
    Path(name): Path<String>,
    h: HeaderMap,
) -> Reply {
    let project = name
        .strip_suffix(":getIamPolicy")
        .ok_or_else(|| not_found("Method not found."))?;
    let st = lock(&s);
    let p = read_project(&st, &h, project, "resourcemanager.projects.getIamPolicy")?;
    Ok(ok(&policy_json(&p.bindings)))
}
