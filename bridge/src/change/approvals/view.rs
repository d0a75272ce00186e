//! The Block Kit side of approvals: the approval message's view and text, and the reject modal.

use chrono::{DateTime, Utc};
use serde_json::json;
use slipway_core::approval::{Quorum, Source};
use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use crate::slack::client::Message;

/// Where a change request stands, as the Slack message shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Waiting,
    ChangesRequested,
    Approved,
    /// Open, past its deadline without the quorum.
    Expired,
    Merged,
    Closed,
    /// Closed by Slipway (or anyone) after its deadline passed without the quorum.
    ExpiredClosed,
}

impl Stage {
    fn text(self) -> &'static str {
        match self {
            Stage::Waiting => ":hourglass_flowing_sand: waiting for approvals",
            Stage::ChangesRequested => ":x: changes requested",
            Stage::Approved => ":white_check_mark: approved",
            Stage::Expired => ":hourglass: expired",
            Stage::Merged => ":twisted_rightwards_arrows: merged; the runner executes it next",
            Stage::Closed => ":no_entry_sign: closed without merging",
            Stage::ExpiredClosed => ":hourglass: expired without enough approvals; closed",
        }
    }

    fn open(self) -> bool {
        matches!(
            self,
            Stage::Waiting | Stage::ChangesRequested | Stage::Approved | Stage::Expired
        )
    }
}

/// Everything the approval message shows: the PR, the rule's count, each approver with their
/// source, stale approvals and outstanding change requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalView {
    pub change_id: String,
    pub pr_number: u64,
    pub pr_url: String,
    pub requester_slack_id: String,
    pub rule: String,
    pub needed: u32,
    /// `(identity subject, source)`, in the order they counted.
    pub approvals: Vec<(String, Source)>,
    /// Logins whose approval was given on an earlier commit.
    pub stale: Vec<String>,
    pub changes_requested: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub stage: Stage,
}

impl ApprovalView {
    pub fn new(pr: &Pr, cr: &ChangeRequest, q: &Quorum) -> ApprovalView {
        let stage = match (pr.state.as_str(), pr.merged) {
            (_, true) => Stage::Merged,
            ("closed", false) if q.expired => Stage::ExpiredClosed,
            ("closed", false) => Stage::Closed,
            _ if q.met => Stage::Approved,
            _ if q.expired => Stage::Expired,
            _ if !q.changes_requested.is_empty() => Stage::ChangesRequested,
            _ => Stage::Waiting,
        };
        ApprovalView {
            change_id: cr.id.clone(),
            pr_number: pr.number,
            pr_url: pr.html_url.clone(),
            requester_slack_id: cr.requester.slack_user_id.clone(),
            rule: cr.policy.approval.rule.clone(),
            needed: q.needed,
            approvals: q
                .approvals
                .iter()
                .map(|a| (a.subject.clone(), a.source))
                .collect(),
            stale: q.stale.clone(),
            changes_requested: q.changes_requested.clone(),
            expires_at: cr.expires_at,
            stage,
        }
    }

    /// "1 of 2"
    pub fn progress(&self) -> String {
        format!("{} of {}", self.approvals.len(), self.needed)
    }

    pub(super) fn stale_note(&self) -> String {
        if self.stale.is_empty() {
            String::new()
        } else {
            format!(
                " · stale (given before the latest commit): {}",
                self.stale.join(", ")
            )
        }
    }
}

/// Slack's limit for a text object is 3000 characters; stay under it with room to spare.
const TEXT_BUDGET: usize = 2900;

fn fit(text: String) -> String {
    if text.chars().count() <= TEXT_BUDGET {
        return text;
    }
    let mut cut: String = text.chars().take(TEXT_BUDGET - 1).collect();
    cut.push('…');
    cut
}

/// The approval message (`templates/blocks/change.json.j2`) for a view: pure, so snapshot tests
/// render exactly what Slack gets. Every text fits Slack's limits, however many reviewers.
pub fn approval_message(v: &ApprovalView) -> Message {
    let who = if v.approvals.is_empty() {
        "none yet".to_string()
    } else {
        v.approvals
            .iter()
            .map(|(subject, source)| {
                format!(
                    "{subject} (via {})",
                    if *source == Source::Slack {
                        "Slack"
                    } else {
                        "GitHub"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let headline = format!(
        ":memo: *Change request* `{}`: <{}|#{}> {}",
        v.change_id,
        v.pr_url,
        v.pr_number,
        v.stage.text()
    );
    let deadline = if v.stage.open() {
        format!(" · expires {}", v.expires_at.format("%Y-%m-%d %H:%M UTC"))
    } else {
        String::new()
    };
    let context = format!(
        "Approvals: *{}* (rule `{}`) · {who} · requested by <@{}>{deadline}",
        v.progress(),
        v.rule,
        v.requester_slack_id
    );
    let mut notes = Vec::new();
    if !v.stale.is_empty() {
        notes.push(format!(":warning: Stale: {} approved an earlier commit; those approvals no longer count, approve the latest commit again.", v.stale.join(", ")));
    }
    if !v.changes_requested.is_empty() {
        notes.push(format!(
            ":x: Changes requested by {}.",
            v.changes_requested.join(", ")
        ));
    }
    let value = v.pr_number.to_string();
    let mut buttons = Vec::new();
    if v.stage.open() && v.stage != Stage::Expired {
        buttons.push(json!({"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": value}));
        buttons.push(json!({"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": value}));
    }
    buttons.push(
        json!({"action_id": "slipway_open_pr", "text": "View PR", "url": v.pr_url, "value": value}),
    );
    crate::change::flow::change_message(
        &fit(headline),
        &fit(context),
        "",
        &fit(notes.join(" ")),
        &buttons,
        format!("{} {}: {}", v.change_id, v.stage.text(), v.progress()),
    )
}

/// What the reject modal carries back in `private_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RejectContext {
    pub pr: u64,
    /// The clicked message's `response_url`, to answer the person after the submission.
    #[serde(default)]
    pub response_url: String,
}

/// The reject modal (`templates/blocks/reject.json.j2`).
pub fn reject_modal(ctx: &RejectContext, login: &str) -> Result<serde_json::Value, String> {
    let metadata = serde_json::to_string(ctx).map_err(|e| e.to_string())?;
    if metadata.len() > 3000 {
        return Err(
            "the modal's context is over Slack's 3000-character private_metadata limit".into(),
        );
    }
    crate::templates::render_json(
        "blocks/reject.json.j2",
        minijinja::context! {
            metadata,
            summary => format!(":x: Request changes on pull request *#{}*. Slipway submits a *Request changes* review in GitHub as you (`{login}`), with your reason as its text.", ctx.pr),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_context_round_trips_and_is_bounded() {
        let ctx = RejectContext {
            pr: 12,
            response_url: "https://hooks.slack.com/actions/T/1/x".into(),
        };
        let view = reject_modal(&ctx, "ada").unwrap();
        let back: RejectContext =
            serde_json::from_str(view["private_metadata"].as_str().unwrap()).unwrap();
        assert_eq!(back, ctx);
        assert_eq!(view["callback_id"], "slipway_reject");
        let huge = RejectContext {
            pr: 1,
            response_url: "x".repeat(4000),
        };
        assert!(reject_modal(&huge, "ada").is_err());
    }
}
