//! JSON representations, shaped after GitHub's REST response schemas and webhook payload schemas
//! (see `tests/fixtures/github/`). Webhook schemas forbid unknown properties, so the shared
//! shapes (users, repositories, pulls) hold exactly the webhook properties; REST responses add
//! what REST requires on top.

use serde_json::{Value, json};

use super::git::CommitInfo;
use super::state::{
    Account, AccountKind, Comment, CommitStatus, Label, Pull, Repo, Review, State, WorkflowRun,
    iso, node_id, node_id_of,
};

/// The account for `login` (a synthetic user if it was never seen).
pub(crate) fn account(st: &State, login: &str) -> Account {
    st.accounts.get(login).cloned().unwrap_or(Account {
        login: login.to_string(),
        id: 1,
        kind: AccountKind::User,
    })
}

/// A user (webhook `user`, REST `simple-user`).
pub(crate) fn user(st: &State, login: &str) -> Value {
    let a = account(st, login);
    let b = &st.base_url;
    // Bots' logins end in `[bot]`, percent-encoded in URLs as GitHub does.
    let l = &a.login.replace('[', "%5B").replace(']', "%5D");
    let kind = a.kind.as_str();
    let html = match a.login.strip_suffix("[bot]") {
        Some(slug) => format!("{b}/apps/{slug}"),
        None => format!("{b}/{l}"),
    };
    json!({
        "login": a.login,
        "id": a.id,
        "node_id": node_id(kind, a.id),
        "avatar_url": format!("{b}/avatars/u/{}?v=4", a.id),
        "gravatar_id": "",
        "url": format!("{b}/users/{l}"),
        "html_url": html,
        "followers_url": format!("{b}/users/{l}/followers"),
        "following_url": format!("{b}/users/{l}/following{{/other_user}}"),
        "gists_url": format!("{b}/users/{l}/gists{{/gist_id}}"),
        "starred_url": format!("{b}/users/{l}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{b}/users/{l}/subscriptions"),
        "organizations_url": format!("{b}/users/{l}/orgs"),
        "repos_url": format!("{b}/users/{l}/repos"),
        "events_url": format!("{b}/users/{l}/events{{/privacy}}"),
        "received_events_url": format!("{b}/users/{l}/received_events"),
        "type": kind,
        "site_admin": false,
    })
}

pub(crate) fn author_association(repo: &Repo, login: &str) -> &'static str {
    if login.eq_ignore_ascii_case(&repo.owner) {
        "OWNER"
    } else if login.ends_with("[bot]") {
        "NONE"
    } else {
        "COLLABORATOR"
    }
}

pub(crate) fn repo_api(st: &State, repo: &Repo) -> String {
    format!("{}/repos/{}/{}", st.base_url, repo.owner, repo.name)
}

pub(crate) fn repo_html(st: &State, repo: &Repo) -> String {
    format!("{}/{}/{}", st.base_url, repo.owner, repo.name)
}

