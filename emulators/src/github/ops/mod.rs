//! The emulator's domain operations, shared by the REST routes, the smart-HTTP git backend and
//! the test-facing API: each changes the state and the bare repository, then queues the webhooks
//! GitHub would send.

pub(crate) mod pulls;

use std::path::PathBuf;

use chrono::Utc;
use serde_json::{Value, json};

use super::git::{self, ZERO_SHA};
use super::state::{AccountKind, Comment, CommitStatus, Label, Repo, State, WorkflowRun, repo_key};
use super::webhooks;

pub(crate) const DOCS: &str = "https://docs.github.com/rest";

/// A REST failure: status, `message`, optional `errors`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: String,
    pub(crate) errors: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            errors: None,
        }
    }

    pub(crate) fn not_found() -> ApiError {
        ApiError::new(404, "Not Found")
    }

    /// 422 `Validation Failed` with one structured error.
    pub(crate) fn validation(
        resource: &str,
        field: &str,
        code: &str,
        message: Option<&str>,
    ) -> ApiError {
        let mut e = json!({ "resource": resource, "field": field, "code": code });
        if let Some(m) = message {
            e["message"] = json!(m);
        }
        ApiError {
            status: 422,
            message: "Validation Failed".to_string(),
            errors: Some(json!([e])),
        }
    }

    /// 422 `Unprocessable Entity` with plain-string errors (as the reviews API answers).
    pub(crate) fn unprocessable(error: &str) -> ApiError {
        ApiError {
            status: 422,
            message: "Unprocessable Entity".to_string(),
            errors: Some(json!([error])),
        }
    }

    pub(crate) fn body(&self) -> Value {
        let mut v = json!({
            "message": self.message,
            "documentation_url": DOCS,
            "status": self.status.to_string(),
        });
        if let Some(e) = &self.errors {
            v["errors"] = e.clone();
        }
        v
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)?;
        if let Some(e) = &self.errors {
            write!(f, " {e}")?;
        }
        Ok(())
    }
}

pub(crate) fn repo_of<'a>(st: &'a State, owner: &str, name: &str) -> Result<&'a Repo, ApiError> {
    st.repo(owner, name).ok_or_else(ApiError::not_found)
}

pub(crate) fn git_of(st: &State, owner: &str, name: &str) -> Result<git::Repo, ApiError> {
    Ok(git::Repo::new(&repo_of(st, owner, name)?.dir))
}

/// Creates `owner/name` with one commit of `files` on `default_branch`.
pub(crate) fn create_repo(
    st: &mut State,
    owner: &str,
    name: &str,
    default_branch: &str,
    files: &[(&str, &str)],
) -> Result<PathBuf, String> {
    if st.repo(owner, name).is_some() {
        return Err(format!("repository {owner}/{name} already exists"));
    }
    if !st.accounts.contains_key(owner) {
        st.add_account(owner, AccountKind::Organization);
    }
    let dir = st.repos_root.join(owner).join(format!("{name}.git"));
    let g = git::Repo::init(&dir, default_branch)?;
    let owner_account = st.account(owner);
    let email = owner_account.email();
    let sha = g.commit_files(None, files, "Initial commit", (owner, &email))?;
    g.update_ref(&format!("refs/heads/{default_branch}"), &sha, None)?;
    insert_repo(st, owner, name, &dir, default_branch);
    Ok(dir)
}

/// Creates `owner/name` as a copy of the existing bare repository `src` (all branches and tags;
/// the default branch is `src`'s `HEAD`). No webhooks: nothing was pushed.
pub(crate) fn import_repo(
    st: &mut State,
    owner: &str,
    name: &str,
    src: &std::path::Path,
) -> Result<PathBuf, String> {
    if st.repo(owner, name).is_some() {
        return Err(format!("repository {owner}/{name} already exists"));
    }
    if !st.accounts.contains_key(owner) {
        st.add_account(owner, AccountKind::Organization);
    }
    let dir = st.repos_root.join(owner).join(format!("{name}.git"));
    let (_, default_branch) = git::Repo::clone_bare(src, &dir)?;
    insert_repo(st, owner, name, &dir, &default_branch);
    Ok(dir)
}

fn insert_repo(
    st: &mut State,
    owner: &str,
    name: &str,
    dir: &std::path::Path,
    default_branch: &str,
) {
    let now = Utc::now();
    let id = 100_000 + st.next();
    st.repos.insert(
        repo_key(owner, name),
        Repo {
            owner: owner.to_string(),
            name: name.to_string(),
            id,
            dir: dir.to_path_buf(),
            default_branch: default_branch.to_string(),
            created_at: now,
            pushed_at: now,
            pulls: std::collections::BTreeMap::new(),
            next_number: 1,
            comments: Vec::new(),
            statuses: Vec::new(),
            runs: Vec::new(),
            labels: Vec::new(),
            reject_globs: Vec::new(),
            dismiss_stale_reviews: false,
            required_statuses: Vec::new(),
        },
    );
}

