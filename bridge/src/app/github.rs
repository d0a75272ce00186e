//! The GitHub ingress: `POST /github/webhook`. The [`Webhook`] extractor checks
//! `X-Hub-Signature-256` in constant time over the capped body and parses the typed event
//! (malformed JSON is a 400, never a panic); the handler deduplicates deliveries by
//! `X-GitHub-Delivery` and by the digest of the signed body (a replay under a fresh delivery id),
//! answers, and works afterwards (GitHub wants the 2xx within 10 s).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::change::ChangeService;
use crate::github::events::{
    GithubEvent, IssueCommentEvent, PullRequestEvent, PushEvent, ReviewEvent,
};
use crate::github::signature::verify_github_signature;

/// Largest webhook body accepted. GitHub sends up to 25 MB; Slipway's events are far smaller.
pub const MAX_WEBHOOK_BODY: usize = 5 * 1024 * 1024;

/// A delivery whose signature verified, with its typed event.
#[derive(Debug)]
pub struct Webhook {
    pub delivery: String,
    pub body: Bytes,
    pub event: GithubEvent,
}

impl FromRequest<AppState> for Webhook {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (signature, delivery, event) = {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            (
                header("x-hub-signature-256"),
                header("x-github-delivery").unwrap_or_default(),
                header("x-github-event").unwrap_or_default(),
            )
        };
        let body = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let secret = state.config.github_webhook_secret.expose();
        if !verify_github_signature(secret.as_bytes(), &body, signature.as_deref()) {
            state.metrics.request("github_webhook", "unauthorized");
            return Err(StatusCode::UNAUTHORIZED.into_response());
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            state.metrics.request("github_webhook", "malformed");
            return Err((StatusCode::BAD_REQUEST, "malformed JSON").into_response());
        }
        let event = GithubEvent::parse(&event, &body);
        Ok(Webhook {
            delivery,
            body,
            event,
        })
    }
}

pub async fn github_webhook(State(state): State<AppState>, hook: Webhook) -> Response {
    let Some(svc) = state.change.clone() else {
        state.metrics.request("github_webhook", "ignored");
        return StatusCode::ACCEPTED.into_response();
    };
    if !svc.first_delivery(&hook.delivery, &hook.body, state.clock.now()) {
        state.metrics.request("github_webhook", "duplicate");
        return (StatusCode::OK, "duplicate delivery").into_response();
    }
    match hook.event {
        GithubEvent::IssueComment(c)
            if c.action == "created"
                && c.comment.body.contains(super::forward::MARKER)
                && c.comment
                    .user
                    .login
                    .eq_ignore_ascii_case(&svc.cfg.runner_login) =>
        {
            super::forward::accept(&state, &c.comment.body).await;
        }
        GithubEvent::IssueComment(c) if c.action == "created" => {
            mirror_runner_comment(&state, &svc, &c);
        }
        GithubEvent::PullRequest(e) if is_change_pr(&e.pull_request.head.ref_name) => {
            state.metrics.request("github_webhook", "ok");
            pull_request(&state, svc, &e);
        }
        GithubEvent::Review(e) if is_change_pr(&e.pull_request.head.ref_name) => {
            state.metrics.request("github_webhook", "ok");
            review(&state, svc, *e);
        }
        // Another check passed on a head: a change waiting only on required checks may merge.
        GithubEvent::Status(e)
            if e.state == "success"
                && e.context != "slipway/approval"
                && e.branches.iter().any(|b| is_change_pr(&b.name)) =>
        {
            state.metrics.request("github_webhook", "ok");
            checks_passed(&state, svc, e.sha);
        }
        GithubEvent::Push(e) if policy_changed(&svc, &e) => {
            state.metrics.request("github_webhook", "ok");
            reload_from_gitops(&state, svc, e.after);
        }
        _ => state.metrics.request("github_webhook", "ignored"),
    }
    StatusCode::OK.into_response()
}

/// A push to the default branch that changed the policy file the bridge follows.
fn policy_changed(svc: &ChangeService, e: &PushEvent) -> bool {
    e.git_ref == format!("refs/heads/{}", svc.cfg.default_branch)
        && svc.cfg.policy_path.as_deref().is_some_and(|p| e.touches(p))
}

/// Read the policy file at the pushed commit (it reached the default branch through review)
/// and reload from it.
fn reload_from_gitops(state: &AppState, svc: Arc<ChangeService>, sha: String) {
    let Some(path) = svc.cfg.policy_path.clone() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        let text = match svc.gh().file_at(&svc.cfg.repo, &path, &sha).await {
            Ok(Some(text)) => Ok(text),
            Ok(None) => Err(format!("{path} is gone from {}", svc.cfg.default_branch)),
            Err(e) => Err(format!("GitHub didn't give {path} at {sha}: {e}")),
        };
        let source = format!("{}/{path}@{}", svc.cfg.repo, sha.get(..12).unwrap_or(&sha));
        crate::reload::apply(&state, crate::reload::Candidate { source, text }, "gitops").await;
    });
}

