//! The quorum on the PR's final head, from GitHub's reviews under the one deadline rule, and
//! judged under both the signed approval rule and the current policy's.

use chrono::{DateTime, Utc};
use slipway_core::approval::{
    ListedReview, Quorum, QuorumInput, ReviewInput, Source, inputs_by_deadline, judged_at, quorum,
};
use slipway_core::change::people::Snapshot;
use slipway_core::change::{ApprovalRequirement, ChangeRequest};
use slipway_core::policy::{Identity, IdentityProvider, Policy};
use slipway_infra::github::{Pr, Review};

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// GitHub's reviews as the quorum's input, under the one deadline rule (reviews submitted after
/// `deadline` don't count; pending ones have no state). A review whose body carries the bridge's
/// signed marker for it was made in Slack.
pub fn review_inputs(
    reviews: &[Review],
    keys: &slipway_core::change::Keyring,
    repo: &str,
    pr: u64,
    deadline: DateTime<Utc>,
) -> Vec<ReviewInput> {
    let listed: Vec<ListedReview<'_>> = reviews
        .iter()
        .map(|r| ListedReview {
            id: r.id,
            login: &r.user,
            state: &r.state,
            commit_id: &r.commit_id,
            submitted_at: r.submitted_at.as_deref(),
            source: if slipway_core::change::is_slack_review(
                &r.body,
                keys,
                repo,
                pr,
                &r.commit_id,
                &r.user,
            ) {
                Source::Slack
            } else {
                Source::Github
            },
        })
        .collect();
    inputs_by_deadline(&listed, deadline)
}

fn explain(q: &Quorum, rule: &str, head: &str) -> String {
    let mut parts = vec![format!(
        "{} approval(s) for rule `{rule}` on the PR's final head {}",
        q.progress(),
        short(head)
    )];
    if !q.stale.is_empty() {
        parts.push(format!(
            "given on an older commit (stale): {}",
            q.stale.join(", ")
        ));
    }
    if !q.changes_requested.is_empty() {
        parts.push(format!(
            "changes requested by {}",
            q.changes_requested.join(", ")
        ));
    }
    for i in &q.ignored {
        parts.push(format!("{} doesn't count ({})", i.login, i.reason));
    }
    if q.expired {
        parts.push("the request expired".into());
    }
    parts.join("; ")
}

/// The quorum under the signed rule and under the merged policy's rule: both must hold (the
/// stricter of the two wins). Returns the signed rule's quorum.
/// Reviewers are judged by the policy's static entries, then by the identity snapshot in force
/// at the merge (directory people; a deactivated one counts for nothing).
pub fn check_quorum(
    policy: &Policy,
    people: Option<&Snapshot>,
    cr: &ChangeRequest,
    pr: &Pr,
    reviews: &[ReviewInput],
    current: Option<&ApprovalRequirement>,
    now: DateTime<Utc>,
) -> Result<Quorum, String> {
    let identities = policy.identities();
    let directory: std::collections::HashMap<String, Identity> = reviews
        .iter()
        .filter(|r| identities.by_github(&r.login).is_none())
        .filter_map(|r| {
            let i = people?.by_github(&r.login)?;
            Some((r.login.to_ascii_lowercase(), i))
        })
        .collect();
    let identity_of = |login: &str| {
        identities
            .by_github(login)
            .or_else(|| directory.get(&login.to_ascii_lowercase()))
    };
    let mut requirements = vec![&cr.policy.approval];
    requirements.extend(current);
    let mut first = None;
    for req in requirements {
        let input = QuorumInput {
            requirement: req,
            requester_subject: &cr.requester.subject,
            requester_login: cr.requester.github_login.as_deref(),
            pr_author: &pr.author,
            excluded: &[],
            head_sha: &pr.head_sha,
            reviews,
            now: judged_at(pr.merged_at, now, cr.expires_at),
            expires_at: cr.expires_at,
        };
        let q = quorum(&input, identity_of);
        if !q.met {
            return Err(format!(
                "the approvals recorded on GitHub don't meet the quorum: {}",
                explain(&q, &req.rule, &pr.head_sha)
            ));
        }
        first.get_or_insert(q);
    }
    first.ok_or_else(|| "no approval rule applies".to_string())
}
