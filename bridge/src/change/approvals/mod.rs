//! Approvals are PR reviews. GitHub stays the record; Slack mirrors it and is a remote control.
//!
//! `refresh` recomputes the quorum from the PR's reviews (core's pure `quorum`), publishes the
//! `slipway/approval` status on the head SHA, updates the Slack message and posts in its thread,
//! releases the lock when the PR closes, and merges when the rule asks for auto-merge. Slack's
//! Approve/Reject submit a real review as the clicking person, with their own linked GitHub token:
//! the bot never approves as itself. Approve first opens a modal that shows the change and the
//! commit the approval binds to (the one the message showed: a commit pushed in between refuses
//! it); Reject opens one for the reason.
//!
//! A request counts as approved if its quorum held by `expires_at`: reviews submitted after the
//! deadline don't count, and an open request not approved by then is closed by `expiry`.

mod cab;
mod merge;
mod mirror;
mod view;

use std::sync::Arc;

use serde_json::json;
use slipway_core::approval::{
    ListedReview, Quorum, QuorumInput, Source, inputs_by_deadline, judged_at, quorum,
};
use slipway_core::audit::{Actor, Approval, ApprovalSource, AuditRecord, EventKind, PullRequest};
use slipway_core::change::ChangeRequest;
use slipway_core::policy::model::ApproveIn;
use slipway_infra::github::{GhError, GitHub, Pr};

use super::ChangeService;
use super::verify::Verified;
use crate::ctx::Ctx;
use crate::slack::client::Message;
use crate::store::Deadline;
pub use mirror::ReviewSeen;
pub use view::{
    ApprovalView, ApproveSummary, ReviewContext, Stage, approval_message, approve_modal,
    approve_value, parse_review_value, reject_modal,
};

