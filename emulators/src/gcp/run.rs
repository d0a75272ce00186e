//! Cloud Run Admin API v1 (`run.v1` discovery document), under `/run/`, in both of its forms:
//!
//! - global, `projects.locations.services|revisions.list` and `.get`
//!   (`GET v1/projects/{p}/locations/{region or -}/…`): what `gcloud run services list` asks
//!   without `--region`;
//! - regional, `namespaces.services|revisions.list` and `.get`
//!   (`GET apis/serving.knative.dev/v1/namespaces/{project}/…`): what every command with
//!   `--region` (or `run/region`) asks. gcloud sends those to `https://<region>-<endpoint
//!   host>`, which cannot resolve for a loopback override, so the emulator also serves as the
//!   HTTP proxy gcloud is pointed at ([`super::GcpEmulator::endpoint_overrides`]): the region is
//!   read back from the `Host` header.
//!
//! Objects are Knative's (`serving.knative.dev/v1` `Service` and `Revision`), with the region in
//! the `cloud.googleapis.com/location` label, the project number as namespace, and each
//! container's `env` as seeded (secrets included: what a describe shows).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::auth::{Reply, bad_request, not_found, ok, read_project};
use super::compute::fingerprint;
use super::state::{CREATED_UTC, Kind, Project, Shared, State as Gcp, lock};
use crate::google::oauth::ApiError;

const API_VERSION: &str = "serving.knative.dev/v1";
const LOCATION: &str = "cloud.googleapis.com/location";

fn meta(p: &Project, region: &str, collection: &str, name: &str, labels: Value) -> Value {
    let mut labels = labels;
    labels[LOCATION] = json!(region);
    json!({
        "name": name,
        "namespace": p.number.to_string(),
        "selfLink": format!("/apis/{API_VERSION}/namespaces/{}/{collection}/{name}", p.number),
        "uid": fingerprint(&format!("{region}/{collection}/{name}")),
        "resourceVersion": "AAYpZ2E4Sx0",
        "generation": 1,
        "creationTimestamp": CREATED_UTC,
        "labels": labels,
        "annotations": {"serving.knative.dev/creator": "deployer@example.com", "serving.knative.dev/lastModifier": "deployer@example.com"},
    })
}

fn revision_spec(p: &Project, name: &str, image: &str, env: &[(String, String)]) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    json!({
        "containerConcurrency": 80,
        "timeoutSeconds": 300,
        "serviceAccountName": format!("{}-compute@developer.gserviceaccount.com", p.number),
        "containers": [{
            "name": format!("{name}-1"),
            "image": image,
            "ports": [{"name": "http1", "containerPort": 8080}],
            "env": env,
            "resources": {"limits": {"cpu": "1000m", "memory": "512Mi"}},
        }],
    })
}

fn ready(types: &[&str]) -> Value {
    types
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": CREATED_UTC}))
        .collect()
}

/// A ready service serving its one revision (returned second) all traffic.
pub(crate) fn service(
    p: &Project,
    region: &str,
    name: &str,
    image: &str,
    env: &[(String, String)],
) -> (Value, Value) {
    let revision = format!(
        "{name}-00001-{}",
        &fingerprint(name)
            .to_ascii_lowercase()
            .replace(['+', '/', '='], "x")[..3]
    );
    let url = format!("https://{name}-{}-uc.a.run.app", p.number);
    let spec = revision_spec(p, name, image, env);
    let svc = json!({
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": meta(p, region, "services", name, json!({})),
        "spec": {"template": {"spec": spec}, "traffic": [{"percent": 100, "latestRevision": true}]},
        "status": {
            "observedGeneration": 1,
            "conditions": ready(&["Ready", "ConfigurationsReady", "RoutesReady"]),
            "latestReadyRevisionName": revision,
            "latestCreatedRevisionName": revision,
            "traffic": [{"revisionName": revision, "percent": 100, "latestRevision": true}],
            "url": url,
            "address": {"url": url},
        },
    });
    let labels =
        json!({"serving.knative.dev/service": name, "serving.knative.dev/configuration": name});
    let rev = json!({
        "apiVersion": API_VERSION,
        "kind": "Revision",
        "metadata": meta(p, region, "revisions", &revision, labels),
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "conditions": ready(&["Ready", "Active", "ContainerHealthy", "ResourcesAvailable"]),
            "logUrl": format!("https://console.cloud.google.com/logs/viewer?project={}", p.id),
            "imageDigest": format!("{image}@sha256:{}", "0".repeat(64)),
        },
    });
    (svc, rev)
}