/// A repository (webhook `repository`, REST `repository` / `minimal-repository`).
pub(crate) fn repo(st: &State, repo: &Repo) -> Value {
    let api = repo_api(st, repo);
    let html = repo_html(st, repo);
    let open = repo.pulls.values().filter(|p| p.open).count();
    let urls = json!({
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name(),
        "private": false,
        "owner": user(st, &repo.owner),
        "html_url": html,
        "description": null,
        "fork": false,
        "url": api,
        "forks_url": format!("{api}/forks"),
        "keys_url": format!("{api}/keys{{/key_id}}"),
        "collaborators_url": format!("{api}/collaborators{{/collaborator}}"),
        "teams_url": format!("{api}/teams"),
        "hooks_url": format!("{api}/hooks"),
        "issue_events_url": format!("{api}/issues/events{{/number}}"),
        "events_url": format!("{api}/events"),
        "assignees_url": format!("{api}/assignees{{/user}}"),
        "branches_url": format!("{api}/branches{{/branch}}"),
        "tags_url": format!("{api}/tags"),
        "blobs_url": format!("{api}/git/blobs{{/sha}}"),
        "git_tags_url": format!("{api}/git/tags{{/sha}}"),
        "git_refs_url": format!("{api}/git/refs{{/sha}}"),
        "trees_url": format!("{api}/git/trees{{/sha}}"),
        "statuses_url": format!("{api}/statuses/{{sha}}"),
    });
    let more_urls = json!({
        "languages_url": format!("{api}/languages"),
        "stargazers_url": format!("{api}/stargazers"),
        "contributors_url": format!("{api}/contributors"),
        "subscribers_url": format!("{api}/subscribers"),
        "subscription_url": format!("{api}/subscription"),
        "commits_url": format!("{api}/commits{{/sha}}"),
        "git_commits_url": format!("{api}/git/commits{{/sha}}"),
        "comments_url": format!("{api}/comments{{/number}}"),
        "issue_comment_url": format!("{api}/issues/comments{{/number}}"),
        "contents_url": format!("{api}/contents/{{+path}}"),
        "compare_url": format!("{api}/compare/{{base}}...{{head}}"),
        "merges_url": format!("{api}/merges"),
        "archive_url": format!("{api}/{{archive_format}}{{/ref}}"),
        "downloads_url": format!("{api}/downloads"),
        "issues_url": format!("{api}/issues{{/number}}"),
        "pulls_url": format!("{api}/pulls{{/number}}"),
        "milestones_url": format!("{api}/milestones{{/number}}"),
        "notifications_url": format!("{api}/notifications{{?since,all,participating}}"),
        "labels_url": format!("{api}/labels{{/name}}"),
        "releases_url": format!("{api}/releases{{/id}}"),
        "deployments_url": format!("{api}/deployments"),
    });
    let rest = json!({
        "created_at": iso(repo.created_at),
        "updated_at": iso(repo.pushed_at),
        "pushed_at": iso(repo.pushed_at),
        "git_url": format!("{}/git/{}/{}.git", st.base_url, repo.owner, repo.name),
        "ssh_url": format!("git@127.0.0.1:{}.git", repo.full_name()),
        "clone_url": format!("{}/git/{}/{}.git", st.base_url, repo.owner, repo.name),
        "svn_url": html,
        "homepage": null,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": null,
        "has_issues": true,
        "has_projects": false,
        "has_downloads": true,
        "has_wiki": false,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 0,
        "mirror_url": null,
        "archived": false,
        "disabled": false,
        "open_issues_count": open,
        "license": null,
        "forks": 0,
        "open_issues": open,
        "watchers": 0,
        "default_branch": repo.default_branch,
        "allow_squash_merge": true,
        "allow_merge_commit": true,
        "allow_rebase_merge": false,
        "allow_auto_merge": false,
        "delete_branch_on_merge": false,
        "is_template": false,
        "web_commit_signoff_required": false,
        "topics": [],
        "visibility": "public",
        "custom_properties": {},
    });
    merge(merge(urls, more_urls), rest)
}

/// `a` with `b`'s properties added.
pub(crate) fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// REST `full-repository` (`GET /repos/{o}/{r}`).
pub(crate) fn full_repo(st: &State, r: &Repo, can_push: bool) -> Value {
    let mut v = repo(st, r);
    v["network_count"] = json!(0);
    v["subscribers_count"] = json!(0);
    v["permissions"] = json!({
        "admin": false, "maintain": false, "push": can_push, "triage": can_push, "pull": true,
    });
    v
}

pub(crate) fn label(st: &State, repo: &Repo, l: &Label) -> Value {
    json!({
        "id": l.id,
        "node_id": node_id("Label", l.id),
        "url": format!("{}/labels/{}", repo_api(st, repo), l.name),
        "name": l.name,
        "color": l.color,
        "default": false,
        // pull-request-simple types a label's description as a (non-null) string.
        "description": "",
    })
}

fn link(href: &str) -> Value {
    json!({ "href": href })
}

/// How much of a pull request to render.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PullShape {
    /// Webhook `simple-pull-request` / REST `pull-request-simple` (lists).
    Simple,
    /// Webhook and REST `pull-request`, with `mergeable` as given (null: not computed yet).
    Full(Option<bool>),
}

fn branch_end(st: &State, repo: &Repo, name: &str, sha: &str) -> Value {
    json!({
        "label": format!("{}:{name}", repo.owner),
        "ref": name,
        "sha": sha,
        "user": user(st, &repo.owner),
        "repo": self::repo(st, repo),
    })
}

