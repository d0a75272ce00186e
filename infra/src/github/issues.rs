//! The issue side of a PR: comments and labels.

use serde_json::{Value, json};

use super::{GitHub, Repo, Result, fit_github_body};

/// A comment on an issue or PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub author: String,
    /// `User` or `Bot` (GitHub's `user.type`).
    pub author_type: String,
    pub body: String,
}

impl GitHub {
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
}
