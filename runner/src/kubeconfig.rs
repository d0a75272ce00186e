//! The kubeconfig the runner hands kubectl, built by the runner from its own configuration.
//!
//! A kubeconfig can run code: an `exec` credential plugin or an `auth-provider` is a program
//! kubectl starts with the job's environment (the cluster role's credentials). So nothing of it
//! may come from the checkout, which a change PR controls: a configured `kubeconfig` inside the
//! checkout is refused, and from any other one only the cluster's server and CA and a static
//! credential are copied into a fresh file; plugins and providers are refused. The other form
//! needs no file at all: `server`, `certificate_authority_data` and a token from the job's
//! environment (`token_env`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::ClusterConfig;

/// Where kubectl finds the cluster: the built file and the context in it.
#[derive(Debug, Clone)]
pub struct KubeTarget {
    pub kubeconfig: PathBuf,
    pub context: String,
}

/// Build `<scratch>/kubeconfig-<alias>` for cluster `alias`. `google` is the short-lived token
/// of a GKE cluster's `gcp_service_account`, minted for this change.
pub fn build(
    alias: &str,
    cfg: &ClusterConfig,
    checkout: &Path,
    scratch: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    google: Option<&str>,
) -> Result<KubeTarget, String> {
    let (cluster, user) = match (&cfg.kubeconfig, &cfg.server) {
        (Some(path), None) => from_file(alias, cfg, path, checkout)?,
        (None, Some(server)) => match google {
            Some(token) => (settings_cluster(cfg, server), json!({ "token": token })),
            None => from_settings(alias, cfg, server, lookup)?,
        },
        _ => {
            return Err(format!(
                "clusters.{alias} needs either `kubeconfig` or `server` (with `token_env`)"
            ));
        }
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": alias, "cluster": cluster}],
        "users": [{"name": alias, "user": user}],
        "contexts": [{"name": alias, "context": {"cluster": alias, "user": alias}}],
        "current-context": alias,
    });
    let path = scratch.join(format!("kubeconfig-{alias}"));
    write_private(&path, doc.to_string().as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(KubeTarget {
        kubeconfig: path,
        context: alias.to_string(),
    })
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Whether `path` is inside `dir` (both resolved, so `..` and links don't hide it).
fn inside(path: &Path, dir: &Path) -> bool {
    match (std::fs::canonicalize(path), std::fs::canonicalize(dir)) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        // A path that can't be resolved is judged as written.
        _ => path.starts_with(dir),
    }
}

fn named<'a>(doc: &'a Value, list: &str, name: &str, what: &str) -> Result<&'a Value, String> {
    doc[list]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .map(|i| &i[what])
        .ok_or_else(|| format!("it has no {what} `{name}`"))
}

