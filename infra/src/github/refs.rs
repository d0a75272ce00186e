//! Refs, commits and file contents: the git data behind the locks and the runner's checks.

use serde_json::{Value, json};

use super::{GhError, GitHub, Repo, Result};

impl GitHub {
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

    /// The newest commits of `branch` (up to 100), newest first; empty if the branch is absent.
    pub async fn branch_commits(&self, repo: &Repo, branch: &str) -> Result<Vec<String>> {
        match self
            .call(
                "GET",
                &format!("/repos/{repo}/commits?sha={branch}&per_page=100"),
                None,
            )
            .await
        {
            Ok(v) => Ok(v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["sha"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()),
            Err(GhError::Http {
                status: 404 | 409 | 422,
                ..
            }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
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
}
