//! The runner's configuration file (YAML, unknown keys refused). Default path: `.slipway/runner.yaml`
//! in the checkout; `--config` / `SLIPWAY_RUNNER_CONFIG` names another. Example:
//!
//! ```yaml
//! # default_branch: main            # default: the repository's, from the GitHub API
//! policy: policy/slipway.yaml       # read from the merged commit, never from the working tree
//! keys:                             # the bridge's Ed25519 public keys, by key id
//!   bridge-2026: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
//! revoked_keys: [bridge-2025]       # refused whatever a file's expiry
//! # key_store: { address: https://vault:8200, role: slipway-runner,
//! #              path: secret/data/slipway/runner-keys }   # more keys and revocations, per run
//! aws:
//!   region: eu-west-1
//!   session_duration: 15m           # STS DurationSeconds (at least 15m)
//!   # audience: sts.amazonaws.com
//!   # sts_endpoint: http://127.0.0.1:5000   # tests and emulators only
//! gcp:                              # Workload Identity Federation (only if a target uses GCP)
//!   workload_identity_provider: projects/123456789/locations/global/workloadIdentityPools/github/providers/slipway
//!   token_lifetime: 15m             # generateAccessToken lifetime (at most 1h)
//!   # audience: https://iam.googleapis.com/projects/…/providers/slipway   # the OIDC token's (default)
//!   # sts_endpoint: http://127.0.0.1:8080/v1/token            # tests and emulators only
//!   # iam_credentials_endpoint: http://127.0.0.1:8080         # tests and emulators only
//! stacks:                           # /tf apply: the role each stack's terraform runs as
//!   network: { role_arn: "arn:aws:iam::123456789012:role/slipway-network" }
//!   gcp-network: { gcp_service_account: slipway-tf-network@acme-prod.iam.gserviceaccount.com }
//! clusters:                         # /kubectl and /deploy: credentials per cluster alias (the
//!                                   # alias is signed in the change request; the runner builds
//!                                   # kubectl's kubeconfig itself, never from the checkout)
//!   staging: { server: "https://k8s.staging.example.com", certificate_authority_data: "LS0t…",
//!              token_env: KUBE_TOKEN_STAGING }
//!   production: { kubeconfig: /runner/secrets/prod.kubeconfig, context: prod }   # outside the
//!                                   # checkout; only server, CA and a static token are used
//!   gke-prod: { server: "https://34.1.2.3", certificate_authority_data: "LS0t…",
//!               gcp_service_account: slipway-deploy@acme-prod.iam.gserviceaccount.com }
//!                                   # GKE: a short-lived Google token for that account
//! deploy:                           # default: the change's own argv (`kubectl apply -k apps/<svc>/<env>`)
//!   command: [kubectl, apply, --server-side, "--kubeconfig={kubeconfig}", "--context={context}", -k, "{dir}"]
//!   rollout_timeout: 5m             # `kubectl rollout status` wait per Deployment (default 5m)
//! tools: { terraform: terraform, kubectl: kubectl, path: "/usr/local/bin:/usr/bin:/bin", kill_grace: 5s }
//! audit:
//!   spool_dir: /tmp/slipway-audit   # default: $RUNNER_TEMP/slipway-audit
//!   signing_key_file: /home/runner/work/_temp/audit.key   # or SLIPWAY_AUDIT_SIGNING_KEY_FILE
//!   writers:                        # who may write the trail, with their Ed25519 public keys
//!     "runner:*": "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"
//!     "bridge:*": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
//!   s3: { bucket: acme-audit, prefix: slipway, region: eu-west-1, retention_days: 400,
//!         role_arn: "arn:aws:iam::123456789012:role/slipway-audit" }
//! ```
//!
//! Relative paths (kubeconfigs, the spool) are relative to the config file's directory. A
//! kubeconfig that resolves inside the checkout is refused: a change PR could edit it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

mod gcp;
pub mod key_store;

/// The default config path, relative to the checkout.
pub const DEFAULT_PATH: &str = ".slipway/runner.yaml";

/// A duration written the human way (`90s`, `15m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!("`{s}` is not a duration like 90s or 15m: {e}"))
            })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default = "default_policy")]
    pub policy: String,
    /// key id → Ed25519 public key (hex, base64 or SPKI PEM).
    pub keys: BTreeMap<String, String>,
    /// Key ids no longer trusted: a change file signed with one is refused, whatever its
    /// expiry (a leaked or retired bridge key).
    #[serde(default)]
    pub revoked_keys: Vec<String>,
    /// Keys and revocations also published in Vault / OpenBao (see `key_store`).
    #[serde(default)]
    pub key_store: Option<key_store::KeyStoreConfig>,
    #[serde(default)]
    pub aws: AwsConfig,
    #[serde(default)]
    pub gcp: GcpConfig,
    #[serde(default)]
    pub stacks: BTreeMap<String, StackConfig>,
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    #[serde(default)]
    pub deploy: DeployConfig,
    #[serde(default)]
    pub tools: ToolsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
}

