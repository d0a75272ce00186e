//! The Block Kit side of approvals: the approval message's view and text, and the approve and
//! reject modals.

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

    pub fn open(self) -> bool {
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
    /// The commit the message shows; the Approve button carries it, so an approval binds to what
    /// the approver saw.
    pub head_sha: String,
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
            head_sha: pr.head_sha.clone(),
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

/// A section field's limit is 2000 characters; its label takes a few.
const FIELD_BUDGET: usize = 1900;

fn fit(text: &str) -> String {
    clip(text, TEXT_BUDGET)
}

fn clip(text: &str, budget: usize) -> String {
    if text.chars().count() <= budget {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(budget - 1).collect();
    cut.push('…');
    cut
}

/// The approval message (`templates/blocks/change.json.j2`) for a view: pure, so snapshot tests
/// render exactly what Slack gets. Every text fits Slack's limits, however many reviewers.
pub fn approval_message(v: &ApprovalView) -> Message {
    let headline = format!(
        ":memo: *Change request* `{}`: <{}|#{}> {}",
        v.change_id,
        v.pr_url,
        v.pr_number,
        v.stage.text()
    );
    crate::change::flow::change_message(
        &fit(&headline),
        &fit(&context_line(v)),
        "",
        &fit(&notes(v).join(" ")),
        &buttons(v),
        format!("{} {}: {}", v.change_id, v.stage.text(), v.progress()),
    )
}

/// Progress, who approved (and where), who asked, and the deadline while it still matters.
fn context_line(v: &ApprovalView) -> String {
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
    let deadline = if v.stage.open() {
        format!(" · expires {}", v.expires_at.format("%Y-%m-%d %H:%M UTC"))
    } else {
        String::new()
    };
    format!(
        "Approvals: *{}* (rule `{}`) · {who} · requested by <@{}>{deadline}",
        v.progress(),
        v.rule,
        v.requester_slack_id
    )
}

/// Why approvals may not count yet: stale approvals and requested changes.
fn notes(v: &ApprovalView) -> Vec<String> {
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
    notes
}

/// Approve/Reject only while a review can still change the outcome; View PR always.
fn buttons(v: &ApprovalView) -> Vec<serde_json::Value> {
    let value = v.pr_number.to_string();
    let mut buttons = Vec::new();
    // Once the quorum is met another approval changes nothing; a rejection still blocks it.
    if matches!(v.stage, Stage::Waiting | Stage::ChangesRequested) {
        buttons.push(json!({"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": approve_value(v.pr_number, &v.head_sha)}));
    }
    if v.stage.open() && v.stage != Stage::Expired {
        buttons.push(json!({"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": value}));
    }
    buttons.push(
        json!({"action_id": "slipway_open_pr", "text": "View PR", "url": v.pr_url, "value": value}),
    );
    buttons
}

/// The Approve button's value: the PR and the head commit the message shows (`42@<sha>`).
pub fn approve_value(pr: u64, head_sha: &str) -> String {
    if head_sha.is_empty() {
        pr.to_string()
    } else {
        format!("{pr}@{head_sha}")
    }
}

/// A review button's value: the PR, and the head the message showed if it carries one (messages
/// posted before the value carried it have only the number).
pub fn parse_review_value(value: &str) -> Option<(u64, Option<String>)> {
    let (pr, sha) = match value.split_once('@') {
        Some((pr, sha)) => (pr, Some(sha)),
        None => (value, None),
    };
    let pr = pr.parse().ok()?;
    match sha {
        Some(s) if s.len() < 7 || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => None,
        sha => Some((pr, sha.map(str::to_ascii_lowercase))),
    }
}

/// What a review modal (approve or reject) carries back in `private_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReviewContext {
    pub pr: u64,
    /// The head the approver was shown. The review is refused if the PR has moved on since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    /// The clicked message's `response_url`, to answer the person after the submission.
    #[serde(default)]
    pub response_url: String,
}

impl ReviewContext {
    fn metadata(&self) -> Result<String, String> {
        let metadata = serde_json::to_string(self).map_err(|e| e.to_string())?;
        if metadata.len() > 3000 {
            return Err(
                "the modal's context is over Slack's 3000-character private_metadata limit".into(),
            );
        }
        Ok(metadata)
    }
}

/// What the approve modal shows about the change, so the approver sees what they approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproveSummary<'a> {
    pub change_id: &'a str,
    pub command: &'a str,
    pub resource: &'a str,
    pub requester: &'a str,
    /// Commits pushed after Slipway's own, and the paths they changed: shown so that an
    /// approver sees what they approve beyond the request.
    pub foreign_commits: &'a [String],
    pub changed_since: &'a [String],
}

