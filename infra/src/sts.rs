//! AWS STS `AssumeRoleWithWebIdentity`: a CI job's OIDC token ([`crate::oidc`]) becomes
//! short-lived credentials for one role. The call is unsigned (the token is the credential), so
//! the client is built with no credentials at all and can never fall back to a host's role.
//!
//! What STS checks is the role's trust policy: the federated principal, `aud`, and the `sub` and
//! `job_workflow_ref` conditions (see `deploy/iam/runner-trust-policy.json`).

use std::fmt;
use std::time::Duration;

use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};

/// The region used when the settings name none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// STS's minimum session length.
pub const MIN_SESSION: Duration = Duration::from_secs(900);

/// Where STS is.
#[derive(Debug, Clone, Default)]
pub struct StsSettings {
    pub region: Option<String>,
    /// A custom endpoint (tests and emulators only: https, or http on loopback).
    pub endpoint_url: Option<String>,
    /// Timeout of one attempt.
    pub attempt_timeout: Option<Duration>,
}

/// Temporary credentials. Debug never shows the secret or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// RFC 3339.
    pub expiration: Option<String>,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, as STS reported it.
    pub assumed_role_arn: Option<String>,
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("expiration", &self.expiration)
            .field("assumed_role_arn", &self.assumed_role_arn)
            .finish()
    }
}

impl TemporaryCredentials {
    /// The environment a tool (terraform, the AWS CLI, kubectl's exec plugin) reads them from.
    pub fn env(&self, region: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
            ("AWS_REGION".to_string(), region.to_string()),
            ("AWS_DEFAULT_REGION".to_string(), region.to_string()),
            // Never fall back to the CI host's own instance role.
            ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
        ];
        if let Some(t) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_string(), t.clone()));
        }
        env
    }
}

/// Why no credentials were had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StsError(String);

/// A valid `RoleSessionName` (2–64 of `[A-Za-z0-9+=,.@_-]`) made from `raw`.
pub fn session_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while s.len() < 2 {
        s.push('-');
    }
    s
}

fn check_endpoint(url: &str) -> Result<(), StsError> {
    if crate::https_or_loopback(url) {
        Ok(())
    } else {
        Err(StsError(format!(
            "the STS endpoint must be https (or http on loopback), got `{url}`"
        )))
    }
}

/// Exchange `web_identity_token` for credentials of `role_arn`, valid for `duration` (at least
/// 15 minutes, STS's minimum; at most the role's maximum).
pub async fn assume_role_with_web_identity(
    settings: &StsSettings,
    role_arn: &str,
    session: &str,
    web_identity_token: &str,
    duration: Duration,
) -> Result<TemporaryCredentials, StsError> {
    let region = settings
        .region
        .clone()
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let mut timeouts = aws_sdk_sts::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5));
    if let Some(t) = settings.attempt_timeout {
        timeouts = timeouts.operation_attempt_timeout(t);
    }
    let mut config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .timeout_config(timeouts.build())
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(3));
    if let Some(endpoint) = &settings.endpoint_url {
        check_endpoint(endpoint)?;
        config = config.endpoint_url(endpoint);
    }
    let client = aws_sdk_sts::Client::from_conf(config.build());
    let seconds = i32::try_from(duration.max(MIN_SESSION).as_secs()).unwrap_or(i32::MAX);
    let out = client
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name(session))
        .web_identity_token(web_identity_token)
        .duration_seconds(seconds)
        .send()
        .await
        .map_err(|e| StsError(describe(role_arn, &e)))?;
    let creds = out.credentials().ok_or_else(|| {
        StsError(format!(
            "STS answered AssumeRoleWithWebIdentity for {role_arn} without credentials"
        ))
    })?;
    Ok(TemporaryCredentials {
        access_key_id: creds.access_key_id().to_string(),
        secret_access_key: creds.secret_access_key().to_string(),
        session_token: Some(creds.session_token().to_string()),
        expiration: creds
            .expiration()
            .fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime)
            .ok(),
        assumed_role_arn: out.assumed_role_user().map(|u| u.arn().to_string()),
    })
}

fn describe<E, R>(role_arn: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        let code = e.code().unwrap_or("error");
        let msg = e.message().unwrap_or_default();
        let hint = match code {
            "AccessDenied" | "InvalidIdentityToken" | "IDPRejectedClaim" => {
                "; check the role's trust policy (federated principal token.actions.githubusercontent.com, \
                 aud sts.amazonaws.com, sub repo:OWNER/REPO:ref:refs/heads/DEFAULT, job_workflow_ref of the \
                 runner workflow: see deploy/iam/runner-trust-policy.json)"
            }
            "ExpiredTokenException" => "; the OIDC token expired: re-run the job",
            _ => "",
        };
        return format!("STS AssumeRoleWithWebIdentity for {role_arn}: {code}: {msg}{hint}");
    }
    format!(
        "STS AssumeRoleWithWebIdentity for {role_arn} failed: {}",
        crate::with_causes(err)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_valid() {
        assert_eq!(
            session_name("slipway-cr-stack-app-1a2b"),
            "slipway-cr-stack-app-1a2b"
        );
        assert_eq!(session_name("a b/c"), "a-b-c");
        assert_eq!(session_name("x"), "x-");
        assert_eq!(session_name(&"y".repeat(100)).len(), 64);
    }

    #[test]
    fn secrets_never_print_and_env_is_complete() {
        let c = TemporaryCredentials {
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
            session_token: Some("FwoGZXIvYXdzE".into()),
            expiration: None,
            assumed_role_arn: None,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("FwoGZ"),
            "{shown}"
        );
        let env = c.env("eu-west-1");
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_EC2_METADATA_DISABLED",
        ] {
            assert!(env.iter().any(|(n, _)| n == k), "{k}");
        }
        assert!(check_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(check_endpoint("http://sts.example.com").is_err());
    }
}
