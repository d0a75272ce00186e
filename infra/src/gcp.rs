//! Google Cloud access tokens, the three ways Slipway gets one (see `protocols.md`, "Google
//! Cloud"):
//!
//! - a service account's key, by OAuth 2.0's JWT bearer grant (RFC 7523): the bridge's own
//!   identity when it runs with a key;
//! - a federated token from STS's token exchange (RFC 8693) of a CI job's OIDC token: Workload
//!   Identity Federation, the runner's way in;
//! - a short-lived token for another service account from IAM Credentials'
//!   `generateAccessToken`, called with one of the above: impersonation of the per-project
//!   read-only account (the bridge) or of the deploying account (the runner).
//!
//! No token is ever in an error, a log line or `Debug`.

use std::fmt;
use std::time::Duration;

use hyper::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::sinks::http::Http;

pub mod minter;
pub use minter::{Minter, MinterSettings};

/// The scope every Slipway token asks for; what it may do is the account's IAM roles.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's OAuth token endpoint (also the `aud` of a JWT bearer assertion).
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's Security Token Service.
pub const STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// IAM Credentials, where service-account tokens are minted.
pub const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";
/// Longest impersonated token Google grants without an organisation policy.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// An access token and when it stops working. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A service account key file (`"type": "service_account"`). `Debug` hides the key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// Where to exchange assertions (Google's unless the file says otherwise).
    #[serde(default)]
    pub token_uri: Option<String>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Read a key file's JSON; the error says what is wrong without quoting the key.
    pub fn parse(json: &str) -> Result<ServiceAccountKey, GcpError> {
        let key: ServiceAccountKey = serde_json::from_str(json).map_err(|e| {
            GcpError::Config(format!(
                "the service account key is not a key file (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
            GcpError::Config("the service account key's private_key is not an RSA PEM key".into())
        })?;
        Ok(key)
    }
}

/// Why no token was had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcpError {
    #[error("{0}")]
    Config(String),
    /// Google answered, and said no (status, Google's error and message, truncated).
    #[error("{what} was refused: HTTP {status}: {detail}")]
    Refused {
        what: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{what} failed: {detail}")]
    Transport { what: &'static str, detail: String },
    #[error("{what}: the answer is not what Google sends: {detail}")]
    Malformed { what: &'static str, detail: String },
}

/// The JWT bearer assertion's claims (`sub` only with domain-wide delegation).
#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    scope: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// An OAuth / STS token answer.
#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    expires_in: Option<i64>,
}

/// IAM Credentials' answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Minted {
    access_token: String,
    expire_time: String,
}

/// The HTTP side, shared by the three grants.
#[derive(Debug, Clone)]
pub struct GcpClient {
    http: Http,
}

impl GcpClient {
    pub fn new(timeout: Duration) -> Result<GcpClient, GcpError> {
        Ok(GcpClient {
            http: Http::new(timeout).map_err(GcpError::Config)?,
        })
    }

    /// A token for the key's own account (RFC 7523), acting as `subject` if given (domain-wide
    /// delegation). `token_url` overrides the key file's (tests, emulators).
    pub async fn jwt_bearer(
        &self,
        key: &ServiceAccountKey,
        scopes: &[&str],
        subject: Option<&str>,
        token_url: Option<&str>,
        now: i64,
    ) -> Result<AccessToken, GcpError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&key.private_key_id);
        let claims = Assertion {
            iss: &key.client_email,
            sub: subject,
            scope: scopes.join(" "),
            aud: TOKEN_URL,
            iat: now,
            exp: now + 3600,
        };
        let signing = EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
            GcpError::Config("the service account key is not an RSA PEM key".into())
        })?;
        let assertion = jsonwebtoken::encode(&header, &claims, &signing)
            .map_err(|e| GcpError::Config(format!("signing the assertion: {e}")))?;
        let form = serde_urlencoded::to_string([
            ("grant_type", JWT_BEARER),
            ("assertion", assertion.as_str()),
        ])
        .map_err(|e| GcpError::Config(e.to_string()))?;
        let url = token_url.or(key.token_uri.as_deref()).unwrap_or(TOKEN_URL);
        self.oauth("the service account's token request", url, form, now)
            .await
    }

    /// A federated token for a CI job's OIDC token (`subject_token`), from the workload
    /// identity provider named by `audience`
    /// (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/Q`).
    pub async fn sts_exchange(
        &self,
        sts_url: &str,
        audience: &str,
        subject_token: &str,
        now: i64,
    ) -> Result<AccessToken, GcpError> {
        let form = serde_urlencoded::to_string([
            ("grant_type", TOKEN_EXCHANGE),
            ("audience", audience),
            ("scope", CLOUD_PLATFORM),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token_type", JWT_TOKEN_TYPE),
            ("subject_token", subject_token),
        ])
        .map_err(|e| GcpError::Config(e.to_string()))?;
        self.oauth("the STS token exchange", sts_url, form, now)
            .await
    }

    /// A token for `service_account`, minted with `bearer` (whose principal needs
    /// `roles/iam.serviceAccountTokenCreator` on it), good for `lifetime` (at most an hour).
    pub async fn generate_access_token(
        &self,
        base_url: &str,
        bearer: &AccessToken,
        service_account: &str,
        lifetime: Duration,
    ) -> Result<AccessToken, GcpError> {
        const WHAT: &str = "generateAccessToken";
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken",
            base_url.trim_end_matches('/')
        );
        let secs = lifetime.min(MAX_LIFETIME).as_secs().max(1);
        let body = serde_json::json!({"scope": [CLOUD_PLATFORM], "lifetime": format!("{secs}s")});
        let auth = format!("Bearer {}", bearer.token);
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        let resp = self
            .http
            .send(
                Method::POST,
                &url,
                &headers,
                Some(body.to_string().into_bytes()),
            )
            .await
            .map_err(|e| transport(WHAT, &e))?;
        let minted: Minted = answer(WHAT, resp.status, &resp.body)?;
        let expires_at = chrono::DateTime::parse_from_rfc3339(&minted.expire_time)
            .map_err(|e| GcpError::Malformed {
                what: WHAT,
                detail: format!("expireTime: {e}"),
            })?
            .timestamp();
        Ok(AccessToken {
            token: minted.access_token,
            expires_at,
        })
    }

    /// `GET url` as `bearer`: the resource's JSON (a GKE cluster, say).
    pub async fn get_json(
        &self,
        what: &'static str,
        url: &str,
        bearer: &AccessToken,
    ) -> Result<serde_json::Value, GcpError> {
        let auth = format!("Bearer {}", bearer.token);
        let resp = self
            .http
            .send(Method::GET, url, &[("authorization", auth.as_str())], None)
            .await
            .map_err(|e| transport(what, &e))?;
        answer(what, resp.status, &resp.body)
    }

    async fn oauth(
        &self,
        what: &'static str,
        url: &str,
        form: String,
        now: i64,
    ) -> Result<AccessToken, GcpError> {
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        let resp = self
            .http
            .send(Method::POST, url, &headers, Some(form.into_bytes()))
            .await
            .map_err(|e| transport(what, &e))?;
        let t: OAuthToken = answer(what, resp.status, &resp.body)?;
        Ok(AccessToken {
            token: t.access_token,
            expires_at: now + t.expires_in.unwrap_or(3600).clamp(0, 12 * 3600),
        })
    }
}

