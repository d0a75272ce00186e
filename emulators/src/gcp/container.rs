//! Google Kubernetes Engine (`container.v1` discovery document), under `/container/v1/`:
//! `projects.locations.clusters.list` (location `-`: every location, as gcloud asks),
//! `.get`, and `projects.locations.clusters.nodePools.list` and `.get`.
//!
//! A cluster carries what `gcloud container clusters list|describe` prints and what
//! `get-credentials` would read: `endpoint`, `masterAuth.clusterCaCertificate` (base64 of a PEM
//! certificate), `location` and `locations` (a region's three zones, or the one zone),
//! versions, status, its node pools, and a `selfLink` under `https://container.googleapis.com/v1`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::auth::{Reply, not_found, ok, read_project};
use super::compute::fingerprint;
use super::state::{CREATED_UTC, Kind, Shared, State as Gcp, lock};
use crate::google::oauth::ApiError;

const VERSION: &str = "1.32.4-gke.1106006";
const BASE: &str = "https://container.googleapis.com/v1";

/// The zones a cluster at `location` spreads over: a region's `-a`, `-b`, `-c`, or the zone.
fn zones_of(location: &str) -> Vec<String> {
    let is_zone = location
        .rsplit_once('-')
        .is_some_and(|(_, z)| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()));
    if is_zone {
        vec![location.to_string()]
    } else {
        ["a", "b", "c"]
            .iter()
            .map(|z| format!("{location}-{z}"))
            .collect()
    }
}

fn cluster_url(project: &str, location: &str, name: &str) -> String {
    format!("{BASE}/projects/{project}/locations/{location}/clusters/{name}")
}

/// A node pool of `count` nodes per zone of `machine_type`.
pub(crate) fn node_pool(
    project: &str,
    location: &str,
    cluster: &str,
    name: &str,
    machine_type: &str,
    count: u32,
) -> Value {
    let zones = zones_of(location);
    json!({
        "name": name,
        "config": {
            "machineType": machine_type,
            "diskSizeGb": 100,
            "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "imageType": "COS_CONTAINERD",
            "serviceAccount": "default",
            "diskType": "pd-balanced",
        },
        "initialNodeCount": count,
        "locations": zones,
        "selfLink": format!("{}/nodePools/{name}", cluster_url(project, location, cluster)),
        "version": VERSION,
        "instanceGroupUrls": zones.iter().map(|z| format!(
            "https://www.googleapis.com/compute/v1/projects/{project}/zones/{z}/instanceGroupManagers/gke-{cluster}-{name}-grp"
        )).collect::<Vec<_>>(),
        "status": "RUNNING",
        "management": {"autoUpgrade": true, "autoRepair": true},
        "podIpv4CidrSize": 24,
        "etag": fingerprint(&format!("{cluster}/{name}")),
    })
}

/// A running cluster with a `default-pool` of three `e2-medium` nodes per zone, its endpoint
/// and CA as given.
pub(crate) fn cluster(
    project: &str,
    location: &str,
    name: &str,
    endpoint: &str,
    ca_pem: &str,
) -> Value {
    let pool = node_pool(project, location, name, "default-pool", "e2-medium", 3);
    let mut c = json!({
        "name": name,
        "id": fingerprint(&format!("{project}/{location}/{name}")).replace(['+', '/', '='], "0"),
        "masterAuth": {"clusterCaCertificate": STANDARD.encode(ca_pem)},
        "loggingService": "logging.googleapis.com/kubernetes",
        "monitoringService": "monitoring.googleapis.com/kubernetes",
        "network": "default",
        "subnetwork": "default",
        "clusterIpv4Cidr": "10.8.0.0/14",
        "servicesIpv4Cidr": "34.118.224.0/20",
        "nodePools": [],
        "locations": zones_of(location),
        "selfLink": cluster_url(project, location, name),
        "zone": location,
        "endpoint": endpoint,
        "initialClusterVersion": VERSION,
        "currentMasterVersion": VERSION,
        "currentNodeVersion": VERSION,
        "createTime": CREATED_UTC,
        "status": "RUNNING",
        "location": location,
        "releaseChannel": {"channel": "REGULAR"},
        "workloadIdentityConfig": {"workloadPool": format!("{project}.svc.id.goog")},
        "labelFingerprint": "a9dc16a7",
        "etag": fingerprint(name),
    });
    add_pool(&mut c, pool);
    c
}

/// Appends `pool` to the cluster and recounts its nodes.
pub(crate) fn add_pool(cluster: &mut Value, pool: Value) {
    if let Some(pools) = cluster["nodePools"].as_array_mut() {
        pools.push(pool);
    }
    let nodes: u64 = cluster["nodePools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let zones = p["locations"].as_array().map_or(1, Vec::len) as u64;
            p["initialNodeCount"].as_u64().unwrap_or(0) * zones
        })
        .sum();
    cluster["currentNodeCount"] = json!(nodes);
}

/// `GET projects/{p}/locations/{location}/clusters` (`-`: all).
pub(crate) async fn clusters_list(
    State(s): State<Shared>,
    Path((project, location)): Path<(String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "container.clusters.list")?;
    let scope = (location != "-").then_some(location.as_str());
    Ok(ok(
        &json!({"clusters": st.list(Kind::Cluster, &p.id, scope)}),
    ))
}

/// The cluster, read by the caller.
fn find<'a>(
    st: &'a Gcp,
    h: &HeaderMap,
    at: &(String, String, String),
) -> Result<&'a Value, ApiError> {
    let (project, location, cluster) = at;
    let p = read_project(st, h, project, "container.clusters.get")?;
    let id = &p.id;
    st.get(Kind::Cluster, id, location, cluster).ok_or_else(|| {
        not_found(&format!(
            "Not found: projects/{id}/locations/{location}/clusters/{cluster}."
        ))
    })
}

/// `GET projects/{p}/locations/{location}/clusters/{cluster}`.
pub(crate) async fn cluster_get(
    State(s): State<Shared>,
    Path(at): Path<(String, String, String)>,
    h: HeaderMap,
) -> Reply {
    Ok(ok(find(&lock(&s), &h, &at)?))
}

/// `GET …/clusters/{cluster}/nodePools`.
pub(crate) async fn node_pools_list(
    State(s): State<Shared>,
    Path(at): Path<(String, String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let c = find(&st, &h, &at)?;
    Ok(ok(&json!({"nodePools": c["nodePools"]})))
}

/// `GET …/clusters/{cluster}/nodePools/{pool}`.
pub(crate) async fn node_pool_get(
    State(s): State<Shared>,
    Path((project, location, cluster, pool)): Path<(String, String, String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let c = find(&st, &h, &(project, location, cluster))?;
    let found = c["nodePools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == pool.as_str());
    let prefix = format!("{BASE}/");
    let name = c["selfLink"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches(&prefix);
    found
        .map(ok)
        .ok_or_else(|| not_found(&format!("Not found: {name}/nodePools/{pool}.")))
}