/// The approve modal (`templates/blocks/approve.json.j2`): the change, the commit the approval
/// binds to, and an optional comment.
pub fn approve_modal(
    ctx: &ReviewContext,
    login: &str,
    change: &ApproveSummary<'_>,
) -> Result<serde_json::Value, String> {
    let commit = ctx
        .head_sha
        .as_deref()
        .map_or("its current head".to_string(), |s| {
            format!("commit `{}`", s.get(..7).unwrap_or(s))
        });
    crate::templates::render_json(
        "blocks/approve.json.j2",
        minijinja::context! {
            metadata => ctx.metadata()?,
            summary => format!(
                ":white_check_mark: Approve change request `{}` (pull request *#{}*) at {commit}.",
                change.change_id, ctx.pr
            ),
            command => clip(&format!("`{}`", change.command.replace('`', "'")), FIELD_BUDGET),
            resource => clip(&format!("`{}`", change.resource), FIELD_BUDGET),
            requester => format!("<@{}>", change.requester),
            binding => format!("Slipway submits an *Approve* review in GitHub as you (`{login}`) on that commit. If the pull request gets a new commit before you submit, nothing is approved."),
            since => since_slipway(change),
        },
    )
}

/// What changed after Slipway's own commit, for the approve modal (empty when nothing did).
fn since_slipway(change: &ApproveSummary<'_>) -> String {
    if change.foreign_commits.is_empty() && change.changed_since.is_empty() {
        return String::new();
    }
    let commits: Vec<String> = change
        .foreign_commits
        .iter()
        .take(10)
        .map(|c| format!("• {}", c.replace('`', "'")))
        .collect();
    let files: Vec<String> = change
        .changed_since
        .iter()
        .take(10)
        .map(|p| format!("`{p}`"))
        .collect();
    clip(
        &format!(
            ":warning: *Changed since Slipway's commit* (their authors and pushers can't approve):\n{}\nFiles: {}",
            commits.join("\n"),
            if files.is_empty() {
                "none".to_string()
            } else {
                files.join(", ")
            }
        ),
        2900,
    )
}

/// The reject modal (`templates/blocks/reject.json.j2`).
pub fn reject_modal(ctx: &ReviewContext, login: &str) -> Result<serde_json::Value, String> {
    crate::templates::render_json(
        "blocks/reject.json.j2",
        minijinja::context! {
            metadata => ctx.metadata()?,
            summary => format!(":x: Request changes on pull request *#{}*. Slipway submits a *Request changes* review in GitHub as you (`{login}`), with your reason as its text.", ctx.pr),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_context_round_trips_and_is_bounded() {
        let ctx = ReviewContext {
            pr: 12,
            head_sha: None,
            response_url: "https://hooks.slack.com/actions/T/1/x".into(),
        };
        let view = reject_modal(&ctx, "ada").unwrap();
        let back: ReviewContext =
            serde_json::from_str(view["private_metadata"].as_str().unwrap()).unwrap();
        assert_eq!(back, ctx);
        assert_eq!(view["callback_id"], "slipway_reject");
        let huge = ReviewContext {
            pr: 1,
            head_sha: None,
            response_url: "x".repeat(4000),
        };
        assert!(reject_modal(&huge, "ada").is_err());
    }

    #[test]
    fn the_approve_modal_binds_to_the_commit_it_shows() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let ctx = ReviewContext {
            pr: 7,
            head_sha: Some(sha.into()),
            response_url: String::new(),
        };
        let change = ApproveSummary {
            change_id: "cr-1",
            command: "/deploy `api` prod",
            resource: "service:api/prod",
            requester: "U0OPERATOR",
            foreign_commits: &[],
            changed_since: &[],
        };
        let view = approve_modal(&ctx, "ada", &change).unwrap();
        assert_eq!(view["callback_id"], "slipway_approve");
        let back: ReviewContext =
            serde_json::from_str(view["private_metadata"].as_str().unwrap()).unwrap();
        assert_eq!(back.head_sha.as_deref(), Some(sha));
        let text = view["blocks"].to_string();
        assert!(text.contains("commit `0123456`"), "{text}");
        assert!(
            text.contains("/deploy 'api' prod"),
            "backticks can't break the code span: {text}"
        );
        let long = "x".repeat(5000);
        let view = approve_modal(
            &ctx,
            "ada",
            &ApproveSummary {
                command: &long,
                ..change
            },
        )
        .unwrap();
        assert!(
            view["blocks"][0]["fields"][0]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count()
                <= 2000
        );
    }

    #[test]
    fn review_values_carry_the_shown_head() {
        let sha = "0123456789ABCDEF0123456789abcdef01234567";
        assert_eq!(approve_value(7, ""), "7");
        assert_eq!(
            parse_review_value(&approve_value(7, sha)),
            Some((7, Some(sha.to_ascii_lowercase())))
        );
        assert_eq!(parse_review_value("42"), Some((42, None)));
        for bad in [
            "",
            "x",
            "7@",
            "7@xyz1234",
            "7@12",
            "-1",
            "7@0123456789abcdef; rm",
        ] {
            assert_eq!(parse_review_value(bad), None, "{bad}");
        }
    }
}