/// Retry the merge of every open change PR whose head is `sha` (self-service and auto-merge
/// rules merge "once the required checks pass"; GitHub refuses the merge until then).
fn checks_passed(state: &AppState, svc: Arc<ChangeService>, sha: String) {
    let st = state.clone();
    tokio::spawn(async move {
        let prs = match svc.gh().pulls_for_commit(&svc.cfg.repo, &sha).await {
            Ok(prs) => prs,
            Err(e) => {
                tracing::warn!(error = %e, %sha, "finding the change PRs of a commit");
                return;
            }
        };
        for pr in prs
            .iter()
            .filter(|p| p.state == "open" && p.head_sha == sha && is_change_pr(&p.head_ref))
        {
            if let Err(e) = svc.merge_if_ready(&st, pr.number).await {
                tracing::warn!(error = %e, pr = pr.number, "merging after checks passed");
            }
        }
    });
}

fn is_change_pr(head_ref: &str) -> bool {
    head_ref.starts_with("slipway/cr-")
}

/// A change PR moved: remember who pushed (they can't approve it), then refresh.
fn pull_request(state: &AppState, svc: Arc<ChangeService>, e: &PullRequestEvent) {
    let number = e.pull_request.number;
    let who = &e.sender.login;
    if e.action == "synchronize"
        && !who.eq_ignore_ascii_case(&svc.cfg.app_login)
        && let Err(err) = svc.store.add_pusher(number, who)
    {
        tracing::error!(error = %err, pr = number, "recording who pushed to a change PR");
    }
    if e.action == "closed" && e.pull_request.merged == Some(true) {
        record_merge(state, &svc, e);
    }
    let description = match e.action.as_str() {
        "synchronize" => format!("{who} pushed a new commit"),
        "closed" if e.pull_request.merged == Some(true) => format!("{who} merged it"),
        a => format!("{who}: {a}"),
    };
    refresh(state, svc, number, description, None);
}

/// The merge of a change PR, as GitHub's signed webhook reports it: the evidence that the
/// change reached the default branch (the runner's records follow from its run), for the spool
/// and through it every sink. The delivery was deduplicated before, so it is recorded once.
fn record_merge(state: &AppState, svc: &ChangeService, e: &PullRequestEvent) {
    use slipway_core::audit::{Actor, AuditRecord, EventKind, PullRequest};
    let pr = &e.pull_request;
    let repo = svc.cfg.repo.to_string();
    if !e
        .repository
        .as_ref()
        .is_some_and(|r| r.full_name.eq_ignore_ascii_case(&repo))
    {
        tracing::warn!(
            pr = pr.number,
            "a merged change PR of another repository: not recorded"
        );
        return;
    }
    let login = &e.sender.login;
    let identity = state.people.by_github(&state.policy(), login);
    let record = AuditRecord::new(EventKind::Merge, state.ids.next(), state.clock.now())
        .with_actor(Actor {
            github_login: Some(login.clone()),
            subject: identity.as_ref().map(|i| i.subject.clone()),
            groups: identity.map(|i| i.groups).unwrap_or_default(),
            ..Actor::default()
        })
        .with_change_id(pr.head.ref_name.trim_start_matches("slipway/").to_string())
        .with_pr(PullRequest {
            repo,
            number: pr.number,
            head_sha: Some(pr.head.sha.clone()),
            merge_sha: pr.merge_commit_sha.clone(),
        });
    let state = state.clone();
    tokio::spawn(async move {
        let _ = state.record(record, "a merge").await;
    });
}

/// A review of a change PR: refresh, then record it if it was made in GitHub itself.
fn review(state: &AppState, svc: Arc<ChangeService>, e: ReviewEvent) {
    let who = e.review.user.login.clone();
    let description = match e.action.as_str() {
        "submitted" => format!("{who} {} in GitHub", e.review.state.replace('_', " ")),
        "dismissed" => format!("a review by {who} was dismissed"),
        a => format!("pull_request_review {a}"),
    };
    let number = e.pull_request.number;
    let github_review = (e.action == "submitted").then(|| GithubReview::of(e));
    refresh(state, svc, number, description, github_review);
}

