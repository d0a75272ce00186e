//! The service account's access token, by OAuth 2.0's JWT bearer grant (RFC 7523) with
//! domain-wide delegation: an RS256 assertion signed with the account's key (`iss` the account,
//! `sub` the admin it acts as, `scope` the read-only Directory scopes, `aud` Google's token
//! endpoint, an hour at most), exchanged at the token URL. The token is kept until a minute
//! before it expires, and dropped early when the API says it is no longer good.

use std::fmt;
use std::sync::Arc;

use axum::http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::GoogleError;
use super::http::{Body, send};
use crate::clock::Clock;
use crate::config::{GoogleConfig, Live, Secret, ServiceAccount};

/// The scopes the sync asks for: users (`users.list`, `users.watch`) and groups (`groups.list`,
/// and `members.list`, which the group scope covers). Both read-only.
pub const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
];
/// The `aud` Google's token endpoint expects (Google's client libraries send this one, whatever
/// URL they post to).
pub const AUDIENCE: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// An assertion's lifetime (Google's maximum is an hour).
const ASSERTION_SECS: i64 = 3600;
/// A cached token is replaced this long before it expires.
const EARLY_SECS: i64 = 60;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    scope: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct Refused {
    error: Option<String>,
    error_description: Option<String>,
}

struct Cached {
    token: Secret,
    /// Unix seconds.
    expires: i64,
}

/// Access tokens for the Directory API, acting as the configured admin.
pub struct Tokens {
    /// Read at each exchange, so a rotated key is used from the next token on.
    account: Live<ServiceAccount>,
    admin: String,
    token_url: String,
    clock: Arc<dyn Clock>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("client_email", &self.account.get().client_email)
            .field("admin", &self.admin)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(config: &GoogleConfig, clock: Arc<dyn Clock>) -> Result<Tokens, GoogleError> {
        Ok(Tokens {
            account: config.service_account.clone(),
            admin: config.admin_email.clone(),
            token_url: config.token_url.clone(),
            clock,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// The signed assertion for `now`.
    fn assertion(&self, now: i64) -> Result<Secret, GoogleError> {
        let account = self.account.get();
        let key = EncodingKey::from_rsa_pem(account.private_key.expose().as_bytes())
            .map_err(|_| GoogleError::Signing("the private key is not an RSA PEM key".into()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&account.private_key_id);
        let claims = Claims {
            iss: &account.client_email,
            sub: &self.admin,
            scope: SCOPES.join(" "),
            aud: AUDIENCE,
            iat: now,
            exp: now + ASSERTION_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &key)
            .map(Secret::new)
            .map_err(|e| GoogleError::Signing(e.to_string()))
    }

    /// A token good for at least another minute.
    pub async fn token(&self) -> Result<Secret, GoogleError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.unix();
        if let Some(c) = cached.as_ref()
            && c.expires - EARLY_SECS > now
        {
            return Ok(c.token.clone());
        }
        let fresh = self.exchange(now).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forget the cached token (the API refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn exchange(&self, now: i64) -> Result<Cached, GoogleError> {
        const WHAT: &str = "the token request";
        let assertion = self.assertion(now)?;
        let form = serde_urlencoded::to_string([
            ("grant_type", JWT_BEARER),
            ("assertion", &*assertion.expose()),
        ])
        .map_err(|e| GoogleError::Signing(e.to_string()))?;
        let (status, body) =
            send(WHAT, Method::POST, &self.token_url, None, Body::Form(form)).await?;
        if !(200..300).contains(&status) {
            let refused: Option<Refused> = serde_json::from_slice(&body).ok();
            let (error, description) = refused
                .map(|r| (r.error, r.error_description))
                .unwrap_or_default();
            return Err(GoogleError::TokenRefused {
                status,
                error: error.unwrap_or_else(|| "no error code".into()),
                description: description.map_or_else(
                    || "no description".into(),
                    |d| d.chars().take(300).collect(),
                ),
            });
        }
        let granted: Granted =
            serde_json::from_slice(&body).map_err(|e| GoogleError::Malformed {
                what: WHAT,
                detail: format!("line {}, column {}", e.line(), e.column()),
            })?;
        let expires_in = granted.expires_in.unwrap_or(3600).clamp(0, 24 * 3600);
        Ok(Cached {
            token: Secret::new(granted.access_token),
            expires: now + expires_in,
        })
    }
}
