//! Approvals are PR reviews. GitHub stays the record; Slack mirrors it and is a remote control.
//!
//! `refresh` recomputes the quorum from the PR's reviews (core's pure `quorum`), publishes the
//! `slipway/approval` status on the head SHA, updates the Slack message and posts in its thread,
//! releases the lock when the PR closes, and merges when the rule asks for auto-merge. Slack's
//! Approve/Reject submit a real review as the clicking person, with their own linked GitHub token:
//! the bot never approves as itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use slipway_core::approval::{Quorum, QuorumInput, ReviewInput, ReviewState, Source, quorum};
use slipway_core::audit::{Actor, Approval, ApprovalSource, AuditRecord, EventKind, PullRequest};
use slipway_core::change::ChangeRequest;
use slipway_core::policy::IdentityProvider;
use slipway_core::policy::model::ApproveIn;
use slipway_infra::github::{GitHub, Pr};

use super::ChangeService;
use crate::app::AppState;
use crate::slack::client::Message;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// People's GitHub user tokens, by Slack user id (from `/slipway link github`).
#[derive(Debug, Default)]
pub struct TokenStore {
    tokens: std::sync::Mutex<HashMap<String, String>>,
}

impl TokenStore {
    pub fn link(&self, slack_user: &str, token: &str) {
        lock(&self.tokens).insert(slack_user.to_string(), token.to_string());
    }

    pub fn get(&self, slack_user: &str) -> Option<String> {
        lock(&self.tokens).get(slack_user).cloned()
    }
}

/// Review ids submitted through Slack, so the mirror can say where an approval came from.
#[derive(Debug, Default)]
pub struct SlackReviews(std::sync::Mutex<HashSet<u64>>);

