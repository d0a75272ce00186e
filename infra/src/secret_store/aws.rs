//! AWS Secrets Manager: `GetSecretValue` with the bridge's own AWS identity (the default
//! chain: environment, web identity, the pod's or instance's role). Only the store itself is
//! called this way; the processes the bridge runs never see these credentials.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::SecretString;

use super::StoreError;

/// Where Secrets Manager is.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Default: the environment's region, else `us-east-1`.
    pub region: Option<String>,
    /// Tests and emulators only.
    pub endpoint_url: Option<String>,
    pub timeout: Option<Duration>,
}

/// A Secrets Manager client.
impl std::fmt::Debug for SecretsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManager").finish_non_exhaustive()
    }
}

pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub async fn new(settings: &AwsSettings) -> SecretsManager {
        let shared = shared_config(settings).await;
        let timeouts = aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_timeout(settings.timeout.unwrap_or(Duration::from_secs(10)))
            .build();
        let mut config =
            aws_sdk_secretsmanager::config::Builder::from(&shared).timeout_config(timeouts);
        if let Some(endpoint) = &settings.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        SecretsManager {
            client: aws_sdk_secretsmanager::Client::from_conf(config.build()),
        }
    }

    /// The current version's secret string.
    pub async fn get(&self, id: &str) -> Result<SecretString, StoreError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    &format!("aws_secretsmanager {id}"),
                    &e,
                    &["InternalServiceError", "RequestTimeout"],
                )
            })?;
        out.secret_string.map(SecretString::from).ok_or_else(|| {
            StoreError::Refused(format!(
                "aws_secretsmanager {id}: the secret holds binary data, not a string"
            ))
        })
    }
}

/// The bridge's own AWS identity (the default chain) in the settings' region, else the
/// environment's, else `us-east-1`.
pub(crate) async fn shared_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::new(crate::s3::DEFAULT_REGION));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .load()
        .await
}

/// An AWS SDK error as a [`StoreError`]: throttling, internal errors and the network pass
/// (`transient` names the service's own codes for those); anything else the service said is a
/// refusal. The message is `what: code: message`, never a request or response body.
pub(crate) fn classify<E, R>(what: &str, err: &SdkError<E, R>, transient: &[&str]) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("an error");
            let message = format!("{what}: {code}: {}", e.message().unwrap_or_default());
            if code == "ThrottlingException" || transient.contains(&code) {
                StoreError::Unreachable(message)
            } else {
                StoreError::Refused(message)
            }
        }
        _ => StoreError::Unreachable(format!("{what}: {}", crate::with_causes(err))),
    }
}
