//! App installation tokens, issue comments and labels, commit statuses, Actions runs.

use serde_json::{Value, json};

use super::super::auth;
use super::super::json;
use super::super::ops::{self, ApiError, git_of, repo_of};
use super::super::state::{Identity, State, iso};
use super::{Ctx, Outcome, Reply, paginate};

pub(super) fn access_token(st: &mut State, cx: &Ctx<'_>, id: &str) -> Outcome {
    let Identity::App(app_id) = cx.identity else {
        return Err(ApiError::new(401, "A JSON web token could not be decoded"));
    };
    let installation_id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
    let Some(inst) = st.installations.get(&installation_id) else {
        return Err(ApiError::not_found());
    };
    if inst.app_id != app_id {
        return Err(ApiError::not_found());
    }
    let granted = json!({
        "contents": "write", "pull_requests": "write", "issues": "write",
        "statuses": "write", "actions": "read", "metadata": "read", "checks": "write",
    });
    // A token may be limited to some of the installation's repositories (by name, in the
    // installation's account) and to some of its permissions, never widened.
    let only = match cx.body.get("repositories").and_then(Value::as_array) {
        None => None,
        Some(names) => {
            let mut keys = Vec::new();
            for n in names {
                let name = n.as_str().unwrap_or_default();
                let Some((o, r)) = inst
                    .repos
                    .iter()
                    .find(|(_, r)| r.eq_ignore_ascii_case(name))
                else {
                    return Err(ApiError::new(
                        422,
                        "There is at least one repository that does not exist or is not accessible to the parent installation.",
                    ));
                };
                keys.push(crate::github::state::repo_key(o, r));
            }
            Some(keys)
        }
    };
    let permissions = match cx.body.get("permissions").and_then(Value::as_object) {
        None => granted,
        Some(asked) => {
            for (k, v) in asked {
                let has = granted[k].as_str().unwrap_or("none");
                if !(has == "write" || (has == "read" && v == "read")) {
                    return Err(ApiError::new(
                        422,
                        "The permissions requested are not granted to this installation.",
                    ));
                }
            }
            Value::Object(asked.clone())
        }
    };
    let (token, expires_at) = auth::issue_installation_token(st, app_id, installation_id, only);
    Ok(Reply::created(json!({
        "token": token,
        "expires_at": iso(expires_at),
        "permissions": permissions,
        "repository_selection": "selected",
    })))
}

/// `GET /user`: the user a user token acts as (an installation token is refused, as on GitHub).
pub(super) fn current_user(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    match &cx.identity {
        Identity::User(login) => Ok(Reply::ok(json::user(st, login))),
        _ => Err(ApiError::new(403, "Resource not accessible by integration")),
    }
}

pub(super) fn create_comment(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let body = cx.required("IssueComment", "body")?;
    let id = ops::add_comment(st, cx.owner, cx.repo, number, cx.login(), body)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let c = repo
        .comments
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::created(json::comment(st, repo, c)))
}

pub(super) fn list_comments(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    if !repo.pulls.contains_key(&number) {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = repo
        .comments
        .iter()
        .filter(|c| c.issue == number)
        .map(|c| json::comment(st, repo, c))
        .collect();
    Ok(paginate(cx, &st.base_url, items))
}

pub(super) fn add_labels(st: &mut State, cx: &Ctx<'_>, number: u64) -> Outcome {
    // Either `{"labels": [...]}` or a bare array; entries are names or `{"name": …}`.
    let list = match &cx.body {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .get("labels")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let names: Vec<String> = list
        .iter()
        .filter_map(|v| v.as_str().or_else(|| v.get("name").and_then(Value::as_str)))
        .map(str::to_string)
        .collect();
    if names.is_empty() {
        return Err(ApiError::validation(
            "Label",
            "labels",
            "missing_field",
            None,
        ));
    }
    let all = ops::add_labels(st, cx.owner, cx.repo, number, &names)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let items: Vec<Value> = all
        .iter()
        .filter_map(|n| repo.labels.iter().find(|l| &l.name == n))
        .map(|l| json::label(st, repo, l))
        .collect();
    Ok(Reply::ok(Value::Array(items)))
}

pub(super) fn create_status(st: &mut State, cx: &Ctx<'_>, sha: &str) -> Outcome {
    let state = cx.required("Status", "state")?;
    let id = ops::create_status(
        st,
        cx.owner,
        cx.repo,
        sha,
        state,
        cx.str_field("context"),
        cx.str_field("description"),
        cx.str_field("target_url"),
        cx.login(),
    )?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let s = repo
        .statuses
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::created(json::status(st, repo, s)))
}

/// Statuses of the commit `r` names, newest first.
fn statuses_of<'a>(
    st: &'a State,
    cx: &Ctx<'_>,
    r: &str,
) -> Result<(String, Vec<&'a super::super::state::CommitStatus>), ApiError> {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let sha = g
        .resolve(r)
        .ok_or_else(|| ApiError::new(404, format!("No commit found for SHA: {r}")))?;
    let mut list: Vec<_> = repo.statuses.iter().filter(|s| s.sha == sha).collect();
    list.reverse();
    Ok((sha, list))
}

