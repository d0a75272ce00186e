//! A change between its ack and its PR: everything the later steps (Confirm, the modal, the
//! PR) need, copied out of the request and the policy decision so it outlives both.

use slipway_core::change::{ApprovalRequirement, PolicyBinding, Requester};
use slipway_core::command::{Command, Family, ParsedCommand, Target, Tier};
use slipway_core::policy::Decision;

use crate::slack::events::SlashCommand;

/// A change waiting for Confirm, the modal, or the PR to open. Owned: it outlives the request.
#[derive(Debug, Clone)]
pub struct Pending {
    pub token: String,
    /// The audit event id of the decision: the reference a failure shows.
    pub decision_audit_id: String,
    pub text: String,
    pub command: Command,
    pub family: Family,
    pub argv: Vec<String>,
    pub target: Target,
    pub tier: Tier,
    pub resource: String,
    pub requester: Requester,
    pub policy: PolicyBinding,
    pub channel: String,
    pub response_url: String,
    /// For destructive changes: what must be typed, and what was.
    pub expected_confirmation: Option<String>,
    pub confirmation: Option<String>,
    /// Dropped, unconfirmed, after this.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// For `/deploy`: the image the dry run resolved, which Confirm deploys (not the tag's
    /// digest at that later moment).
    pub pinned_image: Option<super::artifact::PinnedImage>,
    /// `--override-freeze "<reason>"`: the reason, if given (judged when the PR opens).
    pub override_freeze: Option<String>,
}

impl Pending {
    /// From a decided command; `None` if the decision lacks what a change needs.
    pub fn new(
        token: String,
        decision_audit_id: &str,
        cmd: &SlashCommand,
        parsed: &ParsedCommand,
        d: &Decision<'_>,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Option<Pending> {
        let identity = d.identity?;
        let approval = d.approval.clone()?;
        let expected = match &parsed.command {
            Command::Kubectl(k) if parsed.tier() == Some(Tier::Destructive) => {
                Some(k.confirmation_text())
            }
            _ => None,
        };
        Some(Pending {
            token,
            decision_audit_id: decision_audit_id.to_string(),
            text: parsed.text.clone(),
            command: parsed.command.clone(),
            family: parsed.family(),
            argv: parsed.argv().unwrap_or_default(),
            target: d.target.clone(),
            tier: d.tier?,
            resource: d.resource()?,
            requester: Requester {
                slack_user_id: cmd.user.user_id.clone(),
                slack_team_id: cmd.user.team_id.clone(),
                slack_enterprise_id: cmd.user.enterprise_id.clone(),
                subject: identity.subject.clone(),
                email: identity.email.clone(),
                github_login: identity.github.clone(),
                role: d.role.unwrap_or_default().to_string(),
                groups: identity.groups.clone(),
            },
            policy: PolicyBinding {
                rule: d.rule.clone(),
                approval,
            },
            channel: cmd.channel_id.clone(),
            response_url: cmd.response_url.clone(),
            expected_confirmation: expected,
            pinned_image: None,
            confirmation: None,
            expires_at,
            override_freeze: parsed.override_freeze.clone(),
        })
    }

    pub(super) fn approval_summary(&self) -> String {
        summary(&self.policy.approval)
    }

    /// The policy binding to sign: a stricter requirement found while rendering wins.
    pub(super) fn binding(&self, rendered: Option<&ApprovalRequirement>) -> PolicyBinding {
        PolicyBinding {
            rule: self.policy.rule.clone(),
            approval: rendered.map_or_else(|| self.policy.approval.clone(), Clone::clone),
        }
    }
}

/// "2 approval(s) from approvers (rule `standard`, in GitHub)", for Slack.
pub(super) fn summary(a: &ApprovalRequirement) -> String {
    let each = if a.all_of.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = a
            .all_of
            .iter()
            .map(|q| format!("{} from {}", q.approvers, q.groups.join(" or ")))
            .collect();
        format!(", including {}", parts.join(" and "))
    };
    format!(
        "{} approval(s) from {} (rule `{}`{each}{})",
        a.approvers,
        a.groups.join(" or "),
        a.rule,
        if a.approve_in == slipway_core::policy::model::ApproveIn::Github {
            ", in GitHub"
        } else {
            ""
        }
    )
}
