//! GitHub's REST API through octocrab, with domain types. One client for the bridge and the
//! runner.
//!
//! Auth: a GitHub App (JWT → installation token, cached and refreshed by octocrab before expiry),
//! or a user access token (a person's own authorization, for reviews). Writes are serialised and
//! secondary rate limits honoured: on 403/429 wait for `retry-after`, else until
//! `x-ratelimit-reset` when nothing remains, else back off exponentially from a minute.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use octocrab::Octocrab;
use octocrab::models::{AppId, InstallationId};
use serde_json::{Value, json};

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

/// A pull request, as far as Slipway cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pr {
    pub number: u64,
    pub html_url: String,
    pub title: String,
    pub body: String,
    pub state: String,
    pub merged: bool,
    pub merged_by: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub author: String,
}

impl Pr {
    fn from_json(v: &Value) -> Pr {
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Pr {
            number: v["number"].as_u64().unwrap_or_default(),
            html_url: s("/html_url"),
            title: s("/title"),
            body: s("/body"),
            state: s("/state"),
            merged: v["merged"].as_bool().unwrap_or(false) || v["merged_at"].is_string(),
            merged_by: v
                .pointer("/merged_by/login")
                .and_then(Value::as_str)
                .map(String::from),
            merge_commit_sha: v["merge_commit_sha"].as_str().map(String::from),
            head_ref: s("/head/ref"),
            head_sha: s("/head/sha"),
            base_ref: s("/base/ref"),
            author: s("/user/login"),
        }
    }
}

/// A review, as the REST API reports it (`state` upper case: `APPROVED`, `CHANGES_REQUESTED`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub id: u64,
    pub user: String,
    pub state: String,
    pub commit_id: String,
    pub submitted_at: Option<String>,
}

/// A comment on an issue or PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    /// `User` or `Bot` (GitHub's `user.type`).
    pub author_type: String,
    pub body: String,
}

/// A finished Actions run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub head_branch: String,
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

