//! Compute Engine (`compute.v1` discovery document), under `/compute/v1/`: what `gcloud compute
//! instances|disks|zones|networks|firewall-rules list|describe` and `project-info describe` read.
//!
//! - `projects.get` (`GET projects/{project}`: the project-info, with
//!   `commonInstanceMetadata`);
//! - `instances|disks.aggregatedList` (`GET projects/{p}/aggregated/{collection}`: `items` keyed
//!   `zones/<zone>`, a zone with nothing holding a `NO_RESULTS_ON_PAGE` warning, as gcloud's
//!   list expects), `instances|disks.list` and `.get` per zone;
//! - `networks|firewalls.list` and `.get` (`projects/{p}/global/…`); `zones.list` and `.get`.
//!
//! Resources carry `kind`, `id`, `selfLink` and zone and type URLs under
//! `https://www.googleapis.com/compute/v1`, as Google writes them whichever endpoint served
//! them. Lists are served whole: no paging (`maxResults` is read and ignored).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::auth::{Reply, not_found, ok, read_project};
use super::state::{COMPUTE, CREATED, Kind, Project, Shared, State as Gcp, lock};

/// Zones every project sees (besides those its resources are in).
pub(crate) const DEFAULT_ZONES: [&str; 4] = [
    "us-central1-a",
    "us-central1-b",
    "us-central1-c",
    "europe-west1-b",
];

/// A collection gcloud lists.
struct Collection {
    name: &'static str,
    kind: Kind,
    /// The list's `kind` (`compute#instanceList`); the aggregated one swaps `List` for
    /// `AggregatedList`.
    list_kind: &'static str,
    zonal: bool,
}

const COLLECTIONS: [Collection; 4] = [
    Collection {
        name: "instances",
        kind: Kind::Instance,
        list_kind: "compute#instanceList",
        zonal: true,
    },
    Collection {
        name: "disks",
        kind: Kind::Disk,
        list_kind: "compute#diskList",
        zonal: true,
    },
    Collection {
        name: "networks",
        kind: Kind::Network,
        list_kind: "compute#networkList",
        zonal: false,
    },
    Collection {
        name: "firewalls",
        kind: Kind::Firewall,
        list_kind: "compute#firewallList",
        zonal: false,
    },
];

fn collection(name: &str, zonal: bool) -> Option<&'static Collection> {
    COLLECTIONS
        .iter()
        .find(|c| c.name == name && c.zonal == zonal)
}

/// A compute fingerprint (base64 of 8 bytes), derived from `seed` so it is stable.
pub(crate) fn fingerprint(seed: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, seed.as_bytes());
    STANDARD.encode(&digest.as_ref()[..8])
}

/// `us-central1-a` → `us-central1`.
pub(crate) fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(r, _)| r)
}

fn project_url(project: &str) -> String {
    format!("{COMPUTE}/projects/{project}")
}

fn zone_url(project: &str, zone: &str) -> String {
    format!("{COMPUTE}/projects/{project}/zones/{zone}")
}

