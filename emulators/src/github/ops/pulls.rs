//! Pull requests and reviews: open, update, review, dismiss, merge.

use chrono::Utc;

use super::super::git;
use super::super::state::{Pull, Review, State};
use super::super::webhooks;
use super::{ApiError, git_of, ref_updated, repo_of};

/// Recomputes a pull request's base tip, own commits and diff stats from the repository.
pub(crate) fn recompute(g: &git::Repo, p: &mut Pull) {
    if let Some(base) = g
        .ref_value(&format!("refs/heads/{}", p.base_ref))
        .filter(|_| !p.merged)
    {
        p.base_sha = base;
    }
    if p.merged {
        return;
    }
    let mut own = g.range(Some(&p.base_sha), &p.head_sha, 250);
    own.reverse();
    p.commit_shas = own;
    let from = g
        .merge_base(&p.base_sha, &p.head_sha)
        .unwrap_or_else(|| p.base_sha.clone());
    let (add, del, files) = g.diff_stat(&from, &p.head_sha);
    p.additions = add;
    p.deletions = del;
    p.changed_files = files;
}

pub(crate) fn emit_pull(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    action: &str,
    sender: &str,
    before: Option<&str>,
) {
    let payload = st
        .repo(owner, name)
        .and_then(|r| Some((r, r.pulls.get(&number)?)))
        .map(|(r, p)| webhooks::pull_request(st, r, p, action, sender, before));
    if let Some(payload) = payload {
        st.emit("pull_request", payload);
    }
}

pub(crate) fn emit_review(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    review_id: u64,
    action: &str,
    sender: &str,
) {
    let payload = st.repo(owner, name).and_then(|r| {
        let p = r.pulls.get(&number)?;
        let review = p.reviews.iter().find(|x| x.id == review_id)?;
        Some(webhooks::pull_request_review(
            st, r, p, review, action, sender,
        ))
    });
    if let Some(payload) = payload {
        st.emit("pull_request_review", payload);
    }
}

/// `POST /repos/{o}/{r}/pulls`: `head` is `branch` or `owner:branch`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open(
    st: &mut State,
    owner: &str,
    name: &str,
    head: &str,
    base: &str,
    title: &str,
    body: Option<&str>,
    draft: bool,
    login: &str,
) -> Result<u64, ApiError> {
    let g = git_of(st, owner, name)?;
    let head_branch = match head.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(owner) => b,
        Some(_) => return Err(ApiError::validation("PullRequest", "head", "invalid", None)),
        None => head,
    };
    let Some(head_sha) = g.ref_value(&format!("refs/heads/{head_branch}")) else {
        return Err(ApiError::validation("PullRequest", "head", "invalid", None));
    };
    let Some(base_sha) = g.ref_value(&format!("refs/heads/{base}")) else {
        return Err(ApiError::validation("PullRequest", "base", "invalid", None));
    };
    if title.trim().is_empty() {
        return Err(ApiError::validation(
            "PullRequest",
            "title",
            "missing_field",
            None,
        ));
    }
    let repo = repo_of(st, owner, name)?;
    if repo
        .pulls
        .values()
        .any(|p| p.open && p.head_ref == head_branch && p.base_ref == base)
    {
        let msg = format!(
            "A pull request already exists for {}:{head_branch}.",
            repo.owner
        );
        return Err(ApiError::validation(
            "PullRequest",
            "head",
            "custom",
            Some(&msg),
        ));
    }
    if g.is_ancestor(&head_sha, &base_sha) {
        let msg = format!("No commits between {base} and {head_branch}");
        return Err(ApiError::validation(
            "PullRequest",
            "base",
            "custom",
            Some(&msg),
        ));
    }
    st.account(login);
    let id = 10_000_000 + st.next();
    let now = Utc::now();
    let Some(repo) = st.repo_mut(owner, name) else {
        return Err(ApiError::not_found());
    };
    let number = repo.next_number;
    repo.next_number += 1;
    let mut pull = Pull {
        number,
        id,
        title: title.to_string(),
        body: body.map(str::to_string),
        user: login.to_string(),
        open: true,
        draft,
        merged: false,
        merged_by: None,
        merged_at: None,
        merge_commit_sha: None,
        head_ref: head_branch.to_string(),
        head_sha,
        base_ref: base.to_string(),
        base_sha,
        commit_shas: Vec::new(),
        additions: 0,
        deletions: 0,
        changed_files: 0,
        labels: Vec::new(),
        reviews: Vec::new(),
        created_at: now,
        updated_at: now,
        closed_at: None,
    };
    recompute(&g, &mut pull);
    repo.pulls.insert(number, pull);
    emit_pull(st, owner, name, number, "opened", login, None);
    Ok(number)
}