/// The client.
#[derive(Clone)]
pub struct GitHub {
    crab: Octocrab,
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
            crab,
            installation: true,
            writes: Arc::default(),
            max_wait: Duration::from_secs(300),
        })
    }

    /// As a person, with their user access token.
    pub fn user(base_url: &str, token: &str) -> Result<GitHub> {
        let crab = builder(base_url)?
            .user_access_token(token.to_string())
            .build()
            .map_err(|e| GhError::Auth(e.to_string()))?;
        Ok(GitHub {
            crab,
            installation: false,
            writes: Arc::default(),
            max_wait: Duration::from_secs(300),
        })
    }

    /// A fresh-enough installation token, for git over HTTPS (`x-access-token:<token>`).
    pub async fn installation_token(&self) -> Result<String> {
        use secrecy::ExposeSecret;
        let t = self
            .crab
            .installation_token()
            .await
            .map_err(|e| GhError::Auth(e.to_string()))?;
        Ok(t.expose_secret().to_string())
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, http::HeaderMap, Value)> {
        let err = |message: String| GhError::Transport {
            method: method.into(),
            path: path.into(),
            message,
        };
        // Relative paths: octocrab's base-URI layer puts the configured host in front.
        let resp = match method {
            "GET" => self.crab._get(path).await,
            "POST" => self.crab._post(path, body).await,
            "PATCH" => self.crab._patch(path, body).await,
            "PUT" => self.crab._put(path, body).await,
            _ => self.crab._delete(path, body).await,
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
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, headers, value))
    }

    /// One API call, with secondary-rate-limit waits for writes (which are serialised).
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let write = method != "GET";
        let _guard = if write {
            Some(self.writes.lock().await)
        } else {
            None
        };
        let mut attempt = 0u32;
        loop {
            let (status, headers, value) = self.send(method, path, body).await?;
            if (200..300).contains(&status) {
                return Ok(value);
            }
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

    /// Create a ref atomically. `Ok(false)` when it already exists (the lock is held).
    pub async fn create_ref(&self, repo: &Repo, refname: &str, sha: &str) -> Result<bool> {
        match self
            .call(
                "POST",
                &format!("/repos/{repo}/git/refs"),
                Some(&json!({"ref": refname, "sha": sha})),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(GhError::Http { status: 422, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A ref's target, `None` if it doesn't exist. `refname` is full (`refs/heads/x`).
    pub async fn get_ref(&self, repo: &Repo, refname: &str) -> Result<Option<String>> {
        let short = refname.strip_prefix("refs/").unwrap_or(refname);
        match self
            .call("GET", &format!("/repos/{repo}/git/ref/{short}"), None)
            .await
        {
            Ok(v) => Ok(v
                .pointer("/object/sha")
                .and_then(Value::as_str)
                .map(String::from)),
            Err(GhError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn update_ref(
        &self,
        repo: &Repo,
        refname: &str,
        sha: &str,
        force: bool,
    ) -> Result<()> {
        let short = refname.strip_prefix("refs/").unwrap_or(refname);
        self.call(
            "PATCH",
            &format!("/repos/{repo}/git/refs/{short}"),
            Some(&json!({"sha": sha, "force": force})),
        )
        .await
        .map(|_| ())
    }

    /// Delete a ref; deleting one that is already gone is fine.
    pub async fn delete_ref(&self, repo: &Repo, refname: &str) -> Result<()> {
        let short = refname.strip_prefix("refs/").unwrap_or(refname);
        match self
            .call("DELETE", &format!("/repos/{repo}/git/refs/{short}"), None)
            .await
        {
            Ok(_)
            | Err(GhError::Http {
                status: 404 | 422, ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn open_pr(
        &self,
        repo: &Repo,
        title: &str,
        body: &str,
        head: &str,
        base: &str,
    ) -> Result<Pr> {
        let v = self
            .call(
                "POST",
                &format!("/repos/{repo}/pulls"),
                Some(&json!({"title": title, "body": body, "head": head, "base": base})),
            )
            .await?;
        Ok(Pr::from_json(&v))
    }

    pub async fn get_pr(&self, repo: &Repo, number: u64) -> Result<Pr> {
        Ok(Pr::from_json(
            &self
                .call("GET", &format!("/repos/{repo}/pulls/{number}"), None)
                .await?,
        ))
    }

    /// The open PR whose head is `branch` in the same repo, if any.
    pub async fn find_open_pr(&self, repo: &Repo, branch: &str) -> Result<Option<Pr>> {
        let v = self
            .call(
                "GET",
                &format!(
                    "/repos/{repo}/pulls?state=open&head={}:{branch}&per_page=10",
                    repo.owner
                ),
                None,
            )
            .await?;
        Ok(v.as_array()
            .and_then(|a| a.iter().map(Pr::from_json).find(|p| p.head_ref == branch)))
    }

    /// A file's text at a ref, `None` if absent.
    pub async fn file_at(&self, repo: &Repo, path: &str, git_ref: &str) -> Result<Option<String>> {
        use base64::Engine as _;
        match self
            .call(
                "GET",
                &format!("/repos/{repo}/contents/{path}?ref={git_ref}"),
                None,
            )
            .await
        {
            Ok(v) => {
                let b64: String = v["content"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| GhError::Transport {
                        method: "GET".into(),
                        path: path.into(),
                        message: format!("bad base64 content: {e}"),
                    })?;
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            Err(GhError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Open PRs (first 100, newest first).
    pub async fn open_prs(&self, repo: &Repo) -> Result<Vec<Pr>> {
        let v = self
            .call(
                "GET",
                &format!("/repos/{repo}/pulls?state=open&per_page=100"),
                None,
            )
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().map(Pr::from_json).collect())
            .unwrap_or_default())
    }

    pub async fn update_pr(&self, repo: &Repo, number: u64, patch: Value) -> Result<Pr> {
        Ok(Pr::from_json(
            &self
                .call(
                    "PATCH",
                    &format!("/repos/{repo}/pulls/{number}"),
                    Some(&patch),
                )
                .await?,
        ))
    }

    pub async fn add_labels(&self, repo: &Repo, number: u64, labels: &[&str]) -> Result<()> {
        self.call(
            "POST",
            &format!("/repos/{repo}/issues/{number}/labels"),
            Some(&json!({"labels": labels})),
        )
        .await
        .map(|_| ())
    }

    /// Comment on a PR (cut to GitHub's 65,536-character limit with a note).
    pub async fn comment(&self, repo: &Repo, number: u64, body: &str) -> Result<u64> {
        let body = fit_github_body(body);
        let v = self
            .call(
                "POST",
                &format!("/repos/{repo}/issues/{number}/comments"),
                Some(&json!({"body": body})),
            )
            .await?;
        Ok(v["id"].as_u64().unwrap_or_default())
    }

    /// The comments on an issue or PR, oldest first (up to 1,000).
    pub async fn comments(&self, repo: &Repo, number: u64) -> Result<Vec<Comment>> {
        let mut out = Vec::new();
        for page in 1..=10 {
            let v = self
                .call(
                    "GET",
                    &format!("/repos/{repo}/issues/{number}/comments?per_page=100&page={page}"),
                    None,
                )
                .await?;
            let items = v.as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items.iter().map(|c| {
                Comment {
                    id: c["id"].as_u64().unwrap_or_default(),
                    author: c
                        .pointer("/user/login")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    author_type: c
                        .pointer("/user/type")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    body: c["body"].as_str().unwrap_or_default().to_string(),
                }
            }));
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Submit a review as whoever this client authenticates as.
    pub async fn review(
        &self,
        repo: &Repo,
        number: u64,
        event: &str,
        body: &str,
        commit_id: Option<&str>,
    ) -> Result<u64> {
        let mut req = json!({"event": event, "body": body});
        if let Some(c) = commit_id {
            req["commit_id"] = json!(c);
        }
        let v = self
            .call(
                "POST",
                &format!("/repos/{repo}/pulls/{number}/reviews"),
                Some(&req),
            )
            .await?;
        Ok(v["id"].as_u64().unwrap_or_default())
    }

    pub async fn reviews(&self, repo: &Repo, number: u64) -> Result<Vec<Review>> {
        let v = self
            .call(
                "GET",
                &format!("/repos/{repo}/pulls/{number}/reviews?per_page=100"),
                None,
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|r| Review {
                        id: r["id"].as_u64().unwrap_or_default(),
                        user: r
                            .pointer("/user/login")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        state: r["state"].as_str().unwrap_or_default().to_uppercase(),
                        commit_id: r["commit_id"].as_str().unwrap_or_default().to_string(),
                        submitted_at: r["submitted_at"].as_str().map(String::from),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A commit status (`pending|success|failure|error`); the description is cut to 140.
    pub async fn set_status(
        &self,
        repo: &Repo,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<()> {
        let description: String = description.chars().take(140).collect();
        let mut body = json!({"state": state, "context": context, "description": description});
        if let Some(u) = target_url {
            body["target_url"] = json!(u);
        }
        self.call(
            "POST",
            &format!("/repos/{repo}/statuses/{sha}"),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// Merge with the expected head SHA (GitHub refuses if the head moved).
    pub async fn merge(&self, repo: &Repo, number: u64, sha: &str, title: &str) -> Result<String> {
        let v = self
            .call(
                "PUT",
                &format!("/repos/{repo}/pulls/{number}/merge"),
                Some(&json!({"sha": sha, "commit_title": title, "merge_method": "merge"})),
            )
            .await?;
        Ok(v["sha"].as_str().unwrap_or_default().to_string())
    }

    /// The newest successful Actions run on a branch.
    pub async fn latest_successful_run(
        &self,
        repo: &Repo,
        branch: &str,
    ) -> Result<Option<WorkflowRun>> {
        let v = self
            .call(
                "GET",
                &format!("/repos/{repo}/actions/runs?branch={branch}&status=success&per_page=1"),
                None,
            )
            .await?;
        Ok(v["workflow_runs"]
            .as_array()
            .and_then(|a| a.first())
            .map(|r| WorkflowRun {
                id: r["id"].as_u64().unwrap_or_default(),
                name: r["name"].as_str().unwrap_or_default().to_string(),
                head_sha: r["head_sha"].as_str().unwrap_or_default().to_string(),
                head_branch: r["head_branch"].as_str().unwrap_or_default().to_string(),
            }))
    }

    /// A commit's message, `None` if there is no such commit.
    pub async fn commit_message(&self, repo: &Repo, sha: &str) -> Result<Option<String>> {
        match self
            .call("GET", &format!("/repos/{repo}/git/commits/{sha}"), None)
            .await
        {
            Ok(v) => Ok(v["message"].as_str().map(String::from)),
            Err(GhError::Http {
                status: 404 | 422, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pull requests associated with a commit (how a commit reached a branch).
    pub async fn pulls_for_commit(&self, repo: &Repo, sha: &str) -> Result<Vec<Pr>> {
        let v = self
            .call("GET", &format!("/repos/{repo}/commits/{sha}/pulls"), None)
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().map(Pr::from_json).collect())
            .unwrap_or_default())
    }
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
