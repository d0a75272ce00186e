//! The GCP emulator against Google's discovery documents (`google-api-python-client` ships
//! them; a missing package fails with the install command, never skips):
//!
//! - every method in `gcp::METHODS` is in its document with the same verb and path;
//! - a live response of every method fits the document's response schema: each field exists
//!   with the declared JSON type (int64s as strings), `kind` is the schema's default, and the
//!   fields that identify a resource (`name`, `id`, `selfLink`, …) are present.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use slipway_emulators::discovery::{check, document, find_method};
use slipway_emulators::gcp::METHODS;

use super::{actions_token, call_with, federation, reader};

fn documents() -> BTreeMap<&'static str, Value> {
    METHODS
        .iter()
        .map(|m| {
            (
                m.document,
                document(m.document).unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect()
}

/// `{projectsId}` and `{+name}` alike → `{}`.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '{' => {
                depth += 1;
                out.push('{');
            }
            '}' => {
                depth -= 1;
                out.push('}');
            }
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn the_gcp_emulators_methods_match_their_discovery_documents() {
    let docs = documents();
    for spec in METHODS {
        let doc = &docs[spec.document];
        let m = find_method(&doc["resources"], spec.id)
            .unwrap_or_else(|| panic!("{} is not in {}", spec.id, spec.document));
        assert_eq!(m["httpMethod"], spec.http_method, "{}", spec.id);
        let theirs = m["flatPath"].as_str().or(m["path"].as_str()).unwrap();
        assert_eq!(shape(theirs), shape(spec.path), "{}", spec.id);
        let service_path = doc["servicePath"].as_str().unwrap();
        assert!(
            spec.prefix.ends_with(&format!("/{service_path}")),
            "{}: prefix {} vs servicePath {service_path}",
            spec.id,
            spec.prefix
        );
    }
}

/// The fields that identify each resource, per document and schema.
#[rustfmt::skip]
const REQUIRED: &[(&str, &str, &[&str])] = &[
    ("compute.v1", "Instance", &["kind", "id", "name", "selfLink", "zone", "status", "machineType"]),
    ("compute.v1", "Disk", &["kind", "id", "name", "selfLink", "zone", "sizeGb"]),
    ("compute.v1", "Zone", &["kind", "id", "name", "selfLink", "region", "status"]),
    ("compute.v1", "Network", &["kind", "id", "name", "selfLink"]),
    ("compute.v1", "Firewall", &["kind", "id", "name", "selfLink", "network"]),
    ("compute.v1", "Project", &["kind", "id", "name", "selfLink", "commonInstanceMetadata"]),
    ("compute.v1", "Metadata", &["kind", "fingerprint"]),
    ("compute.v1", "InstanceAggregatedList", &["kind", "id", "items", "selfLink"]),
    ("compute.v1", "InstanceList", &["kind", "id", "items", "selfLink"]),
    ("container.v1", "Cluster", &["name", "selfLink", "location", "locations", "endpoint", "masterAuth", "status", "currentMasterVersion"]),
    ("container.v1", "MasterAuth", &["clusterCaCertificate"]),
    ("container.v1", "NodePool", &["name", "selfLink", "config", "status", "version"]),
    ("cloudresourcemanager.v1", "Project", &["projectId", "projectNumber", "lifecycleState", "name"]),
    ("cloudresourcemanager.v1", "Policy", &["etag", "version"]),
    ("cloudresourcemanager.v1", "Binding", &["role", "members"]),
    ("iam.v1", "ServiceAccount", &["name", "email", "uniqueId", "projectId"]),
    ("iam.v1", "Role", &["name", "title"]),
    ("storage.v1", "Bucket", &["kind", "id", "name", "selfLink", "projectNumber", "location"]),
    ("logging.v2", "LogSink", &["name", "destination"]),
    ("logging.v2", "LogEntry", &["logName", "resource", "timestamp", "severity", "insertId"]),
    ("run.v1", "Service", &["apiVersion", "kind", "metadata", "spec", "status"]),
    ("run.v1", "Revision", &["apiVersion", "kind", "metadata", "spec", "status"]),
    ("run.v1", "ObjectMeta", &["name", "namespace", "selfLink", "uid"]),
    ("sts.v1", "GoogleIdentityStsV1ExchangeTokenResponse", &["access_token", "issued_token_type", "token_type", "expires_in"]),
    ("iamcredentials.v1", "GenerateAccessTokenResponse", &["accessToken", "expireTime"]),
    ("secretmanager.v1", "AccessSecretVersionResponse", &["name", "payload"]),
    ("secretmanager.v1", "SecretPayload", &["data", "dataCrc32c"]),
];

/// Walks `v` as `schema` describes it and reports missing [`REQUIRED`] fields.
fn required(
    name: &str,
    doc: &Value,
    schema: &Value,
    v: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    if let Some(r) = schema["$ref"].as_str() {
        if let Some((_, _, fields)) = REQUIRED.iter().find(|(d, s, _)| *d == name && *s == r) {
            for f in *fields {
                if v.get(f).is_none() {
                    errors.push(format!("{path}: {r} lacks `{f}`"));
                }
            }
        }
        return required(name, doc, &doc["schemas"][r], v, path, errors);
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            required(name, doc, items, item, &format!("{path}[{i}]"), errors);
        }
    }
    for (k, value) in v.as_object().into_iter().flatten() {
        let sub = schema["properties"]
            .get(k)
            .or(schema.get("additionalProperties"));
        if let Some(sub) = sub {
            required(name, doc, sub, value, &format!("{path}.{k}"), errors);
        }
    }
}

