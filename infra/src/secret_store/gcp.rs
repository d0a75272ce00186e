//! Google Secret Manager: `versions.access` with the bridge's own Google identity (the key
//! that also mints the read accounts' tokens).

use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretString;

use super::StoreError;
use crate::gcp::{GcpError, Minter, MinterSettings};

/// Secret Manager's API root.
pub const SECRET_MANAGER_URL: &str = "https://secretmanager.googleapis.com";

/// The bridge's Google identity and where Secret Manager is.
#[derive(Debug, Clone)]
pub struct GcpSecretSettings {
    pub identity: MinterSettings,
    /// Without a trailing slash.
    pub endpoint: String,
    pub timeout: Duration,
}

/// A Secret Manager client.
impl std::fmt::Debug for SecretManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManager")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

pub struct SecretManager {
    minter: Minter,
    endpoint: String,
}

impl SecretManager {
    pub fn new(settings: GcpSecretSettings) -> Result<SecretManager, StoreError> {
        Ok(SecretManager {
            minter: Minter::new(settings.identity, settings.timeout)
                .map_err(|e| store_error(&e))?,
            endpoint: settings.endpoint,
        })
    }

    /// The payload of `projects/P/secrets/S/versions/V`, which must be UTF-8.
    pub async fn access(&self, name: &str) -> Result<SecretString, StoreError> {
        let now = chrono::Utc::now().timestamp();
        let own = self
            .minter
            .own_token(now)
            .await
            .map_err(|e| store_error(&e))?;
        let url = format!("{}/v1/{name}:access", self.endpoint);
        let answer = self
            .minter
            .client()
            .get_json("Secret Manager's versions.access", &url, &own)
            .await
            .map_err(|e| store_error(&e))?;
        let data = answer
            .pointer("/payload/data")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                StoreError::Refused(format!(
                    "gcp_secretmanager {name}: the answer has no payload"
                ))
            })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| {
                StoreError::Refused(format!(
                    "gcp_secretmanager {name}: the payload is not base64"
                ))
            })?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| {
                StoreError::Refused(format!(
                    "gcp_secretmanager {name}: the payload is not UTF-8 text"
                ))
            })
    }
}

fn store_error(e: &GcpError) -> StoreError {
    match e {
        GcpError::Transport { .. } => StoreError::Unreachable(e.to_string()),
        GcpError::Refused { status, .. } if *status == 429 || *status >= 500 => {
            StoreError::Unreachable(e.to_string())
        }
        GcpError::Config(_) => StoreError::Config(e.to_string()),
        GcpError::Refused { .. } | GcpError::Malformed { .. } => StoreError::Refused(e.to_string()),
    }
}