/// `PATCH /repos/{o}/{r}/pulls/{n}`: title, body, base, state (`open`/`closed`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    title: Option<&str>,
    body: Option<&str>,
    state: Option<&str>,
    base: Option<&str>,
    login: &str,
) -> Result<(), ApiError> {
    let g = git_of(st, owner, name)?;
    if base.is_some_and(|b| g.ref_value(&format!("refs/heads/{b}")).is_none()) {
        return Err(ApiError::validation("PullRequest", "base", "invalid", None));
    }
    st.account(login);
    let repo = st.repo_mut(owner, name).ok_or_else(ApiError::not_found)?;
    let p = repo
        .pulls
        .get_mut(&number)
        .ok_or_else(ApiError::not_found)?;
    let mut action = None;
    match state {
        Some("closed") if p.open => {
            p.open = false;
            p.closed_at = Some(Utc::now());
            action = Some("closed");
        }
        Some("open") if !p.open => {
            if p.merged {
                return Err(ApiError::validation(
                    "PullRequest",
                    "state",
                    "custom",
                    Some("Cannot reopen a merged pull request"),
                ));
            }
            let Some(head) = g.ref_value(&format!("refs/heads/{}", p.head_ref)) else {
                return Err(ApiError::validation(
                    "PullRequest",
                    "state",
                    "custom",
                    Some("Cannot reopen a pull request whose head branch was deleted"),
                ));
            };
            p.open = true;
            p.closed_at = None;
            p.head_sha = head;
            action = Some("reopened");
        }
        Some("open" | "closed") | None => {}
        Some(_) => {
            return Err(ApiError::validation(
                "PullRequest",
                "state",
                "invalid",
                None,
            ));
        }
    }
    if let Some(t) = title {
        p.title = t.to_string();
    }
    if let Some(b) = body {
        p.body = Some(b.to_string());
    }
    if let Some(b) = base {
        p.base_ref = b.to_string();
    }
    p.updated_at = Utc::now();
    recompute(&g, p);
    if let Some(action) = action {
        emit_pull(st, owner, name, number, action, login, None);
    }
    Ok(())
}

