//! The methods the emulator serves, named as their discovery documents name them: the tests
//! check each against the document `google-api-python-client` ships (verb, path, response
//! schema) and validate a live response of each against that schema.

/// One served method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSpec {
    /// The discovery document: `compute.v1` is `discovery_cache/documents/compute.v1.json`.
    pub document: &'static str,
    /// Where the API sits on the emulator (the path of its endpoint override).
    pub prefix: &'static str,
    /// The method's `id` in the document.
    pub id: &'static str,
    pub http_method: &'static str,
    /// The document's `flatPath` (or `path`), relative to `prefix`.
    pub path: &'static str,
}

const fn m(
    document: &'static str,
    prefix: &'static str,
    id: &'static str,
    http_method: &'static str,
    path: &'static str,
) -> MethodSpec {
    MethodSpec {
        document,
        prefix,
        id,
        http_method,
        path,
    }
}

/// Every method served, by API.
#[rustfmt::skip]
pub const METHODS: [MethodSpec; 43] = [
    m("compute.v1", "/compute/v1/", "compute.projects.get", "GET", "projects/{project}"),
    m("compute.v1", "/compute/v1/", "compute.zones.list", "GET", "projects/{project}/zones"),
    m("compute.v1", "/compute/v1/", "compute.zones.get", "GET", "projects/{project}/zones/{zone}"),
    m("compute.v1", "/compute/v1/", "compute.instances.aggregatedList", "GET", "projects/{project}/aggregated/instances"),
    m("compute.v1", "/compute/v1/", "compute.instances.list", "GET", "projects/{project}/zones/{zone}/instances"),
    m("compute.v1", "/compute/v1/", "compute.instances.get", "GET", "projects/{project}/zones/{zone}/instances/{instance}"),
    m("compute.v1", "/compute/v1/", "compute.disks.aggregatedList", "GET", "projects/{project}/aggregated/disks"),
    m("compute.v1", "/compute/v1/", "compute.disks.list", "GET", "projects/{project}/zones/{zone}/disks"),
    m("compute.v1", "/compute/v1/", "compute.disks.get", "GET", "projects/{project}/zones/{zone}/disks/{disk}"),
    m("compute.v1", "/compute/v1/", "compute.networks.list", "GET", "projects/{project}/global/networks"),
    m("compute.v1", "/compute/v1/", "compute.networks.get", "GET", "projects/{project}/global/networks/{network}"),
    m("compute.v1", "/compute/v1/", "compute.firewalls.list", "GET", "projects/{project}/global/firewalls"),
    m("compute.v1", "/compute/v1/", "compute.firewalls.get", "GET", "projects/{project}/global/firewalls/{firewall}"),
    m("container.v1", "/container/", "container.projects.locations.clusters.list", "GET", "v1/projects/{projectsId}/locations/{locationsId}/clusters"),
    m("container.v1", "/container/", "container.projects.locations.clusters.get", "GET", "v1/projects/{projectsId}/locations/{locationsId}/clusters/{clustersId}"),
    m("container.v1", "/container/", "container.projects.locations.clusters.nodePools.list", "GET", "v1/projects/{projectsId}/locations/{locationsId}/clusters/{clustersId}/nodePools"),
    m("container.v1", "/container/", "container.projects.locations.clusters.nodePools.get", "GET", "v1/projects/{projectsId}/locations/{locationsId}/clusters/{clustersId}/nodePools/{nodePoolsId}"),
    m("cloudresourcemanager.v1", "/cloudresourcemanager/", "cloudresourcemanager.projects.list", "GET", "v1/projects"),
    m("cloudresourcemanager.v1", "/cloudresourcemanager/", "cloudresourcemanager.projects.get", "GET", "v1/projects/{projectId}"),
    m("cloudresourcemanager.v1", "/cloudresourcemanager/", "cloudresourcemanager.projects.getIamPolicy", "POST", "v1/projects/{resource}:getIamPolicy"),
    m("iam.v1", "/iam/", "iam.projects.serviceAccounts.list", "GET", "v1/projects/{projectsId}/serviceAccounts"),
    m("iam.v1", "/iam/", "iam.projects.serviceAccounts.get", "GET", "v1/projects/{projectsId}/serviceAccounts/{serviceAccountsId}"),
    m("iam.v1", "/iam/", "iam.projects.serviceAccounts.getIamPolicy", "POST", "v1/projects/{projectsId}/serviceAccounts/{serviceAccountsId}:getIamPolicy"),
    m("iam.v1", "/iam/", "iam.roles.list", "GET", "v1/roles"),
    m("iam.v1", "/iam/", "iam.roles.get", "GET", "v1/roles/{rolesId}"),
    m("iam.v1", "/iam/", "iam.projects.roles.list", "GET", "v1/projects/{projectsId}/roles"),
    m("iam.v1", "/iam/", "iam.projects.roles.get", "GET", "v1/projects/{projectsId}/roles/{rolesId}"),
    m("storage.v1", "/storage/v1/", "storage.buckets.list", "GET", "b"),
    m("storage.v1", "/storage/v1/", "storage.buckets.get", "GET", "b/{bucket}"),
    m("logging.v2", "/logging/", "logging.projects.sinks.list", "GET", "v2/projects/{projectsId}/sinks"),
    m("logging.v2", "/logging/", "logging.projects.sinks.get", "GET", "v2/projects/{projectsId}/sinks/{sinksId}"),
    m("logging.v2", "/logging/", "logging.entries.list", "POST", "v2/entries:list"),
    m("run.v1", "/run/", "run.projects.locations.services.list", "GET", "v1/projects/{projectsId}/locations/{locationsId}/services"),
    m("run.v1", "/run/", "run.projects.locations.services.get", "GET", "v1/projects/{projectsId}/locations/{locationsId}/services/{servicesId}"),
    m("run.v1", "/run/", "run.projects.locations.revisions.list", "GET", "v1/projects/{projectsId}/locations/{locationsId}/revisions"),
    m("run.v1", "/run/", "run.projects.locations.revisions.get", "GET", "v1/projects/{projectsId}/locations/{locationsId}/revisions/{revisionsId}"),
    m("run.v1", "/run/", "run.namespaces.services.list", "GET", "apis/serving.knative.dev/v1/namespaces/{namespacesId}/services"),
    m("run.v1", "/run/", "run.namespaces.services.get", "GET", "apis/serving.knative.dev/v1/namespaces/{namespacesId}/services/{servicesId}"),
    m("run.v1", "/run/", "run.namespaces.revisions.list", "GET", "apis/serving.knative.dev/v1/namespaces/{namespacesId}/revisions"),
    m("run.v1", "/run/", "run.namespaces.revisions.get", "GET", "apis/serving.knative.dev/v1/namespaces/{namespacesId}/revisions/{revisionsId}"),
    m("sts.v1", "/sts/", "sts.token", "POST", "v1/token"),
    m("iamcredentials.v1", "/iamcredentials/", "iamcredentials.projects.serviceAccounts.generateAccessToken", "POST", "v1/projects/{projectsId}/serviceAccounts/{serviceAccountsId}:generateAccessToken"),
    m("secretmanager.v1", "/secretmanager/", "secretmanager.projects.secrets.versions.access", "GET", "v1/projects/{projectsId}/secrets/{secretsId}/versions/{versionsId}:access"),
];
