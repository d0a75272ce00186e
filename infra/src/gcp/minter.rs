//! Tokens for the service accounts Slipway impersonates, minted with its own identity and kept
//! until shortly before they expire, so a burst of reads on one project costs one
//! `generateAccessToken`, and no token outlives its configured lifetime by much.

use std::collections::HashMap;
use std::time::Duration;

use super::{AccessToken, CLOUD_PLATFORM, GcpClient, GcpError, ServiceAccountKey};

/// A cached token is replaced when less than this is left of it (a run must not start with a
/// token about to die mid-command).
const EARLY: i64 = 120;

/// Where Slipway's own token comes from, and where tokens are minted.
#[derive(Debug, Clone)]
pub struct MinterSettings {
    pub key: ServiceAccountKey,
    /// Overrides the key file's `token_uri` (tests, emulators).
    pub token_url: Option<String>,
    pub iam_credentials_url: String,
    pub lifetime: Duration,
}

/// Mints and caches impersonated tokens.
#[derive(Debug)]
pub struct Minter {
    client: GcpClient,
    settings: MinterSettings,
    own: tokio::sync::Mutex<Option<AccessToken>>,
    minted: tokio::sync::Mutex<HashMap<String, AccessToken>>,
}

fn fresh(t: &AccessToken, now: i64) -> bool {
    t.expires_at - EARLY > now
}

impl Minter {
    pub fn new(settings: MinterSettings, timeout: Duration) -> Result<Minter, GcpError> {
        Ok(Minter {
            client: GcpClient::new(timeout)?,
            settings,
            own: tokio::sync::Mutex::new(None),
            minted: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// A token for `service_account` with at least two minutes left.
    pub async fn token_for(
        &self,
        service_account: &str,
        now: i64,
    ) -> Result<AccessToken, GcpError> {
        if let Some(t) = self.minted.lock().await.get(service_account)
            && fresh(t, now)
        {
            return Ok(t.clone());
        }
        let own = self.own_token(now).await?;
        let minted = match self.mint(&own, service_account).await {
            // Our own token was revoked or expired early: get another, once.
            Err(GcpError::Refused { status: 401, .. }) => {
                *self.own.lock().await = None;
                let own = self.own_token(now).await?;
                self.mint(&own, service_account).await?
            }
            other => other?,
        };
        self.minted
            .lock()
            .await
            .insert(service_account.to_string(), minted.clone());
        Ok(minted)
    }

    /// The HTTP client, for calls made with a minted token.
    pub fn client(&self) -> &GcpClient {
        &self.client
    }

    async fn mint(&self, own: &AccessToken, sa: &str) -> Result<AccessToken, GcpError> {
        let s = &self.settings;
        self.client
            .generate_access_token(&s.iam_credentials_url, own, sa, s.lifetime)
            .await
    }

    /// Slipway's own token (for the few calls it makes as itself, such as reading its secrets).
    pub async fn own_token(&self, now: i64) -> Result<AccessToken, GcpError> {
        let mut own = self.own.lock().await;
        if let Some(t) = own.as_ref()
            && fresh(t, now)
        {
            return Ok(t.clone());
        }
        let s = &self.settings;
        let t = self
            .client
            .jwt_bearer(&s.key, &[CLOUD_PLATFORM], None, s.token_url.as_deref(), now)
            .await?;
        *own = Some(t.clone());
        Ok(t)
    }
}
