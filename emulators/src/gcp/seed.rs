//! What a test puts into the emulator: projects and their IAM policies, compute, GKE, storage,
//! logging and Cloud Run resources, service accounts (with keys), and federation providers.
//! Seeding into a project that was never added is a test's mistake, and panics saying so.

use std::collections::BTreeSet;

use super::state::{Kind, Project, ServiceAccount, State};
use super::sts::{Provider, WifProvider};
use super::{GcpEmulator, compute, container, iam, logging, run, storage};
use crate::google::{ServiceAccountKey, new_key};

/// The role [`GcpEmulator::grant_reader`] grants.
pub const READER_ROLE: &str = "roles/viewer";
/// The role [`GcpEmulator::grant_token_creator`] grants on a service account.
pub const TOKEN_CREATOR_ROLE: &str = "roles/iam.serviceAccountTokenCreator";

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

impl GcpEmulator {
    /// `f` on the state and a copy of `project` (by id or number).
    fn with_project<T>(&self, project: &str, f: impl FnOnce(&mut State, &Project) -> T) -> T {
        let mut st = self.state();
        let Some(p) = st.project(project).cloned() else {
            panic!("gcp emulator: no project `{project}` (add_project first)");
        };
        f(&mut st, &p)
    }

    /// A project (`ACTIVE`, with an empty IAM policy), its four default zones, and the
    /// `default` network with its `default-allow-ssh` and `default-allow-internal` rules.
    pub fn add_project(&self, project_id: &str, number: u64) {
        let mut st = self.state();
        st.projects.insert(
            project_id.to_string(),
            Project {
                id: project_id.to_string(),
                number,
                bindings: std::collections::BTreeMap::new(),
                metadata: Vec::new(),
                zones: compute::DEFAULT_ZONES
                    .iter()
                    .map(|z| (*z).to_string())
                    .collect(),
            },
        );
        let net = compute::network(&mut st, project_id, "default");
        st.put(Kind::Network, project_id, "", "default", net);
        let rules: [(&str, &str, &[&str], &str); 2] = [
            ("default-allow-ssh", "tcp", &["22"], "0.0.0.0/0"),
            (
                "default-allow-internal",
                "tcp",
                &["0-65535"],
                "10.128.0.0/9",
            ),
        ];
        for (name, proto, ports, range) in rules {
            let at = (project_id, name, "default");
            let fw = compute::firewall(&mut st, at, 65534, (proto, ports), &[range]);
            st.put(Kind::Firewall, project_id, "", name, fw);
        }
    }

    /// The project's number.
    pub fn project_number(&self, project: &str) -> Option<u64> {
        self.state().project(project).map(|p| p.number)
    }

    /// Bind `role` to `member` (`serviceAccount:…`, `user:…`, `principalSet://…`) in the
    /// project's IAM policy.
    pub fn grant(&self, project: &str, role: &str, member: &str) {
        self.with_project(project, |st, p| {
            if let Some(p) = st.projects.get_mut(&p.id) {
                p.bindings
                    .entry(role.to_string())
                    .or_default()
                    .insert(member.to_string());
            }
        });
    }

    /// Take `role` from `member` in the project's policy.
    pub fn revoke(&self, project: &str, role: &str, member: &str) {
        self.with_project(project, |st, p| {
            if let Some(members) = st
                .projects
                .get_mut(&p.id)
                .and_then(|p| p.bindings.get_mut(role))
            {
                members.remove(member);
            }
        });
    }

    /// Add a version holding `value` to the project's secret `name` (created on first use).
    pub fn add_secret_version(&self, project: &str, name: &str, value: &str) {
        use base64::Engine as _;
        self.with_project(project, |st, p| {
            let mut versions: Vec<String> = st
                .get(Kind::Secret, &p.id, "", name)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            versions.push(base64::engine::general_purpose::STANDARD.encode(value));
            st.put(Kind::Secret, &p.id, "", name, serde_json::json!(versions));
        });
    }

    /// Let `member` read the project's secret payloads.
    pub fn grant_secret_accessor(&self, project: &str, member: &str) {
        self.grant(project, "roles/secretmanager.secretAccessor", member);
    }

    /// Let `member` read the project ([`READER_ROLE`]).
    pub fn grant_reader(&self, project: &str, member: &str) {
        self.grant(project, READER_ROLE, member);
    }

