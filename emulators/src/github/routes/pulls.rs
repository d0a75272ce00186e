//! Pull requests and reviews.

use serde_json::Value;

use super::super::json::{self, PullShape};
use super::super::ops::pulls::{self as ops, MergeRequest};
use super::super::ops::{ApiError, git_of, repo_of};
use super::super::state::State;
use super::{Ctx, Outcome, Reply, paginate};

/// One pull request as `GET /pulls/{n}` returns it (with `mergeable` computed).
pub(crate) fn render(st: &State, owner: &str, name: &str, number: u64) -> Result<Value, ApiError> {
    let repo = repo_of(st, owner, name)?;
    let p = repo.pulls.get(&number).ok_or_else(ApiError::not_found)?;
    let mergeable = ops::mergeable(st, owner, name, p);
    Ok(json::pull(st, repo, p, PullShape::Full(mergeable)))
}

pub(super) fn list(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let state = cx.query("state").unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return Err(ApiError::validation(
            "PullRequest",
            "state",
            "invalid",
            None,
        ));
    }
    let head = cx.query("head").map(|h| match h.split_once(':') {
        Some((o, b)) => (Some(o.to_ascii_lowercase()), b.to_string()),
        None => (None, h.to_string()),
    });
    let base = cx.query("base");
    let mut pulls: Vec<_> = repo
        .pulls
        .values()
        .filter(|p| match state {
            "open" => p.open,
            "closed" => !p.open,
            _ => true,
        })
        .filter(|p| {
            head.as_ref().is_none_or(|(o, b)| {
                &p.head_ref == b
                    && o.as_ref()
                        .is_none_or(|o| *o == repo.owner.to_ascii_lowercase())
            })
        })
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    match (cx.query("sort").unwrap_or("created"), cx.query("direction")) {
        ("updated", dir) => {
            pulls.sort_by_key(|p| p.updated_at);
            if dir != Some("asc") {
                pulls.reverse();
            }
        }
        (_, dir) => {
            pulls.sort_by_key(|p| p.number);
            if dir != Some("asc") {
                pulls.reverse();
            }
        }
    }
    let items: Vec<Value> = pulls
        .into_iter()
        .map(|p| json::pull(st, repo, p, PullShape::Simple))
        .collect();
    Ok(paginate(cx, &st.base_url, items))
}

pub(super) fn create(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    let head = cx.required("PullRequest", "head")?;
    let base = cx.required("PullRequest", "base")?;
    let title = cx.required("PullRequest", "title")?;
    let draft = cx
        .body
        .get("draft")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let number = ops::open(
        st,
        cx.owner,
        cx.repo,
        head,
        base,
        title,
        cx.str_field("body"),
        draft,
        cx.login(),
    )?;
    Ok(Reply::created(render(st, cx.owner, cx.repo, number)?))
}

pub(super) fn get(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    Ok(Reply::ok(render(st, cx.owner, cx.repo, number)?))
}

pub(super) fn update(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    ops::update(
        st,
        cx.owner,
        cx.repo,
        number,
        cx.str_field("title"),
        cx.str_field("body"),
        cx.str_field("state"),
        cx.str_field("base"),
        cx.login(),
    )?;
    Ok(Reply::ok(render(st, cx.owner, cx.repo, number)?))
}

pub(super) fn merge(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let req = MergeRequest {
        sha: cx.str_field("sha"),
        method: cx.str_field("merge_method"),
        title: cx.str_field("commit_title"),
        message: cx.str_field("commit_message"),
    };
    let sha = ops::merge(st, cx.owner, cx.repo, number, cx.login(), &req)?;
    Ok(Reply::ok(serde_json::json!({
        "sha": sha,
        "merged": true,
        "message": "Pull Request successfully merged",
    })))
}

pub(super) fn is_merged(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    match repo.pulls.get(&number) {
        Some(p) if p.merged => Ok(Reply::no_content()),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET …/pulls/{n}/commits`: the PR's own commits, oldest first (GitHub lists at most 250).
pub(super) fn list_commits(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let p = repo.pulls.get(&number).ok_or_else(ApiError::not_found)?;
    let items: Vec<Value> = p
        .commit_shas
        .iter()
        .rev()
        .take(250)
        .filter_map(|sha| g.commit_info(sha))
        .map(|c| json::commit(st, repo, &c))
        .collect();
    Ok(paginate(cx, &st.base_url, items))
}

pub(super) fn list_reviews(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let p = repo.pulls.get(&number).ok_or_else(ApiError::not_found)?;
    let me = cx.login();
    let items: Vec<Value> = p
        .reviews
        .iter()
        // A pending review is visible to its author only.
        .filter(|r| r.state != "PENDING" || r.user == me)
        .map(|r| json::review(st, repo, p, r, false))
        .collect();
    Ok(paginate(cx, &st.base_url, items))
}

fn render_review(st: &State, cx: &Ctx<'_>, number: u64, id: u64) -> Result<Value, ApiError> {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let p = repo.pulls.get(&number).ok_or_else(ApiError::not_found)?;
    let r = p
        .reviews
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(json::review(st, repo, p, r, false))
}

pub(super) fn create_review(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let body = cx.str_field("body").unwrap_or("");
    let id = ops::review(
        st,
        cx.owner,
        cx.repo,
        number,
        cx.login(),
        cx.str_field("event"),
        body,
        cx.str_field("commit_id"),
    )?;
    Ok(Reply::ok(render_review(st, cx, number, id)?))
}

pub(super) fn dismiss_review(st: &mut State, cx: &Ctx<'_>, number: u64, id: u64) -> Outcome {
    if cx.str_field("message").is_none_or(str::is_empty) {
        return Err(ApiError::validation(
            "PullRequestReview",
            "message",
            "missing_field",
            None,
        ));
    }
    ops::dismiss(st, cx.owner, cx.repo, number, id, cx.login())?;
    Ok(Reply::ok(render_review(st, cx, number, id)?))
}

pub(super) fn for_commit(st: &mut State, cx: &Ctx<'_>, sha: &str) -> Outcome {
    let numbers = ops::for_commit(st, cx.owner, cx.repo, sha)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let items: Vec<Value> = numbers
        .iter()
        .rev()
        .filter_map(|n| repo.pulls.get(n))
        .map(|p| json::pull(st, repo, p, PullShape::Simple))
        .collect();
    Ok(paginate(cx, &st.base_url, items))
}
