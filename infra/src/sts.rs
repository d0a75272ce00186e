//! AWS STS `AssumeRoleWithWebIdentity`: a CI job's OIDC token ([`crate::oidc`]) becomes
//! short-lived credentials for one role. The call is unsigned (the token is the credential), so
//! the client is built with no credentials at all and can never fall back to a host's role.
//!
//! [`assume_role`] is the bridge's per-run `AssumeRole` (signed with a profile's static
//! credentials from files the bridge names, never the host's), with session tags naming the
//! requester; its request is built by [`AssumeRoleRequest`] so the tags can be checked.
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
    let client = client(settings, None)?;
    let seconds = i32::try_from(duration.max(MIN_SESSION).as_secs()).unwrap_or(i32::MAX);
    let out = client
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name(session))
        .web_identity_token(web_identity_token)
        .duration_seconds(seconds)
        .send()
        .await
        .map_err(|e| StsError(describe("AssumeRoleWithWebIdentity", role_arn, &e)))?;
    temporary(
        "AssumeRoleWithWebIdentity",
        role_arn,
        out.credentials(),
        out.assumed_role_user(),
    )
}

/// The credentials STS answered with (an answer without any is an error).
fn temporary(
    op: &str,
    role_arn: &str,
    creds: Option<&aws_sdk_sts::types::Credentials>,
    user: Option<&aws_sdk_sts::types::AssumedRoleUser>,
) -> Result<TemporaryCredentials, StsError> {
    let creds = creds.ok_or_else(|| {
        StsError(format!(
            "STS answered {op} for {role_arn} without credentials"
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
        assumed_role_arn: user.map(|u| u.arn().to_string()),
    })
}

/// The client for a call signed with `credentials` (or unsigned when `None`).
fn client(
    settings: &StsSettings,
    credentials: Option<aws_sdk_sts::config::SharedCredentialsProvider>,
) -> Result<aws_sdk_sts::Client, StsError> {
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
    if let Some(c) = credentials {
        config = config.credentials_provider(c);
    }
    Ok(aws_sdk_sts::Client::from_conf(config.build()))
}

/// Where the caller's own (long-lived) credentials for signing `AssumeRole` are: a profile of
/// AWS config/credentials files. Only these files are read: never the environment, the
/// default `~/.aws` files or the instance role.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    pub profile: String,
    pub config_file: Option<std::path::PathBuf>,
    pub credentials_file: Option<std::path::PathBuf>,
}

impl ProfileSource {
    // aws-config's builder takes the files under their old (deprecated) alias names.
    #[allow(deprecated)]
    fn provider(&self) -> aws_sdk_sts::config::SharedCredentialsProvider {
        use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
        let mut files = ProfileFiles::builder();
        if let Some(f) = &self.config_file {
            files = files.with_file(ProfileFileKind::Config, f);
        }
        if let Some(f) = &self.credentials_file {
            files = files.with_file(ProfileFileKind::Credentials, f);
        }
        let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .profile_files(files.build())
            .profile_name(&self.profile)
            .build();
        aws_sdk_sts::config::SharedCredentialsProvider::new(provider)
    }
}

/// One `AssumeRole` call: the role, who the session is for, and its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    /// A valid `RoleSessionName`, from [`session_name`].
    pub session_name: String,
    /// Session tags (key, value), each cleaned to STS's character set and lengths.
    pub tags: Vec<(String, String)>,
    pub external_id: Option<String>,
    pub duration: Duration,
}

impl AssumeRoleRequest {
    /// A request for `role_arn` on behalf of `requester`: the session name comes from it, and
    /// each `(key, value)` of `tags` becomes a session tag (CloudTrail keeps both).
    pub fn new(role_arn: &str, requester: &str, tags: &[(&str, &str)]) -> Self {
        Self {
            role_arn: role_arn.to_string(),
            session_name: session_name(requester),
            tags: tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (tag_text(k, 128), tag_text(v, 256)))
                .collect(),
            external_id: None,
            duration: MIN_SESSION,
        }
    }
}

