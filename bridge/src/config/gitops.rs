//! Where the GitOps repository is and how the bridge acts on it: the validated `gitops.repo`
//! and `gitops.services` sections. Defined here, beside the rest of the configuration, so that
//! loading config needs nothing from the change-request service.

use std::collections::BTreeMap;
use std::time::Duration;

use slipway_infra::github::Repo;

use super::{Env, FileGitHub, FileGitops, FileSigning, Secret, check_url, duration, secret};

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
    pub services: BTreeMap<String, ServiceConfig>,
    /// The GitHub App's client id, for `/slipway link github` (device flow); `None` = off.
    pub client_id: Option<String>,
    /// Base URL of GitHub's OAuth endpoints (`https://github.com`), no trailing slash.
    pub oauth_url: String,
    /// 32 bytes (hex/base64) sealing linked tokens at rest; empty = linking refused.
    pub token_key: Secret,
    /// How often open change requests are checked for expiry.
    pub expiry_interval: Duration,
    /// The GitHub login the runner comments as (`github-actions[bot]` for a job's
    /// `GITHUB_TOKEN`): only its marker comments are mirrored into Slack as runner reports.
    pub runner_login: String,
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

/// The GitHub App's identity: ids, private key, the change-signing key, and its bot login.
struct AppIdentity {
    app_id: u64,
    installation_id: u64,
    app_private_key: Secret,
    signing_key: Secret,
    app_login: String,
}

fn app_identity(
    github: &FileGitHub,
    signing: &FileSigning,
    env: Env<'_>,
) -> Result<AppIdentity, String> {
    let number = |var: &str, v: Option<u64>, key: &str| -> Result<u64, String> {
        match env(var) {
            Some(s) => s
                .parse()
                .map_err(|_| format!("{var}=`{s}` is not a number")),
            None => v.ok_or_else(|| format!("change requests need {var} (or `{key}`)")),
        }
    };
    let app_id = number("SLIPWAY_GITHUB_APP_ID", github.app_id, "github.app_id")?;
    let installation_id = number(
        "SLIPWAY_GITHUB_INSTALLATION_ID",
        github.installation_id,
        "github.installation_id",
    )?;
    let app_private_key = secret(
        env,
        "SLIPWAY_GITHUB_PRIVATE_KEY",
        github.private_key.as_ref(),
        "github.private_key",
    )?;
    let signing_key = secret(
        env,
        "SLIPWAY_SIGNING_KEY",
        signing.key.as_ref(),
        "signing.key",
    )?;
    if app_private_key.is_empty() {
        return Err("change requests need the GitHub App private key: SLIPWAY_GITHUB_PRIVATE_KEY or `github.private_key`".into());
    }
    if signing_key.is_empty() {
        return Err(
            "change requests need an Ed25519 signing key: SLIPWAY_SIGNING_KEY or `signing.key`"
                .into(),
        );
    }
    let app_slug = env("SLIPWAY_GITHUB_APP_SLUG")
        .or(github.app_slug.clone())
        .unwrap_or_else(|| "slipway".into());
    if app_slug.is_empty()
        || !app_slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "the GitHub App slug `{app_slug}` is not a slug (letters, digits and `-`): set SLIPWAY_GITHUB_APP_SLUG or `github.app_slug` to the name in the App's URL"
        ));
    }
    Ok(AppIdentity {
        app_id,
        installation_id,
        app_private_key,
        signing_key,
        app_login: format!("{app_slug}[bot]"),
    })
}

/// The API, git and OAuth URLs for the GitOps repository, each checked.
fn github_urls(
    repo: &slipway_infra::github::Repo,
    gitops: &FileGitops,
    github: &FileGitHub,
    env: Env<'_>,
) -> Result<(String, String, String), String> {
    let api_url = env("SLIPWAY_GITHUB_API_URL")
        .or(github.api_url.clone())
        .unwrap_or_else(|| "https://api.github.com".into());
    check_url(&api_url, "the GitHub API URL (SLIPWAY_GITHUB_API_URL)")?;
    let git_url = env("SLIPWAY_GITOPS_GIT_URL")
        .or(gitops.git_url.clone())
        .unwrap_or_else(|| format!("https://github.com/{repo}.git"));
    check_url(&git_url, "the GitOps git URL (SLIPWAY_GITOPS_GIT_URL)")?;
    let oauth_url = env("SLIPWAY_GITHUB_OAUTH_URL")
        .or(github.oauth_url.clone())
        .unwrap_or_else(|| oauth_url_for(&api_url));
    check_url(
        &oauth_url,
        "the GitHub OAuth URL (SLIPWAY_GITHUB_OAUTH_URL)",
    )?;
    let oauth_url = oauth_url.trim_end_matches('/').to_string();
    Ok((api_url, git_url, oauth_url))
}

/// Change requests, when a GitOps repository is configured.
pub(super) fn load(
    gitops: &FileGitops,
    github: &FileGitHub,
    signing: &FileSigning,
    env: Env<'_>,
) -> Result<Option<GitOpsConfig>, String> {
    let Some(repo_name) = env("SLIPWAY_GITOPS_REPO").or(gitops.repo.clone()) else {
        return Ok(None);
    };
    let repo = slipway_infra::github::Repo::parse(&repo_name).ok_or_else(|| {
        format!(
            "the GitOps repo `{repo_name}` is not owner/name (SLIPWAY_GITOPS_REPO or `gitops.repo`)"
        )
    })?;
    let (api_url, git_url, oauth_url) = github_urls(&repo, gitops, github, env)?;
    let app = app_identity(github, signing, env)?;
    Ok(Some(GitOpsConfig {
        default_branch: env("SLIPWAY_GITOPS_DEFAULT_BRANCH")
            .or(gitops.default_branch.clone())
            .unwrap_or_else(|| "main".into()),
        app_login: app.app_login,
        repo,
        git_url,
        api_url,
        app_id: app.app_id,
        installation_id: app.installation_id,
        app_private_key: app.app_private_key,
        signing_key: app.signing_key,
        signing_key_id: env("SLIPWAY_SIGNING_KEY_ID")
            .or(signing.key_id.clone())
            .unwrap_or_else(|| "bridge".into()),
        services: super::github::services(&gitops.services)?,
        client_id: env("SLIPWAY_GITHUB_CLIENT_ID")
            .or(github.client_id.clone())
            .filter(|c| !c.trim().is_empty()),
        oauth_url,
        token_key: secret(
            env,
            "SLIPWAY_TOKEN_KEY",
            github.token_key.as_ref(),
            "github.token_key",
        )?,
        expiry_interval: duration(
            "SLIPWAY_EXPIRY_INTERVAL / gitops.expiry_interval",
            env("SLIPWAY_EXPIRY_INTERVAL")
                .or(gitops.expiry_interval.clone())
                .as_deref(),
            Duration::from_secs(60),
        )?
        .max(Duration::from_millis(10)),
        runner_login: super::github::runner_login(env, github.runner_login.clone())?,
    }))
}