fn refresh(
    state: &AppState,
    svc: Arc<ChangeService>,
    number: u64,
    description: String,
    github_review: Option<GithubReview>,
) {
    let st = state.clone();
    tokio::spawn(async move {
        // The echo of a review made in Slack: its thread line was posted when it was made.
        let echo = github_review.as_ref().is_some_and(|r| {
            svc.made_in_slack(
                number,
                &crate::change::ReviewSeen {
                    id: r.id,
                    login: &r.login,
                    commit: &r.head_sha,
                    body: &r.body,
                },
            )
        });
        let line = (!echo).then_some(description.as_str());
        if let Err(e) = svc.refresh_with(&st, number, line).await {
            tracing::warn!(error = %e, pr = number, "refreshing a change request after a webhook");
        }
        // The request moved: the App Homes that list it are out of date.
        st.recent.mark_all();
        // A review made through Slack was audited when it was made: record only reviews made
        // in GitHub itself.
        if let Some(r) = github_review.filter(|_| !echo) {
            r.record(&st, &svc, number).await;
        }
    });
}

/// A review submitted in GitHub, for the audit trail.
struct GithubReview {
    id: u64,
    login: String,
    state: String,
    head_sha: String,
    head_ref: String,
    body: String,
}

impl GithubReview {
    fn of(e: ReviewEvent) -> GithubReview {
        GithubReview {
            id: e.review.id,
            login: e.review.user.login,
            state: e.review.state,
            head_sha: e.review.commit_id.unwrap_or(e.pull_request.head.sha),
            head_ref: e.pull_request.head.ref_name,
            body: e.review.body.unwrap_or_default(),
        }
    }

    async fn record(self, state: &AppState, svc: &ChangeService, number: u64) {
        use slipway_core::audit::{
            Actor, Approval, ApprovalSource, AuditRecord, EventKind, PullRequest,
        };
        let kind = match self.state.as_str() {
            "approved" => EventKind::Approval,
            "changes_requested" => EventKind::Rejection,
            _ => return,
        };
        let identity = state.people.by_github(&state.policy(), &self.login);
        let identity = identity.as_ref();
        let who = identity.map_or_else(|| self.login.clone(), |i| i.subject.clone());
        let record = AuditRecord::new(kind, state.ids.next(), state.clock.now())
            .with_actor(Actor {
                github_login: Some(self.login.clone()),
                subject: identity.map(|i| i.subject.clone()),
                groups: identity.map(|i| i.groups.clone()).unwrap_or_default(),
                ..Actor::default()
            })
            .with_change_id(self.head_ref.trim_start_matches("slipway/").to_string())
            .with_pr(PullRequest {
                repo: svc.cfg.repo.to_string(),
                number,
                head_sha: Some(self.head_sha.clone()),
                merge_sha: None,
            })
            .with_approval(Approval {
                who,
                when: state.clock.now(),
                source: ApprovalSource::Github,
                head_sha: Some(self.head_sha),
            });
        let _ = state.record(record, "a GitHub review").await;
    }
}

/// The runner reports on the PR (comments carrying its marker); mirror those into the change's
/// Slack thread, so the requester sees the outcome where they asked. Only comments by the
/// configured runner login count: anyone who can comment could write the marker.
fn mirror_runner_comment(state: &AppState, svc: &Arc<ChangeService>, c: &IssueCommentEvent) {
    let body = &c.comment.body;
    if c.issue.pull_request.is_none()
        || !body.contains("<!-- slipway-runner:")
        || !c
            .comment
            .user
            .login
            .eq_ignore_ascii_case(&svc.cfg.runner_login)
    {
        state.metrics.request("github_webhook", "ignored");
        return;
    }
    state.metrics.request("github_webhook", "ok");
    for outcome in ["ok", "failed"] {
        if body.contains(&format!("<!-- slipway-rollout:{outcome} -->")) {
            state
                .metrics
                .rollouts
                .get_or_create(&crate::metrics::OutcomeLabels { outcome })
                .inc();
        }
    }
    let Some((channel, ts)) = svc.thread_of(c.issue.number) else {
        return;
    };
    let text: String = body
        .lines()
        .filter(|l| !l.trim_start().starts_with("<!--"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = slipway_core::redact::redactor().redact(&text);
    let mut shown: String = text.chars().take(2800).collect();
    if shown.len() < text.len() {
        shown.push_str("\n… (truncated; the full report is on the PR)");
    }
    let failed = body.contains(super::rollback::FAILED_MARKER);
    let number = c.issue.number;
    let state = state.clone();
    tokio::spawn(async move {
        let mut msg =
            crate::slack::client::Message::text(format!(":robot_face: Runner report:\n{shown}"));
        if failed {
            // A failed rollout offers the way back: the button starts an ordinary `/deploy`.
            msg.blocks = vec![
                serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": msg.text}}),
                super::rollback::button(number),
            ];
        }
        if let Err(e) = state.slack.post(&channel, Some(&ts), &msg).await {
            tracing::warn!(error = %e, "mirroring the runner's report");
        }
    });
}