pub(super) fn list_statuses(st: &mut State, cx: &Ctx<'_>, r: &str) -> Outcome {
    let (_, list) = statuses_of(st, cx, r)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let items: Vec<Value> = list
        .into_iter()
        .map(|s| json::status(st, repo, s))
        .collect();
    Ok(paginate(cx, &st.base_url, items))
}

pub(super) fn combined_status(st: &mut State, cx: &Ctx<'_>, r: &str) -> Outcome {
    let (sha, list) = statuses_of(st, cx, r)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let mut latest: Vec<&super::super::state::CommitStatus> = Vec::new();
    for s in list {
        if !latest.iter().any(|l| l.context == s.context) {
            latest.push(s);
        }
    }
    let state = if latest
        .iter()
        .any(|s| s.state == "failure" || s.state == "error")
    {
        "failure"
    } else if latest.is_empty() || latest.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    };
    let api = json::repo_api(st, repo);
    let statuses: Vec<Value> = latest
        .iter()
        .map(|s| {
            let mut v = json::status(st, repo, s);
            if let Some(o) = v.as_object_mut() {
                o.remove("creator");
                o.insert("required".to_string(), Value::Bool(false));
            }
            v
        })
        .collect();
    Ok(Reply::ok(json!({
        "state": state,
        "statuses": statuses,
        "sha": sha,
        "total_count": latest.len(),
        "repository": json::repo(st, repo),
        "commit_url": format!("{api}/commits/{sha}"),
        "url": format!("{api}/commits/{sha}/status"),
    })))
}

/// `GET /repos/{o}/{r}/actions/runs`.
pub(super) fn list_runs(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    runs(st, cx, None)
}

/// `GET /repos/{o}/{r}/actions/workflows/{workflow_id}/runs`: `workflow_id` is the workflow's
/// id or its file name (`ci.yml`). A workflow is known by its runs or by its file on the
/// default branch; an unknown one is 404, as on GitHub.
pub(super) fn list_workflow_runs(st: &mut State, cx: &Ctx<'_>, workflow: &str) -> Outcome {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let has_file = !workflow.contains('/')
        && git_of(st, cx.owner, cx.repo)?
            .file(
                &repo.default_branch,
                &format!(".github/workflows/{workflow}"),
            )
            .is_some();
    let known = has_file
        || repo
            .runs
            .iter()
            .any(|r| r.file_name() == workflow || r.workflow_id().to_string() == workflow);
    if !known {
        return Err(ApiError::not_found());
    }
    runs(st, cx, Some(workflow))
}

/// Runs newest first, filtered as GitHub documents: `actor`, `branch`, `event`, `status` (a
/// status or a conclusion; every emulated run is `completed`), `head_sha` and
/// `check_suite_id`; `per_page` and `page` with a `Link` header.
fn runs(st: &mut State, cx: &Ctx<'_>, workflow: Option<&str>) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let status = cx.query("status");
    let eq = |key: &str, value: &str| cx.query(key).is_none_or(|q| q == value);
    let mut runs: Vec<_> = repo
        .runs
        .iter()
        .filter(|r| workflow.is_none_or(|w| r.file_name() == w || r.workflow_id().to_string() == w))
        .filter(|r| eq("actor", &r.actor) && eq("branch", &r.branch) && eq("event", &r.event))
        .filter(|r| eq("head_sha", &r.head_sha) && eq("check_suite_id", &r.id.to_string()))
        .filter(|r| match status {
            None | Some("completed") => true,
            Some("queued" | "in_progress" | "requested" | "waiting" | "pending") => false,
            Some(conclusion) => r.conclusion == conclusion,
        })
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    let total = runs.len();
    let mut reply = paginate(
        cx,
        &st.base_url,
        runs.iter()
            .map(|r| json::workflow_run(st, repo, r, g.commit_info(&r.head_sha).as_ref()))
            .collect(),
    );
    let page = reply.body.take().unwrap_or(Value::Array(Vec::new()));
    reply.body = Some(json!({ "total_count": total, "workflow_runs": page }));
    Ok(reply)
}