/// Session tag text: STS allows letters, digits, spaces and `_.:/=+-@`, up to `max` characters.
fn tag_text(raw: &str, max: usize) -> String {
    raw.chars()
        .map(|c| {
            if c.is_alphanumeric() || " _.:/=+-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// `AssumeRole` signed with `source`'s credentials: temporary credentials for one run.
pub async fn assume_role(
    settings: &StsSettings,
    source: &ProfileSource,
    request: &AssumeRoleRequest,
) -> Result<TemporaryCredentials, StsError> {
    let client = client(settings, Some(source.provider()))?;
    let seconds = i32::try_from(request.duration.max(MIN_SESSION).as_secs()).unwrap_or(i32::MAX);
    let mut call = client
        .assume_role()
        .role_arn(&request.role_arn)
        .role_session_name(&request.session_name)
        .duration_seconds(seconds)
        .set_external_id(request.external_id.clone());
    for (k, v) in &request.tags {
        let tag = aws_sdk_sts::types::Tag::builder()
            .key(k)
            .value(v)
            .build()
            .map_err(|e| StsError(format!("session tag `{k}`: {e}")))?;
        call = call.tags(tag);
    }
    let role_arn = &request.role_arn;
    let out = call
        .send()
        .await
        .map_err(|e| StsError(describe("AssumeRole", role_arn, &e)))?;
    temporary(
        "AssumeRole",
        role_arn,
        out.credentials(),
        out.assumed_role_user(),
    )
}

fn describe<E, R>(op: &str, role_arn: &str, err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        let code = e.code().unwrap_or("error");
        let msg = e.message().unwrap_or_default();
        let hint = match code {
            "AccessDenied" if op == "AssumeRole" => {
                "; the role's trust policy must let the bridge's principal call sts:AssumeRole and \
                 sts:TagSession (see deploy/iam/bridge-read-role-trust-policy.json), and its credentials must be valid"
            }
            "InvalidClientTokenId" | "SignatureDoesNotMatch" => {
                "; the bridge's own credentials for this profile are wrong or revoked"
            }
            "AccessDenied" | "InvalidIdentityToken" | "IDPRejectedClaim" => {
                "; check the role's trust policy (federated principal token.actions.githubusercontent.com, \
                 aud sts.amazonaws.com, sub repo:OWNER/REPO:ref:refs/heads/DEFAULT, job_workflow_ref of the \
                 runner workflow: see deploy/iam/runner-trust-policy.json)"
            }
            "ExpiredTokenException" => "; the OIDC token expired: re-run the job",
            _ => "",
        };
        return format!("STS {op} for {role_arn}: {code}: {msg}{hint}");
    }
    format!(
        "STS {op} for {role_arn} failed: {}",
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
    fn assume_role_requests_carry_the_requester_as_session_tags() {
        let r = AssumeRoleRequest::new(
            "arn:aws:iam::123456789012:role/read",
            "ada@example.com",
            &[
                ("slipway:requester", "ada@example.com"),
                ("slipway:slack-user", "U0ADA"),
                ("empty", ""),
            ],
        );
        assert_eq!(r.session_name, "ada@example.com");
        assert_eq!(r.duration, MIN_SESSION);
        assert_eq!(
            r.tags,
            [
                (
                    "slipway:requester".to_string(),
                    "ada@example.com".to_string()
                ),
                ("slipway:slack-user".into(), "U0ADA".into()),
            ]
        );
        let odd =
            AssumeRoleRequest::new("arn", "a\nb", &[("k", &format!("x;y{}", "z".repeat(300)))]);
        assert_eq!(odd.session_name, "a-b");
        assert!(odd.tags[0].1.starts_with("x_y") && odd.tags[0].1.chars().count() == 256);
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
