//! The GitHub side of the configuration that decides what the bridge trusts: the services whose
//! CI builds `/deploy` takes, the login the runner reports as, and the GitOps repository with the
//! App that acts on it (`load`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Env, FileGitHub, FileGitops, FileSigning, Secret, check_url, duration, secret};

/// `gitops.services`, each checked.
pub(super) fn services(
    s: &BTreeMap<String, super::gitops::ServiceConfig>,
    env: Env<'_>,
) -> Result<BTreeMap<String, super::gitops::ServiceConfig>, String> {
    let mut s = s.clone();
    s.iter_mut()
        .try_for_each(|(name, svc)| svc.load(name, env))?;
    Ok(s)
}

/// `SLIPWAY_RUNNER_LOGIN` / `github.runner_login`, default `github-actions[bot]`.
pub(super) fn runner_login(env: Env<'_>, file: Option<String>) -> Result<String, String> {
    let login = env("SLIPWAY_RUNNER_LOGIN")
        .or(file)
        .unwrap_or_else(|| super::gitops::DEFAULT_RUNNER_LOGIN.into());
    let login = login.trim();
    if login.is_empty() || login.contains(char::is_whitespace) {
        return Err(format!(
            "the runner's GitHub login `{login}` is not a login: set SLIPWAY_RUNNER_LOGIN or `github.runner_login` to the account the runner comments as (default {}, the login of a workflow's GITHUB_TOKEN)",
            super::gitops::DEFAULT_RUNNER_LOGIN
        ));
    }
    Ok(login.to_string())
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
        .unwrap_or_else(|| super::gitops::oauth_url_for(&api_url));
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
) -> Result<Option<super::gitops::GitOpsConfig>, String> {
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
    let (signing_key_id, revoked) = key_ids(signing, env)?;
    let (expiry_interval, approval_reminder) = timers(gitops, env)?;
    Ok(Some(super::gitops::GitOpsConfig {
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
        signing_key_id,
        signing_trusted: trusted_keys(signing)?,
        signing_revoked: revoked,
        services: services(&gitops.services, env)?,
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
        envelope: super::EnvelopeConfig::default(),
        expiry_interval,
        approval_reminder,
        runner_login: runner_login(env, github.runner_login.clone())?,
        policy_path: env("SLIPWAY_GITOPS_POLICY_PATH")
            .or(gitops.policy_path.clone())
            .map_or_else(
                || Some("policy/slipway.yaml".to_string()),
                |p| Some(p.trim().trim_start_matches('/').to_string()).filter(|p| !p.is_empty()),
            ),
    }))
}

/// How often expiry is swept, and how long before expiry approvers are reminded.
fn timers(gitops: &FileGitops, env: Env<'_>) -> Result<(Duration, Duration), String> {
    let every = duration(
        "SLIPWAY_EXPIRY_INTERVAL / gitops.expiry_interval",
        env("SLIPWAY_EXPIRY_INTERVAL")
            .or(gitops.expiry_interval.clone())
            .as_deref(),
        Duration::from_secs(60),
    )?
    .max(Duration::from_millis(10));
    let reminder = duration(
        "SLIPWAY_APPROVAL_REMINDER / gitops.approval_reminder",
        env("SLIPWAY_APPROVAL_REMINDER")
            .or(gitops.approval_reminder.clone())
            .as_deref(),
        Duration::from_secs(3600),
    )?;
    Ok((every, reminder))
}

/// `signing.trusted`: earlier key ids and their public keys.
fn trusted_keys(
    signing: &FileSigning,
) -> Result<Vec<(String, ed25519_dalek::VerifyingKey)>, String> {
    signing
        .trusted
        .iter()
        .map(|(id, text)| {
            slipway_core::change::parse_verifying_key(text)
                .map(|k| (id.clone(), k))
                .map_err(|e| format!("signing.trusted.{id}: {e}"))
        })
        .collect()
}

/// `SLIPWAY_SIGNING_REVOKED_KEYS` (comma-separated) and `signing.revoked`, together.
fn revoked_keys(signing: &FileSigning, env: Env<'_>) -> Vec<String> {
    let from_env = env("SLIPWAY_SIGNING_REVOKED_KEYS").unwrap_or_default();
    from_env
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .chain(signing.revoked.iter().cloned())
        .collect()
}