/// `{kind: compute#metadata, fingerprint, items: [{key, value}]}`.
pub(crate) fn metadata(items: &[(String, String)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({
        "kind": "compute#metadata",
        "fingerprint": fingerprint(&Value::Array(items.clone()).to_string()),
        "items": items,
    })
}

/// A running `e2-small` instance with one NIC on `default` and a boot disk of its name.
pub(crate) fn instance(
    st: &mut Gcp,
    p: &Project,
    zone: &str,
    name: &str,
    meta: &[(String, String)],
) -> Value {
    let zone_url = zone_url(&p.id, zone);
    let n = st.list(Kind::Instance, &p.id, None).len() + 2;
    json!({
        "kind": "compute#instance",
        "id": st.new_id(),
        "creationTimestamp": CREATED,
        "name": name,
        "tags": {"fingerprint": fingerprint("tags")},
        "machineType": format!("{zone_url}/machineTypes/e2-small"),
        "status": "RUNNING",
        "zone": zone_url,
        "canIpForward": false,
        "networkInterfaces": [{
            "kind": "compute#networkInterface",
            "network": format!("{}/global/networks/default", project_url(&p.id)),
            "subnetwork": format!("{}/regions/{}/subnetworks/default", project_url(&p.id), region_of(zone)),
            "networkIP": format!("10.128.0.{n}"),
            "name": "nic0",
            "accessConfigs": [{
                "kind": "compute#accessConfig",
                "type": "ONE_TO_ONE_NAT",
                "name": "External NAT",
                "natIP": format!("203.0.113.{n}"),
                "networkTier": "PREMIUM",
            }],
            "fingerprint": fingerprint(name),
            "stackType": "IPV4_ONLY",
        }],
        "disks": [{
            "kind": "compute#attachedDisk",
            "type": "PERSISTENT",
            "mode": "READ_WRITE",
            "source": format!("{zone_url}/disks/{name}"),
            "deviceName": name,
            "index": 0,
            "boot": true,
            "autoDelete": true,
            "interface": "SCSI",
            "diskSizeGb": "10",
        }],
        "metadata": metadata(meta),
        "serviceAccounts": [{
            "email": format!("{}-compute@developer.gserviceaccount.com", p.number),
            "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        }],
        "selfLink": format!("{zone_url}/instances/{name}"),
        "scheduling": {"onHostMaintenance": "MIGRATE", "automaticRestart": true, "preemptible": false, "provisioningModel": "STANDARD"},
        "cpuPlatform": "Intel Broadwell",
        "labelFingerprint": fingerprint("labels"),
        "startRestricted": false,
        "deletionProtection": false,
        "fingerprint": fingerprint(&format!("{zone}/{name}")),
        "lastStartTimestamp": CREATED,
    })
}

/// A `pd-balanced` disk of `size_gb`, attached to `users` (instance URLs).
pub(crate) fn disk(
    st: &mut Gcp,
    project: &str,
    zone: &str,
    name: &str,
    size_gb: u64,
    users: &[String],
) -> Value {
    let zone_url = zone_url(project, zone);
    json!({
        "kind": "compute#disk",
        "id": st.new_id(),
        "creationTimestamp": CREATED,
        "name": name,
        "sizeGb": size_gb.to_string(),
        "zone": zone_url,
        "status": "READY",
        "selfLink": format!("{zone_url}/disks/{name}"),
        "sourceImage": "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20251209",
        "type": format!("{zone_url}/diskTypes/pd-balanced"),
        "users": users,
        "labelFingerprint": fingerprint("labels"),
        "physicalBlockSizeBytes": "4096",
        "architecture": "X86_64",
    })
}

/// An auto-mode VPC network.
pub(crate) fn network(st: &mut Gcp, project: &str, name: &str) -> Value {
    let base = project_url(project);
    json!({
        "kind": "compute#network",
        "id": st.new_id(),
        "creationTimestamp": CREATED,
        "name": name,
        "selfLink": format!("{base}/global/networks/{name}"),
        "autoCreateSubnetworks": true,
        "subnetworks": DEFAULT_ZONES.iter().map(|z| region_of(z)).collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|r| format!("{base}/regions/{r}/subnetworks/{name}"))
            .collect::<Vec<_>>(),
        "routingConfig": {"routingMode": "REGIONAL"},
        "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
    })
}

/// The `allow` part of an ingress rule: protocol and ports (none: all).
pub(crate) type Allow<'a> = (&'a str, &'a [&'a str]);

/// An ingress rule at `priority` allowing `allow` from `ranges`.
pub(crate) fn firewall(
    st: &mut Gcp,
    (project, name, network): (&str, &str, &str),
    priority: u16,
    allow: Allow<'_>,
    ranges: &[&str],
) -> Value {
    let base = project_url(project);
    let mut allowed = json!({"IPProtocol": allow.0});
    if !allow.1.is_empty() {
        allowed["ports"] = json!(allow.1);
    }
    json!({
        "kind": "compute#firewall",
        "id": st.new_id(),
        "creationTimestamp": CREATED,
        "name": name,
        "network": format!("{base}/global/networks/{network}"),
        "priority": priority,
        "sourceRanges": ranges,
        "allowed": [allowed],
        "direction": "INGRESS",
        "logConfig": {"enable": false},
        "disabled": false,
        "selfLink": format!("{base}/global/firewalls/{name}"),
    })
}

fn zone_json(p: &Project, index: usize, zone: &str) -> Value {
    let region = region_of(zone);
    json!({
        "kind": "compute#zone",
        "id": (2000 + index).to_string(),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": format!("{}/regions/{region}", project_url(&p.id)),
        "selfLink": zone_url(&p.id, zone),
        "availableCpuPlatforms": ["Intel Broadwell", "AMD Milan"],
        "supportsPzs": false,
    })
}

fn project_json(p: &Project) -> Value {
    json!({
        "kind": "compute#project",
        "id": p.number.to_string(),
        "creationTimestamp": CREATED,
        "name": p.id,
        "commonInstanceMetadata": metadata(&p.metadata),
        "selfLink": project_url(&p.id),
        "defaultServiceAccount": format!("{}-compute@developer.gserviceaccount.com", p.number),
        "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS",
        "defaultNetworkTier": "PREMIUM",
        "vmDnsSetting": "ZONAL_ONLY",
    })
}

fn list_json(kind: &str, id: &str, items: &[Value]) -> Value {
    json!({"kind": kind, "id": id, "items": items, "selfLink": format!("{COMPUTE}/{id}")})
}

type Params = Query<HashMap<String, String>>;

/// `GET projects/{project}`.
pub(crate) async fn project_get(
    State(s): State<Shared>,
    Path(project): Path<String>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "compute.projects.get")?;
    Ok(ok(&project_json(p)))
}

/// `GET projects/{project}/zones`.
pub(crate) async fn zones_list(
    State(s): State<Shared>,
    Path(project): Path<String>,
    h: HeaderMap,
    _q: Params,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "compute.zones.list")?;
    let items: Vec<Value> = p
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| zone_json(p, i, z))
        .collect();
    let id = format!("projects/{}/zones", p.id);
    Ok(ok(&list_json("compute#zoneList", &id, &items)))
}