    /// The project's `commonInstanceMetadata` items (replacing what it had).
    pub fn set_project_metadata(&self, project: &str, items: &[(&str, &str)]) {
        self.with_project(project, |st, p| {
            if let Some(p) = st.projects.get_mut(&p.id) {
                p.metadata = owned(items);
            }
        });
    }

    /// A running instance with `metadata.items` (a `startup-script`, `ssh-keys`…) and its boot
    /// disk (10 GB, same name).
    pub fn add_instance(&self, project: &str, zone: &str, name: &str, metadata: &[(&str, &str)]) {
        self.with_project(project, |st, p| {
            let vm = compute::instance(st, p, zone, name, &owned(metadata));
            let url = vm["selfLink"].as_str().unwrap_or_default().to_string();
            let disk = compute::disk(st, &p.id, zone, name, 10, &[url]);
            st.put(Kind::Instance, &p.id, zone, name, vm);
            st.put(Kind::Disk, &p.id, zone, name, disk);
            if let Some(p) = st.projects.get_mut(&p.id) {
                p.zones.insert(zone.to_string());
            }
        });
    }

    /// An unattached disk.
    pub fn add_disk(&self, project: &str, zone: &str, name: &str, size_gb: u64) {
        self.with_project(project, |st, p| {
            let disk = compute::disk(st, &p.id, zone, name, size_gb, &[]);
            st.put(Kind::Disk, &p.id, zone, name, disk);
            if let Some(p) = st.projects.get_mut(&p.id) {
                p.zones.insert(zone.to_string());
            }
        });
    }

    /// An auto-mode network.
    pub fn add_network(&self, project: &str, name: &str) {
        self.with_project(project, |st, p| {
            let net = compute::network(st, &p.id, name);
            st.put(Kind::Network, &p.id, "", name, net);
        });
    }

    /// An ingress rule on `network` (priority 1000) allowing `protocol` (`tcp`, `udp`, `icmp`,
    /// `all`) on `ports` (none: every port) from `source_ranges`.
    pub fn add_firewall(
        &self,
        project: &str,
        name: &str,
        network: &str,
        protocol: &str,
        ports: &[&str],
        source_ranges: &[&str],
    ) {
        self.with_project(project, |st, p| {
            let at = (p.id.as_str(), name, network);
            let fw = compute::firewall(st, at, 1000, (protocol, ports), source_ranges);
            st.put(Kind::Firewall, &p.id, "", name, fw);
        });
    }

    /// A running GKE cluster at `location` (a region or a zone) with a `default-pool`, a public
    /// endpoint and a CA certificate made for it.
    ///
    /// # Panics
    /// If no certificate can be made, or the project is unknown.
    pub fn add_cluster(&self, project: &str, location: &str, name: &str) {
        let ca = rcgen::generate_simple_self_signed(vec!["kubernetes".to_string()])
            .unwrap_or_else(|e| panic!("gcp emulator: cluster CA: {e}"))
            .cert
            .pem();
        self.with_project(project, |st, p| {
            let n = st.list(Kind::Cluster, &p.id, None).len() + 10;
            let c = container::cluster(&p.id, location, name, &format!("34.118.0.{n}"), &ca);
            st.put(Kind::Cluster, &p.id, location, name, c);
        });
    }

    /// Point a cluster at another API server (`endpoint` as GKE writes it: a host or IP, and
    /// the PEM CA its certificate chains to), e.g. a [`crate::kube::KubeEmulator`].
    pub fn set_cluster_endpoint(
        &self,
        project: &str,
        location: &str,
        name: &str,
        endpoint: &str,
        ca_pem: &str,
    ) {
        use base64::Engine as _;
        self.with_project(project, |st, p| {
            if let Some(c) = st.resources.get_mut(&(
                Kind::Cluster,
                p.id.clone(),
                location.to_string(),
                name.to_string(),
            )) {
                c["endpoint"] = endpoint.into();
                c["masterAuth"]["clusterCaCertificate"] = base64::engine::general_purpose::STANDARD
                    .encode(ca_pem)
                    .into();
            }
        });
    }

    /// One more node pool: `nodes_per_zone` nodes of `machine_type` in each of the cluster's zones.
    pub fn add_node_pool(
        &self,
        project: &str,
        location: &str,
        cluster: &str,
        name: &str,
        machine_type: &str,
        nodes_per_zone: u32,
    ) {
        self.with_project(project, |st, p| {
            let pool =
                container::node_pool(&p.id, location, cluster, name, machine_type, nodes_per_zone);
            if let Some(c) = st.resources.get_mut(&(
                Kind::Cluster,
                p.id.clone(),
                location.to_string(),
                cluster.to_string(),
            )) {
                container::add_pool(c, pool);
            }
        });
    }