pub(crate) fn pull(st: &State, repo: &Repo, p: &Pull, shape: PullShape) -> Value {
    let api = format!("{}/pulls/{}", repo_api(st, repo), p.number);
    let issue = format!("{}/issues/{}", repo_api(st, repo), p.number);
    let html = format!("{}/pull/{}", repo_html(st, repo), p.number);
    let statuses = format!("{}/statuses/{}", repo_api(st, repo), p.head_sha);
    let labels: Vec<Value> = p
        .labels
        .iter()
        .filter_map(|n| repo.labels.iter().find(|l| &l.name == n))
        .map(|l| label(st, repo, l))
        .collect();
    let mut v = json!({
        "url": api,
        "id": p.id,
        "node_id": node_id("PullRequest", p.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": issue,
        "number": p.number,
        "state": if p.open { "open" } else { "closed" },
        "locked": false,
        "title": p.title,
        "user": user(st, &p.user),
        "body": p.body,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "closed_at": p.closed_at.map(iso),
        "merged_at": p.merged_at.map(iso),
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": labels,
        "milestone": null,
        "draft": p.draft,
        "commits_url": format!("{api}/commits"),
        "review_comments_url": format!("{api}/comments"),
        "review_comment_url": format!("{}/pulls/comments{{/number}}", repo_api(st, repo)),
        "comments_url": format!("{issue}/comments"),
        "statuses_url": statuses.clone(),
        "head": branch_end(st, repo, &p.head_ref, &p.head_sha),
        "base": branch_end(st, repo, &p.base_ref, &p.base_sha),
        "_links": {
            "self": link(&api),
            "html": link(&html),
            "issue": link(&issue),
            "comments": link(&format!("{issue}/comments")),
            "review_comments": link(&format!("{api}/comments")),
            "review_comment": link(&format!("{}/pulls/comments{{/number}}", repo_api(st, repo))),
            "commits": link(&format!("{api}/commits")),
            "statuses": link(&statuses),
        },
        "author_association": author_association(repo, &p.user),
        "auto_merge": null,
        "active_lock_reason": null,
    });
    if let PullShape::Full(mergeable) = shape {
        let comments = repo.comments.iter().filter(|c| c.issue == p.number).count();
        let state = match (p.open, mergeable) {
            (false, _) | (true, None) => "unknown",
            (true, Some(true)) => "clean",
            (true, Some(false)) => "dirty",
        };
        let extra = json!({
            "merged": p.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": state,
            "merged_by": p.merged_by.as_deref().map(|l| user(st, l)),
            "comments": comments,
            "review_comments": 0,
            "maintainer_can_modify": false,
            "commits": p.commit_shas.len(),
            "additions": p.additions,
            "deletions": p.deletions,
            "changed_files": p.changed_files,
        });
        v = merge(v, extra);
    }
    v
}

/// A review: REST (`state` uppercase, `body` a string) or webhook (`state` lowercase).
pub(crate) fn review(st: &State, repo: &Repo, p: &Pull, r: &Review, webhook: bool) -> Value {
    let pr_api = format!("{}/pulls/{}", repo_api(st, repo), p.number);
    let html = format!(
        "{}/pull/{}#pullrequestreview-{}",
        repo_html(st, repo),
        p.number,
        r.id
    );
    let state = if webhook {
        json!(r.state.to_ascii_lowercase())
    } else {
        json!(r.state)
    };
    let mut v = json!({
        "id": r.id,
        "node_id": node_id("PullRequestReview", r.id),
        "user": user(st, &r.user),
        "body": r.body,
        "state": state,
        "html_url": html.clone(),
        "pull_request_url": pr_api.clone(),
        "_links": { "html": link(&html), "pull_request": link(&pr_api) },
        "commit_id": r.commit_id,
        "author_association": author_association(repo, &r.user),
    });
    match r.submitted_at {
        Some(t) => v["submitted_at"] = json!(iso(t)),
        None if webhook => v["submitted_at"] = Value::Null,
        None => {}
    }
    if webhook && r.body.is_empty() {
        v["body"] = Value::Null;
    }
    v
}

fn reactions(url: &str) -> Value {
    json!({
        "url": url, "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
        "confused": 0, "heart": 0, "rocket": 0, "eyes": 0,
    })
}

pub(crate) fn comment(st: &State, repo: &Repo, c: &Comment) -> Value {
    let url = format!("{}/issues/comments/{}", repo_api(st, repo), c.id);
    json!({
        "url": url.clone(),
        "html_url": format!("{}/pull/{}#issuecomment-{}", repo_html(st, repo), c.issue, c.id),
        "issue_url": format!("{}/issues/{}", repo_api(st, repo), c.issue),
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "user": user(st, &c.user),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.created_at),
        "author_association": author_association(repo, &c.user),
        "body": c.body,
        "reactions": reactions(&format!("{url}/reactions")),
        "performed_via_github_app": null,
    })
}

