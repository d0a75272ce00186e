//! The S3 mirror of the audit spool: one object per record, under Object Lock, so records can be
//! neither deleted nor changed for the retention period, not even by the account that wrote them
//! (in COMPLIANCE mode).
//!
//! - Key: `<prefix>/<writer>/<seq, 20 digits>.json` (the writer percent-encoded as in spool file
//!   names), so a listing sorts in chain order. Body: the record's JSON line.
//! - Each upload carries a SHA-256 checksum (S3 verifies it, and Object Lock requires one), the
//!   configured retention mode and a retain-until date `days` after the upload, and the record's
//!   hash as `x-amz-meta-slipway-hash`.
//! - Uploads are conditional (`If-None-Match: *`): after a crash between upload and cursor, the
//!   retry finds the object, reads it back, and accepts it only if it is the same record. A
//!   different record at that key is a [`SinkError::Conflict`], never overwritten.
//! - Each delivery ends with the writer's signed checkpoint of its last record, at
//!   `<prefix>/<writer>/<seq, 20 digits>.checkpoint.json`, locked the same way; the mirror's
//!   cursor moves only once it is stored.
//! - Before the first upload the bucket must have versioning and Object Lock enabled.
//!
//! [`mirror`] uploads; [`read`] lists and reads a bucket back for `slipway audit verify`.

pub mod mirror;
pub mod read;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::ObjectLockMode;

pub use mirror::S3Mirror;

use crate::sinks::SinkError;

/// How a checkpoint object's key ends (a record's ends in `<seq>.json`).
pub const CHECKPOINT_SUFFIX: &str = ".checkpoint.json";

/// The region used when neither the config nor the environment names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Object Lock retention mode. COMPLIANCE cannot be shortened or removed by anyone; GOVERNANCE
/// can be bypassed by principals with `s3:BypassGovernanceRetention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetentionMode {
    Governance,
    Compliance,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Governance => "GOVERNANCE",
            RetentionMode::Compliance => "COMPLIANCE",
        }
    }

    fn to_sdk(self) -> ObjectLockMode {
        match self {
            RetentionMode::Governance => ObjectLockMode::Governance,
            RetentionMode::Compliance => ObjectLockMode::Compliance,
        }
    }
}

impl fmt::Display for RetentionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetentionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "COMPLIANCE" => Ok(RetentionMode::Compliance),
            "GOVERNANCE" => Ok(RetentionMode::Governance),
            _ => Err(format!(
                "retention mode `{s}` is not COMPLIANCE or GOVERNANCE"
            )),
        }
    }
}

/// Retention applied to every uploaded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    pub days: u32,
}

/// Static credentials, for S3-compatible stores without IAM. On AWS, leave them unset: the
/// default chain (environment, profile, web identity, instance role) is used.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    /// Read when the SDK asks (every few minutes), so a rotated key takes over by itself.
    pub secret_access_key: crate::credential::Credential,
}

/// How long the SDK keeps a read of [`StaticCredentials`] before asking again.
const STATIC_CREDENTIALS_TTL: Duration = Duration::from_secs(300);

impl aws_sdk_s3::config::ProvideCredentials for StaticCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.get(),
            None,
            Some(std::time::SystemTime::now() + STATIC_CREDENTIALS_TTL),
            "slipway-config",
        )))
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// Where to mirror to.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Key prefix without surrounding slashes; may be empty.
    pub prefix: String,
    pub region: Option<String>,
    /// A custom endpoint (an S3-compatible server); uses path-style addressing.
    pub endpoint_url: Option<String>,
    pub retention: Retention,
    pub credentials: Option<StaticCredentials>,
    /// SDK attempts per request, before the mirror's own backoff takes over.
    pub max_attempts: u32,
    /// Timeout of one request attempt.
    pub attempt_timeout: Duration,
}