/// The region a regional call names through its host (`us-central1-localhost:PORT`).
fn region_from_host(st: &Gcp, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let port = st.base_url.rsplit(':').next()?;
    ["localhost", "127.0.0.1"].iter().find_map(|name| {
        let region = host.strip_suffix(&format!("-{name}:{port}"))?;
        (!region.is_empty()).then(|| region.to_string())
    })
}

/// `labelSelector` of `k=v` pairs joined by commas.
fn selected(item: &Value, selector: Option<&String>) -> bool {
    selector.is_none_or(|sel| {
        sel.split(',').filter(|t| !t.is_empty()).all(|t| {
            t.split_once('=')
                .is_some_and(|(k, v)| item["metadata"]["labels"][k.trim()] == v.trim())
        })
    })
}

/// The collection `name` names: its kind, list kind and permission prefix.
fn collection(name: &str) -> Result<(Kind, &'static str, &'static str), ApiError> {
    match name {
        "services" => Ok((Kind::RunService, "ServiceList", "run.services")),
        "revisions" => Ok((Kind::RunRevision, "RevisionList", "run.revisions")),
        _ => Err(not_found("Not Found")),
    }
}

fn list(
    s: &Shared,
    h: &HeaderMap,
    (project, region): (&str, Option<&str>),
    name: &str,
    q: &HashMap<String, String>,
) -> Reply {
    let (kind, list_kind, perm) = collection(name)?;
    let st = lock(s);
    let p = read_project(&st, h, project, &format!("{perm}.list"))?;
    let items: Vec<&Value> = st
        .list(kind, &p.id, region)
        .into_iter()
        .filter(|i| selected(i, q.get("labelSelector")))
        .collect();
    Ok(ok(
        &json!({"apiVersion": API_VERSION, "kind": list_kind, "metadata": {}, "items": items}),
    ))
}

fn get(
    s: &Shared,
    h: &HeaderMap,
    (project, region): (&str, &str),
    name: &str,
    item: &str,
) -> Reply {
    let (kind, _, perm) = collection(name)?;
    let st = lock(s);
    let p = read_project(&st, h, project, &format!("{perm}.get"))?;
    let what = name.trim_end_matches('s');
    let found = st
        .get(kind, &p.id, region, item)
        .ok_or_else(|| not_found(&format!("{what} '{item}' not found.")))?;
    Ok(ok(found))
}

type Params = Query<HashMap<String, String>>;

/// `GET v1/projects/{p}/locations/{region or -}/{collection}`.
pub(crate) async fn global_list(
    State(s): State<Shared>,
    Path((project, region, name)): Path<(String, String, String)>,
    h: HeaderMap,
    Query(q): Params,
) -> Reply {
    let region = (region != "-").then_some(region.as_str());
    list(&s, &h, (&project, region), &name, &q)
}

/// `GET v1/projects/{p}/locations/{region}/{collection}/{name}`.
pub(crate) async fn global_get(
    State(s): State<Shared>,
    Path((project, region, name, item)): Path<(String, String, String, String)>,
    h: HeaderMap,
) -> Reply {
    get(&s, &h, (&project, &region), &name, &item)
}

fn regional(s: &Shared, h: &HeaderMap) -> Result<String, ApiError> {
    region_from_host(&lock(s), h).ok_or_else(|| {
        bad_request(
            "The namespaces API is served on regional endpoints \
             (https://<region>-run.googleapis.com).",
        )
    })
}

/// `GET apis/serving.knative.dev/v1/namespaces/{project}/{collection}` on a regional host.
pub(crate) async fn namespaced_list(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    h: HeaderMap,
    Query(q): Params,
) -> Reply {
    let region = regional(&s, &h)?;
    list(&s, &h, (&ns, Some(&region)), &name, &q)
}

/// `GET apis/serving.knative.dev/v1/namespaces/{project}/{collection}/{name}` on a regional host.
pub(crate) async fn namespaced_get(
    State(s): State<Shared>,
    Path((ns, name, item)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Reply {
    let region = regional(&s, &h)?;
    get(&s, &h, (&ns, &region), &name, &item)
}
