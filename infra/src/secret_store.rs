//! Secret references and the stores they name: Vault / OpenBao KV v2, AWS Secrets Manager and
//! Google Secret Manager. A reference says where a value lives, never the value, so it may sit
//! in a config file, a log line or an error; the values only ever travel as [`SecretString`].
//!
//! Both binaries resolve references through [`Stores`]: the bridge at start and on an interval
//! (rotation without a restart), the runner for its trusted keys.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;

pub mod aws;
pub mod gcp;
pub mod kms;
pub mod vault;

pub use aws::AwsSettings;
pub use gcp::GcpSecretSettings;
pub use vault::{JwtLogin, VaultAuth, VaultSettings};

/// Where a secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretRef {
    /// A KV v2 document (`secret/data/slipway`) and the key in it.
    Vault { path: String, key: String },
    /// A secret's ARN or name; with a key, the secret string is a JSON object.
    AwsSecretsManager { id: String, key: Option<String> },
    /// `projects/P/secrets/S[/versions/V]`; with a key, the payload is a JSON object.
    GcpSecretManager { name: String, key: Option<String> },
}

impl SecretRef {
    /// `secret/data/slipway#signing_secret`: KV v2 paths have `data/` after the mount.
    pub fn vault(text: &str) -> Result<SecretRef, String> {
        let (path, key) = split(text);
        let path = path.trim_matches('/');
        let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
            format!("vault reference `{text}` names no key: write `<mount>/data/<path>#<key>`")
        })?;
        if !path.contains("/data/") || path.split('/').any(str::is_empty) {
            return Err(format!(
                "vault reference `{text}` is not a KV v2 path: write `<mount>/data/<path>#<key>` \
                 (for example `secret/data/slipway#signing_secret`)"
            ));
        }
        Ok(SecretRef::Vault {
            path: path.to_string(),
            key: key.to_string(),
        })
    }

    /// `<arn or name>[#<json key>]`.
    pub fn aws(text: &str) -> Result<SecretRef, String> {
        let (id, key) = split(text);
        if id.is_empty() {
            return Err(format!(
                "aws_secretsmanager reference `{text}` names no secret: write `<arn or name>#<json key>`"
            ));
        }
        Ok(SecretRef::AwsSecretsManager {
            id: id.to_string(),
            key: key.filter(|k| !k.is_empty()).map(String::from),
        })
    }

    /// `projects/P/secrets/S[/versions/V][#<json key>]`; no version means `latest`.
    pub fn gcp(text: &str) -> Result<SecretRef, String> {
        let (name, key) = split(text);
        let parts: Vec<&str> = name.split('/').collect();
        let name = match parts.as_slice() {
            ["projects", p, "secrets", s] if !p.is_empty() && !s.is_empty() => {
                format!("{name}/versions/latest")
            }
            ["projects", p, "secrets", s, "versions", v]
                if !p.is_empty() && !s.is_empty() && !v.is_empty() =>
            {
                name.to_string()
            }
            _ => {
                return Err(format!(
                    "gcp_secretmanager reference `{text}` is not \
                     `projects/<project>/secrets/<secret>[/versions/<version>][#<json key>]`"
                ));
            }
        };
        Ok(SecretRef::GcpSecretManager {
            name,
            key: key.filter(|k| !k.is_empty()).map(String::from),
        })
    }

    /// The store's name, for metrics and messages.
    pub fn store(&self) -> &'static str {
        match self {
            SecretRef::Vault { .. } => "vault",
            SecretRef::AwsSecretsManager { .. } => "aws_secretsmanager",
            SecretRef::GcpSecretManager { .. } => "gcp_secretmanager",
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (doc, key) = match self {
            SecretRef::Vault { path, key } => (path, Some(key)),
            SecretRef::AwsSecretsManager { id, key } => (id, key.as_ref()),
            SecretRef::GcpSecretManager { name, key } => (name, key.as_ref()),
        };
        write!(f, "{} {doc}", self.store())?;
        match key {
            Some(k) => write!(f, "#{k}"),
            None => Ok(()),
        }
    }
}

fn split(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once('#') {
        Some((doc, key)) => (doc.trim(), Some(key.trim())),
        None => (text.trim(), None),
    }
}

/// Why a value could not be had. No variant ever carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The network, a timeout or a 5xx: the last good value may stand in for a while.
    #[error("{0}")]
    Unreachable(String),
    /// The store answered and said no: bad credentials, no permission, no such secret or key.
    #[error("{0}")]
    Refused(String),
    /// The configuration can't work (no such store configured, a bad address).
    #[error("{0}")]
    Config(String),
}

impl From<crate::sinks::SinkError> for StoreError {
    fn from(e: crate::sinks::SinkError) -> Self {
        match e {
            crate::sinks::SinkError::Transient(m) => StoreError::Unreachable(m),
            crate::sinks::SinkError::Config(m) | crate::sinks::SinkError::Conflict(m) => {
                StoreError::Config(m)
            }
        }
    }
}

/// Which stores are configured.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub vault: Option<VaultSettings>,
    pub aws: Option<AwsSettings>,
    pub gcp: Option<GcpSecretSettings>,
}

