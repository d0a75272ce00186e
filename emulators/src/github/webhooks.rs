//! Webhook payloads (shaped after `@octokit/webhooks-examples`, checked against
//! `@octokit/webhooks-schemas`) and their signed, asynchronous delivery.

use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::git;
use super::json::{self, PullShape};
use super::state::{Outgoing, Pull, Repo, Review, Shared, State, hex, iso, lock, node_id};

/// How long a delivery may take before it counts as failed (GitHub allows 10 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex HMAC-SHA256 of body>`, as `X-Hub-Signature-256` carries.
pub fn signature_256(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex(hmac::sign(&key, body).as_ref()))
}

fn signature_1(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    format!("sha1={}", hex(hmac::sign(&key, body).as_ref()))
}

/// `repository`, `sender` and (for an installed repo) `installation`.
fn envelope(st: &State, repo: &Repo, sender: &str, mut payload: Value) -> Value {
    payload["repository"] = json::repo(st, repo);
    payload["sender"] = json::user(st, sender);
    if let Some(id) = st.installation_for(&repo.owner, &repo.name) {
        payload["installation"] = json!({ "id": id, "node_id": node_id("Installation", id) });
    }
    payload
}

/// `pull_request` with `action` (`opened`, `closed`, `reopened`, `synchronize` with `before`).
pub(crate) fn pull_request(
    st: &State,
    repo: &Repo,
    p: &Pull,
    action: &str,
    sender: &str,
    before: Option<&str>,
) -> Value {
    let mut payload = json!({
        "action": action,
        "number": p.number,
        "pull_request": json::pull(st, repo, p, PullShape::Full(None)),
    });
    if let Some(before) = before {
        payload["before"] = json!(before);
        payload["after"] = json!(p.head_sha);
    }
    envelope(st, repo, sender, payload)
}

/// `pull_request_review` `submitted` / `dismissed`.
pub(crate) fn pull_request_review(
    st: &State,
    repo: &Repo,
    p: &Pull,
    r: &Review,
    action: &str,
    sender: &str,
) -> Value {
    let payload = json!({
        "action": action,
        "review": json::review(st, repo, p, r, true),
        "pull_request": json::pull(st, repo, p, PullShape::Simple),
    });
    envelope(st, repo, sender, payload)
}

/// `issue_comment` `created` on a pull request.
pub(crate) fn issue_comment(
    st: &State,
    repo: &Repo,
    p: &Pull,
    comment_id: u64,
    sender: &str,
) -> Value {
    let comment = repo
        .comments
        .iter()
        .find(|c| c.id == comment_id)
        .map_or(Value::Null, |c| json::comment(st, repo, c));
    let payload = json!({
        "action": "created",
        "issue": json::issue(st, repo, p),
        "comment": comment,
    });
    envelope(st, repo, sender, payload)
}

fn push_commit(st: &State, repo: &Repo, g: &git::Repo, sha: &str) -> Option<Value> {
    let c = g.commit_info(sha)?;
    let (added, removed, modified) = g.changed_paths(sha);
    Some(json!({
        "id": c.sha,
        "tree_id": c.tree,
        "distinct": true,
        "message": c.message.trim_end_matches('\n'),
        "timestamp": iso(c.committer.date),
        "url": format!("{}/commit/{}", json::repo_html(st, repo), c.sha),
        "author": { "name": c.author.name, "email": c.author.email },
        "committer": { "name": c.committer.name, "email": c.committer.email },
        "added": added,
        "removed": removed,
        "modified": modified,
    }))
}

/// `push` of `refname` from `before` to `after` (either may be the zero sha).
pub(crate) fn push(
    st: &State,
    repo: &Repo,
    refname: &str,
    before: &str,
    after: &str,
    pusher: &str,
    forced: bool,
) -> Value {
    let g = git::Repo::new(&repo.dir);
    let created = before == git::ZERO_SHA;
    let deleted = after == git::ZERO_SHA;
    let shas = if deleted {
        Vec::new()
    } else if created {
        let default = format!("refs/heads/{}", repo.default_branch);
        let base = g.ref_value(&default).filter(|b| b != after);
        g.range(base.as_deref(), after, 20)
    } else {
        g.range(Some(before), after, 20)
    };
    let commits: Vec<Value> = shas
        .iter()
        .filter_map(|s| push_commit(st, repo, &g, s))
        .collect();
    let head_commit = if deleted {
        None
    } else {
        push_commit(st, repo, &g, after)
    };
    let account = json::account(st, pusher);
    let payload = json!({
        "ref": refname,
        "before": before,
        "after": after,
        "created": created,
        "deleted": deleted,
        "forced": forced,
        "base_ref": null,
        "compare": format!(
            "{}/compare/{}...{}",
            json::repo_html(st, repo),
            before.get(..12).unwrap_or(before),
            after.get(..12).unwrap_or(after)
        ),
        "commits": commits,
        "head_commit": head_commit,
        "pusher": { "name": account.login, "email": account.email() },
    });
    envelope(st, repo, pusher, payload)
}

