//! Commit statuses and Actions runs.

use serde_json::json;

use super::{GhError, GitHub, Repo, Result};

/// A finished Actions run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub head_branch: String,
    /// The workflow file, `.github/workflows/ci.yml`.
    pub path: String,
    /// What triggered it: `push`, `pull_request`…
    pub event: String,
    /// `owner/name` the head commit came from (a fork's, for a fork's pull request).
    pub head_repository: String,
    /// RFC 3339, when the run was created (the build's age in a dry run).
    pub created_at: String,
    /// The run's page, for people.
    pub html_url: String,
}

impl WorkflowRun {
    fn from_json(r: &serde_json::Value) -> WorkflowRun {
        let s = |p: &str| {
            r.pointer(p)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        WorkflowRun {
            id: r["id"].as_u64().unwrap_or_default(),
            name: s("/name"),
            head_sha: s("/head_sha"),
            head_branch: s("/head_branch"),
            path: s("/path"),
            event: s("/event"),
            head_repository: s("/head_repository/full_name"),
            created_at: s("/created_at"),
            html_url: s("/html_url"),
        }
    }

    /// Whether this is a green build of `workflow` (file name) from a push to `branch` of
    /// `repo` itself. GitHub's query filters say the same; checking again costs nothing and
    /// doesn't depend on a filter being honoured.
    pub fn is_push_build_of(&self, repo: &Repo, workflow: &str, branch: &str) -> bool {
        let file = self.path.rsplit('/').next().unwrap_or_default();
        self.event == "push"
            && self.head_branch == branch
            && self.head_repository.eq_ignore_ascii_case(&repo.to_string())
            && (file == workflow || workflow.bytes().all(|b| b.is_ascii_digit()))
    }
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

    /// The latest status of `context` on `sha`, as `(state, description)`, from the combined
    /// status (GitHub keeps the newest per context there).
    pub async fn status_of(
        &self,
        repo: &Repo,
        sha: &str,
        context: &str,
    ) -> Result<Option<(String, String)>> {
        let v = self
            .call("GET", &format!("/repos/{repo}/commits/{sha}/status"), None)
            .await?;
        Ok(v["statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["context"] == context)
            .map(|s| {
                let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                (text("state"), text("description"))
            }))
    }

    /// The newest successful run of `workflow` (its file name, e.g. `ci.yml`, or its id) from
    /// a push to `branch` of `repo` itself: not another workflow's, not a pull request's, not a
    /// fork's. Looks at the newest 100 matching runs.
    pub async fn latest_successful_run(
        &self,
        repo: &Repo,
        workflow: &str,
        branch: &str,
    ) -> Result<Option<WorkflowRun>> {
        if !is_workflow_id(workflow) {
            return Err(GhError::Transport {
                method: "GET".into(),
                path: format!("/repos/{repo}/actions/workflows/…/runs"),
                message: format!("`{workflow}` is not a workflow file name (like ci.yml) or id"),
            });
        }
        let query = serde_urlencoded::to_string([
            ("branch", branch),
            ("event", "push"),
            ("status", "success"),
            ("per_page", "100"),
        ])
        .unwrap_or_default();
        let v = self
            .call(
                "GET",
                &format!("/repos/{repo}/actions/workflows/{workflow}/runs?{query}"),
                None,
            )
            .await?;
        Ok(v["workflow_runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["conclusion"] == "success")
            .map(WorkflowRun::from_json)
            .find(|r| r.is_push_build_of(repo, workflow, branch)))
    }
}

/// A workflow as GitHub's URLs name it: its file name under `.github/workflows/` (`ci.yml`) or
/// its numeric id.
pub fn is_workflow_id(workflow: &str) -> bool {
    let file = std::path::Path::new(workflow)
        .extension()
        .is_some_and(|e| e == "yml" || e == "yaml");
    let id = !workflow.is_empty() && workflow.bytes().all(|b| b.is_ascii_digit());
    (file || id)
        && !workflow.starts_with('.')
        && workflow
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(path: &str, event: &str, branch: &str, head: &str) -> WorkflowRun {
        WorkflowRun {
            id: 1,
            name: "ci".into(),
            head_sha: "abc".into(),
            head_branch: branch.into(),
            path: path.into(),
            event: event.into(),
            head_repository: head.into(),
            created_at: String::new(),
            html_url: String::new(),
        }
    }

    #[test]
    fn only_a_push_build_of_the_workflow_in_the_repo_itself_counts() {
        let repo = Repo::parse("acme/api").unwrap();
        let ok = run(".github/workflows/ci.yml", "push", "main", "acme/api");
        assert!(ok.is_push_build_of(&repo, "ci.yml", "main"));
        assert!(ok.is_push_build_of(&repo, "4242", "main"), "by id");
        assert!(!ok.is_push_build_of(&repo, "release.yml", "main"));
        assert!(!ok.is_push_build_of(&repo, "ci.yml", "develop"));
        let pr = run(
            ".github/workflows/ci.yml",
            "pull_request",
            "main",
            "acme/api",
        );
        assert!(!pr.is_push_build_of(&repo, "ci.yml", "main"));
        let fork = run(".github/workflows/ci.yml", "push", "main", "mallory/api");
        assert!(!fork.is_push_build_of(&repo, "ci.yml", "main"));
    }

    #[test]
    fn workflow_ids_are_file_names_or_numbers() {
        for ok in ["ci.yml", "build-image.yaml", "1234"] {
            assert!(is_workflow_id(ok), "{ok}");
        }
        for bad in [
            "",
            "ci",
            "../ci.yml",
            "a/ci.yml",
            "ci.yml?x=1",
            ".yml",
            "ci .yml",
        ] {
            assert!(!is_workflow_id(bad), "{bad}");
        }
    }
}