/// The id new change requests are signed with (a value, or a secret store reference rotated
/// together with `signing.key`), and the revoked ids (never the current one).
fn key_ids(signing: &FileSigning, env: Env<'_>) -> Result<(Secret, Vec<String>), String> {
    let id = secret(
        env,
        "SLIPWAY_SIGNING_KEY_ID",
        signing.key_id.as_ref(),
        "signing.key_id",
    )?;
    let id = if id.is_empty() {
        Secret::new("bridge")
    } else {
        id
    };
    let revoked = revoked_keys(signing, env);
    if revoked.iter().any(|r| *r == *id.expose()) {
        return Err(format!(
            "the signing key id `{}` is revoked (SLIPWAY_SIGNING_REVOKED_KEYS or \
             `signing.revoked`): rotate to a new key with a new id (SLIPWAY_SIGNING_KEY and \
             SLIPWAY_SIGNING_KEY_ID) before revoking the old one",
            &*id.expose()
        ));
    }
    Ok((id, revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_login_defaults_to_the_job_token_and_refuses_blanks() {
        let none = |_: &str| None;
        assert_eq!(runner_login(&none, None).unwrap(), "github-actions[bot]");
        assert_eq!(
            runner_login(&none, Some("deployer[bot]".into())).unwrap(),
            "deployer[bot]"
        );
        let env = |k: &str| (k == "SLIPWAY_RUNNER_LOGIN").then(|| "  ".to_string());
        let e = runner_login(&env, None).unwrap_err();
        assert!(e.contains("SLIPWAY_RUNNER_LOGIN"), "{e}");
    }

    #[test]
    fn services_name_the_bad_key() {
        let svc: crate::config::gitops::ServiceConfig = serde_saphyr::from_str(
            "repo: acme/api\nimage: registry.example/api\nworkflow: ../ci.yml\n",
        )
        .unwrap();
        let e = services(&BTreeMap::from([("api".to_string(), svc)]), &|_| None).unwrap_err();
        assert!(e.contains("gitops.services.api.workflow"), "{e}");
    }

    #[test]
    fn registry_credentials_load_from_references_and_bad_settings_name_their_key() {
        let load = |yaml: &str| {
            let svc: crate::config::gitops::ServiceConfig = serde_saphyr::from_str(&format!(
                "repo: acme/api\nimage: ghcr.io/acme/api\nregistry:\n{yaml}"
            ))
            .unwrap();
            let env = |k: &str| (k == "REGISTRY_PASSWORD").then(|| "s3cret-pass".to_string());
            services(&BTreeMap::from([("api".to_string(), svc)]), &env)
        };
        let ok = load("  username: ci\n  password: { env: REGISTRY_PASSWORD }\n").unwrap();
        let reg = ok["api"].registry.as_ref().unwrap();
        assert_eq!(reg.base_url("ghcr.io/acme/api"), "https://ghcr.io");
        let shown = format!("{reg:?} {:?}", reg.auth());
        assert!(
            matches!(reg.auth(), slipway_infra::oci::Auth::Basic { .. })
                && !shown.contains("s3cret"),
            "{shown}"
        );
        let e = load("  password: { env: REGISTRY_PASSWORD }\n").unwrap_err();
        assert!(e.contains("gitops.services.api.registry.username"), "{e}");
        let e = load("  url: http://registry.example\n").unwrap_err();
        assert!(e.contains("gitops.services.api.registry.url"), "{e}");
    }

    #[test]
    fn the_current_key_id_can_not_be_revoked_and_trusted_keys_must_parse() {
        let signing = FileSigning {
            key_id: Some(super::super::SecretSource::Value("bridge-2026".into())),
            revoked: vec!["bridge-2024".into()],
            ..FileSigning::default()
        };
        let env = |k: &str| (k == "SLIPWAY_SIGNING_REVOKED_KEYS").then(|| "bridge-2025, ".into());
        let (id, revoked) = key_ids(&signing, &env).unwrap();
        assert_eq!(&*id.expose(), "bridge-2026");
        assert_eq!(revoked, ["bridge-2025", "bridge-2024"]);
        let env = |k: &str| (k == "SLIPWAY_SIGNING_REVOKED_KEYS").then(|| "bridge-2026".into());
        let e = key_ids(&signing, &env).unwrap_err();
        assert!(e.contains("is revoked") && e.contains("rotate"), "{e}");
        let bad = FileSigning {
            trusted: BTreeMap::from([("bridge-2025".into(), "not a key".into())]),
            ..FileSigning::default()
        };
        let e = trusted_keys(&bad).unwrap_err();
        assert!(e.contains("signing.trusted.bridge-2025"), "{e}");
    }
}
