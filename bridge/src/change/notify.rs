//! Approvers are told. When a change request opens, each eligible approver (in one of its
//! approval groups, active, not its requester) gets a direct message: the change message with
//! its Approve and Reject buttons. A reminder goes out once, `gitops.approval_reminder` before
//! it expires, to those who haven't approved. The requester is told when nobody is eligible.
//! The messages are redrawn with the thread's (`approval_message`), so their buttons follow the
//! PR: Approve goes once the quorum holds, everything but View PR after a merge or a close.

use chrono::{DateTime, Utc};
use slipway_core::approval::Quorum;
use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use super::ChangeService;
use super::approvals::{ApprovalView, Stage, approval_message};
use crate::ctx::Ctx;
use crate::slack::client::Message;
use crate::store::Notice;

/// At most this many people are messaged about one request (a group of hundreds is a policy
/// to fix, not a crowd to page).
const MAX_TOLD: usize = 25;

const ASK: &str = "ask";
const REMIND: &str = "remind";

/// Someone who may approve a request: their identity subject and a Slack account to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligible {
    pub subject: String,
    pub slack: String,
}

/// The people who may approve `cr`, from the static list and the directory the policy names:
/// active, with a Slack account Slack hasn't deactivated, in one of its approval groups, and
/// not its requester. `approved` subjects are left out.
fn eligible(state: &Ctx, cr: &ChangeRequest, approved: &[String]) -> Result<Vec<Eligible>, String> {
    let policy = state.policy();
    let groups = cr.policy.approval.all_groups();
    let entries = crate::identity::listing::list(
        &policy,
        state.directory.as_deref(),
        state.people.links().as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let provider = policy.provider().as_str();
    Ok(entries
        .into_iter()
        .filter(|e| e.active && (e.source == "static" || e.source == provider))
        .filter(|e| e.subject != cr.requester.subject && !approved.contains(&e.subject))
        .filter(|e| e.groups.iter().any(|g| groups.contains(g)))
        .filter_map(|e| {
            let slack = e
                .slack
                .iter()
                .find(|s| !e.slack_deactivated.contains(s))?
                .clone();
            Some(Eligible {
                subject: e.subject,
                slack,
            })
        })
        .take(MAX_TOLD)
        .collect())
}

/// The direct message of `kind`: who asks for what, then the change message itself.
fn dm(kind: &str, view: &ApprovalView, command: &str) -> Message {
    let mut msg = approval_message(view);
    let who = &view.requester_slack_id;
    let lead = if kind == REMIND {
        format!(
            ":alarm_clock: Reminder: <@{who}>'s change expires {} without enough approvals:",
            view.expires_at.format("%Y-%m-%d %H:%M UTC")
        )
    } else {
        format!("<@{who}> asks for your approval:")
    };
    let command: String = command.chars().take(500).collect();
    let text = format!("{lead} `{command}`");
    msg.blocks.insert(
        0,
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}),
    );
    msg.text = format!("{text} · {}", msg.text);
    msg
}