/// Whether `path` (after the base URL, query aside) is the method's documented path.
fn routed_as(id: &str, path: &str) -> bool {
    let spec = METHODS.iter().find(|m| m.id == id).unwrap();
    let pattern = shape(&format!("{}{}", spec.prefix, spec.path))
        .split("{}")
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join("[^/?]+");
    let path = format!("/{}", path.split('?').next().unwrap());
    regex::Regex::new(&format!("^{pattern}$"))
        .unwrap()
        .is_match(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_the_gcp_emulator_serves_fits_its_discovery_schema() {
    let docs = documents();
    let (gcp, ex, oidc, provider) = federation().await;
    let base = gcp.base_url();
    let token = gcp.token_for(&reader(&ex));
    let regional = format!("us-central1-localhost:{}", base.rsplit(':').next().unwrap());
    let (_, revisions) = call_with(
        "GET",
        &format!("{base}/run/v1/projects/acme-prod/locations/us-central1/revisions"),
        Some(&token),
        &[],
        None,
    )
    .await;
    let revision = revisions["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let subject = actions_token(&oidc, &provider.token_audience()).await;
    let exchange = serde_urlencoded::to_string([
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", &provider.audience()),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", &subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ])
    .unwrap();
    let (status, sts) = call_with(
        "POST",
        &format!("{base}/sts/v1/token"),
        None,
        &[],
        Some(("application/x-www-form-urlencoded", exchange)),
    )
    .await;
    assert_eq!(status, 200, "{sts}");
    let federated = sts["access_token"].as_str().unwrap().to_string();
    let r = &ex.reader.client_email;
    gcp.add_secret_version("acme-prod", "db-password", "not-a-real-password");
    gcp.grant_secret_accessor("acme-prod", &format!("serviceAccount:{r}"));
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("compute.projects.get", "compute/v1/projects/acme-prod".into(), None),
        ("compute.zones.list", "compute/v1/projects/acme-prod/zones".into(), None),
        ("compute.zones.get", "compute/v1/projects/acme-prod/zones/us-central1-a".into(), None),
        ("compute.instances.aggregatedList", "compute/v1/projects/acme-prod/aggregated/instances".into(), None),
        ("compute.instances.list", "compute/v1/projects/acme-prod/zones/us-central1-a/instances".into(), None),
        ("compute.instances.get", "compute/v1/projects/acme-prod/zones/us-central1-a/instances/web-1".into(), None),
        ("compute.disks.aggregatedList", "compute/v1/projects/acme-prod/aggregated/disks".into(), None),
        ("compute.disks.list", "compute/v1/projects/acme-prod/zones/us-central1-a/disks".into(), None),
        ("compute.disks.get", "compute/v1/projects/acme-prod/zones/us-central1-a/disks/data-1".into(), None),
        ("compute.networks.list", "compute/v1/projects/acme-prod/global/networks".into(), None),
        ("compute.networks.get", "compute/v1/projects/acme-prod/global/networks/default".into(), None),
        ("compute.firewalls.list", "compute/v1/projects/acme-prod/global/firewalls".into(), None),
        ("compute.firewalls.get", "compute/v1/projects/acme-prod/global/firewalls/allow-https".into(), None),
        ("container.projects.locations.clusters.list", "container/v1/projects/acme-prod/locations/-/clusters".into(), None),
        ("container.projects.locations.clusters.get", "container/v1/projects/acme-prod/locations/us-central1/clusters/prod".into(), None),
        ("container.projects.locations.clusters.nodePools.list", "container/v1/projects/acme-prod/locations/us-central1/clusters/prod/nodePools".into(), None),
        ("container.projects.locations.clusters.nodePools.get", "container/v1/projects/acme-prod/locations/us-central1/clusters/prod/nodePools/batch".into(), None),
        ("cloudresourcemanager.projects.list", "cloudresourcemanager/v1/projects?filter=lifecycleState%3AACTIVE".into(), None),
        ("cloudresourcemanager.projects.get", "cloudresourcemanager/v1/projects/acme-prod".into(), None),
        ("cloudresourcemanager.projects.getIamPolicy", "cloudresourcemanager/v1/projects/acme-prod:getIamPolicy".into(), Some(json!({"options": {"requestedPolicyVersion": 3}}))),
        ("iam.projects.serviceAccounts.list", "iam/v1/projects/acme-prod/serviceAccounts".into(), None),
        ("iam.projects.serviceAccounts.get", format!("iam/v1/projects/-/serviceAccounts/{r}"), None),
        ("iam.projects.serviceAccounts.getIamPolicy", format!("iam/v1/projects/-/serviceAccounts/{r}:getIamPolicy"), Some(json!({}))),
        ("iam.roles.list", "iam/v1/roles?view=FULL".into(), None),
        ("iam.roles.get", "iam/v1/roles/viewer".into(), None),
        ("iam.projects.roles.list", "iam/v1/projects/acme-prod/roles".into(), None),
        ("iam.projects.roles.get", "iam/v1/projects/acme-prod/roles/deployReader".into(), None),
        ("storage.buckets.list", "storage/v1/b?project=acme-prod&projection=full".into(), None),
        ("storage.buckets.get", "storage/v1/b/acme-prod-artifacts".into(), None),
        ("logging.projects.sinks.list", "logging/v2/projects/acme-prod/sinks".into(), None),
        ("logging.projects.sinks.get", "logging/v2/projects/acme-prod/sinks/audit-to-bucket".into(), None),
        ("logging.entries.list", "logging/v2/entries:list".into(), Some(json!({"resourceNames": ["projects/acme-prod"], "filter": "severity>=INFO", "orderBy": "timestamp desc", "pageSize": 1}))),
        ("run.projects.locations.services.list", "run/v1/projects/acme-prod/locations/-/services".into(), None),
        ("run.projects.locations.services.get", "run/v1/projects/acme-prod/locations/us-central1/services/api".into(), None),
        ("run.projects.locations.revisions.list", "run/v1/projects/acme-prod/locations/us-central1/revisions".into(), None),
        ("run.projects.locations.revisions.get", format!("run/v1/projects/acme-prod/locations/us-central1/revisions/{revision}"), None),
        ("run.namespaces.services.list", "run/apis/serving.knative.dev/v1/namespaces/acme-prod/services".into(), None),
        ("run.namespaces.services.get", "run/apis/serving.knative.dev/v1/namespaces/acme-prod/services/api".into(), None),
        ("run.namespaces.revisions.list", "run/apis/serving.knative.dev/v1/namespaces/123456789012/revisions?labelSelector=serving.knative.dev/service%3Dapi".into(), None),
        ("run.namespaces.revisions.get", format!("run/apis/serving.knative.dev/v1/namespaces/acme-prod/revisions/{revision}"), None),
        ("secretmanager.projects.secrets.versions.access", "secretmanager/v1/projects/acme-prod/secrets/db-password/versions/latest:access".into(), None),
        ("iamcredentials.projects.serviceAccounts.generateAccessToken", format!("iamcredentials/v1/projects/-/serviceAccounts/{r}:generateAccessToken"), Some(json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "600s"}))),
    ];
    let mut responses: Vec<(&str, Value)> = vec![("sts.token", sts)];
    for (id, path, body) in calls {
        assert!(
            routed_as(id, &path),
            "{id}: /{path} is not the document's path"
        );
        let method = if body.is_some() { "POST" } else { "GET" };
        let bearer = if id.starts_with("iamcredentials.") {
            &federated
        } else {
            &token
        };
        let host: Vec<(&str, String)> = if path.starts_with("run/apis/") {
            vec![("host", regional.clone())]
        } else {
            vec![]
        };
        let body = body.map(|b| ("application/json", b.to_string()));
        let (status, v) =
            call_with(method, &format!("{base}/{path}"), Some(bearer), &host, body).await;
        assert_eq!(status, 200, "{id}: {v}");
        responses.push((id, v));
    }
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (id, v) in &responses {
        let spec = METHODS
            .iter()
            .find(|m| m.id == *id)
            .unwrap_or_else(|| panic!("{id} is not in METHODS"));
        let doc = &docs[spec.document];
        let schema = find_method(&doc["resources"], id).unwrap()["response"].clone();
        check(doc, &schema, v, id, &mut errors, &mut seen);
        required(spec.document, doc, &schema, v, id, &mut errors);
        let empty = v
            .as_object()
            .is_none_or(|o| o.values().all(|x| x.as_array().is_some_and(Vec::is_empty)));
        assert!(!empty, "{id} answered nothing to check: {v}");
    }
    assert!(
        errors.is_empty(),
        "responses that don't fit their schemas:\n{}",
        errors.join("\n")
    );
    let called: BTreeSet<&str> = responses.iter().map(|(id, _)| *id).collect();
    let served: BTreeSet<&str> = METHODS.iter().map(|m| m.id).collect();
    assert_eq!(called, served, "every method served is checked");
    for name in [
        "Instance", "Disk", "Cluster", "NodePool", "Bucket", "LogEntry", "Service", "Revision",
        "EnvVar", "Binding",
    ] {
        assert!(seen.contains(name), "no {name} was checked: {seen:?}");
    }
}