/// Connected stores. Each is built on first use, so a config that names only Vault needs no
/// AWS or Google credentials.
pub struct Stores {
    settings: Settings,
    vault: tokio::sync::OnceCell<vault::Vault>,
    aws: tokio::sync::OnceCell<aws::SecretsManager>,
    gcp: tokio::sync::OnceCell<gcp::SecretManager>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Stores {
    pub fn new(settings: Settings) -> Stores {
        Stores {
            settings,
            vault: tokio::sync::OnceCell::new(),
            aws: tokio::sync::OnceCell::new(),
            gcp: tokio::sync::OnceCell::new(),
        }
    }

    /// The Vault client, for Transit as well as KV.
    pub async fn vault(&self) -> Result<&vault::Vault, StoreError> {
        let settings = self.settings.vault.as_ref().ok_or_else(|| {
            StoreError::Config(
                "a secret refers to Vault, but no `secrets.vault` section is configured".into(),
            )
        })?;
        self.vault
            .get_or_try_init(|| async { vault::Vault::new(settings.clone()) })
            .await
    }

    /// Every reference's value, each document read once. The first failure ends the round.
    pub async fn fetch_all(
        &self,
        refs: &[SecretRef],
    ) -> Result<BTreeMap<SecretRef, SecretString>, (SecretRef, StoreError)> {
        let mut out = BTreeMap::new();
        for (r, value) in self.fetch_each(refs).await {
            out.insert(r.clone(), value.map_err(|e| (r.clone(), e))?);
        }
        Ok(out)
    }

    /// Each reference's value or why it could not be had; a document is read once a round,
    /// and a failed read fails every reference into it.
    pub async fn fetch_each<'a>(
        &self,
        refs: &'a [SecretRef],
    ) -> Vec<(&'a SecretRef, Result<SecretString, StoreError>)> {
        let mut docs: BTreeMap<(&'static str, String), Result<Document, StoreError>> =
            BTreeMap::new();
        let mut out = Vec::new();
        for r in refs {
            let doc_id = document_id(r);
            if !docs.contains_key(&doc_id) {
                let doc = self.document(r).await;
                docs.insert(doc_id.clone(), doc);
            }
            let value = match &docs[&doc_id] {
                Ok(doc) => doc.pick(r),
                Err(e) => Err(e.clone()),
            };
            out.push((r, value));
        }
        out
    }

    async fn document(&self, r: &SecretRef) -> Result<Document, StoreError> {
        match r {
            SecretRef::Vault { path, .. } => {
                Ok(Document::Object(self.vault().await?.read_kv(path).await?))
            }
            SecretRef::AwsSecretsManager { id, .. } => {
                let settings = self.settings.aws.clone().unwrap_or_default();
                let sm = self
                    .aws
                    .get_or_init(|| async { aws::SecretsManager::new(&settings).await })
                    .await;
                Ok(Document::Text(sm.get(id).await?))
            }
            SecretRef::GcpSecretManager { name, .. } => {
                let settings = self.settings.gcp.as_ref().ok_or_else(|| {
                    StoreError::Config(
                        "a secret refers to Google Secret Manager, but the bridge has no Google \
                         identity: set SLIPWAY_GCP_CREDENTIALS (the `gcp:` section)"
                            .into(),
                    )
                })?;
                let sm = self
                    .gcp
                    .get_or_try_init(|| async { gcp::SecretManager::new(settings.clone()) })
                    .await?;
                Ok(Document::Text(sm.access(name).await?))
            }
        }
    }
}

/// A data key as a key service returned it: exactly 32 bytes, or a refusal naming `who`.
pub(crate) fn key32(bytes: &[u8], who: &str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Refused(format!("{who} returned a data key that is not 32 bytes")))
}

fn document_id(r: &SecretRef) -> (&'static str, String) {
    let doc = match r {
        SecretRef::Vault { path, .. } => path,
        SecretRef::AwsSecretsManager { id, .. } => id,
        SecretRef::GcpSecretManager { name, .. } => name,
    };
    (r.store(), doc.clone())
}

/// One read of a store: a KV document's fields, or a secret's text.
enum Document {
    Object(serde_json::Map<String, serde_json::Value>),
    Text(SecretString),
}

impl Document {
    fn pick(&self, r: &SecretRef) -> Result<SecretString, StoreError> {
        use secrecy::ExposeSecret;
        let key = match r {
            SecretRef::Vault { key, .. } => Some(key),
            SecretRef::AwsSecretsManager { key, .. } | SecretRef::GcpSecretManager { key, .. } => {
                key.as_ref()
            }
        };
        match (self, key) {
            (Document::Text(t), None) => Ok(t.clone()),
            (Document::Object(map), Some(k)) => field(map, k, r),
            (Document::Text(t), Some(k)) => {
                let map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(t.expose_secret()).map_err(|_| {
                        StoreError::Refused(format!(
                            "{r}: the secret is not a JSON object, so it has no key `{k}`; \
                             drop `#{k}` to use the whole value"
                        ))
                    })?;
                field(&map, k, r)
            }
            (Document::Object(_), None) => Err(StoreError::Config(format!(
                "{r}: a KV document needs a key after `#`"
            ))),
        }
    }
}

fn field(
    map: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    r: &SecretRef,
) -> Result<SecretString, StoreError> {
    match map.get(key) {
        Some(serde_json::Value::String(s)) => Ok(SecretString::from(s.clone())),
        Some(_) => Err(StoreError::Refused(format!(
            "{r}: the key `{key}` holds no string"
        ))),
        None => Err(StoreError::Refused(format!(
            "{r}: the secret has no key `{key}` (it has {})",
            if map.is_empty() {
                "no keys".to_string()
            } else {
                map.keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))),
    }
}

#[cfg(test)]
mod tests;
