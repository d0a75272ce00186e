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
            (Some(_), None) => {}
            (None, Some(g)) => super::gcp::check_gke(alias, g)?,
            _ => {
                return Err(format!(
                    "clusters.{alias}: give either `kubeconfig` or `gke: {{project, location, name, service_account}}`"
                ));
            }
        }
    }
    Ok(())
}