/// Everything that follows a ref change, whoever made it (REST, a git push, a merge): the
/// `push` webhook for branches and tags, and `synchronize` (with stale-review dismissal when the
/// repository asks for it) for open pull requests whose head branch it is.
pub(crate) fn ref_updated(
    st: &mut State,
    owner: &str,
    name: &str,
    refname: &str,
    before: &str,
    after: &str,
    sender: &str,
) {
    st.account(sender);
    let Some(repo) = st.repo(owner, name) else {
        return;
    };
    let g = git::Repo::new(&repo.dir);
    let forced = before != ZERO_SHA && after != ZERO_SHA && !g.is_ancestor(before, after);
    if refname.starts_with("refs/heads/") || refname.starts_with("refs/tags/") {
        let payload = webhooks::push(st, repo, refname, before, after, sender, forced);
        st.emit("push", payload);
        if let Some(r) = st.repo_mut(owner, name) {
            r.pushed_at = Utc::now();
        }
    }
    let Some(branch) = refname.strip_prefix("refs/heads/") else {
        return;
    };
    if after == ZERO_SHA {
        return;
    }
    let numbers: Vec<u64> = st
        .repo(owner, name)
        .map(|r| {
            r.pulls
                .values()
                .filter(|p| p.open && (p.head_ref == branch || p.base_ref == branch))
                .map(|p| p.number)
                .collect()
        })
        .unwrap_or_default();
    for number in numbers {
        let Some(repo) = st.repo_mut(owner, name) else {
            return;
        };
        let dismiss = repo.dismiss_stale_reviews;
        let Some(p) = repo.pulls.get_mut(&number) else {
            continue;
        };
        let is_head = p.head_ref == branch;
        let head_before = p.head_sha.clone();
        if is_head {
            p.head_sha = after.to_string();
            p.updated_at = Utc::now();
        }
        pulls::recompute(&g, p);
        if !is_head {
            continue;
        }
        let dismissed: Vec<u64> = if dismiss {
            p.reviews
                .iter_mut()
                .filter(|r| r.state == "APPROVED")
                .map(|r| {
                    r.state = "DISMISSED".to_string();
                    r.id
                })
                .collect()
        } else {
            Vec::new()
        };
        pulls::emit_pull(
            st,
            owner,
            name,
            number,
            "synchronize",
            sender,
            Some(&head_before),
        );
        for review_id in dismissed {
            pulls::emit_review(st, owner, name, number, review_id, "dismissed", sender);
        }
    }
}

/// A commit of `files` on `branch` (new branches start from the default branch) by `login`,
/// moved in directly (no hooks, no PR).
pub(crate) fn push_direct(
    st: &mut State,
    owner: &str,
    name: &str,
    branch: &str,
    files: &[(&str, &str)],
    message: &str,
    login: &str,
) -> Result<String, String> {
    let account = st.account(login);
    let g = git_of(st, owner, name).map_err(|e| e.to_string())?;
    let refname = format!("refs/heads/{branch}");
    let before = g.ref_value(&refname);
    // A new branch starts from the default branch, as one made in GitHub's UI would.
    let parent = before.clone().or_else(|| {
        st.repo(owner, name)
            .and_then(|r| g.ref_value(&format!("refs/heads/{}", r.default_branch)))
    });
    let email = account.email();
    let sha = g.commit_files(parent.as_deref(), files, message, (login, &email))?;
    g.update_ref(&refname, &sha, Some(before.as_deref().unwrap_or(ZERO_SHA)))?;
    ref_updated(
        st,
        owner,
        name,
        &refname,
        before.as_deref().unwrap_or(ZERO_SHA),
        &sha,
        login,
    );
    Ok(sha)
}

/// The pull request `number` of `owner/name`, or 404.
fn pull_exists(st: &State, owner: &str, name: &str, number: u64) -> Result<(), ApiError> {
    repo_of(st, owner, name)?
        .pulls
        .get(&number)
        .map(|_| ())
        .ok_or_else(ApiError::not_found)
}

/// GitHub's limit on issue and pull request comment bodies.
pub(crate) const COMMENT_MAX_CHARS: usize = 65_536;

