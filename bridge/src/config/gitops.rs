//! Where the GitOps repository is and how the bridge acts on it: the validated `gitops.repo`
//! and `gitops.services` sections. Defined here, beside the rest of the configuration, so that
//! loading config needs nothing from the change-request service.

use std::collections::BTreeMap;
use std::time::Duration;

use slipway_infra::github::Repo;

use super::Secret;

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
}

impl ServiceConfig {
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
    pub signing_key_id: String,
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