/// `GET projects/{project}/zones/{zone}`.
pub(crate) async fn zone_get(
    State(s): State<Shared>,
    Path((project, zone)): Path<(String, String)>,
    h: HeaderMap,
) -> Reply {
    let st = lock(&s);
    let p = read_project(&st, &h, &project, "compute.zones.get")?;
    let Some(i) = p.zones.iter().position(|z| *z == zone) else {
        let id = &p.id;
        return Err(not_found(&format!(
            "The resource 'projects/{id}/zones/{zone}' was not found"
        )));
    };
    Ok(ok(&zone_json(p, i, &zone)))
}

/// `{"zones/<zone>": {"<collection>": [...]}}` for every zone of the project, a zone with
/// nothing holding the warning Google puts there.
fn scoped_items(st: &Gcp, p: &Project, c: &Collection) -> Map<String, Value> {
    let mut items = Map::new();
    for zone in &p.zones {
        let found: Vec<&Value> = st.list(c.kind, &p.id, Some(zone));
        let scope = format!("zones/{zone}");
        let entry = if found.is_empty() {
            json!({"warning": {
                "code": "NO_RESULTS_ON_PAGE",
                "message": format!("There are no results for scope '{scope}' on this page."),
                "data": [{"key": "scope", "value": scope}],
            }})
        } else {
            json!({ c.name: found })
        };
        items.insert(scope, entry);
    }
    items
}

/// `GET projects/{project}/aggregated/{instances|disks}`.
pub(crate) async fn aggregated(
    State(s): State<Shared>,
    Path((project, name)): Path<(String, String)>,
    h: HeaderMap,
    _q: Params,
) -> Reply {
    let c = collection(&name, true).ok_or_else(|| not_found("Not Found"))?;
    let st = lock(&s);
    let p = read_project(&st, &h, &project, &format!("compute.{name}.list"))?;
    let id = format!("projects/{}/aggregated/{name}", p.id);
    Ok(ok(&json!({
        "kind": c.list_kind.replace("List", "AggregatedList"),
        "id": id,
        "items": scoped_items(&st, p, c),
        "selfLink": format!("{COMPUTE}/{id}"),
    })))
}

/// `GET projects/{p}/zones/{zone}/{collection}`.
pub(crate) async fn zonal_list(
    State(s): State<Shared>,
    Path((project, zone, name)): Path<(String, String, String)>,
    h: HeaderMap,
    _q: Params,
) -> Reply {
    list(&s, &h, &project, Some(&zone), &name)
}

/// `GET projects/{p}/global/{collection}`.
pub(crate) async fn global_list(
    State(s): State<Shared>,
    Path((project, name)): Path<(String, String)>,
    h: HeaderMap,
    _q: Params,
) -> Reply {
    list(&s, &h, &project, None, &name)
}

/// `projects/{p}/zones/{zone}` or `projects/{p}/global`.
fn scope_path(project: &str, zone: Option<&str>) -> String {
    match zone {
        Some(z) => format!("projects/{project}/zones/{z}"),
        None => format!("projects/{project}/global"),
    }
}

fn list(s: &Shared, h: &HeaderMap, project: &str, zone: Option<&str>, name: &str) -> Reply {
    let c = collection(name, zone.is_some()).ok_or_else(|| not_found("Not Found"))?;
    let st = lock(s);
    let p = read_project(&st, h, project, &format!("compute.{name}.list"))?;
    let items: Vec<Value> = st
        .list(c.kind, &p.id, Some(zone.unwrap_or("")))
        .into_iter()
        .cloned()
        .collect();
    let path = format!("{}/{name}", scope_path(&p.id, zone));
    Ok(ok(&list_json(c.list_kind, &path, &items)))
}

/// `GET projects/{p}/zones/{zone}/{collection}/{name}`.
pub(crate) async fn zonal_get(
    State(s): State<Shared>,
    Path((project, zone, name, item)): Path<(String, String, String, String)>,
    h: HeaderMap,
) -> Reply {
    get(&s, &h, &project, Some(&zone), &name, &item)
}

/// `GET projects/{p}/global/{collection}/{name}`.
pub(crate) async fn global_get(
    State(s): State<Shared>,
    Path((project, name, item)): Path<(String, String, String)>,
    h: HeaderMap,
) -> Reply {
    get(&s, &h, &project, None, &name, &item)
}

fn get(
    s: &Shared,
    h: &HeaderMap,
    project: &str,
    zone: Option<&str>,
    name: &str,
    item: &str,
) -> Reply {
    let c = collection(name, zone.is_some()).ok_or_else(|| not_found("Not Found"))?;
    let st = lock(s);
    let p = read_project(&st, h, project, &format!("compute.{name}.get"))?;
    let found = st
        .get(c.kind, &p.id, zone.unwrap_or(""), item)
        .ok_or_else(|| {
            let path = scope_path(&p.id, zone);
            not_found(&format!(
                "The resource '{path}/{name}/{item}' was not found"
            ))
        })?;
    Ok(ok(found))
}
