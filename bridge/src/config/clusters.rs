//! `clusters.<alias>`: how kubectl reaches each cluster alias: a kubeconfig, or a GKE cluster
//! whose kubeconfig the bridge keeps fresh (see `exec::gke`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Credentials for one cluster alias: a kubeconfig, or a GKE cluster reached with short-lived
/// tokens of a read-only Google service account.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; defaults to the alias.
    pub context: Option<String>,
    #[serde(default)]
    pub gke: Option<GkeCluster>,
    /// The read-only ServiceAccount each read runs as: the bridge mints it a 10-minute token
    /// (TokenRequest) per run with its own kubeconfig identity, which may do nothing else.
    #[serde(default)]
    pub read_service_account: Option<ServiceAccountRef>,
    /// The ServiceAccount server-side dry runs run as: its writes are admitted only as dry runs
    /// (`deploy/kubernetes/target-cluster/dry-run-policy.yaml`), so the bridge can never write
    /// for real.
    #[serde(default)]
    pub dry_run_service_account: Option<ServiceAccountRef>,
    /// The audience minted tokens are bound to: one of the API server's `--api-audiences`.
    #[serde(default)]
    pub audience: Option<String>,
}

/// A ServiceAccount, by namespace and name.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Names as Kubernetes allows them (lowercase letters, digits, `-` and `.`), so a configured
/// name can't reshape the TokenRequest URL.
fn check_name(alias: &str, key: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "clusters.{alias}.{key}: `{name}` is not a Kubernetes name (lowercase letters, digits, `-`, `.`)"
        ))
    }
}

/// The ServiceAccounts need a kubeconfig (the bridge's own identity mints their tokens) and
/// an audience.
fn check_accounts(alias: &str, c: &ClusterConfig) -> Result<(), String> {
    let accounts = [
        ("read_service_account", &c.read_service_account),
        ("dry_run_service_account", &c.dry_run_service_account),
    ];
    if accounts.iter().all(|(_, a)| a.is_none()) {
        return Ok(());
    }
    if c.kubeconfig.is_none() {
        return Err(format!(
            "clusters.{alias}: ServiceAccount tokens are minted with the identity in `kubeconfig`; \
             set it (GKE clusters use `gke.service_account` instead)"
        ));
    }
    if c.audience.as_deref().is_none_or(str::is_empty) {
        return Err(format!(
            "clusters.{alias}.audience: name the audience minted tokens are bound to, one of the \
             API server's --api-audiences (by default its service-account issuer)"
        ));
    }
    for (key, a) in accounts {
        if let Some(a) = a {
            check_name(alias, &format!("{key}.namespace"), &a.namespace)?;
            check_name(alias, &format!("{key}.name"), &a.name)?;
        }
    }
    Ok(())
}

/// A GKE cluster, by its project, location and name; its endpoint and CA come from the
/// container API, and kubectl's token is the service account's, minted by the bridge.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GkeCluster {
    pub project: String,
    pub location: String,
    pub name: String,
    pub service_account: String,
}

/// Where kubectl finds a cluster: the kubeconfig and the context in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
}

impl super::Config {
    /// The kubeconfig and context for a cluster alias, if configured. A GKE cluster's is the
    /// one the bridge keeps fresh (see `exec::gke`).
    pub fn cluster(&self, alias: &str) -> Option<ClusterTarget> {
        let Some(c) = self.clusters.get(alias) else {
            return self.default_kubeconfig.as_ref().map(|k| ClusterTarget {
                kubeconfig: k.clone(),
                context: Some(alias.to_string()),
            });
        };
        let kubeconfig = match (&c.kubeconfig, &c.gke) {
            (Some(k), _) => k.clone(),
            (None, Some(_)) => self.gke_kubeconfig(alias),
            (None, None) => return None,
        };
        Some(ClusterTarget {
            kubeconfig,
            context: c.context.clone(),
        })
    }

    /// Where the bridge writes a GKE cluster's kubeconfig (and its token file beside it).
    pub fn gke_kubeconfig(&self, alias: &str) -> PathBuf {
        self.state_dir.join("gke").join(alias).join("kubeconfig")
    }
}

/// Every configured cluster has one way in, and its kubeconfig exists at startup, not at a
/// command's first use.
pub(super) fn check_clusters(clusters: &BTreeMap<String, ClusterConfig>) -> Result<(), String> {
    for (alias, c) in clusters {
        match (&c.kubeconfig, &c.gke) {
            (Some(k), None) if !k.is_file() => {
                return Err(format!(
                    "clusters.{alias}.kubeconfig: {} is not a file",
                    k.display()
                ));
            }
            (Some(_), None) => check_accounts(alias, c)?,
            (None, Some(g)) => {
                super::gcp::check_gke(alias, g)?;
                check_accounts(alias, c)?;
            }
            _ => {
                return Err(format!(
                    "clusters.{alias}: give either `kubeconfig` or `gke: {{project, location, name, service_account}}`"
                ));
            }
        }
    }
    Ok(())
}
