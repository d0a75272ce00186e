//! Cloud credentials for one change: the Actions OIDC token exchanged with STS
//! (`AssumeRoleWithWebIdentity`) for the target's role, or, with `--aws-credentials-from-env`,
//! credentials a previous step put in the environment (aws-actions/configure-aws-credentials).
//! Kubernetes credentials are files named in the config, per cluster.

use std::time::Duration;

pub mod gcp;

use slipway_infra::oidc::{self, Claims};
use slipway_infra::sts::{self, StsSettings, TemporaryCredentials};

use crate::config::RunnerConfig;

/// The variables taken from the runner's own environment in `--aws-credentials-from-env` mode.
pub const AWS_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// Where AWS credentials come from.
#[derive(Clone)]
pub enum AwsSource {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`.
    Oidc { url: String, token: String },
    /// Already in the environment (the pairs to pass on).
    Env(Vec<(String, String)>),
    /// Neither: changes whose target has a role are refused.
    Unavailable(String),
}

impl std::fmt::Debug for AwsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AwsSource::Oidc { url, .. } => write!(f, "Oidc({url})"),
            AwsSource::Env(_) => f.write_str("Env(***)"),
            AwsSource::Unavailable(why) => write!(f, "Unavailable({why})"),
        }
    }
}

/// Credentials handed to one change's processes. `Debug` names the variables, never their
/// values (session keys, Google tokens).
#[derive(Clone, Default)]
pub struct Granted {
    pub env: Vec<(String, String)>,
    /// The assumed role's session ARN, for the audit record.
    pub assumed_role: Option<String>,
    /// The Google service account impersonated (Workload Identity Federation), if any.
    pub google_account: Option<String>,
    /// The OIDC token's claims, for the audit record.
    pub claims: Option<Claims>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("env", &names(&self.env))
            .field("assumed_role", &self.assumed_role)
            .field("google_account", &self.google_account)
            .field("claims", &self.claims)
            .finish()
    }
}

/// The names of an environment's variables, for `Debug`: the values are credentials.
pub fn names(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(k, _)| k.as_str()).collect()
}

/// Check the token names the default branch before trading it for credentials (the trust policy
/// checks the same; this says so plainly when a workflow runs from the wrong place).
pub fn check_claims(claims: &Claims, default_branch: &str) -> Result<(), String> {
    let want = format!("refs/heads/{default_branch}");
    let on_default =
        claims.branch() == Some(default_branch) || claims.git_ref.as_deref() == Some(want.as_str());
    if !on_default {
        return Err(format!(
            "the job's OIDC token is for `{}`, not the default branch `{default_branch}`: the runner only runs on pushes to the default branch",
            claims.sub
        ));
    }
    Ok(())
}

/// The region: config, else the environment, else us-east-1.
pub fn region(cfg: &RunnerConfig, get: &dyn Fn(&str) -> Option<String>) -> String {
    cfg.aws
        .region
        .clone()
        .or_else(|| get("AWS_REGION"))
        .or_else(|| get("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| sts::DEFAULT_REGION.to_string())
}

/// Credentials for `role_arn` (`None`: the target needs no AWS credentials).
pub async fn for_role(
    source: &AwsSource,
    cfg: &RunnerConfig,
    region: &str,
    role_arn: Option<&str>,
    session: &str,
    default_branch: &str,
) -> Result<Granted, String> {
    let Some(role) = role_arn else {
        return Ok(Granted::default());
    };
    match source {
        AwsSource::Unavailable(why) => Err(format!(
            "the target's role {role} needs AWS credentials, but {why}"
        )),
        AwsSource::Env(pairs) => Ok(Granted {
            env: with_region(pairs.clone(), region),
            assumed_role: None,
            google_account: None,
            claims: None,
        }),
        AwsSource::Oidc { url, token } => {
            let id = oidc::request_token(url, token, cfg.audience(), Duration::from_secs(20))
                .await
                .map_err(|e| e.to_string())?;
            check_claims(&id.claims, default_branch)?;
            let settings = StsSettings {
                region: Some(region.to_string()),
                endpoint_url: cfg.aws.sts_endpoint.clone(),
                attempt_timeout: Some(Duration::from_secs(20)),
            };
            let duration = cfg.aws.session_duration.map_or(sts::MIN_SESSION, |d| d.0);
            let creds: TemporaryCredentials =
                sts::assume_role_with_web_identity(&settings, role, session, id.expose(), duration)
                    .await
                    .map_err(|e| e.to_string())?;
            Ok(Granted {
                env: creds.env(region),
                assumed_role: creds.assumed_role_arn.clone(),
                google_account: None,
                claims: Some(id.claims),
            })
        }
    }
}

fn with_region(mut pairs: Vec<(String, String)>, region: &str) -> Vec<(String, String)> {
    for k in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if !pairs.iter().any(|(n, _)| n == k) {
            pairs.push((k.to_string(), region.to_string()));
        }
    }
    let (metadata, off) = slipway_infra::exec::NO_INSTANCE_METADATA;
    pairs.push((metadata.into(), off.into()));
    pairs
}

/// The source for this run: env mode takes the AWS variables from `get` (the key id and secret
/// are required); otherwise OIDC when the job can mint tokens.
pub fn source(
    from_env: bool,
    id_token_request: Option<&(String, String)>,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<AwsSource, String> {
    if from_env {
        let pairs: Vec<(String, String)> = AWS_ENV
            .iter()
            .filter_map(|k| {
                get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| ((*k).to_string(), v))
            })
            .collect();
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            if !pairs.iter().any(|(n, _)| n == k) {
                return Err(format!(
                    "--aws-credentials-from-env is set but {k} is not: run aws-actions/configure-aws-credentials before slipway-runner, or drop the flag to use the job's OIDC token"
                ));
            }
        }
        return Ok(AwsSource::Env(pairs));
    }
    Ok(match id_token_request {
        Some((url, token)) => AwsSource::Oidc { url: url.clone(), token: token.clone() },
        None => AwsSource::Unavailable("the job has no ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN (grant `permissions: id-token: write`) and --aws-credentials-from-env is not set".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_name_the_default_branch() {
        let ok = Claims {
            sub: "repo:acme/gitops:ref:refs/heads/main".into(),
            ..Claims::default()
        };
        assert!(check_claims(&ok, "main").is_ok());
        let pr = Claims {
            sub: "repo:acme/gitops:pull_request".into(),
            ..Claims::default()
        };
        assert!(
            check_claims(&pr, "main")
                .unwrap_err()
                .contains("pull_request")
        );
        let env = Claims {
            sub: "repo:acme/gitops:environment:prod".into(),
            git_ref: Some("refs/heads/main".into()),
            ..Claims::default()
        };
        assert!(check_claims(&env, "main").is_ok());
        let other = Claims {
            sub: "repo:acme/gitops:ref:refs/heads/feature".into(),
            ..Claims::default()
        };
        assert!(check_claims(&other, "main").is_err());
    }

    #[test]
    fn env_mode_needs_keys() {
        let none = |_: &str| None;
        assert!(
            source(true, None, &none)
                .unwrap_err()
                .contains("AWS_ACCESS_KEY_ID")
        );
        let some = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIA".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("s".to_string()),
            _ => None,
        };
        assert!(matches!(source(true, None, &some), Ok(AwsSource::Env(p)) if p.len() == 2));
        assert!(matches!(
            source(false, None, &none),
            Ok(AwsSource::Unavailable(_))
        ));
        let granted = with_region(vec![], "eu-west-1");
        assert!(
            granted
                .iter()
                .any(|(k, v)| k == "AWS_EC2_METADATA_DISABLED" && v == "true")
        );
        let req = ("https://x".to_string(), "t".to_string());
        assert!(matches!(
            source(false, Some(&req), &none),
            Ok(AwsSource::Oidc { .. })
        ));
    }
}
