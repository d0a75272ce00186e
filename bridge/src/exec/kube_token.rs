//! Kubernetes ServiceAccount tokens, minted per run with the TokenRequest API
//! (`authentication.k8s.io/v1`): a 10-minute token bound to the cluster's configured audience,
//! for the read-only ServiceAccount (reads, discovery) or the dry-run one (server-side dry
//! runs, whose writes a ValidatingAdmissionPolicy admits only as dry runs). The bridge's own
//! identity, from the cluster's kubeconfig, only creates these tokens. Each run's kubectl gets
//! a kubeconfig of its own (the server and CA of the configured one, and the minted token) in a
//! private directory under the work directory, removed when the run ends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use super::minted::{KUBE_DETAIL, KUBE_TOKEN_LIFETIME, Minted};
use crate::base::Base;
use crate::config::ServiceAccountRef;

/// What a kubectl run is for: it picks the ServiceAccount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Read,
    DryRun,
}

/// One cluster's ServiceAccount and how to reach the API to mint its token.
#[derive(Debug, Clone)]
pub struct KubeToken {
    pub alias: String,
    /// The bridge's own kubeconfig for the cluster, and the context in it.
    pub kubeconfig: PathBuf,
    pub context: String,
    pub account: ServiceAccountRef,
    pub audience: String,
}

/// The API server as the bridge's kubeconfig names it, and the bridge's own bearer token.
struct Cluster {
    server: String,
    /// The cluster section to copy into the per-run kubeconfig (server, CA, TLS name).
    section: Value,
    ca_pem: Option<String>,
    token: String,
}

impl KubeToken {
    /// A fresh token and the per-run kubeconfig that holds it.
    pub async fn mint(&self, state: &Base) -> Result<Minted, String> {
        let what = format!("clusters.{} ({})", self.alias, self.kubeconfig.display());
        let cluster =
            read_cluster(&self.kubeconfig, &self.context).map_err(|e| format!("{what}: {e}"))?;
        let token = request_token(&cluster, &self.account, &self.audience)
            .await
            .map_err(|e| format!("cluster `{}`: {e}", self.alias))?;
        let dir = super::minted::private_dir(state, "kube-")
            .map_err(|e| format!("a private directory for the run's kubeconfig: {e}"))?;
        let path = dir.path().join("kubeconfig");
        let name = "slipway";
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster.section}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        });
        super::env::write_private(&path, doc.to_string().as_bytes())
            .map_err(|e| format!("writing the run's kubeconfig: {e}"))?;
        Ok(Minted {
            env: Vec::new(),
            args: vec![
                format!("--kubeconfig={}", path.display()),
                format!("--context={name}"),
            ],
            dir: Some(dir),
            detail: (KUBE_DETAIL, self.account.to_string()),
        })
    }
}

fn named<'a>(doc: &'a Value, list: &str, name: &str, what: &str) -> Result<&'a Value, String> {
    doc[list]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .map(|i| &i[what])
        .ok_or_else(|| format!("it has no {what} `{name}`"))
}

/// The context's server, CA and bearer token (`token` or `tokenFile`: the identity that may
/// only create the ServiceAccounts' tokens).
fn read_cluster(path: &Path, context: &str) -> Result<Cluster, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| format!("not YAML: {e}"))?;
    let ctx = named(&doc, "contexts", context, "context")?;
    let c = named(
        &doc,
        "clusters",
        ctx["cluster"].as_str().unwrap_or_default(),
        "cluster",
    )?;
    let u = named(
        &doc,
        "users",
        ctx["user"].as_str().unwrap_or_default(),
        "user",
    )?;
    let server = c["server"]
        .as_str()
        .ok_or("its cluster has no server")?
        .trim_end_matches('/')
        .to_string();
    let ca_pem = match (
        c["certificate-authority-data"].as_str(),
        c["certificate-authority"].as_str(),
    ) {
        (Some(data), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or("its certificate-authority-data is not base64 PEM")?,
        ),
        (None, Some(file)) => {
            Some(std::fs::read_to_string(file).map_err(|e| format!("CA {file}: {e}"))?)
        }
        (None, None) => None,
    };
    let mut section = json!({ "server": server });
    if let Some(pem) = &ca_pem {
        section["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    if let Some(n) = c["tls-server-name"].as_str() {
        section["tls-server-name"] = json!(n);
    }
    let token = match (u["token"].as_str(), u["tokenFile"].as_str()) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| format!("tokenFile {f}: {e}"))?.trim().to_string(),
        _ => return Err("its user has no `token` or `tokenFile`: the bridge mints ServiceAccount tokens with a bearer token (see docs/operations.md)".into()),
    };
    Ok(Cluster {
        server,
        section,
        ca_pem,
        token,
    })
}

/// `POST …/serviceaccounts/{name}/token`: the token, bound to `audience`, for
/// [`KUBE_TOKEN_LIFETIME`].
async fn request_token(
    c: &Cluster,
    sa: &ServiceAccountRef,
    audience: &str,
) -> Result<String, String> {
    let url = format!(
        "{}/api/v1/namespaces/{}/serviceaccounts/{}/token",
        c.server, sa.namespace, sa.name
    );
    if !slipway_infra::https_or_loopback(&url) {
        return Err(format!(
            "the API server {} must be https (or http on loopback)",
            c.server
        ));
    }
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"audiences": [audience], "expirationSeconds": KUBE_TOKEN_LIFETIME.as_secs()},
    });
    let https = slipway_infra::tls::connector(slipway_infra::tls::Connect {
        extra_roots_pem: c.ca_pem.as_deref(),
        ..Default::default()
    })?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, String>(https);
    let req = hyper::Request::post(&url)
        .header("authorization", format!("Bearer {}", c.token))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_string())
        .map_err(|e| format!("building the TokenRequest: {e}"))?;
    let sent = tokio::time::timeout(Duration::from_secs(10), async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| slipway_infra::with_causes(&e))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    })
    .await
    .map_err(|_| "the TokenRequest timed out after 10s".to_string())?;
    let (status, bytes) = sent.map_err(|e| format!("the TokenRequest for {sa} failed: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match (status, v.pointer("/status/token").and_then(Value::as_str)) {
        (200 | 201, Some(t)) if !t.is_empty() => Ok(t.to_string()),
        (200 | 201, _) => Err(format!(
            "the TokenRequest for {sa} was answered without a token"
        )),
        (code, _) => Err(refusal(code, sa, v["message"].as_str().unwrap_or_default())),
    }
}

/// What a refused TokenRequest means, and what to fix.
fn refusal(code: u16, sa: &ServiceAccountRef, message: &str) -> String {
    let hint = match code {
        401 => "the bridge's own credentials in the cluster's kubeconfig were refused",
        403 => {
            "the bridge's identity may not create this ServiceAccount's tokens: grant `create` on \
                `serviceaccounts/token` for it (deploy/kubernetes/target-cluster/bridge.yaml)"
        }
        404 => "the ServiceAccount does not exist: apply deploy/kubernetes/target-cluster/",
        _ => "the API server refused it",
    };
    let message: String = message.chars().take(300).collect();
    format!("TokenRequest for {sa}: HTTP {code}: {hint} ({message})")
}

#[cfg(test)]
mod tests;