    /// A bucket in `location` (`us-central1`, `EU`…).
    pub fn add_bucket(&self, project: &str, name: &str, location: &str) {
        self.with_project(project, |st, p| {
            st.put(
                Kind::Bucket,
                &p.id,
                "",
                name,
                storage::bucket(p, name, location),
            );
        });
    }

    /// A log sink.
    pub fn add_sink(&self, project: &str, name: &str, destination: &str, filter: &str) {
        self.with_project(project, |st, p| {
            st.put(
                Kind::Sink,
                &p.id,
                "",
                name,
                logging::sink(p.number, name, destination, filter),
            );
        });
    }

    /// A text log entry written now, in `projects/<project>/logs/<log_id>`.
    pub fn add_log_entry(&self, project: &str, log_id: &str, severity: &str, text: &str) {
        self.with_project(project, |st, p| {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let insert_id = format!("{:012x}", st.entries.len() + 1);
            st.entries.push((
                p.id.clone(),
                logging::entry(&p.id, log_id, severity, text, &now, &insert_id),
            ));
        });
    }

    /// A Cloud Run service in `region` running `image` with `env`, and its first revision.
    pub fn add_run_service(
        &self,
        project: &str,
        region: &str,
        name: &str,
        image: &str,
        env: &[(&str, &str)],
    ) {
        self.with_project(project, |st, p| {
            let (svc, rev) = run::service(p, region, name, image, &owned(env));
            let rev_name = rev["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            st.put(Kind::RunService, &p.id, region, name, svc);
            st.put(Kind::RunRevision, &p.id, region, &rev_name, rev);
        });
    }

    /// A custom role `projects/<project>/roles/<role_id>`.
    pub fn add_custom_role(&self, project: &str, role_id: &str, title: &str, permissions: &[&str]) {
        self.with_project(project, |st, p| {
            st.put(
                Kind::Role,
                &p.id,
                "",
                role_id,
                iam::custom_role(&p.id, role_id, title, permissions),
            );
        });
    }

    /// A service account `<account_id>@<project>.iam.gserviceaccount.com` with one fresh key,
    /// returned as its JSON key file (`token_uri`: [`GcpEmulator::token_url`]). Its tokens act as
    /// `serviceAccount:<email>`; it can read nothing until granted.
    pub fn add_service_account(&self, project: &str, account_id: &str) -> ServiceAccountKey {
        let token_uri = self.token_url();
        self.with_project(project, |st, p| {
            let unique_id = format!("10{}", st.new_id());
            let (key, account) = new_key(account_id, &p.id, &unique_id, &token_uri);
            st.accounts.insert(
                key.client_email.clone(),
                ServiceAccount {
                    email: key.client_email.clone(),
                    project: p.id.clone(),
                    unique_id,
                    display_name: account_id.to_string(),
                    key: Some(account),
                    bindings: std::collections::BTreeMap::new(),
                },
            );
            key
        })
    }

    /// Bind `role` to `member` on the service account `email` (its own IAM policy).
    ///
    /// # Panics
    /// If there is no such account.
    pub fn grant_on_service_account(&self, email: &str, role: &str, member: &str) {
        let mut st = self.state();
        let Some(sa) = st.accounts.get_mut(email) else {
            panic!("gcp emulator: no service account `{email}` (add_service_account first)");
        };
        sa.bindings
            .entry(role.to_string())
            .or_insert_with(BTreeSet::new)
            .insert(member.to_string());
    }

    /// Let `member` mint tokens for the service account `email` ([`TOKEN_CREATOR_ROLE`]).
    pub fn grant_token_creator(&self, email: &str, member: &str) {
        self.grant_on_service_account(email, TOKEN_CREATOR_ROLE, member);
    }

    /// Register a workload identity pool provider for STS.
    ///
    /// # Panics
    /// If its attribute condition uses syntax the emulator doesn't evaluate.
    pub fn add_wif_provider(&self, provider: WifProvider) {
        let provider = Provider::new(provider).unwrap_or_else(|e| panic!("gcp emulator: {e}"));
        let mut st = self.state();
        st.providers
            .retain(|p| p.config.name() != provider.config.name());
        st.providers.push(provider);
    }
}