/// A pull request seen as an issue (the `issue` of `issue_comment` webhooks).
pub(crate) fn issue(st: &State, repo: &Repo, p: &Pull) -> Value {
    let api = format!("{}/issues/{}", repo_api(st, repo), p.number);
    let html = format!("{}/pull/{}", repo_html(st, repo), p.number);
    let labels: Vec<Value> = p
        .labels
        .iter()
        .filter_map(|n| repo.labels.iter().find(|l| &l.name == n))
        .map(|l| label(st, repo, l))
        .collect();
    json!({
        "url": api.clone(),
        "repository_url": repo_api(st, repo),
        "labels_url": format!("{api}/labels{{/name}}"),
        "comments_url": format!("{api}/comments"),
        "events_url": format!("{api}/events"),
        "html_url": html.clone(),
        "id": p.id,
        "node_id": node_id("PullRequest", p.id),
        "number": p.number,
        "title": p.title,
        "user": user(st, &p.user),
        "labels": labels,
        "state": if p.open { "open" } else { "closed" },
        "locked": false,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "comments": repo.comments.iter().filter(|c| c.issue == p.number).count(),
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "closed_at": p.closed_at.map(iso),
        "author_association": author_association(repo, &p.user),
        "active_lock_reason": null,
        "draft": p.draft,
        "pull_request": {
            "url": format!("{}/pulls/{}", repo_api(st, repo), p.number),
            "html_url": html.clone(),
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "merged_at": p.merged_at.map(iso),
        },
        "body": p.body,
        "reactions": reactions(&format!("{api}/reactions")),
        "timeline_url": format!("{api}/timeline"),
        "state_reason": null,
    })
}

pub(crate) fn status(st: &State, repo: &Repo, s: &CommitStatus) -> Value {
    json!({
        "url": format!("{}/statuses/{}", repo_api(st, repo), s.sha),
        "avatar_url": format!("{}/avatars/u/{}?v=4", st.base_url, account(st, &s.creator).id),
        "id": s.id,
        "node_id": node_id("StatusContext", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
        "creator": user(st, &s.creator),
    })
}

pub(crate) fn git_ref(st: &State, repo: &Repo, name: &str, sha: &str, kind: &str) -> Value {
    let path = match kind {
        "tag" => "tags",
        "tree" => "trees",
        "blob" => "blobs",
        _ => "commits",
    };
    json!({
        "ref": name,
        "node_id": node_id_of("Ref", name),
        "url": format!("{}/git/{name}", repo_api(st, repo)),
        "object": {
            "type": kind,
            "sha": sha,
            "url": format!("{}/git/{path}/{sha}", repo_api(st, repo)),
        },
    })
}

fn verification() -> Value {
    json!({
        "verified": false, "reason": "unsigned", "signature": null, "payload": null,
        "verified_at": null,
    })
}

fn person(p: &super::git::Person) -> Value {
    json!({ "name": p.name, "email": p.email, "date": iso(p.date) })
}

/// REST `git-commit` (`GET /repos/{o}/{r}/git/commits/{sha}`).
pub(crate) fn git_commit(st: &State, repo: &Repo, c: &CommitInfo) -> Value {
    let api = repo_api(st, repo);
    json!({
        "sha": c.sha,
        "node_id": node_id("Commit", u64::from_str_radix(c.sha.get(..8).unwrap_or("0"), 16).unwrap_or(0)),
        "url": format!("{api}/git/commits/{}", c.sha),
        "html_url": format!("{}/commit/{}", repo_html(st, repo), c.sha),
        "author": person(&c.author),
        "committer": person(&c.committer),
        "tree": { "sha": c.tree, "url": format!("{api}/git/trees/{}", c.tree) },
        "message": c.message.trim_end_matches('\n'),
        "parents": c.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{api}/git/commits/{p}"),
            "html_url": format!("{}/commit/{p}", repo_html(st, repo)),
        })).collect::<Vec<_>>(),
        "verification": verification(),
    })
}

