//! What GitHub Actions tells a job through its environment.

use std::fmt;
use std::path::PathBuf;

use slipway_infra::github::Repo;

/// The variables the runner reads. Tokens never print.
#[derive(Clone)]
pub struct ActionsEnv {
    pub repository: Repo,
    /// The pushed (merge) commit.
    pub sha: String,
    /// `refs/heads/<branch>` the push went to.
    pub git_ref: String,
    pub run_id: String,
    pub run_attempt: String,
    pub api_url: String,
    pub server_url: String,
    /// The checkout of `sha`.
    pub workspace: PathBuf,
    /// `GITHUB_TOKEN`: PR comments, statuses, reads.
    pub token: String,
    /// `SLIPWAY_LOCK_TOKEN`: a token with `contents: write` for deleting lock refs (else `token`).
    pub lock_token: Option<String>,
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` and `_TOKEN`, present when the job has `id-token: write`.
    pub id_token_request: Option<(String, String)>,
    pub workflow_ref: Option<String>,
    pub runner_temp: Option<PathBuf>,
    /// `GITHUB_STEP_SUMMARY`, a file the job summary is appended to.
    pub step_summary: Option<PathBuf>,
}

impl fmt::Debug for ActionsEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionsEnv")
            .field("repository", &self.repository)
            .field("sha", &self.sha)
            .field("git_ref", &self.git_ref)
            .field("run_id", &self.run_id)
            .field("workspace", &self.workspace)
            .field("token", &"***")
            .field(
                "id_token_request",
                &self.id_token_request.as_ref().map(|(u, _)| (u, "***")),
            )
            .finish_non_exhaustive()
    }
}

/// (name, what it is) for the required variables, in the order they are reported.
const REQUIRED: &[(&str, &str)] = &[
    ("GITHUB_REPOSITORY", "owner/name of the GitOps repository"),
    ("GITHUB_SHA", "the pushed merge commit"),
    ("GITHUB_REF", "the pushed ref, refs/heads/<default branch>"),
    ("GITHUB_RUN_ID", "the workflow run"),
    ("GITHUB_WORKSPACE", "the checkout of GITHUB_SHA"),
    (
        "GITHUB_TOKEN",
        "pass `env: GITHUB_TOKEN: ${{ github.token }}` to the step",
    ),
];

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ActionsEnv {
    /// Read the environment through `get`. `Err` lists every missing or malformed variable.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<ActionsEnv, String> {
        let val = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|(k, _)| val(k).is_none())
            .map(|(k, why)| format!("{k} ({why})"))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "missing environment variables: {}. slipway-runner runs inside a GitHub Actions job; see the README's \"The runner\" section",
                missing.join(", ")
            ));
        }
        let req = |k: &str| val(k).unwrap_or_default();
        let repository = Repo::parse(&req("GITHUB_REPOSITORY")).ok_or_else(|| {
            format!(
                "GITHUB_REPOSITORY `{}` is not owner/name",
                req("GITHUB_REPOSITORY")
            )
        })?;
        let sha = req("GITHUB_SHA").to_ascii_lowercase();
        if !is_sha(&sha) {
            return Err(format!("GITHUB_SHA `{sha}` is not a 40-digit commit sha"));
        }
        let id_token_request = match (
            val("ACTIONS_ID_TOKEN_REQUEST_URL"),
            val("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) {
            (Some(u), Some(t)) => Some((u, t)),
            _ => None,
        };
        Ok(ActionsEnv {
            repository,
            sha,
            git_ref: req("GITHUB_REF"),
            run_id: req("GITHUB_RUN_ID"),
            run_attempt: val("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into()),
            api_url: val("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            server_url: val("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
            workspace: PathBuf::from(req("GITHUB_WORKSPACE")),
            token: req("GITHUB_TOKEN"),
            lock_token: val("SLIPWAY_LOCK_TOKEN"),
            id_token_request,
            workflow_ref: val("GITHUB_WORKFLOW_REF"),
            runner_temp: val("RUNNER_TEMP").map(PathBuf::from),
            step_summary: val("GITHUB_STEP_SUMMARY").map(PathBuf::from),
        })
    }

    /// A link to this run.
    pub fn run_url(&self) -> String {
        format!(
            "{}/{}/actions/runs/{}",
            self.server_url.trim_end_matches('/'),
            self.repository,
            self.run_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn all_missing_variables_are_named_at_once() {
        let err =
            ActionsEnv::from_lookup(&lookup(&[("GITHUB_REPOSITORY", "acme/gitops")])).unwrap_err();
        for k in [
            "GITHUB_SHA",
            "GITHUB_REF",
            "GITHUB_RUN_ID",
            "GITHUB_WORKSPACE",
            "GITHUB_TOKEN",
        ] {
            assert!(err.contains(k), "{err}");
        }
        assert!(!err.contains("GITHUB_REPOSITORY ("));
    }

    #[test]
    fn a_complete_environment_parses_and_hides_tokens() {
        let sha = "a".repeat(40);
        let env = ActionsEnv::from_lookup(&lookup(&[
            ("GITHUB_REPOSITORY", "acme/gitops"),
            ("GITHUB_SHA", &sha),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_WORKSPACE", "/w"),
            ("GITHUB_TOKEN", "ghs_secret"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://x/?api-version=2.0"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "req-secret"),
        ]))
        .unwrap();
        assert_eq!(env.run_attempt, "1");
        assert_eq!(
            env.run_url(),
            "https://github.com/acme/gitops/actions/runs/42"
        );
        let shown = format!("{env:?}");
        assert!(
            !shown.contains("ghs_secret") && !shown.contains("req-secret"),
            "{shown}"
        );
        let bad = ActionsEnv::from_lookup(&lookup(&[
            ("GITHUB_REPOSITORY", "acme"),
            ("GITHUB_SHA", &sha),
            ("GITHUB_REF", "r"),
            ("GITHUB_RUN_ID", "1"),
            ("GITHUB_WORKSPACE", "/w"),
            ("GITHUB_TOKEN", "t"),
        ]));
        assert!(bad.unwrap_err().contains("owner/name"));
    }
}