pub(crate) fn add_comment(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    login: &str,
    body: &str,
) -> Result<u64, ApiError> {
    pull_exists(st, owner, name, number)?;
    if body.chars().count() > COMMENT_MAX_CHARS {
        return Err(ApiError::validation(
            "IssueComment",
            "data",
            "custom",
            Some("Body is too long (maximum is 65536 characters)"),
        ));
    }
    st.account(login);
    let id = 2_000_000 + st.next();
    let Some(repo) = st.repo_mut(owner, name) else {
        return Err(ApiError::not_found());
    };
    repo.comments.push(Comment {
        id,
        issue: number,
        user: login.to_string(),
        body: body.to_string(),
        created_at: Utc::now(),
    });
    if let Some(p) = repo.pulls.get_mut(&number) {
        p.updated_at = Utc::now();
    }
    let payload = st
        .repo(owner, name)
        .and_then(|r| Some((r, r.pulls.get(&number)?)))
        .map(|(r, p)| webhooks::issue_comment(st, r, p, id, login));
    if let Some(payload) = payload {
        st.emit("issue_comment", payload);
    }
    Ok(id)
}

/// Adds labels (created on first use) to a pull request; returns all its labels.
pub(crate) fn add_labels(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    labels: &[String],
) -> Result<Vec<String>, ApiError> {
    pull_exists(st, owner, name, number)?;
    let mut ids = Vec::new();
    for _ in labels {
        ids.push(3_000_000 + st.next());
    }
    let Some(repo) = st.repo_mut(owner, name) else {
        return Err(ApiError::not_found());
    };
    for (label, id) in labels.iter().zip(ids) {
        if !repo.labels.iter().any(|l| &l.name == label) {
            repo.labels.push(Label {
                id,
                name: label.clone(),
                color: "ededed".to_string(),
            });
        }
    }
    let p = repo
        .pulls
        .get_mut(&number)
        .ok_or_else(ApiError::not_found)?;
    for label in labels {
        if !p.labels.contains(label) {
            p.labels.push(label.clone());
        }
    }
    Ok(p.labels.clone())
}

/// `POST /repos/{o}/{r}/statuses/{sha}`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_status(
    st: &mut State,
    owner: &str,
    name: &str,
    sha: &str,
    state: &str,
    context: Option<&str>,
    description: Option<&str>,
    target_url: Option<&str>,
    login: &str,
) -> Result<u64, ApiError> {
    let g = git_of(st, owner, name)?;
    if !matches!(state, "pending" | "success" | "failure" | "error") {
        return Err(ApiError::validation(
            "Status",
            "state",
            "custom",
            Some("State is not included in the list"),
        ));
    }
    if description.is_some_and(|d| d.chars().count() > 140) {
        return Err(ApiError::validation(
            "Status",
            "description",
            "custom",
            Some("description is too long (maximum is 140 characters)"),
        ));
    }
    let Some(full) = g
        .resolve(sha)
        .filter(|full| full.starts_with(&sha.to_ascii_lowercase()))
    else {
        return Err(ApiError::unprocessable(&format!(
            "No commit found for SHA: {sha}"
        )));
    };
    st.account(login);
    let id = 4_000_000 + st.next();
    let Some(repo) = st.repo_mut(owner, name) else {
        return Err(ApiError::not_found());
    };
    repo.statuses.push(CommitStatus {
        id,
        sha: full,
        state: state.to_string(),
        context: context.unwrap_or("default").to_string(),
        description: description.map(str::to_string),
        target_url: target_url.map(str::to_string),
        creator: login.to_string(),
        created_at: Utc::now(),
    });
    let payload = st
        .repo(owner, name)
        .and_then(|r| webhooks::status(st, r, id));
    if let Some(payload) = payload {
        st.emit("status", payload);
    }
    Ok(id)
}

pub(crate) fn add_workflow_run(
    st: &mut State,
    owner: &str,
    name: &str,
    run: &super::RunSpec,
) -> Result<u64, String> {
    let head_repo = match &run.head_repository {
        Some(full) => {
            let (o, r) = full
                .split_once('/')
                .ok_or_else(|| format!("head repository `{full}` is not owner/name"))?;
            st.repo(o, r)
                .ok_or_else(|| format!("no head repository {full}"))?;
            let key = repo_key(o, r);
            (key != repo_key(owner, name)).then_some(key)
        }
        None => None,
    };
    let id = 5_000_000 + st.next();
    let repo = st
        .repo_mut(owner, name)
        .ok_or_else(|| format!("no repository {owner}/{name}"))?;
    let path = format!(".github/workflows/{}", run.workflow_file);
    let run_number = repo.runs.iter().filter(|r| r.path == path).count() as u64 + 1;
    let actor = run.actor.clone().unwrap_or_else(|| repo.owner.clone());
    repo.runs.push(WorkflowRun {
        id,
        name: run.name.clone(),
        path,
        branch: run.branch.clone(),
        head_sha: run.head_sha.clone(),
        event: run.event.clone(),
        conclusion: run.conclusion.clone(),
        actor,
        head_repo,
        run_number,
        created_at: Utc::now(),
    });
    Ok(id)
}
