//! GKE clusters (`clusters.<alias>.gke`): every replica keeps each one's kubeconfig fresh in
//! `<state_dir>/gke/<alias>/`, so kubectl (reads, dry runs, discovery) starts as for any other
//! cluster and the ack path stays free of I/O. The kubeconfig names the cluster's endpoint and
//! CA, read from the container API, and a `tokenFile`: a short-lived token of the cluster's
//! read-only service account, minted by the bridge and replaced well before it expires (kubectl
//! re-reads it). No static credential is ever written.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::base::Base;
use crate::config::GkeCluster;

/// Google's container API root.
const CONTAINER_URL: &str = "https://container.googleapis.com/";
/// After a failed refresh, the next try.
const RETRY: Duration = Duration::from_secs(30);

/// Start one refresher per GKE cluster, for the life of the process.
pub fn start(state: &Base) {
    for (alias, c) in &state.config.clusters {
        let Some(gke) = c.gke.clone() else { continue };
        let (state, alias) = (state.clone(), alias.clone());
        tokio::spawn(async move {
            loop {
                let wait = match refresh(&state, &alias, &gke).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(cluster = %alias, error = %e, "refreshing a GKE cluster's credentials");
                        RETRY
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
    }
}

/// Mint a token, read the endpoint, write both; how long until the next refresh.
pub async fn refresh(state: &Base, alias: &str, gke: &GkeCluster) -> Result<Duration, String> {
    let minter = state
        .gcp
        .as_ref()
        .map(crate::config::Live::get)
        .ok_or("the bridge has no Google identity (gcp.credentials)")?;
    let now = state.clock.unix();
    let token = minter
        .token_for(&gke.service_account, now)
        .await
        .map_err(|e| e.to_string())?;
    let base = state
        .config
        .gcp
        .as_ref()
        .and_then(|g| g.api_endpoint_overrides.get("container").cloned())
        .unwrap_or_else(|| CONTAINER_URL.to_string());
    let url = format!(
        "{}/v1/projects/{}/locations/{}/clusters/{}",
        base.trim_end_matches('/'),
        gke.project,
        gke.location,
        gke.name
    );
    let cluster = minter
        .client()
        .get_json("the GKE cluster's endpoint", &url, &token)
        .await
        .map_err(|e| e.to_string())?;
    let endpoint = cluster["endpoint"].as_str().filter(|e| !e.is_empty());
    let ca = cluster["masterAuth"]["clusterCaCertificate"].as_str();
    let (Some(endpoint), Some(ca)) = (endpoint, ca) else {
        return Err(format!(
            "GKE cluster {} has no endpoint or CA yet",
            gke.name
        ));
    };
    let kubeconfig = state.config.gke_kubeconfig(alias);
    write(&kubeconfig, alias, endpoint, ca, &token.token).map_err(|e| e.to_string())?;
    let left = u64::try_from(token.expires_at - now).unwrap_or(0);
    Ok(Duration::from_secs(left / 2).clamp(Duration::from_secs(30), Duration::from_secs(600)))
}

/// The token file first (atomically), then the kubeconfig that names it.
fn write(
    kubeconfig: &Path,
    alias: &str,
    endpoint: &str,
    ca: &str,
    token: &str,
) -> std::io::Result<()> {
    let dir = kubeconfig.parent().unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let token_file = dir.join("token");
    super::env::write_private(&token_file, token.as_bytes())?;
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": alias, "cluster": {
            "server": format!("https://{endpoint}"),
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": alias, "user": {"tokenFile": token_file.display().to_string()}}],
        "contexts": [{"name": alias, "context": {"cluster": alias, "user": alias}}],
        "current-context": alias,
    });
    super::env::write_private(kubeconfig, doc.to_string().as_bytes())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}