impl ChangeService {
    /// The quorum of a PR now. Past the deadline it is the quorum as of the deadline (reviews
    /// submitted later don't count), and `expired` means it didn't hold by then.
    pub(crate) async fn quorum_of(
        &self,
        state: &Ctx,
        pr: &Pr,
        v: &Verified,
    ) -> Result<Quorum, String> {
        let cr = &v.cr;
        let reviews = self
            .gh()
            .reviews(&self.cfg.repo, pr.number)
            .await
            .map_err(|e| e.to_string())?;
        let from_slack = self.store.slack_reviews(pr.number).unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading Slack review ids");
            std::collections::BTreeSet::new()
        });
        let now = state.clock.now();
        let past = now > cr.expires_at;
        let listed: Vec<ListedReview<'_>> = reviews
            .iter()
            .map(|r| ListedReview {
                id: r.id,
                login: &r.user,
                state: &r.state,
                commit_id: &r.commit_id,
                submitted_at: r.submitted_at.as_deref(),
                source: if from_slack.contains(&r.id) {
                    Source::Slack
                } else {
                    Source::Github
                },
            })
            .collect();
        let inputs = inputs_by_deadline(&listed, cr.expires_at);
        let input = QuorumInput {
            requirement: &cr.policy.approval,
            requester_subject: &cr.requester.subject,
            requester_login: cr.requester.github_login.as_deref(),
            pr_author: &pr.author,
            excluded: &v.excluded.iter().cloned().collect::<Vec<_>>(),
            head_sha: &pr.head_sha,
            reviews: &inputs,
            now: judged_at(pr.merged_at, now, cr.expires_at),
            expires_at: cr.expires_at,
        };
        // Each reviewer resolved once, now: a person the IdP or Slack switched off counts for
        // nothing, static entries and directory people alike.
        let people: std::collections::HashMap<String, slipway_core::policy::Identity> = listed
            .iter()
            .filter_map(|r| {
                let i = state.people.by_github(&state.policy(), r.login)?;
                Some((r.login.to_ascii_lowercase(), i))
            })
            .collect();
        let mut q = quorum(&input, |login| people.get(&login.to_ascii_lowercase()));
        q.expired = past && !q.met;
        Ok(q)
    }

    /// Recompute everything about a PR after an event, and tell GitHub and Slack.
    pub async fn refresh(&self, state: &Ctx, number: u64, event: &str) -> Result<(), String> {
        self.refresh_with(state, number, Some(event)).await
    }

    /// [`Self::refresh`], posting `event` in the thread only when there is one (a review made
    /// in Slack was already told there when it was made).
    pub async fn refresh_with(
        &self,
        state: &Ctx,
        number: u64,
        event: Option<&str>,
    ) -> Result<(), String> {
        let pr = self
            .gh()
            .get_pr(&self.cfg.repo, number)
            .await
            .map_err(|e| e.to_string())?;
        if !pr.head_ref.starts_with("slipway/cr-") {
            return Ok(());
        }
        let verified = match self.change_of(&pr).await {
            Ok(v) => v,
            // Once merged, the PR's diff against the default branch is empty: its change
            // request is read (and verified) at the merge commit instead.
            Err(super::verify::Unverified::Refused(_)) if pr.merged => {
                match self.merged_change(&pr).await {
                    Ok(cr) => super::verify::Verified::merged(cr),
                    Err(why) => {
                        self.refuse_unverified(state, &pr, &why).await;
                        return Ok(());
                    }
                }
            }
            Err(super::verify::Unverified::Refused(why)) => {
                self.refuse_unverified(state, &pr, &why).await;
                return Ok(());
            }
            // Not a verdict: the status and the thread stay as they are until the next event.
            Err(upstream) => return Err(upstream.to_string()),
        };
        let q = self.quorum_of(state, &pr, &verified).await?;
        let cr = &verified.cr;
        if pr.state == "open" {
            self.judge_open(state, &pr, cr, &q).await;
        } else {
            self.release_closed(&pr, cr).await;
        }
        self.mirror_to_slack(state, &pr, cr, &q, event).await;
        Ok(())
    }

    /// An open PR: remember its deadline, set `slipway/approval` from the quorum, and merge it
    /// when the quorum is met and the rule auto-merges.
    async fn judge_open(&self, state: &Ctx, pr: &Pr, cr: &ChangeRequest, q: &Quorum) {
        let number = pr.number;
        if let Err(e) = self.store.set_deadline(
            number,
            &Deadline {
                head_sha: pr.head_sha.clone(),
                expires_at: cr.expires_at.timestamp(),
            },
        ) {
            tracing::error!(error = %e, pr = number, "recording a change request's deadline");
        }
        let policy = state.policy();
        let frozen = super::freeze::blocking_merge(&policy, cr, state.clock.now());
        let (st, desc) = match &frozen {
            Some(why) => ("failure", why.clone()),
            None => approval_status(q, &cr.policy.approval.rule),
        };
        let (st, desc) = self.cab_status(cr, (st, desc)).await;
        if let Err(e) = self
            .gh()
            .set_status(
                &self.cfg.repo,
                &pr.head_sha,
                st,
                "slipway/approval",
                &desc,
                Some(&pr.html_url),
            )
            .await
        {
            tracing::warn!(error = %e, pr = number, "setting slipway/approval");
        }
        if q.met && st == "success" && policy.auto_merge(&cr.policy.approval) {
            self.auto_merge(state, pr, cr).await;
        }
    }

    /// A closed or merged PR: release the target's lock and forget its deadline.
    async fn release_closed(&self, pr: &Pr, cr: &ChangeRequest) {
        if let Err(e) = self
            .gh()
            .delete_ref(&self.cfg.repo, &Self::lock_ref(&cr.resource))
            .await
        {
            tracing::warn!(error = %e, pr = pr.number, "releasing the change lock");
        }
        if let Err(e) = self.store.remove_deadline(pr.number) {
            tracing::error!(error = %e, pr = pr.number, "forgetting a closed change request's deadline");
        }
    }

    /// A PR whose change request doesn't verify: `slipway/approval` fails with the reason, and
    /// nothing is merged, unlocked or expired on its word.
    async fn refuse_unverified(&self, state: &Ctx, pr: &Pr, why: &str) {
        tracing::warn!(
            pr = pr.number,
            reason = why,
            "a Slipway PR failed verification"
        );
        state.metrics.request("github_webhook", "unverified_change");
        if pr.state != "open" {
            return;
        }
        let desc: String = format!("unverified: {why}").chars().take(140).collect();
        if let Err(e) = self
            .gh()
            .set_status(
                &self.cfg.repo,
                &pr.head_sha,
                "failure",
                "slipway/approval",
                &desc,
                Some(&pr.html_url),
            )
            .await
        {
            tracing::warn!(error = %e, pr = pr.number, "setting slipway/approval");
        }
        if let Some((channel, ts)) = self.thread_of(pr.number) {
            let text = format!(
                ":no_entry: PR #{} no longer verifies, so it can't be approved or merged through Slipway: {why}",
                pr.number
            );
            if let Err(e) = state
                .slack
                .post(&channel, Some(&ts), &Message::text(text))
                .await
            {
                tracing::warn!(error = %e, "posting in the change thread");
            }
        }
    }

    /// The checks every Slack review needs, before anything reaches GitHub. `Err` is the
    /// refusal to show.
    async fn check_reviewer(
        &self,
        state: &Ctx,
        user: &slipway_core::policy::SlackUser,
        number: u64,
        approve: bool,
    ) -> Result<(Pr, Verified), String> {
        let pr = self.gh().get_pr(&self.cfg.repo, number).await.map_err(|e| {
            tracing::warn!(error = %e, pr = number, "reading a PR for a review");
            format!(
                "Slipway couldn't read PR #{number} from GitHub just now; try again in a minute."
            )
        })?;
        let verified = self.change_of(&pr).await.map_err(|u| match u {
            super::verify::Unverified::Refused(why) => format!("PR #{number} is not a verified Slipway change request, so it can't be reviewed here: {why}"),
            upstream @ super::verify::Unverified::Upstream(_) => format!("PR #{number}: {upstream}."),
        })?;
        let cr = &verified.cr;
        let identity = state.person(user).await?;
        if approve
            && identity
                .github
                .as_deref()
                .is_some_and(|l| verified.excluded.contains(&l.to_ascii_lowercase()))
        {
            return Err(format!(
                "you pushed to PR #{number} after Slipway's commit, so you can't approve it: ask another approver."
            ));
        }
        if pr.state != "open" {
            return Err(format!(
                "PR #{number} is {}; there is nothing to review.",
                if pr.merged { "merged" } else { "closed" }
            ));
        }
        if state.clock.now() > cr.expires_at {
            return Err(format!(
                "change request `{}` expired at {}.",
                cr.id,
                cr.expires_at.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        if identity.subject == cr.requester.subject {
            return Err(
                "you requested this change, so you can't approve or reject it yourself.".into(),
            );
        }
        let groups = &cr.policy.approval.groups;
        if !groups.iter().any(|g| identity.in_group(g)) {
            return Err(format!(
                "rule `{}` needs approvers from {}; you're not in those groups.",
                cr.policy.approval.rule,
                groups.join(" or ")
            ));
        }
        if approve && cr.policy.approval.approve_in == ApproveIn::Github {
            return Err(format!(
                "this target requires approval in GitHub (Slack approvals skip your identity provider's MFA): {}",
                pr.html_url
            ));
        }
        Ok((pr, verified))
    }

    /// The person's usable linked account, or the message that says what to do.
    async fn linked(
        &self,
        state: &Ctx,
        user: &slipway_core::policy::SlackUser,
    ) -> Result<super::LinkedAccount, String> {
        let account = self.tokens.get(&user.user_id).await.map_err(|e| {
            tracing::error!(error = %e, "reading a linked token");
            "your linked GitHub account can't be read; run `/slipway link github` again."
                .to_string()
        })?;
        let Some(account) = account else {
            return Err("link your GitHub account first with `/slipway link github`, so the review is made as you.".into());
        };
        if account.expires_at.is_some_and(|t| t <= state.clock.now()) {
            return Err(
                "your GitHub authorization has expired; run `/slipway link github` again.".into(),
            );
        }
        Ok(account)
    }

    /// Slack's Approve (`approve = true`) or Reject, submitted from its modal with the person's
    /// comment or reason (`text`). `expected_head`: the commit the approver was shown; the
    /// review is refused if the PR has moved since. Every check happens before anything reaches
    /// GitHub; a refusal is returned as the message to show.
    pub async fn review_from_slack(
        self: &Arc<Self>,
        state: &Ctx,
        user: &slipway_core::policy::SlackUser,
        number: u64,
        approve: bool,
        text: &str,
        expected_head: Option<&str>,
    ) -> Result<String, String> {
        let repo = &self.cfg.repo;
        let (pr, verified) = self.check_reviewer(state, user, number, approve).await?;
        let cr = &verified.cr;
        if let Some(shown) = expected_head {
            check_head(&pr, shown)?;
        }
        let identity = state.person(user).await?;
        let account = self.linked(state, user).await?;
        let as_user =
            GitHub::user(&self.cfg.api_url, &account.token.expose()).map_err(|e| e.to_string())?;
        let reason = slipway_core::redact::redactor().redact(text.trim());
        let reason: String = reason.chars().take(2000).collect();
        let body = self.review_body(
            &pr,
            number,
            approve,
            &identity.subject,
            &account.login,
            &reason,
        );
        let id = self
            .post_review(&as_user, &pr, number, approve, &body)
            .await?;
        if let Err(e) = self.store.add_slack_review(number, id) {
            tracing::error!(error = %e, "recording a Slack review id");
        }
        let record = AuditRecord::new(if approve { EventKind::Approval } else { EventKind::Rejection }, state.ids.next(), state.clock.now())
            .with_actor(Actor::slack(user, Some(&identity), state.policy().primary_role(&identity)))
            .with_change_id(cr.id.clone())
            .with_pr(PullRequest { repo: repo.to_string(), number, head_sha: Some(pr.head_sha.clone()), merge_sha: None })
            .with_approval(Approval { who: identity.subject.clone(), when: state.clock.now(), source: ApprovalSource::Slack, head_sha: Some(pr.head_sha.clone()) })
            .with_details(json!({"review_id": id, "github_login": account.login, (if approve { "comment" } else { "reason" }): (!reason.is_empty()).then(|| reason.clone())}));
        let _ = state.record(record, "a review").await;
        self.refresh(
            state,
            number,
            &format!(
                "{} {} in Slack",
                identity.subject,
                if approve {
                    "approved"
                } else {
                    "requested changes"
                }
            ),
        )
        .await?;
        Ok(if approve {
            format!("Approved PR #{number} as you.")
        } else {
            format!("Requested changes on PR #{number} as you.")
        })
    }

    /// Submits the review to GitHub as the person, bound to the head they were shown. GitHub's
    /// refusal is logged, not shown: its text is not written for the reviewer.
    async fn post_review(
        &self,
        as_user: &GitHub,
        pr: &Pr,
        number: u64,
        approve: bool,
        body: &str,
    ) -> Result<u64, String> {
        let event = if approve {
            "APPROVE"
        } else {
            "REQUEST_CHANGES"
        };
        match as_user
            .review(&self.cfg.repo, number, event, body, Some(&pr.head_sha))
            .await
        {
            Ok(id) => Ok(id),
            Err(e @ GhError::Http { status: 401, .. }) => {
                tracing::warn!(error = %e, "a linked token was refused");
                Err(
                    "GitHub no longer accepts your linked token; run `/slipway link github` again."
                        .into(),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, pr = number, "GitHub refused a review made in Slack");
                Err(format!(
                    "GitHub refused the review, so PR #{number} is unchanged; try again, or review it in GitHub."
                ))
            }
        }
    }

    /// The review's text, and the bridge's signed marker, so the runner can tell this review
    /// was made in Slack (`approve_in: github`).
    fn review_body(
        &self,
        pr: &Pr,
        number: u64,
        approve: bool,
        subject: &str,
        login: &str,
        reason: &str,
    ) -> String {
        let (verb, label) = if approve {
            ("Approved", "Comment")
        } else {
            ("Rejected", "Reason")
        };
        let text = if reason.is_empty() {
            format!("{verb} in Slack by {subject}.")
        } else {
            format!("{verb} in Slack by {subject}. {label}: {reason}")
        };
        let signer = self.signer.get();
        let marker = slipway_core::change::slack_review_marker(
            &signer.key,
            &signer.id,
            &self.cfg.repo.to_string(),
            number,
            &pr.head_sha,
            login,
        );
        format!("{text}\n\n{marker}")
    }

    /// Approve or Reject clicked (`click`) on PR `number`: open its modal (the submission makes
    /// the review). Approve first runs the reviewer checks, so a refusal comes before any
    /// dialog, and shows the change.
    pub async fn open_review_modal(
        &self,
        state: &Ctx,
        click: &crate::slack::events::BlockAction,
        number: u64,
        approve: bool,
        shown_head: Option<String>,
    ) -> Result<(), String> {
        let user = &click.user;
        state.person(user).await?;
        let account = self.linked(state, user).await?;
        let mut ctx = ReviewContext {
            pr: number,
            head_sha: shown_head,
            response_url: click.response_url.clone().unwrap_or_default(),
        };
        let view = if approve {
            // Slack's trigger_id lasts 3 s: the checks get half of it.
            let (pr, verified) = tokio::time::timeout(
                std::time::Duration::from_millis(1500),
                self.check_reviewer(state, user, number, true),
            )
            .await
            .map_err(|_| {
                "GitHub didn't answer in time to show you the change; click Approve again."
                    .to_string()
            })??;
            if let Some(shown) = &ctx.head_sha {
                check_head(&pr, shown)?;
            }
            ctx.head_sha = Some(pr.head_sha.to_ascii_lowercase());
            let cr = &verified.cr;
            let summary = ApproveSummary {
                change_id: &cr.id,
                command: &cr.command.text,
                resource: &cr.resource,
                requester: &cr.requester.slack_user_id,
                foreign_commits: &verified.foreign_commits,
                changed_since: &verified.changed_since,
            };
            approve_modal(&ctx, &account.login, &summary)?
        } else {
            reject_modal(&ctx, &account.login)?
        };
        state
            .slack
            .open_view(&click.trigger_id, view)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "views.open failed");
                "Slack didn't open the dialog; click again.".to_string()
            })
    }
}

/// Refuses a review of a head other than the one the approver was shown.
fn check_head(pr: &Pr, shown: &str) -> Result<(), String> {
    if pr.head_sha.eq_ignore_ascii_case(shown) {
        return Ok(());
    }
    Err(format!(
        "PR #{} has a new commit (`{}`) since you were shown `{}`, so nothing was approved. Review the new diff (the message above shows it) and approve again.",
        pr.number,
        pr.head_sha.get(..7).unwrap_or(&pr.head_sha),
        shown.get(..7).unwrap_or(shown)
    ))
}

/// `slipway/approval`'s state and description for a quorum under `rule`.
fn approval_status(q: &Quorum, rule: &str) -> (&'static str, String) {
    let stale_note = if q.stale.is_empty() {
        String::new()
    } else {
        format!("; stale: {}", q.stale.join(", "))
    };
    if q.met {
        ("success", format!("{} approvals ({rule})", q.progress()))
    } else if q.expired {
        ("failure", format!("expired ({rule})"))
    } else if !q.changes_requested.is_empty() {
        (
            "failure",
            format!("changes requested by {}", q.changes_requested.join(", ")),
        )
    } else {
        (
            "pending",
            format!("{} approvals ({rule}){stale_note}", q.progress()),
        )
    }
}