impl S3Settings {
    /// Settings with the defaults: COMPLIANCE retention for `days`, 3 attempts, 10 s per attempt.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>, days: u32) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
            region: None,
            endpoint_url: None,
            retention: Retention {
                mode: RetentionMode::Compliance,
                days,
            },
            credentials: None,
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(10),
        }
    }

    /// The key of `writer_stem`'s record `seq`.
    pub fn key(&self, writer_stem: &str, seq: u64) -> String {
        if self.prefix.is_empty() {
            format!("{writer_stem}/{seq:020}.json")
        } else {
            format!("{}/{writer_stem}/{seq:020}.json", self.prefix)
        }
    }

    /// The key of the checkpoint of `writer_stem`'s record `seq`: beside it, with its own suffix.
    pub fn checkpoint_key(&self, writer_stem: &str, seq: u64) -> String {
        let record = self.key(writer_stem, seq);
        let base = record.strip_suffix(".json").unwrap_or(&record);
        format!("{base}{CHECKPOINT_SUFFIX}")
    }

    /// The prefix to list everything the mirror wrote.
    pub fn list_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

/// An S3 client for `settings`: region from the settings, else the environment, else
/// [`DEFAULT_REGION`]; credentials from the settings, else the default chain.
pub async fn client(settings: &S3Settings) -> aws_sdk_s3::Client {
    let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::new(DEFAULT_REGION));
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
    if let Some(c) = &settings.credentials {
        loader = loader.credentials_provider(c.clone());
    }
    let shared = loader.load().await;
    let retry = aws_sdk_s3::config::retry::RetryConfig::standard()
        .with_max_attempts(settings.max_attempts.max(1))
        .with_initial_backoff(Duration::from_millis(100));
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(settings.attempt_timeout)
        .build();
    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(endpoint) = &settings.endpoint_url {
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// Sorts an SDK error into a [`SinkError`], with what was being done and on which bucket.
pub(crate) fn classify<E>(what: &str, bucket: &str, err: &SdkError<E, HttpResponse>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = describe(err);
    let message = format!("S3 {what} (bucket {bucket}): {detail}");
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            match code {
                "NoSuchBucket" => SinkError::Config(format!(
                    "S3 bucket {bucket} does not exist: create it with Object Lock enabled \
                     (aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket)"
                )),
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AllAccessDisabled" => SinkError::Config(format!(
                    "{message}: check the mirror's credentials and its IAM policy"
                )),
                "SlowDown"
                | "InternalError"
                | "ServiceUnavailable"
                | "RequestTimeout"
                | "ConditionalRequestConflict" => SinkError::Transient(message),
                _ if code.is_empty() => SinkError::Transient(message),
                _ => SinkError::Config(message),
            }
        }
        _ => SinkError::Transient(message),
    }
}

/// The error code and message, or the transport failure with its causes.
pub(crate) fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        match (e.code(), e.message()) {
            (Some(code), Some(msg)) => return format!("{code}: {msg}"),
            (Some(code), None) => return code.to_string(),
            // No error code: the response could not be understood; say what came back.
            _ => {
                return format!(
                    "HTTP {}: {}",
                    se.raw().status().as_u16(),
                    crate::with_causes(e)
                );
            }
        }
    }
    crate::with_causes(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_chain_order() {
        let s = S3Settings::new("audit", "/slipway/prod/", 365);
        assert_eq!(s.prefix, "slipway/prod");
        assert_eq!(
            s.key("bridge%3Ahost-1", 42),
            "slipway/prod/bridge%3Ahost-1/00000000000000000042.json"
        );
        assert!(s.key("w", 9) < s.key("w", 10));
        assert_eq!(s.list_prefix(), "slipway/prod/");
        assert_eq!(
            s.checkpoint_key("w", 42),
            "slipway/prod/w/00000000000000000042.checkpoint.json"
        );
        assert_eq!(
            S3Settings::new("audit", "", 1).key("w", 1),
            "w/00000000000000000001.json"
        );
    }

    #[test]
    fn retention_modes_parse_and_order() {
        assert_eq!("compliance".parse(), Ok(RetentionMode::Compliance));
        assert_eq!("GOVERNANCE".parse(), Ok(RetentionMode::Governance));
        assert!("legal-hold".parse::<RetentionMode>().is_err());
        assert!(RetentionMode::Compliance > RetentionMode::Governance);
        let creds = StaticCredentials {
            access_key_id: "AKIA".into(),
            secret_access_key: "wJalr".into(),
        };
        assert!(!format!("{creds:?}").contains("wJalr"));
    }
}
