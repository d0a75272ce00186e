//! Pull requests and their reviews: open, find, update, review and merge.

use serde_json::{Value, json};

use super::{GitHub, Repo, Result};

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
    /// When it was merged.
    pub merged_at: Option<chrono::DateTime<chrono::Utc>>,
    pub merge_commit_sha: Option<String>,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub author: String,
    /// `owner/name` of the repository the head branch lives in (another one for a fork's PR).
    pub head_repo: String,
}

/// One commit of a pull request, with the GitHub accounts its author and committer map to
/// (`None` when GitHub can't tie the commit's email to an account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrCommit {
    pub sha: String,
    pub author: Option<String>,
    pub committer: Option<String>,
    /// The message's first line.
    pub title: String,
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
            merged_at: v["merged_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
            merged_by: v
                .pointer("/merged_by/login")
                .and_then(Value::as_str)
                .map(String::from),
            merge_commit_sha: v["merge_commit_sha"].as_str().map(String::from),
            head_ref: s("/head/ref"),
            head_sha: s("/head/sha"),
            base_ref: s("/base/ref"),
            author: s("/user/login"),
            head_repo: s("/head/repo/full_name"),
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
    pub body: String,
}

impl GitHub {
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

    /// Every review on the PR, oldest first, across all pages: the quorum needs all of them.
    pub async fn reviews(&self, repo: &Repo, number: u64) -> Result<Vec<Review>> {
        let items = self
            .get_all(&format!(
                "/repos/{repo}/pulls/{number}/reviews?per_page=100"
            ))
            .await?;
        Ok(items
            .iter()
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
                body: r["body"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }

    /// A PR's commits, oldest first (GitHub lists at most 250), page by page.
    pub async fn pr_commits(&self, repo: &Repo, number: u64) -> Result<Vec<PrCommit>> {
        let mut out = Vec::new();
        for page in 1..=3 {
            let v = self
                .call(
                    "GET",
                    &format!("/repos/{repo}/pulls/{number}/commits?per_page=100&page={page}"),
                    None,
                )
                .await?;
            let items = v.as_array().cloned().unwrap_or_default();
            let full = items.len() == 100;
            out.extend(items.iter().map(|c| {
                let login = |p: &str| c.pointer(p).and_then(Value::as_str).map(String::from);
                PrCommit {
                    sha: c["sha"].as_str().unwrap_or_default().to_string(),
                    author: login("/author/login"),
                    committer: login("/committer/login"),
                    title: c
                        .pointer("/commit/message")
                        .and_then(Value::as_str)
                        .and_then(|m| m.lines().next())
                        .unwrap_or_default()
                        .to_string(),
                }
            }));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Merge with the expected head SHA (GitHub refuses if the head moved). `message` is the
    /// merge commit's body (trailers go there).
    pub async fn merge(
        &self,
        repo: &Repo,
        number: u64,
        sha: &str,
        title: &str,
        message: &str,
    ) -> Result<String> {
        let v = self
            .call(
                "PUT",
                &format!("/repos/{repo}/pulls/{number}/merge"),
                Some(&json!({"sha": sha, "commit_title": title, "commit_message": message, "merge_method": "merge"})),
            )
            .await?;
        Ok(v["sha"].as_str().unwrap_or_default().to_string())
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
