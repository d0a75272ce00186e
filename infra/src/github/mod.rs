//! GitHub's REST API through octocrab, with domain types. One client for the bridge and the
//! runner.
//!
//! Auth: a GitHub App (JWT → installation token, cached and refreshed by octocrab before expiry),
//! or a user access token (a person's own authorization, for reviews). Writes are serialised and
//! secondary rate limits honoured: on 403/429 wait for `retry-after`, else until
//! `x-ratelimit-reset` when nothing remains, else back off exponentially from a minute.

mod issues;
mod pulls;
mod refs;
mod scoped;
mod statuses;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde_json::Value;

pub use issues::Comment;
pub use pulls::{Pr, PrCommit, Review};
pub use statuses::{WorkflowRun, is_workflow_id};

/// `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

impl Repo {
    pub fn parse(s: &str) -> Option<Repo> {
        let (owner, name) = s.split_once('/')?;
        (!owner.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Repo {
            owner: owner.into(),
            name: name.into(),
        })
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum GhError {
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Http {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("GitHub request {method} {path} failed: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    #[error("GitHub auth: {0}")]
    Auth(String),
}

impl GhError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GhError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, GhError>;

/// How the client authenticates.
#[derive(Clone)]
enum Auth {
    /// A user token, or an installation token for the whole installation (octocrab's).
    Direct(Octocrab),
    /// An installation token limited to some repositories and permissions.
    Scoped(Arc<scoped::Scoped>),
}

/// The client.
#[derive(Clone)]
pub struct GitHub {
    auth: Auth,
    installation: bool,
    writes: Arc<tokio::sync::Mutex<()>>,
    /// Longest single wait for a rate limit before giving up.
    pub max_wait: Duration,
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub")
            .field("installation", &self.installation)
            .finish_non_exhaustive()
    }
}

fn builder(
    base_url: &str,
) -> Result<
    octocrab::OctocrabBuilder<
        octocrab::NoSvc,
        octocrab::DefaultOctocrabBuilderConfig,
        octocrab::NoAuth,
        octocrab::NotLayerReady,
    >,
> {
    Octocrab::builder()
        .base_uri(base_url)
        .map_err(|e| GhError::Auth(format!("GitHub API URL `{base_url}`: {e}")))
}

impl GitHub {
    /// As a GitHub App installation.
    pub fn app(
        base_url: &str,
        app_id: u64,
        private_key_pem: &str,
        installation_id: u64,
    ) -> Result<GitHub> {
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
                GhError::Auth(format!(
                    "the GitHub App private key is not an RSA PEM key: {e}"
                ))
            })?;
        let app = builder(base_url)?
            .app(AppId(app_id), key)
            .build()
            .map_err(|e| GhError::Auth(e.to_string()))?;
        let crab = app
            .installation(InstallationId(installation_id))
            .map_err(|e| GhError::Auth(e.to_string()))?;
        Ok(GitHub {
            auth: Auth::Direct(crab),
            installation: true,
            writes: Arc::default(),
            max_wait: Duration::from_secs(300),
        })
    }

    /// As a GitHub App installation, with tokens limited to `repositories` (names in the
    /// installation's account) and `permissions` (`{"contents": "write", …}`).
    pub fn app_scoped(
        base_url: &str,
        app_id: u64,
        private_key_pem: &str,
        installation_id: u64,
        repositories: &[&str],
        permissions: &Value,
    ) -> Result<GitHub> {
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
                GhError::Auth(format!(
                    "the GitHub App private key is not an RSA PEM key: {e}"
                ))
            })?;
        let app = builder(base_url)?
            .app(AppId(app_id), key)
            .build()
            .map_err(|e| GhError::Auth(e.to_string()))?;
        Ok(GitHub {
            auth: Auth::Scoped(Arc::new(scoped::Scoped {
                app,
                base_url: base_url.to_string(),
                installation: installation_id,
                request: serde_json::json!({
                    "repositories": repositories,
                    "permissions": permissions,
                }),
                current: tokio::sync::Mutex::new(None),
            })),
            installation: true,
            writes: Arc::default(),
            max_wait: Duration::from_secs(300),
        })
    }

    async fn crab(&self) -> Result<Octocrab> {
        match &self.auth {
            Auth::Direct(c) => Ok(c.clone()),
            Auth::Scoped(s) => s.client().await.map(|(c, _)| c),
        }
    }

    /// As a person, with their user access token.
    pub fn user(base_url: &str, token: &str) -> Result<GitHub> {
        let crab = builder(base_url)?
            .user_access_token(token.to_string())
            .build()
            .map_err(|e| GhError::Auth(e.to_string()))?;
        Ok(GitHub {
            auth: Auth::Direct(crab),
            installation: false,
            writes: Arc::default(),
            max_wait: Duration::from_secs(300),
        })
    }

    /// A fresh-enough installation token, for git over HTTPS (`x-access-token:<token>`).
    pub async fn installation_token(&self) -> Result<String> {
        use secrecy::ExposeSecret;
        match &self.auth {
            Auth::Scoped(s) => s.client().await.map(|(_, t)| t),
            Auth::Direct(crab) => {
                let t = crab
                    .installation_token()
                    .await
                    .map_err(|e| GhError::Auth(e.to_string()))?;
                Ok(t.expose_secret().to_string())
            }
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, http::HeaderMap, bytes::Bytes)> {
        let err = |message: String| GhError::Transport {
            method: method.into(),
            path: path.into(),
            message,
        };
        // Relative paths: octocrab's base-URI layer puts the configured host in front.
        let crab = self.crab().await?;
        let resp = match method {
            "GET" => crab._get(path).await,
            "POST" => crab._post(path, body).await,
            "PATCH" => crab._patch(path, body).await,
            "PUT" => crab._put(path, body).await,
            _ => crab._delete(path, body).await,
        }
        .map_err(|e| err(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| err(e.to_string()))?
            .to_bytes();
        Ok((status, headers, bytes))
    }

    /// One API call, with secondary-rate-limit waits for writes (which are serialised).
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call_raw(method, path, body)
            .await
            .map(|(_, bytes)| json_of(&bytes))
    }

    /// Every item of a list endpoint, following `Link: <…>; rel="next"` as octocrab's `Page`
    /// reads it, up to [`MAX_PAGES`] pages; a longer list is an error rather than a silently
    /// partial one (a missing "changes requested" review would fail open). Only the next link's
    /// path and query are followed, so every page comes from the configured API host.
    pub(crate) async fn get_all(&self, path: &str) -> Result<Vec<Value>> {
        use octocrab::FromResponse as _;
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        for _ in 0..MAX_PAGES {
            let Some(page_path) = next.take() else {
                return Ok(items);
            };
            let (headers, bytes) = self.call_raw("GET", &page_path, None).await?;
            let body = http_body_util::Full::new(bytes)
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed();
            let mut resp = http::Response::new(body);
            *resp.headers_mut() = headers;
            let page = octocrab::Page::<Value>::from_response(resp)
                .await
                .map_err(|e| GhError::Transport {
                    method: "GET".into(),
                    path: page_path.clone(),
                    message: format!("not a page of results: {e}"),
                })?;
            items.extend(page.items);
            next = page
                .next
                .as_ref()
                .and_then(http::Uri::path_and_query)
                .map(ToString::to_string);
        }
        match next {
            None => Ok(items),
            Some(_) => Err(GhError::Transport {
                method: "GET".into(),
                path: path.into(),
                message: format!(
                    "more than {MAX_PAGES} pages of results; refusing to act on part of them"
                ),
            }),
        }
    }

    /// [`GitHub::call`], answering the headers and the raw body.
    async fn call_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(http::HeaderMap, bytes::Bytes)> {
        let write = method != "GET";
        let _guard = if write {
            Some(self.writes.lock().await)
        } else {
            None
        };
        let mut attempt = 0u32;
        loop {
            let (status, headers, bytes) = self.send(method, path, body).await?;
            if (200..300).contains(&status) {
                return Ok((headers, bytes));
            }
            let value = json_of(&bytes);
            let message = value["message"]
                .as_str()
                .map_or_else(|| value.to_string(), String::from);
            let limited = status == 429
                || (status == 403
                    && (headers.contains_key("retry-after")
                        || message.to_lowercase().contains("rate limit")));
            if limited && attempt < 3 {
                let wait = rate_limit_wait(&headers, attempt);
                if wait > self.max_wait {
                    return Err(GhError::Http {
                        method: method.into(),
                        path: path.into(),
                        status,
                        message: format!("{message} (rate limited for {}s)", wait.as_secs()),
                    });
                }
                tracing::warn!(%path, secs = wait.as_secs(), "GitHub rate limit; waiting");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Err(GhError::Http {
                method: method.into(),
                path: path.into(),
                status,
                message,
            });
        }
    }

    pub async fn default_branch(&self, repo: &Repo) -> Result<String> {
        let v = self.call("GET", &format!("/repos/{repo}"), None).await?;
        Ok(v["default_branch"].as_str().unwrap_or("main").to_string())
    }
}

/// The most pages [`GitHub::get_all`] follows (at 100 a page).
pub const MAX_PAGES: usize = 30;

/// A response body as JSON; text that isn't JSON becomes a string, an empty body `null`.
fn json_of(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// How long to wait after a secondary rate limit (GitHub's documented order of preference).
fn rate_limit_wait(headers: &http::HeaderMap, attempt: u32) -> Duration {
    let num = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(secs) = num("retry-after") {
        return Duration::from_secs(secs);
    }
    if num("x-ratelimit-remaining") == Some(0)
        && let Some(reset) = num("x-ratelimit-reset")
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        return Duration::from_secs(reset.saturating_sub(now).max(1));
    }
    Duration::from_secs(60 * 2u64.pow(attempt.min(4)))
}

/// GitHub refuses comment and PR bodies over 65,536 characters.
pub const GITHUB_BODY_LIMIT: usize = 65_536;

/// Cut a body to GitHub's limit, saying so.
pub fn fit_github_body(body: &str) -> String {
    if body.chars().count() <= GITHUB_BODY_LIMIT {
        return body.to_string();
    }
    let note = "\n\n… (truncated to GitHub's 65,536-character limit; the full redacted text is kept with the audit record)";
    let keep = GITHUB_BODY_LIMIT - note.chars().count();
    let mut out: String = body.chars().take(keep).collect();
    out.push_str(note);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_fit() {
        let long = "x".repeat(70_000);
        let fit = fit_github_body(&long);
        assert_eq!(fit.chars().count(), GITHUB_BODY_LIMIT);
        assert!(fit.ends_with("audit record)"));
        assert_eq!(fit_github_body("short"), "short");
    }

    #[test]
    fn waits() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, 0), Duration::from_secs(7));
        assert_eq!(
            rate_limit_wait(&http::HeaderMap::new(), 1),
            Duration::from_secs(120)
        );
        assert_eq!(
            Repo::parse("a/b"),
            Some(Repo {
                owner: "a".into(),
                name: "b".into()
            })
        );
        assert_eq!(Repo::parse("a/b/c"), None);
    }
}