fn default_policy() -> String {
    "policy/slipway.yaml".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub session_duration: Option<HumanDuration>,
    #[serde(default)]
    pub sts_endpoint: Option<String>,
}

/// Google Cloud through Workload Identity Federation: the job's OIDC token is exchanged at STS
/// for a federated token, which mints a token for the target's service account.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// `projects/NUM/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
    #[serde(default)]
    pub workload_identity_provider: Option<String>,
    /// The OIDC token's audience; default `https://iam.googleapis.com/<provider>`.
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub token_lifetime: Option<HumanDuration>,
    #[serde(default)]
    pub sts_endpoint: Option<String>,
    #[serde(default)]
    pub iam_credentials_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The service account the stack's terraform runs as on Google Cloud.
    #[serde(default)]
    pub gcp_service_account: Option<String>,
}

/// How the runner reaches one cluster. It builds kubectl's kubeconfig itself (see
/// `kubeconfig`): from `server` + `token_env`, or from a kubeconfig outside the checkout whose
/// server, CA and static credential it copies (plugins and providers are refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// The context in `kubeconfig`; default: the cluster alias.
    #[serde(default)]
    pub context: Option<String>,
    /// The API server's URL, for a kubeconfig built from settings alone.
    #[serde(default)]
    pub server: Option<String>,
    /// The API server's CA (base64 of its PEM).
    #[serde(default)]
    pub certificate_authority_data: Option<String>,
    /// The job's environment variable that holds the cluster's bearer token (a secret).
    #[serde(default)]
    pub token_env: Option<String>,
    /// A role assumed with the job's OIDC token for this cluster's changes.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// GKE: the service account whose short-lived Google token is kubectl's bearer token
    /// (instead of `token_env`).
    #[serde(default)]
    pub gcp_service_account: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// argv with `{dir}` (`apps/<service>/<env>`), `{kubeconfig}`, `{context}`, `{service}` and
    /// `{env}` replaced.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// How long `kubectl rollout status` waits for each Deployment the deploy applied to
    /// become ready (default 5m); a rollout that doesn't is a failed execution.
    #[serde(default)]
    pub rollout_timeout: Option<HumanDuration>,
}

impl DeployConfig {
    /// The rollout wait, default five minutes.
    pub fn rollout_timeout(&self) -> std::time::Duration {
        self.rollout_timeout
            .as_ref()
            .map_or(std::time::Duration::from_secs(300), |d| d.0)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    #[serde(default = "terraform")]
    pub terraform: String,
    #[serde(default = "kubectl")]
    pub kubectl: String,
    #[serde(default = "path")]
    pub path: String,
    #[serde(default = "grace")]
    pub kill_grace: HumanDuration,
}

fn terraform() -> String {
    "terraform".into()
}
fn kubectl() -> String {
    "kubectl".into()
}
fn path() -> String {
    slipway_infra::exec::DEFAULT_PATH.into()
}
fn grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            terraform: terraform(),
            kubectl: kubectl(),
            path: path(),
            kill_grace: grace(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// The Ed25519 key that signs the spool's checkpoints: a file only the job reads, written
    /// from a secret, never in the checkout.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Writers and their public keys; the job's `runner:…` id must be listed with its key.
    #[serde(default)]
    pub writers: BTreeMap<String, slipway_core::audit::WriterKeys>,
    #[serde(default)]
    pub s3: Option<S3Config>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default = "compliance")]
    pub retention_mode: String,
    pub retention_days: u32,
    /// Assumed with the OIDC token for the upload (unless credentials come from the environment).
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default = "flush")]
    pub flush_timeout: HumanDuration,
}

fn compliance() -> String {
    "COMPLIANCE".into()
}
fn flush() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