/// The login whose noreply email `email` is, if any.
fn login_for_email(st: &State, email: &str) -> Option<String> {
    st.accounts
        .values()
        .find(|a| a.email() == email)
        .map(|a| a.login.clone())
}

/// REST `commit` (`GET /repos/{o}/{r}/commits`).
pub(crate) fn commit(st: &State, repo: &Repo, c: &CommitInfo) -> Value {
    let api = repo_api(st, repo);
    let html = repo_html(st, repo);
    let gh_user = |email: &str| login_for_email(st, email).map_or(Value::Null, |l| user(st, &l));
    json!({
        "url": format!("{api}/commits/{}", c.sha),
        "sha": c.sha,
        "node_id": node_id("Commit", u64::from_str_radix(c.sha.get(..8).unwrap_or("0"), 16).unwrap_or(0)),
        "html_url": format!("{html}/commit/{}", c.sha),
        "comments_url": format!("{api}/commits/{}/comments", c.sha),
        "commit": {
            "url": format!("{api}/git/commits/{}", c.sha),
            "author": person(&c.author),
            "committer": person(&c.committer),
            "message": c.message.trim_end_matches('\n'),
            "comment_count": 0,
            "tree": { "sha": c.tree, "url": format!("{api}/git/trees/{}", c.tree) },
            "verification": verification(),
        },
        "author": gh_user(&c.author.email),
        "committer": gh_user(&c.committer.email),
        "parents": c.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{api}/commits/{p}"),
            "html_url": format!("{html}/commit/{p}"),
        })).collect::<Vec<_>>(),
    })
}

pub(crate) fn workflow_run(
    st: &State,
    repo: &Repo,
    r: &WorkflowRun,
    head: Option<&CommitInfo>,
) -> Value {
    let api = repo_api(st, repo);
    let run = format!("{api}/actions/runs/{}", r.id);
    let workflow_id = r.workflow_id();
    let head_repository = r
        .head_repo
        .as_ref()
        .and_then(|k| st.repos.get(k))
        .map_or_else(|| self::repo(st, repo), |fork| self::repo(st, fork));
    json!({
        "id": r.id,
        "name": r.name,
        "node_id": node_id("WorkflowRun", r.id),
        "head_branch": r.branch,
        "head_sha": r.head_sha,
        "path": r.path,
        "display_title": head.map_or_else(|| r.name.clone(), |c| c.message.lines().next().unwrap_or_default().to_string()),
        "run_number": r.run_number,
        "run_attempt": 1,
        "event": r.event,
        "status": "completed",
        "conclusion": r.conclusion,
        "workflow_id": workflow_id,
        "url": run.clone(),
        "html_url": format!("{}/actions/runs/{}", repo_html(st, repo), r.id),
        "pull_requests": [],
        "created_at": iso(r.created_at),
        "updated_at": iso(r.created_at),
        "run_started_at": iso(r.created_at),
        "jobs_url": format!("{run}/jobs"),
        "logs_url": format!("{run}/logs"),
        "check_suite_url": format!("{api}/check-suites/{}", r.id),
        "artifacts_url": format!("{run}/artifacts"),
        "cancel_url": format!("{run}/cancel"),
        "rerun_url": format!("{run}/rerun"),
        "previous_attempt_url": null,
        "workflow_url": format!("{api}/actions/workflows/{workflow_id}"),
        "head_commit": head.map(|c| json!({
            "id": c.sha,
            "tree_id": c.tree,
            "message": c.message.trim_end_matches('\n'),
            "timestamp": iso(c.committer.date),
            "author": { "name": c.author.name, "email": c.author.email },
            "committer": { "name": c.committer.name, "email": c.committer.email },
        })),
        "actor": user(st, &r.actor),
        "triggering_actor": user(st, &r.actor),
        "repository": self::repo(st, repo),
        "head_repository": head_repository,
    })
}
