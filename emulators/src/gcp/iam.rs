//! Identity and Access Management (`iam.v1` discovery document), under `/iam/v1/`:
//! `projects.serviceAccounts.list`, `.get` (project `-` or the account's) and `.getIamPolicy`
//! (`POST …/{account}:getIamPolicy`: who may act as the account, the policy generateAccessToken
//! checks); `roles.list` and `roles.get` (the predefined roles the emulator knows, with their
//! permissions under `view=FULL` and on `get`); `projects.roles.list` and `.get` (custom roles).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::{Reply, authenticate, denied, not_found, ok, read_project};
use super::compute::fingerprint;
use super::crm::policy_json;
use super::state::{Kind, ServiceAccount, Shared, State as Gcp, lock};
use crate::google::oauth::ApiError;

/// What the project read roles allow: the permissions the emulator's read APIs check.
const READS: &[&str] = &[
    "compute.disks.get",
    "compute.disks.list",
    "compute.firewalls.get",
    "compute.firewalls.list",
    "compute.instances.get",
    "compute.instances.list",
    "compute.networks.get",
    "compute.networks.list",
    "compute.projects.get",
    "compute.zones.get",
    "compute.zones.list",
    "container.clusters.get",
    "container.clusters.list",
    "iam.roles.get",
    "iam.roles.list",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.getIamPolicy",
    "iam.serviceAccounts.list",
    "logging.logEntries.list",
    "logging.sinks.get",
    "logging.sinks.list",
    "resourcemanager.projects.get",
    "resourcemanager.projects.getIamPolicy",
    "run.revisions.get",
    "run.revisions.list",
    "run.services.get",
    "run.services.list",
    "storage.buckets.get",
    "storage.buckets.list",
];

/// `(name, title, description, included permissions)`.
type Predefined = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const PREDEFINED: [Predefined; 5] = [
    (
        "roles/viewer",
        "Viewer",
        "View most Google Cloud resources.",
        READS,
    ),
    (
        "roles/editor",
        "Editor",
        "View, create, update, and delete most Google Cloud resources.",
        READS,
    ),
    (
        "roles/owner",
        "Owner",
        "Full access to most Google Cloud resources.",
        READS,
    ),
    (
        "roles/iam.serviceAccountTokenCreator",
        "Service Account Token Creator",
        "Impersonate service accounts (create OAuth2 access tokens, sign blobs or JWTs, etc).",
        &[
            "iam.serviceAccounts.getAccessToken",
            "iam.serviceAccounts.getOpenIdToken",
            "iam.serviceAccounts.implicitDelegation",
            "iam.serviceAccounts.signBlob",
            "iam.serviceAccounts.signJwt",
        ],
    ),
    (
        "roles/iam.workloadIdentityUser",
        "Workload Identity User",
        "Impersonate service accounts from GKE Workloads and federated identities.",
        &[
            "iam.serviceAccounts.get",
            "iam.serviceAccounts.getAccessToken",
            "iam.serviceAccounts.getOpenIdToken",
            "iam.serviceAccounts.list",
        ],
    ),
];

fn predefined_json(r: &Predefined, full: bool) -> Value {
    let mut v = json!({
        "name": r.0,
        "title": r.1,
        "description": r.2,
        "stage": "GA",
        "etag": "AA==",
    });
    if full {
        v["includedPermissions"] = json!(r.3);
    }
    v
}

/// A custom role `projects/{p}/roles/{id}`.
pub(crate) fn custom_role(project: &str, id: &str, title: &str, permissions: &[&str]) -> Value {
    json!({
        "name": format!("projects/{project}/roles/{id}"),
        "title": title,
        "description": format!("Created on: {}", &super::state::CREATED[..10]),
        "includedPermissions": permissions,
        "stage": "GA",
        "etag": fingerprint(id),
    })
}