impl ChangeService {
    /// A change request just opened as PR `pr`: tell its eligible approvers, once per PR (an
    /// advanced PR's messages are redrawn, not sent again), or its requester that nobody can
    /// approve it.
    pub(crate) async fn tell_approvers(&self, state: &Ctx, pr: &Pr, cr: &ChangeRequest) {
        let number = pr.number;
        let constraints = cr.policy.approval.constraints();
        if constraints.iter().all(|c| c.approvers == 0) {
            return;
        }
        let notices = self.store.notices(number).unwrap_or_default();
        if notices.iter().any(|n| n.kind == ASK) {
            return;
        }
        let people = match eligible(state, cr, &[]) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, pr = number, "listing the approvers to tell");
                return;
            }
        };
        if people.is_empty() {
            self.nobody_eligible(state, number, cr).await;
            return;
        }
        let view = ApprovalView::new(pr, cr, &Quorum::waiting(cr.policy.approval.approvers));
        let msg = dm(ASK, &view, &cr.command.text);
        self.send(state, number, &people, ASK, &msg).await;
    }

    /// Tell the requester, in their thread (or privately), that nobody may approve it.
    async fn nobody_eligible(&self, state: &Ctx, number: u64, cr: &ChangeRequest) {
        let text = format!(
            ":warning: Nobody can approve PR #{number} yet: no active person with a Slack \
             account is in its approval groups ({}) besides you. Ask {} to check the policy's \
             approval rule `{}`.",
            cr.policy.approval.all_groups().join(", "),
            state.policy().support(),
            cr.policy.approval.rule
        );
        let sent = if let Some((channel, ts)) = self.thread_of(number) {
            state
                .slack
                .post(&channel, Some(&ts), &Message::text(text))
                .await
                .map(|_| ())
        } else {
            match state.slack.open_dm(&cr.requester.slack_user_id).await {
                Ok(c) => state
                    .slack
                    .post(&c, None, &Message::text(text))
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, pr = number, "telling the requester nobody can approve");
        }
    }

    /// DM each of `people` and remember the messages under `kind`.
    async fn send(&self, state: &Ctx, number: u64, people: &[Eligible], kind: &str, msg: &Message) {
        for p in people {
            let sent = match state.slack.open_dm(&p.slack).await {
                Ok(channel) => state
                    .slack
                    .post(&channel, None, msg)
                    .await
                    .map(|ts| (channel, ts)),
                Err(e) => Err(e),
            };
            match sent {
                Ok((channel, ts)) => {
                    let notice = Notice {
                        kind: kind.to_string(),
                        channel,
                        ts,
                    };
                    if let Err(e) = self.store.add_notice(number, &notice) {
                        tracing::error!(error = %e, pr = number, "remembering an approver's message");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, pr = number, "messaging an approver");
                }
            }
        }
    }

    /// From the expiry sweep: PR `pr`, open, expires at `expires_at`. Once inside the reminder
    /// window, remind those who may still approve (once per PR).
    pub(crate) async fn remind_approvers(&self, state: &Ctx, pr: &Pr, expires_at: DateTime<Utc>) {
        let before = self.cfg.approval_reminder;
        let now = state.clock.now();
        let Ok(before) = chrono::Duration::from_std(before) else {
            return;
        };
        if before.is_zero() || now < expires_at - before || now > expires_at {
            return;
        }
        let number = pr.number;
        if self
            .store
            .notices(number)
            .map_or(true, |n| n.iter().any(|n| n.kind == REMIND))
        {
            return;
        }
        let Ok(v) = self.change_of(pr).await else {
            return;
        };
        let Ok(q) = self.quorum_of(state, pr, &v).await else {
            return;
        };
        if q.met {
            return;
        }
        let approved: Vec<String> = q.approvals.iter().map(|a| a.subject.clone()).collect();
        let Ok(people) = eligible(state, &v.cr, &approved) else {
            return;
        };
        let view = ApprovalView::new(pr, &v.cr, &q);
        let msg = dm(REMIND, &view, &v.cr.command.text);
        // Remembered even when nobody is left to remind, so the sweep doesn't ask again.
        let _ = self.store.add_notice(
            number,
            &Notice {
                kind: REMIND.into(),
                channel: String::new(),
                ts: String::new(),
            },
        );
        self.send(state, number, &people, REMIND, &msg).await;
    }

    /// Redraw every message sent about PR `view.pr_number` after a refresh, when its stage
    /// moved since they were last drawn (a new approval short of the quorum doesn't change
    /// their buttons).
    pub(super) async fn redraw_notices(&self, state: &Ctx, view: &ApprovalView, command: &str) {
        {
            let mut drawn = slipway_infra::sync::lock(&self.notice_stages);
            let was = drawn
                .get(&view.pr_number)
                .copied()
                .unwrap_or(Stage::Waiting);
            if was == view.stage {
                return;
            }
            // Bounded: forgetting only costs a redraw.
            if drawn.len() >= 10_000 {
                drawn.clear();
            }
            drawn.insert(view.pr_number, view.stage);
        }
        let notices = self.store.notices(view.pr_number).unwrap_or_default();
        for n in notices.iter().filter(|n| !n.channel.is_empty()) {
            let msg = dm(&n.kind, view, command);
            if let Err(e) = state.slack.update(&n.channel, &n.ts, &msg).await {
                tracing::warn!(error = %e, pr = view.pr_number, "redrawing an approver's message");
            }
        }
    }
}
