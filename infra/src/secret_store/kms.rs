//! AWS KMS for envelope encryption: a fresh data key per sealed record (`GenerateDataKey`,
//! AES-256), unwrapped with `Decrypt`, re-wrapped under another key with `Encrypt`. Every call
//! carries the record's encryption context, so a wrapped key copied to another record (another
//! person, another kind) does not unwrap. The client is built on first use, with the bridge's
//! own AWS identity (the default chain).

use std::collections::BTreeMap;

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use super::{AwsSettings, StoreError};

/// A data key: its plaintext (used once, never stored) and its wrapped form.
pub struct DataKey {
    pub plaintext: [u8; 32],
    pub wrapped: Vec<u8>,
    /// The ARN of the KMS key that wrapped it.
    pub key_arn: String,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

/// KMS with one key (an id, ARN or alias) for new data keys.
pub struct Kms {
    settings: AwsSettings,
    key_id: String,
    client: tokio::sync::OnceCell<aws_sdk_kms::Client>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Kms {
    pub fn new(settings: AwsSettings, key_id: String) -> Kms {
        Kms {
            settings,
            key_id,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// With a client built elsewhere (tests give one with their own credentials).
    pub fn with_client(client: aws_sdk_kms::Client, key_id: String) -> Kms {
        Kms {
            settings: AwsSettings::default(),
            key_id,
            client: tokio::sync::OnceCell::from(client),
        }
    }

    async fn client(&self) -> &aws_sdk_kms::Client {
        self.client
            .get_or_init(|| async {
                let shared = super::aws::shared_config(&self.settings).await;
                let mut config = aws_sdk_kms::config::Builder::from(&shared);
                if let Some(endpoint) = &self.settings.endpoint_url {
                    config = config.endpoint_url(endpoint);
                }
                aws_sdk_kms::Client::from_conf(config.build())
            })
            .await
    }

    /// A new AES-256 data key under the configured key.
    pub async fn generate(
        &self,
        context: &BTreeMap<String, String>,
    ) -> Result<DataKey, StoreError> {
        let out = self
            .client()
            .await
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify("GenerateDataKey", &e))?;
        let plaintext = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        Ok(DataKey {
            plaintext: super::key32(&plaintext, "KMS")?,
            wrapped: out
                .ciphertext_blob
                .map(Blob::into_inner)
                .unwrap_or_default(),
            key_arn: out.key_id.unwrap_or_default(),
        })
    }

    /// The data key in `wrapped`, and the ARN of the key that wrapped it.
    pub async fn decrypt(
        &self,
        wrapped: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<([u8; 32], String), StoreError> {
        let out = self
            .client()
            .await
            .decrypt()
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify("Decrypt", &e))?;
        let plaintext = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        Ok((
            super::key32(&plaintext, "KMS")?,
            out.key_id.unwrap_or_default(),
        ))
    }

    /// `plaintext` wrapped under the configured key (a re-wrap after a key change).
    pub async fn encrypt(
        &self,
        plaintext: &[u8; 32],
        context: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, String), StoreError> {
        let out = self
            .client()
            .await
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext.as_slice()))
            .set_encryption_context(Some(context.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| classify("Encrypt", &e))?;
        Ok((
            out.ciphertext_blob
                .map(Blob::into_inner)
                .unwrap_or_default(),
            out.key_id.unwrap_or_default(),
        ))
    }

    /// The configured key's ARN (an alias resolves to its key).
    pub async fn key_arn(&self) -> Result<String, StoreError> {
        let out = self
            .client()
            .await
            .describe_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| classify("DescribeKey", &e))?;
        Ok(out
            .key_metadata
            .map(|m| m.arn.unwrap_or(m.key_id))
            .unwrap_or_default())
    }
}

fn classify<E, R>(op: &str, err: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    super::aws::classify(
        &format!("KMS {op}"),
        err,
        &["KMSInternalException", "DependencyTimeoutException"],
    )
}
