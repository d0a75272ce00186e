//! Open change requests as people see them outside their own thread: `@slipway status`, the
//! App Home's lists, and Withdraw. Each is read from GitHub and verified (`change::verify`),
//! never taken from a payload's word.

use chrono::{DateTime, Utc};
use slipway_core::approval::Quorum;
use slipway_core::audit::{Actor, AuditRecord, EventKind, PullRequest};
use slipway_core::change::ChangeRequest;
use slipway_core::policy::{Identity, SlackUser};
use slipway_infra::github::Pr;

use super::ChangeService;
use crate::ctx::Ctx;

/// At most this many open requests are read for one answer (each costs a reviews call).
const MAX_LISTED: usize = 25;

/// The role that may withdraw anyone's request.
const OWNER_ROLE: &str = "owner";

/// One open, verified change request and its quorum now.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub pr: Pr,
    pub cr: ChangeRequest,
    pub quorum: Quorum,
}

impl OpenRequest {
    /// "PR #12 `/deploy api staging v2` by <@U1>: 1 of 2 approvals, expires …", with a link.
    pub fn status_line(&self) -> String {
        let q = &self.quorum;
        let state = if q.met {
            "approved, waiting to merge".to_string()
        } else if !q.changes_requested.is_empty() {
            format!("changes requested by {}", q.changes_requested.join(", "))
        } else {
            "waiting for approval".to_string()
        };
        format!(
            "<{}|PR #{}> `{}` by <@{}>: {state} · approvals {} (rule `{}`) · expires {}",
            self.pr.html_url,
            self.pr.number,
            self.cr.command.text,
            self.cr.requester.slack_user_id,
            q.progress(),
            self.cr.policy.approval.rule,
            self.cr.expires_at.format("%Y-%m-%d %H:%M UTC"),
        )
    }

    /// Whether `who` may approve it now: not its requester, in one of its approver groups, not
    /// counted already, before its deadline, and while approvals still count (not after the
    /// quorum holds).
    pub fn awaits(&self, who: &Identity, now: DateTime<Utc>) -> bool {
        let groups = self.cr.policy.approval.all_groups();
        who.subject != self.cr.requester.subject
            && !self.quorum.met
            && now <= self.cr.expires_at
            && groups.iter().any(|g| who.in_group(g))
            && !self
                .quorum
                .approvals
                .iter()
                .any(|c| c.subject == who.subject)
    }
}

impl ChangeService {
    /// The open Slipway change requests that verify, newest first (at most [`MAX_LISTED`]).
    /// A PR that doesn't verify is left out (its thread says why).
    pub async fn open_requests(&self, state: &Ctx) -> Result<Vec<OpenRequest>, String> {
        let mut open = self
            .gh()
            .open_prs(&self.cfg.repo)
            .await
            .map_err(|e| format!("listing open PRs: {e}"))?;
        open.retain(|p| p.head_ref.starts_with("slipway/cr-"));
        open.sort_by_key(|p| std::cmp::Reverse(p.number));
        let mut out = Vec::new();
        for pr in open.into_iter().take(MAX_LISTED) {
            let Ok(v) = self.change_of(&pr).await else {
                continue;
            };
            let quorum = self.quorum_of(state, &pr, &v).await?;
            out.push(OpenRequest {
                pr,
                cr: v.cr,
                quorum,
            });
        }
        Ok(out)
    }

    /// One open request, by PR number (`12`, `#12`) or change id (`cr-…`). `Err` is the
    /// sentence to show.
    pub async fn find_request(&self, state: &Ctx, key: &str) -> Result<OpenRequest, String> {
        let key = key.trim().trim_start_matches('#');
        let unavailable = |e: String| {
            tracing::warn!(error = %e, "reading open change requests");
            "Slipway couldn't read the open change requests from GitHub just now; try again in a minute.".to_string()
        };
        let found = match key.parse::<u64>() {
            Ok(number) => self
                .open_request(state, number)
                .await
                .map_err(unavailable)?,
            Err(_) => (self.open_requests(state).await.map_err(unavailable)?)
                .into_iter()
                .find(|r| r.cr.id == key),
        };
        found.ok_or_else(|| {
            format!("`{key}` is not an open Slipway change request (a PR number or a `cr-…` id).")
        })
    }

