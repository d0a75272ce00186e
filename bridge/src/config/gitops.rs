//! Where the GitOps repository is and how the bridge acts on it: the validated `gitops.repo`
//! and `gitops.services` sections. Defined here, beside the rest of the configuration, so that
//! loading config needs nothing from the change-request service.

use std::collections::BTreeMap;
use std::time::Duration;

use slipway_infra::github::Repo;

use super::{Env, Secret, SecretSource, de_secret};

/// How an image is found for `/deploy <service>` without a version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's source repo (`owner/name`), whose newest successful Actions run is deployed.
    pub repo: String,
    /// The image name, e.g. `registry.example.com/api`.
    pub image: String,
    /// The tag built from a commit: `{sha}` and `{short_sha}` are replaced. Default `sha-{short_sha}`.
    #[serde(default)]
    pub tag_template: Option<String>,
    /// The branch CI builds from; default `main`.
    #[serde(default)]
    pub branch: Option<String>,
    /// The CI workflow that builds the image: its file name under `.github/workflows/` (e.g.
    /// `ci.yml`) or id. Only its green `push` runs of `branch` in `repo` itself are deployed;
    /// without it `/deploy <service>` needs an explicit version.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Where the image's registry is and how to sign in to it. When set, every `/deploy` first
    /// checks that the tag exists there and pins the digest it resolves to; when unset the image
    /// is not checked and the dry run says so.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
}

/// `gitops.services.<svc>.registry`: the registry's API URL and credentials (anonymous when
/// neither `password` nor `token` is set).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry's base URL, e.g. `https://ghcr.io`; default `https://<host of image>`.
    #[serde(default)]
    pub url: Option<String>,
    /// For basic auth (and the token realm of a `Bearer` challenge), with `password`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    password: Option<SecretSource>,
    /// A bearer token sent as is (a registry's personal access token).
    #[serde(default, deserialize_with = "de_secret")]
    token: Option<SecretSource>,
    /// The loaded secrets (`password`, `token`), set by [`RegistryConfig::load`].
    #[serde(skip)]
    pub secrets: (Secret, Secret),
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PartialEq for RegistryConfig {
    fn eq(&self, o: &Self) -> bool {
        self.url == o.url && self.username == o.username && self.secrets == o.secrets
    }
}
impl Eq for RegistryConfig {}

impl RegistryConfig {
    /// Load the secret references; `name` is the service's key, for messages.
    fn load(&mut self, name: &str, env: Env<'_>) -> Result<(), String> {
        let what = |k: &str| format!("gitops.services.{name}.registry.{k}");
        let load = |src: Option<&SecretSource>, k: &str| {
            src.map_or_else(|| Ok(Secret::default()), |s| s.load(&what(k), env))
        };
        self.secrets = (
            load(self.password.as_ref(), "password")?,
            load(self.token.as_ref(), "token")?,
        );
        if !self.secrets.0.is_empty() && self.username.is_none() {
            return Err(format!(
                "{}: set a username with the password",
                what("username")
            ));
        }
        if let Some(u) = &self.url
            && !(u.starts_with("https://")
                || u.starts_with("http://127.0.0.1")
                || u.starts_with("http://localhost"))
        {
            return Err(format!(
                "{}: `{u}` is not an https URL (plain http only on loopback)",
                what("url")
            ));
        }
        Ok(())
    }

    /// The credentials to send now (a rotated secret is read afresh each time).
    pub fn auth(&self) -> slipway_infra::oci::Auth {
        use slipway_infra::oci::Auth;
        let (password, token) = &self.secrets;
        if !token.is_empty() {
            return Auth::Bearer(token.expose().to_string());
        }
        match &self.username {
            Some(u) if !password.is_empty() => Auth::Basic {
                username: u.clone(),
                password: password.expose().to_string(),
            },
            _ => Auth::Anonymous,
        }
    }

    /// The registry's API base URL for `image`.
    pub fn base_url(&self, image: &str) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("https://{}", slipway_infra::oci::split_image(image).0))
    }
}

impl ServiceConfig {
    /// Load the registry's secret references, then check the service; `name` is its key.
    pub(super) fn load(&mut self, name: &str, env: Env<'_>) -> Result<(), String> {
        if let Some(r) = &mut self.registry {
            r.load(name, env)?;
        }
        self.check(name)
    }

    /// Check the parts GitHub lookups use; `name` is the service's key, for the message.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if Repo::parse(&self.repo).is_none() {
            return Err(format!(
                "gitops.services.{name}.repo: `{}` is not owner/name",
                self.repo
            ));
        }
        if let Some(w) = &self.workflow
            && !slipway_infra::github::is_workflow_id(w)
        {
            return Err(format!(
                "gitops.services.{name}.workflow: `{w}` is not a workflow file name under .github/workflows/ (like ci.yml) or a workflow id"
            ));
        }
        Ok(())
    }
}

/// Where the GitOps repo is and how to act on it.
#[derive(Debug, Clone)]
pub struct GitOpsConfig {
    /// `owner/name` of the GitOps repository.
    pub repo: Repo,
    /// Git URL for fetch and push (https for GitHub; http on loopback for emulators).
    pub git_url: String,
    /// GitHub API base URL.
    pub api_url: String,
    pub app_id: u64,
    /// The GitOps repository's default branch, where change requests merge.
    pub default_branch: String,
    /// The App's bot login (`<slug>[bot]`), the author of every PR Slipway opens.
    pub app_login: String,
    pub installation_id: u64,
    pub app_private_key: Secret,
    /// The Ed25519 key change requests are signed with, and its id (for rotation).
    pub signing_key: Secret,
    pub signing_key_id: Secret,
    /// Earlier signing keys that still verify what they signed (rotation), by id.
    pub signing_trusted: Vec<(String, ed25519_dalek::VerifyingKey)>,
    /// Key ids refused whatever a file's expiry (revocation).
    pub signing_revoked: Vec<String>,
    pub services: BTreeMap<String, ServiceConfig>,
    /// The GitHub App's client id, for `/slipway link github` (device flow); `None` = off.
    pub client_id: Option<String>,
    /// Base URL of GitHub's OAuth endpoints (`https://github.com`), no trailing slash.
    pub oauth_url: String,
    /// 32 bytes (hex/base64) sealing linked tokens at rest; empty = linking refused.
    pub token_key: Secret,
    /// How sealed records' data keys are wrapped (the local key, KMS or Transit).
    pub envelope: super::EnvelopeConfig,
    /// How often open change requests are checked for expiry.
    pub expiry_interval: Duration,
    /// How long before a request expires its approvers are reminded (zero: never).
    pub approval_reminder: Duration,
    /// The GitHub login the runner comments as (`github-actions[bot]` for a job's
    /// `GITHUB_TOKEN`): only its marker comments are mirrored into Slack as runner reports.
    pub runner_login: String,
    /// The policy file in the repository whose changes on the default branch reload the
    /// bridge's policy; `None` = don't follow it.
    pub policy_path: Option<String>,
}

/// The login a workflow job's `GITHUB_TOKEN` acts as.
pub const DEFAULT_RUNNER_LOGIN: &str = "github-actions[bot]";

/// The OAuth base URL for an API URL: `https://api.github.com` → `https://github.com`, GitHub
/// Enterprise Server `https://HOST/api/v3` → `https://HOST`, anything else (an emulator serving
/// both) → itself.
pub fn oauth_url_for(api_url: &str) -> String {
    let api = api_url.trim_end_matches('/');
    if api == "https://api.github.com" {
        return "https://github.com".into();
    }
    api.strip_suffix("/api/v3").unwrap_or(api).to_string()
}