fn account_json(a: &ServiceAccount) -> Value {
    json!({
        "name": format!("projects/{}/serviceAccounts/{}", a.project, a.email),
        "projectId": a.project,
        "uniqueId": a.unique_id,
        "email": a.email,
        "displayName": a.display_name,
        "etag": "MDEwMjE5MjA=",
        "oauth2ClientId": a.unique_id,
    })
}

/// `GET projects/{p}/serviceAccounts`.
pub(crate) async fn accounts_list(
    State(s): State<Shared>,
    Path(project): Path<String>,
    h: HeaderMap,
    _q: Query<HashMap<String, String>>,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "iam.serviceAccounts.list")?;
    let accounts: Vec<Value> = st
        .accounts
        .values()
        .filter(|a| a.project == p.id)
        .map(account_json)
        .collect();
    Ok(ok(&json!({"accounts": accounts})))
}

/// The account `name` (email or unique id) names, if the caller may read its project.
fn readable<'a>(
    st: &'a Gcp,
    h: &HeaderMap,
    name: &str,
    permission: &str,
) -> Result<&'a ServiceAccount, ApiError> {
    authenticate(st, h)?;
    let account = st
        .account(name)
        .ok_or_else(|| not_found(&format!("Unknown service account {name}")))?;
    read_project(st, h, &account.project, permission)
        .map_err(|_| denied(permission, &format!("projects/-/serviceAccounts/{name}")))?;
    Ok(account)
}

/// `GET projects/{p}/serviceAccounts/{account}`.
pub(crate) async fn account_get(
    State(s): State<Shared>,
    Path((_project, name)): Path<(String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let a = readable(&st, &h, &name, "iam.serviceAccounts.get")?;
    Ok(ok(&account_json(a)))
}

/// `POST projects/{p}/serviceAccounts/{account}:getIamPolicy`.
pub(crate) async fn account_post(
    State(s): State<Shared>,
    Path((_project, name)): Path<(String, String)>,
    h: HeaderMap,
) -> Reply {
    let name = name
        .strip_suffix(":getIamPolicy")
        .ok_or_else(|| not_found("Method not found."))?;
    let st = lock(&s);
    let a = readable(&st, &h, name, "iam.serviceAccounts.getIamPolicy")?;
    Ok(ok(&policy_json(&a.bindings)))
}

/// `GET roles` (`view=FULL` adds the permissions).
pub(crate) async fn roles_list(
    State(s): State<Shared>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    authenticate(&lock(&s), &h)?;
    let full = q.get("view").is_some_and(|v| v == "FULL");
    let roles: Vec<Value> = PREDEFINED
        .iter()
        .map(|r| predefined_json(r, full))
        .collect();
    Ok(ok(&json!({"roles": roles})))
}

/// `GET roles/{role}`.
pub(crate) async fn role_get(
    State(s): State<Shared>,
    Path(role): Path<String>,
    h: HeaderMap,
) -> Reply {
    authenticate(&lock(&s), &h)?;
    let name = format!("roles/{role}");
    let r = PREDEFINED
        .iter()
        .find(|r| r.0 == name)
        .ok_or_else(|| not_found(&format!("The role named {name} was not found.")))?;
    Ok(ok(&predefined_json(r, true)))
}

/// `GET projects/{p}/roles`.
pub(crate) async fn custom_roles_list(
    State(s): State<Shared>,
    Path(project): Path<String>,
    h: HeaderMap,
    _q: Query<HashMap<String, String>>,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "iam.roles.list")?;
    let roles: Vec<Value> = st
        .list(Kind::Role, &p.id, None)
        .into_iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("includedPermissions");
            }
            r
        })
        .collect();
    Ok(ok(&json!({"roles": roles})))
}

/// `GET projects/{p}/roles/{role}`.
pub(crate) async fn custom_role_get(
    State(s): State<Shared>,
    Path((project, role)): Path<(String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "iam.roles.get")?;
    let id = &p.id;
    let r = st.get(Kind::Role, id, "", &role).ok_or_else(|| {
        not_found(&format!(
            "The role named projects/{id}/roles/{role} was not found."
        ))
    })?;
    Ok(ok(r))
}
