//! Vault / OpenBao over HTTP: a login (Kubernetes, JWT, AppRole, or a given token), renewal of
//! the token before it lapses, KV v2 reads and Transit's data keys. Both speak the same API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hyper::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::StoreError;
use crate::sinks::http::{Http, Response};

/// Where the Kubernetes auth method finds the pod's service account token by default.
pub const KUBERNETES_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How to reach Vault. `Debug` hides every credential.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `https://vault:8200`, without a trailing slash.
    pub address: String,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    pub auth: VaultAuth,
    pub timeout: Duration,
}

/// How the bridge logs in.
#[derive(Clone)]
pub enum VaultAuth {
    /// A token given outright (development; no renewal unless it is renewable).
    Token(SecretString),
    /// AppRole: a role id and a secret id.
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretString,
    },
    /// A JWT read from a file at each login (a CI or workload identity token).
    Jwt(JwtLogin),
    /// The pod's service account token, which Vault checks with Kubernetes' TokenReview.
    Kubernetes(JwtLogin),
    /// A JWT in hand (a CI job's OIDC token) at `mount` for `role`.
    JwtValue {
        mount: String,
        role: String,
        jwt: SecretString,
    },
}

/// A login with a token read from a file: the role it asks for, where the method is mounted.
#[derive(Debug, Clone)]
pub struct JwtLogin {
    pub mount: String,
    pub role: String,
    pub jwt_file: PathBuf,
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(***)"),
            VaultAuth::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .finish_non_exhaustive(),
            VaultAuth::Jwt(login) | VaultAuth::Kubernetes(login) => login.fmt(f),
            VaultAuth::JwtValue { mount, role, .. } => f
                .debug_struct("JwtValue")
                .field("mount", mount)
                .field("role", role)
                .finish_non_exhaustive(),
        }
    }
}

impl VaultAuth {
    fn method(&self) -> &'static str {
        match self {
            VaultAuth::Token(_) => "token",
            VaultAuth::AppRole { .. } => "approle",
            VaultAuth::Jwt { .. } | VaultAuth::JwtValue { .. } => "jwt",
            VaultAuth::Kubernetes { .. } => "kubernetes",
        }
    }
}

/// A logged-in token and when to renew it.
struct Session {
    token: SecretString,
    renewable: bool,
    /// Two thirds into the lease: renew from then on. `None`: it does not expire.
    renew_at: Option<Instant>,
    expires_at: Option<Instant>,
}

/// A Vault client holding one token, renewed or replaced as it ages.
impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

pub struct Vault {
    settings: VaultSettings,
    http: Http,
    session: tokio::sync::Mutex<Option<Session>>,
}

#[derive(Deserialize)]
struct AuthAnswer {
    auth: Auth,
}