/// `POST /repos/{o}/{r}/pulls/{n}/reviews`. `event`: `APPROVE`, `REQUEST_CHANGES`, `COMMENT`, or
/// none (a pending review).
#[allow(clippy::too_many_arguments)]
pub(crate) fn review(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    login: &str,
    event: Option<&str>,
    body: &str,
    commit_id: Option<&str>,
) -> Result<u64, ApiError> {
    let g = git_of(st, owner, name)?;
    let p = repo_of(st, owner, name)?
        .pulls
        .get(&number)
        .ok_or_else(ApiError::not_found)?;
    let state = match event {
        Some("APPROVE") => "APPROVED",
        Some("REQUEST_CHANGES") => "CHANGES_REQUESTED",
        Some("COMMENT") => "COMMENTED",
        None => "PENDING",
        Some(other) => {
            return Err(ApiError::unprocessable(&format!(
                "Unexpected event {other:?}: expected APPROVE, REQUEST_CHANGES or COMMENT"
            )));
        }
    };
    if p.user == login {
        match state {
            "APPROVED" => {
                return Err(ApiError::unprocessable(
                    "Review Can not approve your own pull request",
                ));
            }
            "CHANGES_REQUESTED" => {
                return Err(ApiError::unprocessable(
                    "Review Can not request changes on your own pull request",
                ));
            }
            _ => {}
        }
    }
    if matches!(state, "CHANGES_REQUESTED" | "COMMENTED") && body.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "Review body is required when using the REQUEST_CHANGES or COMMENT event",
        ));
    }
    let commit = match commit_id {
        Some(c) => match g.resolve(c) {
            Some(full) if full.starts_with(&c.to_ascii_lowercase()) => full,
            _ => {
                return Err(ApiError::unprocessable(
                    "Review commit_id is not part of the pull request",
                ));
            }
        },
        None => p.head_sha.clone(),
    };
    st.account(login);
    let id = 20_000_000 + st.next();
    let submitted = state != "PENDING";
    let repo = st.repo_mut(owner, name).ok_or_else(ApiError::not_found)?;
    let p = repo
        .pulls
        .get_mut(&number)
        .ok_or_else(ApiError::not_found)?;
    p.reviews.push(Review {
        id,
        user: login.to_string(),
        body: body.to_string(),
        state: state.to_string(),
        commit_id: commit,
        submitted_at: submitted.then(Utc::now),
    });
    p.updated_at = Utc::now();
    if submitted {
        emit_review(st, owner, name, number, id, "submitted", login);
    }
    Ok(id)
}

/// `PUT /repos/{o}/{r}/pulls/{n}/reviews/{id}/dismissals`.
pub(crate) fn dismiss(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    review_id: u64,
    login: &str,
) -> Result<(), ApiError> {
    st.account(login);
    let repo = st.repo_mut(owner, name).ok_or_else(ApiError::not_found)?;
    let p = repo
        .pulls
        .get_mut(&number)
        .ok_or_else(ApiError::not_found)?;
    let r = p
        .reviews
        .iter_mut()
        .find(|r| r.id == review_id)
        .ok_or_else(ApiError::not_found)?;
    match r.state.as_str() {
        "APPROVED" | "CHANGES_REQUESTED" => r.state = "DISMISSED".to_string(),
        "PENDING" => {
            return Err(ApiError::unprocessable(
                "Can not dismiss a pending pull request review",
            ));
        }
        _ => {
            return Err(ApiError::unprocessable(&format!(
                "Can not dismiss a {} pull request review",
                r.state.to_ascii_lowercase()
            )));
        }
    }
    emit_review(st, owner, name, number, review_id, "dismissed", login);
    Ok(())
}

/// Whether the pull request merges cleanly into its base now.
pub(crate) fn mergeable(st: &State, owner: &str, name: &str, p: &Pull) -> Option<bool> {
    if !p.open {
        return None;
    }
    let g = git_of(st, owner, name).ok()?;
    let base = g.ref_value(&format!("refs/heads/{}", p.base_ref))?;
    Some(g.merge_tree(&base, &p.head_sha).is_ok())
}

/// What a merge request asked for.
#[derive(Debug, Default)]
pub(crate) struct MergeRequest<'a> {
    pub(crate) sha: Option<&'a str>,
    pub(crate) method: Option<&'a str>,
    pub(crate) title: Option<&'a str>,
    pub(crate) message: Option<&'a str>,
}

