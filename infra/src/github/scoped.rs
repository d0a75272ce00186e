//! An installation token limited to some repositories and permissions. octocrab's installation
//! auth always asks for the whole installation (every repository the App is installed on, with
//! every permission it has); the bridge's token should reach the GitOps repository only, with
//! what the bridge needs. So this one request is made here: the App (JWT) asks
//! `POST /app/installations/{id}/access_tokens` with `repositories` and `permissions`, and the
//! token is reused until five minutes before it expires.

use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use serde_json::Value;

use super::{GhError, Result};

/// Refreshed this long before the token expires.
const MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// The scoped token's source and the current client.
pub(super) struct Scoped {
    pub(super) app: Octocrab,
    pub(super) base_url: String,
    pub(super) installation: u64,
    /// `{"repositories": [...], "permissions": {...}}`.
    pub(super) request: Value,
    pub(super) current: tokio::sync::Mutex<Option<(Octocrab, String, DateTime<Utc>)>>,
}

impl Scoped {
    /// A client acting with a fresh-enough scoped token, and the token (for git).
    pub(super) async fn client(&self) -> Result<(Octocrab, String)> {
        let mut current = self.current.lock().await;
        if let Some((crab, token, expires)) = current.as_ref()
            && *expires - MARGIN > Utc::now()
        {
            return Ok((crab.clone(), token.clone()));
        }
        let path = format!("/app/installations/{}/access_tokens", self.installation);
        let v: Value = self
            .app
            .post(path, Some(&self.request))
            .await
            .map_err(|e| GhError::Auth(format!("minting a scoped installation token: {e}")))?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| GhError::Auth("the installation token answer has no token".into()))?
            .to_string();
        let expires = v["expires_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(
                || Utc::now() + chrono::Duration::minutes(30),
                |t| t.with_timezone(&Utc),
            );
        let crab = super::builder(&self.base_url)?
            .user_access_token(token.clone())
            .build()
            .map_err(|e| GhError::Auth(e.to_string()))?;
        *current = Some((crab.clone(), token.clone(), expires));
        Ok((crab, token))
    }
}