#[derive(Deserialize)]
struct Auth {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct KvAnswer {
    data: KvData,
}

#[derive(Deserialize)]
struct KvData {
    data: serde_json::Map<String, serde_json::Value>,
}

impl Vault {
    pub fn new(settings: VaultSettings) -> Result<Vault, StoreError> {
        Ok(Vault {
            http: Http::new(settings.timeout).map_err(StoreError::Config)?,
            settings,
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// The fields of a KV v2 document (`secret/data/slipway`). A refused token is replaced by
    /// a fresh login once before the refusal counts.
    pub async fn read_kv(
        &self,
        path: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        let resp = self.call(Method::GET, path, None).await?;
        let kv: KvAnswer = serde_json::from_slice(&resp.body).map_err(|_| {
            StoreError::Refused(format!(
                "vault {path}: the answer is not a KV v2 document (is the mount KV version 2?)"
            ))
        })?;
        Ok(kv.data.data)
    }

    /// A POST to `path` with a JSON body, as the logged-in token (Transit).
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let resp = self.call(Method::POST, path, Some(body)).await?;
        serde_json::from_slice(&resp.body)
            .map_err(|_| StoreError::Refused(format!("vault {path}: the answer is not JSON")))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, StoreError> {
        let mut relogged = false;
        loop {
            let token = self.token().await?;
            let resp = self.send(method.clone(), path, Some(&token), body).await?;
            match resp.status {
                200..=299 => return Ok(resp),
                403 if !relogged && !matches!(self.settings.auth, VaultAuth::Token(_)) => {
                    // Revoked or expired early: one fresh login, then the answer stands.
                    *self.session.lock().await = None;
                    relogged = true;
                }
                _ => return Err(status_error(&format!("vault {method} {path}"), &resp)),
            }
        }
    }

    /// The current token: logged in, renewed or replaced as its lease requires.
    async fn token(&self) -> Result<SecretString, StoreError> {
        let mut session = self.session.lock().await;
        let now = Instant::now();
        if let Some(s) = session.as_ref() {
            let expired = s.expires_at.is_some_and(|t| now >= t);
            let due = s.renew_at.is_some_and(|t| now >= t);
            if !expired && !due {
                return Ok(s.token.clone());
            }
            if !expired && s.renewable {
                let token = s.token.clone();
                match self.renew(&token).await {
                    Ok(renewed) => {
                        *session = Some(renewed);
                        return Ok(token);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "vault token renewal failed; logging in again");
                    }
                }
            }
        }
        let fresh = self.login().await?;
        let token = fresh.token.clone();
        *session = Some(fresh);
        Ok(token)
    }

    async fn login(&self) -> Result<Session, StoreError> {
        let (mount, body) = match &self.settings.auth {
            VaultAuth::Token(t) => {
                return Ok(Session {
                    token: t.clone(),
                    renewable: false,
                    renew_at: None,
                    expires_at: None,
                });
            }
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (
                mount,
                serde_json::json!({"role_id": role_id, "secret_id": secret_id.expose_secret()}),
            ),
            VaultAuth::Jwt(JwtLogin {
                mount,
                role,
                jwt_file,
            })
            | VaultAuth::Kubernetes(JwtLogin {
                mount,
                role,
                jwt_file,
            }) => {
                let jwt = std::fs::read_to_string(jwt_file).map_err(|e| {
                    StoreError::Config(format!(
                        "vault {} login: can't read the token file {}: {e}",
                        self.settings.auth.method(),
                        jwt_file.display()
                    ))
                })?;
                (mount, serde_json::json!({"role": role, "jwt": jwt.trim()}))
            }
            VaultAuth::JwtValue { mount, role, jwt } => (
                mount,
                serde_json::json!({"role": role, "jwt": jwt.expose_secret()}),
            ),
        };
        let path = format!("auth/{mount}/login");
        let resp = self.send(Method::POST, &path, None, Some(&body)).await?;
        if !(200..300).contains(&resp.status) {
            return Err(status_error(
                &format!("vault {} login at {path}", self.settings.auth.method()),
                &resp,
            ));
        }
        session(&resp, &path)
    }

    async fn renew(&self, token: &SecretString) -> Result<Session, StoreError> {
        let path = "auth/token/renew-self";
        let resp = self
            .send(
                Method::POST,
                path,
                Some(token),
                Some(&serde_json::json!({})),
            )
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(status_error("vault token renewal", &resp));
        }
        session(&resp, path)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, StoreError> {
        let url = format!(
            "{}/v1/{}",
            self.settings.address,
            path.trim_start_matches('/')
        );
        let mut headers = vec![("content-type", "application/json")];
        if let Some(t) = token {
            headers.push(("x-vault-token", t.expose_secret()));
        }
        if let Some(ns) = &self.settings.namespace {
            headers.push(("x-vault-namespace", ns.as_str()));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        Ok(self.http.send(method, &url, &headers, body).await?)
    }
}

fn session(resp: &Response, path: &str) -> Result<Session, StoreError> {
    let answer: AuthAnswer = serde_json::from_slice(&resp.body).map_err(|_| {
        StoreError::Refused(format!("vault {path}: the answer has no `auth` token"))
    })?;
    let a = answer.auth;
    let now = Instant::now();
    let lease = (a.lease_duration > 0).then(|| Duration::from_secs(a.lease_duration));
    Ok(Session {
        token: SecretString::from(a.client_token),
        renewable: a.renewable,
        renew_at: lease.map(|l| now + l * 2 / 3),
        expires_at: lease.map(|l| now + l),
    })
}

/// Vault's error body is `{"errors": [...]}`; it never holds a secret value, and only failed
/// answers reach here.
fn status_error(what: &str, resp: &Response) -> StoreError {
    let message = format!("{what}: HTTP {}: {}", resp.status, resp.text());
    match resp.status {
        408 | 429 | 500..=599 => StoreError::Unreachable(message),
        _ => StoreError::Refused(message),
    }
}

/// Transit, for envelope encryption: a data key per record under a named key created with
/// `derived=true`, so every call's `context` (the record's kind and owner) is part of the key.
impl Vault {
    /// A new data key: its plaintext and its ciphertext (`vault:v<N>:…`).
    pub async fn transit_datakey(
        &self,
        mount: &str,
        key: &str,
        context: &str,
    ) -> Result<([u8; 32], String), StoreError> {
        let answer = self
            .post_json(
                &format!("{mount}/datakey/plaintext/{key}"),
                &serde_json::json!({"context": b64(context.as_bytes()), "bits": 256}),
            )
            .await?;
        let plaintext = field(&answer, "plaintext", "transit datakey")?;
        let ciphertext = field(&answer, "ciphertext", "transit datakey")?;
        Ok((super::key32(&unb64(&plaintext)?, "Transit")?, ciphertext))
    }

    /// The data key in `ciphertext`.
    pub async fn transit_decrypt(
        &self,
        mount: &str,
        key: &str,
        ciphertext: &str,
        context: &str,
    ) -> Result<[u8; 32], StoreError> {
        let answer = self
            .post_json(
                &format!("{mount}/decrypt/{key}"),
                &serde_json::json!({"ciphertext": ciphertext, "context": b64(context.as_bytes())}),
            )
            .await?;
        super::key32(
            &unb64(&field(&answer, "plaintext", "transit decrypt")?)?,
            "Transit",
        )
    }

    /// `ciphertext` wrapped again under the key's newest version (Transit's `rewrap`: the data
    /// key never leaves Vault).
    pub async fn transit_rewrap(
        &self,
        mount: &str,
        key: &str,
        ciphertext: &str,
        context: &str,
    ) -> Result<String, StoreError> {
        let answer = self
            .post_json(
                &format!("{mount}/rewrap/{key}"),
                &serde_json::json!({"ciphertext": ciphertext, "context": b64(context.as_bytes())}),
            )
            .await?;
        field(&answer, "ciphertext", "transit rewrap")
    }

    /// The key's newest version.
    pub async fn transit_latest_version(&self, mount: &str, key: &str) -> Result<u64, StoreError> {
        let resp = self
            .call(Method::GET, &format!("{mount}/keys/{key}"), None)
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|_| StoreError::Refused("transit keys: the answer is not JSON".into()))?;
        answer
            .pointer("/data/latest_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| StoreError::Refused(format!("transit key {key}: no latest_version")))
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, StoreError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| StoreError::Refused("transit answered a key that is not base64".into()))
}

fn field(answer: &serde_json::Value, name: &str, what: &str) -> Result<String, StoreError> {
    answer
        .pointer(&format!("/data/{name}"))
        .and_then(serde_json::Value::as_str)
        .map(String::from)
        .ok_or_else(|| StoreError::Refused(format!("{what}: the answer has no `{name}`")))
}