fn check_arn(what: &str, arn: Option<&String>) -> Result<(), String> {
    match arn {
        Some(a) if !(a.starts_with("arn:") && a.contains(":role/")) => Err(format!(
            "{what}.role_arn `{a}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )),
        _ => Ok(()),
    }
}

impl RunnerConfig {
    /// Parse and check a config; `dir` resolves relative paths.
    pub fn parse(text: &str, dir: &Path) -> Result<RunnerConfig, String> {
        let options = serde_saphyr::options! { with_snippet: false };
        let mut cfg: RunnerConfig =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                let loc = e
                    .location()
                    .map(|l| format!("{}:{}: ", l.line(), l.column()))
                    .unwrap_or_default();
                format!(
                    "{loc}{}",
                    e.without_snippet()
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or("invalid")
                )
            })?;
        if cfg.keys.is_empty() {
            return Err("`keys` is empty: add the bridge's public key (key id → Ed25519 public key) so change requests can be verified".into());
        }
        cfg.keyring()?;
        cfg.check_targets(dir)?;
        cfg.check_audit(dir)?;
        if cfg.policy.starts_with('/') || cfg.policy.split('/').any(|p| p == "..") {
            return Err(format!(
                "policy `{}` must be a path inside the repository (it is read from the merged commit)",
                cfg.policy
            ));
        }
        Ok(cfg)
    }

    /// Roles are role ARNs, service accounts are service-account emails (and need a workload
    /// identity provider), each cluster has one way in, and the deploy command names `{dir}`.
    fn check_targets(&mut self, dir: &Path) -> Result<(), String> {
        for (name, s) in &self.stacks {
            check_arn(&format!("stacks.{name}"), s.role_arn.as_ref())?;
            self.gcp
                .check_account(&format!("stacks.{name}"), s.gcp_service_account.as_ref())?;
        }
        for (name, c) in &mut self.clusters {
            check_arn(&format!("clusters.{name}"), c.role_arn.as_ref())?;
            self.gcp
                .check_account(&format!("clusters.{name}"), c.gcp_service_account.as_ref())?;
            if c.gcp_service_account.is_some() && (c.server.is_none() || c.token_env.is_some()) {
                return Err(format!(
                    "clusters.{name}: a GKE cluster with `gcp_service_account` needs `server` (and its CA), and no `token_env`: its token comes from Google"
                ));
            }
            if let Some(k) = &mut c.kubeconfig
                && k.is_relative()
            {
                *k = dir.join(&*k);
            }
            if c.kubeconfig.is_some() == c.server.is_some() {
                return Err(format!(
                    "clusters.{name}: give either `kubeconfig` (outside the checkout) or `server` with `token_env`"
                ));
            }
        }
        if let Some(cmd) = &self.deploy.command
            && (cmd.is_empty() || !cmd.iter().any(|w| w.contains("{dir}")))
        {
            return Err("deploy.command must be a non-empty argv that names the manifest directory as `{dir}`".into());
        }
        Ok(())
    }

    /// The S3 mirror's settings, https for every URL that carries credentials, the spool and
    /// key paths resolved, and the writer allowlist.
    fn check_audit(&mut self, dir: &Path) -> Result<(), String> {
        if let Some(s3) = &self.audit.s3 {
            s3.retention_mode
                .parse::<slipway_infra::s3::RetentionMode>()
                .map_err(|e| format!("audit.s3.retention_mode: {e}"))?;
            check_arn("audit.s3", s3.role_arn.as_ref())?;
            if s3.retention_days == 0 {
                return Err("audit.s3.retention_days must be at least 1".into());
            }
        }
        // Both carry the job's credentials (the session token travels in a header).
        for (what, url) in [
            (
                "audit.s3.endpoint_url",
                self.audit.s3.as_ref().and_then(|s| s.endpoint_url.as_ref()),
            ),
            ("aws.sts_endpoint", self.aws.sts_endpoint.as_ref()),
            ("gcp.sts_endpoint", self.gcp.sts_endpoint.as_ref()),
            (
                "gcp.iam_credentials_endpoint",
                self.gcp.iam_credentials_endpoint.as_ref(),
            ),
        ] {
            if let Some(url) = url
                && !slipway_infra::https_or_loopback(url)
            {
                return Err(format!(
                    "{what} `{url}` must be https (plain http only on loopback, for tests)"
                ));
            }
        }
        for path in [&mut self.audit.spool_dir, &mut self.audit.signing_key_file]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
        slipway_core::audit::WriterAllowlist::from_config(&self.audit.writers)
            .map_err(|e| format!("audit.writers: {e}"))?;
        Ok(())
    }

    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<RunnerConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: {e} (pass --config or create {DEFAULT_PATH} in the GitOps repo)",
                path.display()
            )
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        RunnerConfig::parse(&text, &dir).map_err(|e| format!("{}:{e}", path.display()))
    }

    /// The bridge's keys with the revoked ids.
    pub fn keyring(&self) -> Result<slipway_core::change::Keyring, String> {
        keyring(&self.keys, &self.revoked_keys)
    }

    /// The keyring with what the key store publishes added (see `key_store`).
    pub fn keyring_with(
        &self,
        store: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<slipway_core::change::Keyring, String> {
        let (keys, revoked) = key_store::merge(&self.keys, &self.revoked_keys, store)?;
        keyring(&keys, &revoked)
    }

    /// The bridge's keys, parsed.
    pub fn verifying_keys(&self) -> Result<Vec<(String, VerifyingKey)>, String> {
        verifying_keys(&self.keys)
    }

    /// The audience of the OIDC token.
    pub fn audience(&self) -> &str {
        self.aws
            .audience
            .as_deref()
            .unwrap_or(slipway_infra::oidc::STS_AUDIENCE)
    }
}