impl ChangeService {
    /// The change request a Slipway PR carries, read at its head.
    async fn change_of(&self, pr: &Pr) -> Result<ChangeRequest, String> {
        let id = pr.head_ref.strip_prefix("slipway/").ok_or("not a Slipway PR")?;
        let text = self
            .gh
            .file_at(&self.cfg.repo, &slipway_core::change::file_path(id), &pr.head_sha)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("PR #{} has no change file for {id}", pr.number))?;
        ChangeRequest::from_yaml(&text).map_err(|e| e.to_string())
    }

    /// The quorum of a PR now.
    async fn quorum_of(&self, state: &AppState, pr: &Pr, cr: &ChangeRequest) -> Result<Quorum, String> {
        let reviews = self.gh.reviews(&self.cfg.repo, pr.number).await.map_err(|e| e.to_string())?;
        let from_slack = lock(&self.slack_reviews.0).clone();
        let inputs: Vec<ReviewInput> = reviews
            .iter()
            .filter_map(|r| {
                Some(ReviewInput {
                    id: r.id,
                    login: r.user.clone(),
                    state: ReviewState::parse(&r.state)?,
                    commit_id: r.commit_id.clone(),
                    submitted_at: None,
                    source: if from_slack.contains(&r.id) { Source::Slack } else { Source::Github },
                })
            })
            .collect();
        let input = QuorumInput {
            requirement: &cr.policy.approval,
            requester_subject: &cr.requester.subject,
            requester_login: cr.requester.github_login.as_deref(),
            pr_author: &pr.author,
            head_sha: &pr.head_sha,
            reviews: &inputs,
            now: state.clock.now(),
            expires_at: cr.expires_at,
        };
        let ids = state.policy.identities();
        Ok(quorum(&input, |login| ids.by_github(login)))
    }

    /// Recompute everything about a PR after an event, and tell GitHub and Slack.
    pub async fn refresh(&self, state: &AppState, number: u64, event: &str) -> Result<(), String> {
        let repo = &self.cfg.repo;
        let pr = self.gh.get_pr(repo, number).await.map_err(|e| e.to_string())?;
        if !pr.head_ref.starts_with("slipway/cr-") {
            return Ok(());
        }
        let cr = self.change_of(&pr).await?;
        let q = self.quorum_of(state, &pr, &cr).await?;
        let rule = &cr.policy.approval.rule;
        if pr.state == "open" {
            let (st, desc) = if q.met {
                ("success", format!("{} approvals ({rule})", q.progress()))
            } else if q.expired {
                ("failure", format!("expired ({rule})"))
            } else if !q.changes_requested.is_empty() {
                ("failure", format!("changes requested by {}", q.changes_requested.join(", ")))
            } else {
                ("pending", format!("{} approvals ({rule}){}", q.progress(), if q.stale.is_empty() { String::new() } else { format!("; stale: {}", q.stale.join(", ")) }))
            };
            let _ = self.gh.set_status(repo, &pr.head_sha, st, "slipway/approval", &desc, Some(&pr.html_url)).await;
            let auto = state.policy.approval_rule(rule).is_some_and(|r| r.auto_merge);
            if q.met && auto {
                if let Err(e) = self.gh.merge(repo, number, &pr.head_sha, &format!("[slipway] {}", cr.id)).await {
                    tracing::warn!(error = %e, pr = number, "auto-merge failed");
                }
            }
        } else {
            let _ = self.gh.delete_ref(repo, &Self::lock_ref(&cr.resource)).await;
        }
        self.mirror_to_slack(state, &pr, &cr, &q, event).await;
        Ok(())
    }

    async fn mirror_to_slack(&self, state: &AppState, pr: &Pr, cr: &ChangeRequest, q: &Quorum, event: &str) {
        let Some((channel, ts)) = lock(&self.threads).get(&pr.number).cloned() else { return };
        let who = if q.approvals.is_empty() {
            "none yet".to_string()
        } else {
            q.approvals.iter().map(|a| format!("{} (via {})", a.subject, if a.source == Source::Slack { "Slack" } else { "GitHub" })).collect::<Vec<_>>().join(", ")
        };
        let status = match (pr.state.as_str(), pr.merged) {
            (_, true) => ":twisted_rightwards_arrows: merged; the runner executes it next".to_string(),
            ("closed", false) => ":no_entry_sign: closed without merging".to_string(),
            _ if q.met => ":white_check_mark: approved".to_string(),
            _ if q.expired => ":hourglass: expired".to_string(),
            _ => ":hourglass_flowing_sand: waiting for approvals".to_string(),
        };
        let stale = if q.stale.is_empty() { String::new() } else { format!(" · stale (given before the latest commit): {}", q.stale.join(", ")) };
        let headline = format!(":memo: *Change request* `{}`: <{}|#{}> {}", cr.id, pr.html_url, pr.number, status);
        let context = format!("Approvals: *{}* ({}) · {}{stale}", q.progress(), cr.policy.approval.rule, who);
        let open = pr.state == "open";
        let mut buttons = Vec::new();
        if open {
            buttons.push(json!({"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": pr.number.to_string()}));
            buttons.push(json!({"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": pr.number.to_string()}));
        }
        buttons.push(json!({"action_id": "slipway_open_pr", "text": "View PR", "url": pr.html_url, "value": pr.number.to_string()}));
        let msg = super::flow::change_message(&headline, &context, "", "", &buttons, format!("{} {}: {}", cr.id, status, q.progress()));
        if let Err(e) = state.slack.update(&channel, &ts, &msg).await {
            tracing::warn!(error = %e, "updating the change message");
        }
        let line = format!("{event} · approvals {}{stale}", q.progress());
        if let Err(e) = state.slack.post(&channel, Some(&ts), &Message::text(line)).await {
            tracing::warn!(error = %e, "posting in the change thread");
        }
    }

    /// Slack's Approve (`approve = true`) or Reject button. Every check happens before anything
    /// reaches GitHub; a refusal is returned as the message to show.
    pub async fn review_from_slack(self: &Arc<Self>, state: &AppState, user: &slipway_core::policy::SlackUser, number: u64, approve: bool, reason: &str) -> Result<String, String> {
        let repo = &self.cfg.repo;
        let pr = self.gh.get_pr(repo, number).await.map_err(|e| format!("can't read PR #{number}: {e}"))?;
        let cr = self.change_of(&pr).await?;
        let identity = state.policy.identities().resolve(user).ok_or("Slipway doesn't know you; ask #platform to add you to the policy.")?;
        if pr.state != "open" {
            return Err(format!("PR #{number} is {}; there is nothing to review.", if pr.merged { "merged" } else { "closed" }));
        }
        if state.clock.now() > cr.expires_at {
            return Err(format!("change request `{}` expired at {}.", cr.id, cr.expires_at.format("%Y-%m-%d %H:%M UTC")));
        }
        if identity.subject == cr.requester.subject {
            return Err("you requested this change, so you can't approve or reject it yourself.".into());
        }
        let groups = &cr.policy.approval.groups;
        if !groups.iter().any(|g| identity.in_group(g)) {
            return Err(format!("rule `{}` needs approvers from {}; you're not in those groups.", cr.policy.approval.rule, groups.join(" or ")));
        }
        if approve && cr.policy.approval.approve_in == ApproveIn::Github {
            return Err(format!("this target requires approval in GitHub (Slack approvals skip your identity provider's MFA): {}", pr.html_url));
        }
        let Some(token) = self.tokens.get(&user.user_id) else {
            return Err("link your GitHub account first with `/slipway link github`, so the review is made as you.".into());
        };
        let as_user = GitHub::user(&self.cfg.api_url, &token).map_err(|e| e.to_string())?;
        let (event, body) = if approve {
            ("APPROVE", format!("Approved in Slack by {}.", identity.subject))
        } else {
            ("REQUEST_CHANGES", format!("Rejected in Slack by {}.{}", identity.subject, if reason.is_empty() { String::new() } else { format!(" Reason: {reason}") }))
        };
        let id = as_user.review(repo, number, event, &body, Some(&pr.head_sha)).await.map_err(|e| format!("GitHub refused the review: {e}"))?;
        lock(&self.slack_reviews.0).insert(id);
        let record = AuditRecord::new(if approve { EventKind::Approval } else { EventKind::Rejection }, state.ids.next(), state.clock.now())
            .with_actor(Actor::slack(user, Some(identity), state.policy.primary_role(identity)))
            .with_change_id(cr.id.clone())
            .with_pr(PullRequest { repo: repo.to_string(), number, head_sha: Some(pr.head_sha.clone()), merge_sha: None })
            .with_approval(Approval { who: identity.subject.clone(), when: state.clock.now(), source: ApprovalSource::Slack, head_sha: Some(pr.head_sha.clone()) });
        if let Err(e) = state.audit.record(record).await {
            state.metrics.audit_failures.inc();
            tracing::error!(error = %e, "could not record a review");
        }
        self.refresh(state, number, &format!("{} {} in Slack", identity.subject, if approve { "approved" } else { "requested changes" })).await?;
        Ok(if approve { format!("Approved PR #{number} as you.") } else { format!("Requested changes on PR #{number} as you.") })
    }
}