fn transport(what: &'static str, e: &crate::sinks::SinkError) -> GcpError {
    GcpError::Transport {
        what,
        detail: e.to_string(),
    }
}

/// The body as `T` on a 2xx, else Google's error (OAuth's `error`/`error_description`, or the
/// API's `error.status`/`error.message`), never the body itself.
fn answer<T: serde::de::DeserializeOwned>(
    what: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, GcpError> {
    if !(200..300).contains(&status) {
        return Err(GcpError::Refused {
            what,
            status,
            detail: google_error(body),
        });
    }
    serde_json::from_slice(body).map_err(|e| GcpError::Malformed {
        what,
        detail: format!("line {}, column {}", e.line(), e.column()),
    })
}

/// Google's reason for a refusal, from either error shape, capped.
fn google_error(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuth {
        error: serde_json::Value,
        error_description: Option<String>,
    }
    let Ok(e) = serde_json::from_slice::<OAuth>(body) else {
        return "no error in the answer".into();
    };
    let text = match (&e.error, e.error_description) {
        (serde_json::Value::String(code), d) => {
            format!("{code}: {}", d.unwrap_or_default())
        }
        (serde_json::Value::Object(api), _) => format!(
            "{}: {}",
            api.get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("error"),
            api.get("message").and_then(|s| s.as_str()).unwrap_or("")
        ),
        _ => "an error Google did not explain".into(),
    };
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests;