fn keyring(
    keys: &BTreeMap<String, String>,
    revoked: &[String],
) -> Result<slipway_core::change::Keyring, String> {
    let keys = verifying_keys(keys)?;
    if keys.iter().all(|(id, _)| revoked.contains(id)) {
        return Err("every key in `keys` is in `revoked_keys`: add the bridge's current key so change requests can be verified".into());
    }
    Ok(slipway_core::change::Keyring::new(keys, revoked.to_vec()))
}

fn verifying_keys(keys: &BTreeMap<String, String>) -> Result<Vec<(String, VerifyingKey)>, String> {
    keys.iter()
        .map(|(id, text)| {
            slipway_core::change::parse_verifying_key(text)
                .map(|k| (id.clone(), k))
                .map_err(|e| format!("keys.{id}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn a_full_config_parses_and_resolves_paths() {
        let text = format!(
            "keys:\n  k1: \"{KEY}\"\naws: {{ region: eu-west-1, session_duration: 20m }}\nstacks:\n  app: {{ role_arn: \"arn:aws:iam::1:role/app\" }}\nclusters:\n  staging: {{ kubeconfig: kube.yaml }}\ndeploy:\n  command: [kubectl, apply, -k, \"{{dir}}\"]\ntools: {{ kill_grace: 2s }}\naudit: {{ spool_dir: spool }}\n"
        );
        let cfg = RunnerConfig::parse(&text, Path::new("/etc/slipway")).unwrap();
        assert_eq!(cfg.policy, "policy/slipway.yaml");
        assert_eq!(
            cfg.clusters["staging"].kubeconfig,
            Some(PathBuf::from("/etc/slipway/kube.yaml"))
        );
        assert_eq!(
            cfg.audit.spool_dir.as_deref(),
            Some(Path::new("/etc/slipway/spool"))
        );
        assert_eq!(
            cfg.aws.session_duration,
            Some(HumanDuration(Duration::from_secs(1200)))
        );
        assert_eq!(cfg.tools.kill_grace.0, Duration::from_secs(2));
        assert_eq!(cfg.tools.terraform, "terraform");
        assert_eq!(cfg.audience(), "sts.amazonaws.com");
        assert_eq!(cfg.verifying_keys().unwrap().len(), 1);
    }

    #[test]
    fn mistakes_say_what_to_fix() {
        let err = |t: &str| RunnerConfig::parse(t, Path::new("/")).unwrap_err();
        assert!(err("keys: {}\n").contains("bridge's public key"));
        assert!(err(&format!("keys: {{k: \"{KEY}\"}}\nunknown: 1\n")).contains("unknown"));
        assert!(err("keys: {k: nothex}\n").contains("keys.k"));
        assert!(
            err(&format!(
                "keys: {{k: \"{KEY}\"}}\nstacks: {{a: {{role_arn: nope}}}}\n"
            ))
            .contains("stacks.a.role_arn")
        );
        assert!(
            err(&format!(
                "keys: {{k: \"{KEY}\"}}\ndeploy: {{command: [kubectl]}}\n"
            ))
            .contains("{dir}")
        );
        assert!(
            err(&format!("keys: {{k: \"{KEY}\"}}\npolicy: ../x.yaml\n"))
                .contains("inside the repository")
        );
        assert!(
            err(&format!(
                "keys: {{k: \"{KEY}\"}}\ntools: {{kill_grace: soon}}\n"
            ))
            .contains("duration")
        );
        assert!(
            err(&format!(
                "keys: {{k: \"{KEY}\"}}\naws: {{sts_endpoint: \"http://sts.example.com\"}}\n"
            ))
            .contains("aws.sts_endpoint")
        );
        assert!(
            err(&format!(
                "keys: {{k: \"{KEY}\"}}\naudit: {{s3: {{bucket: b, retention_days: 1, endpoint_url: \"http://localhost.evil.example\"}}}}\n"
            ))
            .contains("audit.s3.endpoint_url")
        );
    }
}
