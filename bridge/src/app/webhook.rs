//! `POST /github/webhook`: `X-Hub-Signature-256` checked in constant time, the body capped,
//! deliveries deduplicated by `X-GitHub-Delivery` and by the digest of the signed body (a replay
//! under a fresh delivery id), malformed JSON answered 400 (never a panic).
//! Work happens after the 2xx, which GitHub wants within 10 s.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::AppState;

/// Largest webhook body accepted. GitHub sends up to 25 MB; Slipway's events are far smaller.
pub const MAX_WEBHOOK_BODY: usize = 5 * 1024 * 1024;

/// Check `sha256=<hex>` against the raw body. An empty secret verifies nothing: anyone can
/// compute a MAC under it.
pub fn verify_github_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

pub async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = state.config.github_webhook_secret.expose().as_bytes();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !verify_github_signature(secret, &body, header("x-hub-signature-256")) {
        state.metrics.request("github_webhook", "unauthorized");
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let delivery = header("x-github-delivery").unwrap_or_default().to_string();
    let event = header("x-github-event").unwrap_or_default().to_string();
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        state.metrics.request("github_webhook", "malformed");
        return (StatusCode::BAD_REQUEST, "malformed JSON").into_response();
    };
    let Some(svc) = state.change.clone() else {
        state.metrics.request("github_webhook", "ignored");
        return StatusCode::ACCEPTED.into_response();
    };
    if !svc.first_delivery(&delivery, &body, state.clock.now()) {
        state.metrics.request("github_webhook", "duplicate");
        return (StatusCode::OK, "duplicate delivery").into_response();
    }
    if event == "issue_comment" && payload["action"] == "created" {
        mirror_runner_comment(&state, &svc, &payload);
        return StatusCode::OK.into_response();
    }
    let number = payload
        .pointer("/pull_request/number")
        .and_then(serde_json::Value::as_u64);
    let head_ref = payload
        .pointer("/pull_request/head/ref")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let action = payload["action"].as_str().unwrap_or_default().to_string();
    let relevant = matches!(event.as_str(), "pull_request" | "pull_request_review")
        && head_ref.starts_with("slipway/cr-");
    state
        .metrics
        .request("github_webhook", if relevant { "ok" } else { "ignored" });
    if let (true, Some(number)) = (relevant, number) {
        // Whoever pushes to a change PR can't approve it: remember them before the refresh.
        if event == "pull_request"
            && action == "synchronize"
            && let Some(pusher) = payload
                .pointer("/sender/login")
                .and_then(serde_json::Value::as_str)
                .filter(|l| !l.eq_ignore_ascii_case(&svc.cfg.app_login))
            && let Err(e) = svc.store.add_pusher(number, pusher)
        {
            tracing::error!(error = %e, pr = number, "recording who pushed to a change PR");
        }
        let who = payload
            .pointer("/review/user/login")
            .or_else(|| payload.pointer("/sender/login"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("someone")
            .to_string();
        let description = match (event.as_str(), action.as_str()) {
            ("pull_request_review", "submitted") => {
                let st = payload
                    .pointer("/review/state")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("commented");
                format!("{who} {} in GitHub", st.replace('_', " "))
            }
            ("pull_request_review", "dismissed") => format!("a review by {who} was dismissed"),
            ("pull_request", "synchronize") => format!("{who} pushed a new commit"),
            ("pull_request", "closed")
                if payload
                    .pointer("/pull_request/merged")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true) =>
            {
                format!("{who} merged it")
            }
            ("pull_request", a) => format!("{who}: {a}"),
            (e, a) => format!("{e} {a}"),
        };
        let st = state.clone();
        let github_review = (event == "pull_request_review" && action == "submitted")
            .then(|| GithubReview::from_payload(&payload))
            .flatten();
        tokio::spawn(async move {
            if let Err(e) = svc.refresh(&st, number, &description).await {
                tracing::warn!(error = %e, pr = number, "refreshing a change request after a webhook");
            }
            // After the refresh (several API round trips), a review made through Slack is
            // already in the store: record only reviews made in GitHub itself.
            if let Some(r) = github_review {
                r.record(&st, &svc, number).await;
            }
        });
    }
    StatusCode::OK.into_response()
}

/// A review submitted in GitHub, for the audit trail.
struct GithubReview {
    id: u64,
    login: String,
    state: String,
    head_sha: String,
    head_ref: String,
}

impl GithubReview {
    fn from_payload(p: &serde_json::Value) -> Option<GithubReview> {
        let s = |ptr: &str| {
            p.pointer(ptr)
                .and_then(serde_json::Value::as_str)
                .map(String::from)
        };
        Some(GithubReview {
            id: p
                .pointer("/review/id")
                .and_then(serde_json::Value::as_u64)?,
            login: s("/review/user/login")?,
            state: s("/review/state")?,
            head_sha: s("/review/commit_id").or_else(|| s("/pull_request/head/sha"))?,
            head_ref: s("/pull_request/head/ref")?,
        })
    }

    async fn record(self, state: &AppState, svc: &crate::change::ChangeService, number: u64) {
        use slipway_core::audit::{
            Actor, Approval, ApprovalSource, AuditRecord, EventKind, PullRequest,
        };
        if svc
            .store
            .slack_reviews(number)
            .is_ok_and(|ids| ids.contains(&self.id))
        {
            return;
        }
        let kind = match self.state.as_str() {
            "approved" => EventKind::Approval,
            "changes_requested" => EventKind::Rejection,
            _ => return,
        };
        let identity = slipway_core::policy::IdentityProvider::by_github(
            state.policy.identities(),
            &self.login,
        );
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
fn mirror_runner_comment(
    state: &AppState,
    svc: &std::sync::Arc<crate::change::ChangeService>,
    payload: &serde_json::Value,
) {
    let body = payload
        .pointer("/comment/body")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let is_pr = payload.pointer("/issue/pull_request").is_some();
    let Some(number) = payload
        .pointer("/issue/number")
        .and_then(serde_json::Value::as_u64)
    else {
        return;
    };
    let author = payload
        .pointer("/comment/user/login")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if !is_pr
        || !body.contains("<!-- slipway-runner:")
        || !author.eq_ignore_ascii_case(&svc.cfg.runner_login)
    {
        state.metrics.request("github_webhook", "ignored");
        return;
    }
    state.metrics.request("github_webhook", "ok");
    let Some((channel, ts)) = svc.thread_of(number) else {
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
    let state = state.clone();
    tokio::spawn(async move {
        let msg =
            crate::slack::client::Message::text(format!(":robot_face: Runner report:\n{shown}"));
        if let Err(e) = state.slack.post(&channel, Some(&ts), &msg).await {
            tracing::warn!(error = %e, "mirroring the runner's report");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_test_vector() {
        let secret = b"It's a Secret to Everybody";
        assert!(verify_github_signature(
            secret,
            b"Hello, World!",
            Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        ));
        assert!(!verify_github_signature(
            secret,
            b"Hello, World?",
            Some("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        ));
        assert!(!verify_github_signature(secret, b"Hello, World!", None));
        assert!(!verify_github_signature(
            secret,
            b"Hello, World!",
            Some("sha1=abc")
        ));
    }

    #[test]
    fn an_empty_secret_verifies_nothing() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
        mac.update(b"{}");
        let forged = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(!verify_github_signature(b"", b"{}", Some(&forged)));
    }
}