    /// PR `number` if it is an open Slipway change request that verifies.
    async fn open_request(&self, state: &Ctx, number: u64) -> Result<Option<OpenRequest>, String> {
        let pr = match self.gh().get_pr(&self.cfg.repo, number).await {
            Ok(pr) => pr,
            Err(slipway_infra::github::GhError::Http { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if pr.state != "open" || !pr.head_ref.starts_with("slipway/cr-") {
            return Ok(None);
        }
        let v = match self.change_of(&pr).await {
            Ok(v) => v,
            // A PR that doesn't verify is no change request; GitHub not answering is no verdict.
            Err(super::verify::Unverified::Refused(_)) => return Ok(None),
            Err(upstream) => return Err(upstream.to_string()),
        };
        let quorum = self.quorum_of(state, &pr, &v).await?;
        Ok(Some(OpenRequest {
            pr,
            cr: v.cr,
            quorum,
        }))
    }

    /// Withdraw PR `number` as `user`: only its requester or an owner may. The PR is closed
    /// with a comment, the lock released, the thread updated and the withdrawal audited
    /// (`cancellation`, `details.action: withdrawn`), refused or not. `Ok` and `Err` are the
    /// sentences to show the clicker.
    pub async fn withdraw(
        &self,
        state: &Ctx,
        user: &SlackUser,
        number: u64,
    ) -> Result<String, String> {
        let identity = state.person(user).await?;
        let policy = state.policy();
        let role = policy.primary_role(&identity);
        let found = self.find_request(state, &number.to_string()).await;
        let refusal = match &found {
            Err(why) => Some(why.clone()),
            Ok(r) if r.cr.requester.subject != identity.subject && role != Some(OWNER_ROLE) => {
                Some(format!(
                    "Only the requester of PR #{number} (<@{}>) or an owner can withdraw it.",
                    r.cr.requester.slack_user_id
                ))
            }
            Ok(_) => None,
        };
        let record = AuditRecord::new(EventKind::Cancellation, state.ids.next(), state.clock.now())
            .with_actor(Actor::slack(user, Some(&identity), role))
            .with_pr(PullRequest {
                repo: self.cfg.repo.to_string(),
                number,
                head_sha: found.as_ref().ok().map(|r| r.pr.head_sha.clone()),
                merge_sha: None,
            });
        let record = match &found {
            Ok(r) => record.with_change_id(r.cr.id.clone()),
            Err(_) => record,
        };
        let outcome = if refusal.is_some() {
            "refused"
        } else {
            "withdrawn"
        };
        let record = record.with_details(
            serde_json::json!({"action": "withdrawn", "result": outcome, "reason": refusal}),
        );
        // Nothing is closed unless its record is on disk.
        if state.record(record, "a withdrawal").await.is_err() {
            return Err(
                "Slipway can't write its audit trail right now, so nothing was withdrawn.".into(),
            );
        }
        if let Some(why) = refusal {
            return Err(why);
        }
        let Ok(request) = found else {
            return Err("That change request is gone.".into());
        };
        self.close_withdrawn(state, &request, &identity.subject)
            .await?;
        Ok(format!(
            "Withdrew change request `{}`: PR #{number} is closed and `{}` is unlocked.",
            request.cr.id, request.cr.resource
        ))
    }

    /// Comment, close, unlock, then refresh the Slack thread.
    async fn close_withdrawn(&self, state: &Ctx, r: &OpenRequest, by: &str) -> Result<(), String> {
        let (repo, number) = (&self.cfg.repo, r.pr.number);
        let body = format!(
            ":leftwards_arrow_with_hook: Change request `{}` was withdrawn in Slack by {by}. Slipway closed this pull request and released the lock on `{}`.",
            r.cr.id, r.cr.resource
        );
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, pr = number, "{what} a withdrawn change request");
            format!(
                "GitHub didn't accept the withdrawal of PR #{number} just now; try again in a minute."
            )
        };
        self.gh()
            .comment(repo, number, &body)
            .await
            .map_err(|e| unavailable("commenting on", &e))?;
        self.gh()
            .update_pr(repo, number, serde_json::json!({"state": "closed"}))
            .await
            .map_err(|e| unavailable("closing", &e))?;
        if let Err(e) = self
            .gh()
            .delete_ref(repo, &Self::lock_ref(&r.cr.resource))
            .await
        {
            tracing::warn!(error = %e, pr = number, "releasing the lock of a withdrawn change");
        }
        let event = format!(":leftwards_arrow_with_hook: withdrawn by {by}; Slipway closed the PR");
        if let Err(e) = self.refresh(state, number, &event).await {
            tracing::warn!(error = %e, pr = number, "refreshing a withdrawn change request");
        }
        Ok(())
    }
}