/// `status` for the commit status `status_id`.
pub(crate) fn status(st: &State, repo: &Repo, status_id: u64) -> Option<Value> {
    let s = repo.statuses.iter().find(|s| s.id == status_id)?;
    let g = git::Repo::new(&repo.dir);
    let c = g.commit_info(&s.sha)?;
    let api = json::repo_api(st, repo);
    let html = json::repo_html(st, repo);
    let branches: Vec<Value> = g
        .refs("refs/heads/")
        .into_iter()
        .filter(|(_, sha, _)| sha == &s.sha)
        .map(|(name, sha, _)| {
            json!({
                "name": name.trim_start_matches("refs/heads/"),
                "commit": { "sha": sha, "url": format!("{api}/commits/{sha}") },
                "protected": false,
            })
        })
        .collect();
    let rest = json::commit(st, repo, &c);
    let person = |p: &git::Person| json!({ "name": p.name, "email": p.email, "date": iso(p.date) });
    let payload = json!({
        "id": s.id,
        "sha": s.sha,
        "name": repo.full_name(),
        "avatar_url": format!("{}/avatars/u/{}?v=4", st.base_url, json::account(st, &s.creator).id),
        "target_url": s.target_url,
        "context": s.context,
        "description": s.description,
        "state": s.state,
        "commit": {
            "sha": c.sha,
            "node_id": rest["node_id"],
            "commit": {
                "author": person(&c.author),
                "committer": person(&c.committer),
                "message": c.message.trim_end_matches('\n'),
                "tree": rest["commit"]["tree"],
                "url": rest["commit"]["url"],
                "comment_count": 0,
                "verification": { "verified": false, "reason": "unsigned", "signature": null, "payload": null },
            },
            "url": rest["url"],
            "html_url": format!("{html}/commit/{}", c.sha),
            "comments_url": rest["comments_url"],
            "author": rest["author"],
            "committer": rest["committer"],
            "parents": rest["parents"],
        },
        "branches": branches,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
    });
    Some(envelope(st, repo, &s.creator, payload))
}

/// Sends one delivery; the HTTP status, or why there was none.
pub(crate) async fn post(
    url: &str,
    secret: &str,
    event: &str,
    guid: &str,
    body: &str,
) -> Result<u16, String> {
    let client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/slipway-emulator")
        .header("x-github-event", event)
        .header("x-github-delivery", guid)
        .header("x-github-hook-id", "1")
        .header("x-github-hook-installation-target-type", "integration")
        .header("x-github-hook-installation-target-id", "1")
        .header("x-hub-signature", signature_1(secret, body.as_bytes()))
        .header(
            "x-hub-signature-256",
            signature_256(secret, body.as_bytes()),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("bad webhook request: {e}"))?;
    let send = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Drain the body so the connection closes cleanly.
        let _ = response.into_body().collect().await;
        Ok::<u16, String>(status)
    };
    match tokio::time::timeout(DELIVERY_TIMEOUT, send).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} s", DELIVERY_TIMEOUT.as_secs())),
    }
}

/// Starts the delivery worker: deliveries go out one at a time, in the order they were made.
pub(crate) fn start_worker(
    state: Shared,
    shutdown: CancellationToken,
) -> mpsc::UnboundedSender<Outgoing> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break,
                next = rx.recv() => next,
            };
            let Some(out) = next else { break };
            let job = {
                let st = lock(&state);
                st.deliveries
                    .get(out.index)
                    .map(|d| (d.event.clone(), d.id.clone(), d.body.clone()))
            };
            let Some((event, guid, body)) = job else {
                continue;
            };
            let result = tokio::select! {
                () = shutdown.cancelled() => break,
                r = post(&out.url, &out.secret, &event, &guid, &body) => r,
            };
            let mut st = lock(&state);
            if let Some(d) = st.deliveries.get_mut(out.index) {
                match result {
                    Ok(code) => d.status = Some(code),
                    Err(e) => d.error = Some(e),
                }
            }
        }
    });
    tx
}