/// Copy the server, CA and a static credential out of a kubeconfig outside the checkout.
fn from_file(
    alias: &str,
    cfg: &ClusterConfig,
    path: &Path,
    checkout: &Path,
) -> Result<(Value, Value), String> {
    let what = format!("clusters.{alias}.kubeconfig ({})", path.display());
    if inside(path, checkout) {
        return Err(format!(
            "{what} is inside the checkout, which a change PR can edit: the runner never reads credentials from the repository. Write the kubeconfig outside the checkout (from a secret), or configure `server` and `token_env`"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
    let doc: Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("{what} is not YAML: {e}"))?;
    let context_name = cfg.context.as_deref().unwrap_or(alias);
    let context =
        named(&doc, "contexts", context_name, "context").map_err(|e| format!("{what}: {e}"))?;
    let cluster_name = context["cluster"].as_str().unwrap_or_default();
    let user_name = context["user"].as_str().unwrap_or_default();
    let cluster =
        named(&doc, "clusters", cluster_name, "cluster").map_err(|e| format!("{what}: {e}"))?;
    let user = named(&doc, "users", user_name, "user").map_err(|e| format!("{what}: {e}"))?;
    Ok((
        copy_cluster(&what, cluster, checkout)?,
        copy_user(&what, user)?,
    ))
}

/// The cluster's server and how to trust it; a CA file is inlined (and must not be in the
/// checkout either).
fn copy_cluster(what: &str, c: &Value, checkout: &Path) -> Result<Value, String> {
    let server = c["server"]
        .as_str()
        .ok_or_else(|| format!("{what}: the cluster has no server"))?;
    let mut out = json!({ "server": server });
    for key in [
        "certificate-authority-data",
        "insecure-skip-tls-verify",
        "tls-server-name",
    ] {
        if !c[key].is_null() {
            out[key] = c[key].clone();
        }
    }
    if let Some(ca) = c["certificate-authority"].as_str() {
        let ca = Path::new(ca);
        if inside(ca, checkout) {
            return Err(format!(
                "{what}: its CA file {} is inside the checkout",
                ca.display()
            ));
        }
        let pem = std::fs::read(ca).map_err(|e| format!("{what}: CA {}: {e}", ca.display()))?;
        out["certificate-authority-data"] = json!(base64_std(&pem));
    }
    Ok(out)
}

/// Only static credentials: a token or an inline client certificate. A plugin, a provider or a
/// file the credential would be read from is refused.
fn copy_user(what: &str, u: &Value) -> Result<Value, String> {
    for code in ["exec", "auth-provider"] {
        if !u[code].is_null() {
            return Err(format!(
                "{what}: its user has an `{code}` section: credential plugins and auth providers run programs with the job's credentials, so the runner refuses them. Give the runner a token (`token_env`) instead"
            ));
        }
    }
    let mut out = json!({});
    for key in ["token", "client-certificate-data", "client-key-data"] {
        if !u[key].is_null() {
            out[key] = u[key].clone();
        }
    }
    if out.as_object().is_some_and(serde_json::Map::is_empty) {
        return Err(format!(
            "{what}: its user has no token or inline client certificate"
        ));
    }
    Ok(out)
}

fn from_settings(
    alias: &str,
    cfg: &ClusterConfig,
    server: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, Value), String> {
    let var = cfg.token_env.as_deref().ok_or_else(|| {
        format!("clusters.{alias}.token_env: name the job's environment variable holding the cluster token")
    })?;
    let token = lookup(var)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| format!("clusters.{alias}.token_env: {var} is not set or empty"))?;
    Ok((
        settings_cluster(cfg, server),
        json!({ "token": token.trim() }),
    ))
}

fn settings_cluster(cfg: &ClusterConfig, server: &str) -> Value {
    let mut cluster = json!({ "server": server });
    if let Some(ca) = &cfg.certificate_authority_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    cluster
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kubeconfig: Option<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            kubeconfig,
            context: Some("staging".into()),
            role_arn: None,
            server: None,
            certificate_authority_data: None,
            token_env: None,
            gcp_service_account: None,
        }
    }

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: { server: 'https://k8s.example:6443', certificate-authority-data: QUJD }\nusers:\n- name: u\n  user: { token: t0k }\ncontexts:\n- name: staging\n  context: { cluster: c, user: u }\n";

    #[test]
    fn a_kubeconfig_is_rebuilt_with_only_server_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let (checkout, outside) = (dir.path().join("ws"), dir.path().join("secrets"));
        std::fs::create_dir_all(&checkout).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let path = outside.join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let built = build(
            "staging",
            &cfg(Some(path)),
            &checkout,
            dir.path(),
            &|_| None,
            None,
        )
        .unwrap();
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&built.kubeconfig).unwrap()).unwrap();
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://k8s.example:6443"
        );
        assert_eq!(doc["users"][0]["user"], json!({"token": "t0k"}));
    }

    #[test]
    fn plugins_providers_and_kubeconfigs_in_the_checkout_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("ws");
        std::fs::create_dir_all(checkout.join("kube")).unwrap();
        let inside_path = checkout.join("kube/staging.yaml");
        std::fs::write(&inside_path, KUBECONFIG).unwrap();
        let e = build(
            "staging",
            &cfg(Some(inside_path)),
            &checkout,
            dir.path(),
            &|_| None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("inside the checkout"), "{e}");
        let plugin = dir.path().join("plugin.yaml");
        std::fs::write(
            &plugin,
            KUBECONFIG.replace(
                "{ token: t0k }",
                "{ exec: { command: /bin/sh, apiVersion: client.authentication.k8s.io/v1 } }",
            ),
        )
        .unwrap();
        let e = build(
            "staging",
            &cfg(Some(plugin)),
            &checkout,
            dir.path(),
            &|_| None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("`exec`"), "{e}");
        let mut settings = cfg(None);
        settings.server = Some("https://k8s.example".into());
        settings.token_env = Some("KUBE_TOKEN".into());
        let no_env = |_: &str| None;
        assert!(build("staging", &settings, &checkout, dir.path(), &no_env, None).is_err());
        let env = |k: &str| (k == "KUBE_TOKEN").then(|| "abc".to_string());
        let built = build("staging", &settings, &checkout, dir.path(), &env, None).unwrap();
        assert!(
            std::fs::read_to_string(built.kubeconfig)
                .unwrap()
                .contains("abc")
        );
    }

    #[test]
    fn a_gke_cluster_gets_the_minted_google_token_and_nothing_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut gke = cfg(None);
        gke.server = Some("https://34.1.2.3".into());
        gke.certificate_authority_data = Some("QUJD".into());
        gke.gcp_service_account = Some("deploy@p.iam.gserviceaccount.com".into());
        let env = |_: &str| Some("from-the-environment".to_string());
        let built = build(
            "gke",
            &gke,
            dir.path(),
            dir.path(),
            &env,
            Some("ya29.minted"),
        )
        .unwrap();
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&built.kubeconfig).unwrap()).unwrap();
        assert_eq!(doc["users"][0]["user"], json!({"token": "ya29.minted"}));
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "QUJD"
        );
    }
}