/// `PUT /repos/{o}/{r}/pulls/{n}/merge`: a real merge (or squash) commit on the base branch.
pub(crate) fn merge(
    st: &mut State,
    owner: &str,
    name: &str,
    number: u64,
    login: &str,
    req: &MergeRequest<'_>,
) -> Result<String, ApiError> {
    let g = git_of(st, owner, name)?;
    let repo = repo_of(st, owner, name)?;
    let p = repo.pulls.get(&number).ok_or_else(ApiError::not_found)?;
    if !p.open || p.merged {
        return Err(ApiError::new(405, "Pull Request is not mergeable"));
    }
    if req.sha.is_some_and(|sha| sha != p.head_sha) {
        return Err(ApiError::new(
            409,
            "Head branch was modified. Review and try the merge again.",
        ));
    }
    for context in &repo.required_statuses {
        let newest = repo
            .statuses
            .iter()
            .filter(|s| s.sha == p.head_sha && &s.context == context)
            .max_by_key(|s| s.id);
        match newest.map(|s| s.state.as_str()) {
            Some("success") => {}
            None | Some("pending") => {
                return Err(ApiError::new(
                    405,
                    format!("Required status check \"{context}\" is expected."),
                ));
            }
            Some(_) => {
                return Err(ApiError::new(
                    405,
                    format!("Required status check \"{context}\" is failing."),
                ));
            }
        }
    }
    let head_sha = p.head_sha.clone();
    let pr_title = p.title.clone();
    let default_merge_title = format!(
        "Merge pull request #{number} from {}/{}",
        repo.owner, p.head_ref
    );
    let base_ref = format!("refs/heads/{}", p.base_ref);
    let Some(base_tip) = g.ref_value(&base_ref) else {
        return Err(ApiError::new(405, "Base branch was deleted"));
    };
    let Ok(tree) = g.merge_tree(&base_tip, &head_sha) else {
        return Err(ApiError::new(405, "Pull Request is not mergeable"));
    };
    let method = req.method.unwrap_or("merge");
    let (default_title, parents): (String, Vec<&str>) = match method {
        "merge" => (default_merge_title, vec![&base_tip, &head_sha]),
        "squash" => (format!("{pr_title} (#{number})"), vec![&base_tip]),
        _ => {
            return Err(ApiError::new(
                405,
                "Rebase merges are not allowed on this repository.",
            ));
        }
    };
    let title = req.title.map_or(default_title, str::to_string);
    let body = match (req.message, method) {
        (Some(m), _) => m.to_string(),
        (None, "merge") => pr_title,
        (None, _) => String::new(),
    };
    let message = if body.is_empty() {
        format!("{title}\n")
    } else {
        format!("{title}\n\n{body}\n")
    };
    let email = st.account(login).email();
    let sha = g
        .commit_tree(
            &tree,
            &parents,
            &message,
            (login, &email),
            ("GitHub", "noreply@github.com"),
        )
        .map_err(|e| ApiError::new(500, format!("merge failed: {e}")))?;
    if g.update_ref(&base_ref, &sha, Some(&base_tip)).is_err() {
        return Err(ApiError::new(
            409,
            "Base branch was modified. Review and try the merge again.",
        ));
    }
    let now = Utc::now();
    if let Some(p) = st
        .repo_mut(owner, name)
        .and_then(|r| r.pulls.get_mut(&number))
    {
        p.open = false;
        p.merged = true;
        p.merged_by = Some(login.to_string());
        p.merged_at = Some(now);
        p.closed_at = Some(now);
        p.updated_at = now;
        p.merge_commit_sha = Some(sha.clone());
    }
    ref_updated(st, owner, name, &base_ref, &base_tip, &sha, login);
    emit_pull(st, owner, name, number, "closed", login, None);
    Ok(sha)
}

/// Pull requests associated with commit `sha`: merged by it, or holding it among their commits.
pub(crate) fn for_commit(
    st: &State,
    owner: &str,
    name: &str,
    sha: &str,
) -> Result<Vec<u64>, ApiError> {
    let g = git_of(st, owner, name)?;
    let Some(full) = g.resolve(sha) else {
        return Err(ApiError::unprocessable(&format!(
            "No commit found for SHA: {sha}"
        )));
    };
    let repo = repo_of(st, owner, name)?;
    Ok(repo
        .pulls
        .values()
        .filter(|p| {
            p.merge_commit_sha.as_deref() == Some(full.as_str())
                || p.head_sha == full
                || p.commit_shas.contains(&full)
        })
        .map(|p| p.number)
        .collect())
}
