//! Commit statuses and Actions runs.

use serde_json::json;

use super::{GitHub, Repo, Result};

/// A finished Actions run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub head_branch: String,
}

impl GitHub {
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
}
