//! The OCI distribution API, just enough to check that an image exists and learn its digest
//! before `/deploy` pins it: `GET /v2/<name>/manifests/<reference>`, anonymous, basic, or a
//! bearer token (given, or fetched from the realm a `WWW-Authenticate: Bearer` challenge names).
//!
//! The manifest is fetched rather than only `HEAD`ed so that its digest is computed here: a
//! registry that answers a `Docker-Content-Digest` other than what it served (or than the digest
//! asked for) is refused instead of believed.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;

/// Manifests and token answers are small; anything bigger is not one.
const MAX_BODY: usize = 4 << 20;

/// Every manifest type an image tag may point at.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to authenticate to a registry. `Debug` never shows a secret.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A token sent as is (`Authorization: Bearer`).
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Why an image could not be resolved. Messages name the registry and the reference, never a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    #[error("{registry} has no image {name}:{reference}")]
    NotFound {
        registry: String,
        name: String,
        reference: String,
    },
    #[error("{registry} refused access to {name} (HTTP {status}): check the registry credentials")]
    Denied {
        registry: String,
        name: String,
        status: u16,
    },
    #[error("{registry} answered digest {claimed} for {name}:{reference}, but served {actual}")]
    DigestMismatch {
        registry: String,
        name: String,
        reference: String,
        claimed: String,
        actual: String,
    },
    #[error("{0}")]
    Transport(String),
}

/// A tag or digest resolved to the digest of the manifest the registry serves for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:<hex>` of the manifest bytes.
    pub digest: String,
    pub media_type: String,
}

/// One registry's API.
#[derive(Clone)]
pub struct Registry {
    client: Client<crate::tls::Https, Full<Bytes>>,
    /// `https://host[:port]` (or loopback `http://`), no trailing slash.
    base: String,
    timeout: Duration,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Registry {
    /// A client for the registry at `base` (`https://registry.example.com`).
    pub fn new(base: &str, timeout: Duration) -> Result<Registry, String> {
        let https = crate::tls::connector(crate::tls::Connect::default())?;
        Ok(Registry {
            client: Client::builder(TokioExecutor::new()).build(https),
            base: base.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    /// The registry's base URL, as errors name it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Resolve `name:reference` (a tag, or `sha256:…`) to the digest of the manifest served.
    pub async fn resolve(
        &self,
        name: &str,
        reference: &str,
        auth: &Auth,
    ) -> Result<Resolved, OciError> {
        let url = format!("{}/v2/{name}/manifests/{reference}", self.base);
        let mut header = initial_header(auth);
        let mut answer = self.get(&url, header.as_deref(), MANIFEST_TYPES).await?;
        if answer.status == 401
            && !matches!(auth, Auth::Bearer(_))
            && let Some(challenge) = bearer_challenge(&answer.headers)
        {
            let token = self.token(&challenge, name, auth).await?;
            header = Some(format!("Bearer {token}"));
            answer = self.get(&url, header.as_deref(), MANIFEST_TYPES).await?;
        }
        match answer.status {
            200 => self.check(name, reference, &answer),
            404 => Err(OciError::NotFound {
                registry: self.base.clone(),
                name: name.into(),
                reference: reference.into(),
            }),
            s @ (401 | 403) => Err(OciError::Denied {
                registry: self.base.clone(),
                name: name.into(),
                status: s,
            }),
            s => Err(OciError::Transport(format!(
                "GET {url}: HTTP {s}: {}",
                snippet(&answer.body)
            ))),
        }
    }

    /// The digest of what was served, which must equal what the registry claims and, for a
    /// digest reference, what was asked for.
    fn check(&self, name: &str, reference: &str, a: &Answer) -> Result<Resolved, OciError> {
        let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&a.body)));
        let claimed = header_str(&a.headers, "docker-content-digest");
        // Digests are public: no constant-time compare is needed.
        for claim in [
            claimed,
            reference.starts_with("sha256:").then(|| reference.into()),
        ]
        .into_iter()
        .flatten()
        {
            if claim != actual {
                return Err(OciError::DigestMismatch {
                    registry: self.base.clone(),
                    name: name.into(),
                    reference: reference.into(),
                    claimed: claim,
                    actual,
                });
            }
        }
        Ok(Resolved {
            digest: actual,
            media_type: header_str(&a.headers, "content-type").unwrap_or_default(),
        })
    }

    /// A pull token from the challenge's realm, sending basic credentials when there are some.
    async fn token(&self, c: &Challenge, name: &str, auth: &Auth) -> Result<String, OciError> {
        if !(c.realm.starts_with("https://") || is_loopback_http(&c.realm)) {
            return Err(OciError::Transport(format!(
                "{} asks for a token from `{}`, which is not an https URL",
                self.base, c.realm
            )));
        }
        let scope = format!("repository:{name}:pull");
        let mut query = vec![("scope", scope.as_str())];
        if let Some(s) = &c.service {
            query.push(("service", s));
        }
        let sep = if c.realm.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{sep}{}",
            c.realm,
            serde_urlencoded::to_string(&query).unwrap_or_default()
        );
        let header = match auth {
            Auth::Basic { .. } => initial_header(auth),
            _ => None,
        };
        let answer = self
            .get(&url, header.as_deref(), "application/json")
            .await?;
        if answer.status != 200 {
            return Err(OciError::Denied {
                registry: self.base.clone(),
                name: name.into(),
                status: answer.status,
            });
        }
        let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                OciError::Transport(format!("{}: the token answer has no token", c.realm))
            })
    }

    async fn get(
        &self,
        url: &str,
        authorization: Option<&str>,
        accept: &str,
    ) -> Result<Answer, OciError> {
        let mut req = hyper::Request::get(url).header("accept", accept);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| OciError::Transport(format!("GET {url}: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                OciError::Transport(format!("GET {url}: {}", crate::with_causes(&e)))
            })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .map_err(|e| OciError::Transport(format!("GET {url}: reading the answer: {e}")))?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(OciError::Transport(format!(
                    "GET {url}: no answer within {:?}",
                    self.timeout
                )))
            })
    }
}

fn initial_header(auth: &Auth) -> Option<String> {
    match auth {
        Auth::Anonymous => None,
        Auth::Basic { username, password } => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        )),
        Auth::Bearer(t) => Some(format!("Bearer {t}")),
    }
}

fn header_str(h: &hyper::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1", "http://[::1]", "http://localhost"]
        .iter()
        .any(|p| {
            url.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with([':', '/']))
        })
}

/// A `WWW-Authenticate: Bearer realm="…",service="…"` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
}

fn bearer_challenge(h: &hyper::HeaderMap) -> Option<Challenge> {
    parse_challenge(&header_str(h, "www-authenticate")?)
}

/// Parse a bearer challenge's `realm` and `service` parameters (quoted values, comma-separated).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let (scheme, params) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for part in params.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        service,
    })
}

/// Split an image name `host[:port]/path` into the registry host and the repository path. A
/// name without a registry host is Docker Hub's (`library/` added for a single component).
pub fn split_image(image: &str) -> (String, String) {
    match image.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
            (host.to_string(), path.to_string())
        }
        Some(_) => ("registry-1.docker.io".into(), image.to_string()),
        None => ("registry-1.docker.io".into(), format!("library/{image}")),
    }
}

#[cfg(test)]
mod tests;
