//! The approval quorum, computed from a PR's reviews. One pure function, used by the bridge (to
//! mirror progress and set `slipway/approval`) and by the runner (to re-verify after merge).
//!
//! Rules: each person's latest decisive review counts (a later comment doesn't undo an
//! approval; a later "changes requested" or a dismissal does); only reviews on the current head
//! SHA count, older ones are stale; the requester and the PR author never count; a reviewer must
//! map to an identity in one of the rule's groups; people are counted once, by identity, however
//! many logins they have; an outstanding "changes requested" from an eligible reviewer blocks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::change::ApprovalRequirement;
use crate::policy::Identity;

/// Where a review was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Slack,
    Github,
}

/// A review's state, as GitHub reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewState {
    Approved,
    ChangesRequested,
    Commented,
    Dismissed,
}

impl ReviewState {
    /// From GitHub's REST (`APPROVED`) or webhook (`approved`) spelling.
    pub fn parse(s: &str) -> Option<ReviewState> {
        match s.to_ascii_uppercase().as_str() {
            "APPROVED" => Some(Self::Approved),
            "CHANGES_REQUESTED" => Some(Self::ChangesRequested),
            "COMMENTED" => Some(Self::Commented),
            "DISMISSED" => Some(Self::Dismissed),
            _ => None,
        }
    }
}

/// One review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewInput {
    pub id: u64,
    pub login: String,
    pub state: ReviewState,
    pub commit_id: String,
    pub submitted_at: Option<DateTime<Utc>>,
    pub source: Source,
}

/// A review as GitHub lists it, before it becomes quorum input.
#[derive(Debug, Clone, Copy)]
pub struct ListedReview<'a> {
    pub id: u64,
    pub login: &'a str,
    /// GitHub's spelling (`APPROVED`, `approved`, …); `PENDING` reviews are dropped.
    pub state: &'a str,
    pub commit_id: &'a str,
    /// RFC 3339, as GitHub gives it.
    pub submitted_at: Option<&'a str>,
    pub source: Source,
}

/// The one deadline rule, for the bridge and the runner alike: a review counts only if it was
/// submitted by the deadline, and the quorum is judged as of the merge (or now, for an open
/// PR), or as of the deadline if that came first: never as of when a job happens to run.
pub fn inputs_by_deadline(
    reviews: &[ListedReview<'_>],
    deadline: DateTime<Utc>,
) -> Vec<ReviewInput> {
    reviews
        .iter()
        .filter_map(|r| {
            let submitted_at = r
                .submitted_at
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            if submitted_at.is_some_and(|t| t > deadline) {
                return None;
            }
            Some(ReviewInput {
                id: r.id,
                login: r.login.to_string(),
                state: ReviewState::parse(r.state)?,
                commit_id: r.commit_id.to_string(),
                submitted_at,
                source: r.source,
            })
        })
        .collect()
}

/// When the quorum is judged: at the merge (`merged_at`) or `now` for an open PR, but never
/// after the deadline.
pub fn judged_at(
    merged_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> DateTime<Utc> {
    merged_at.unwrap_or(now).min(deadline)
}

/// A counted approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub login: String,
    pub subject: String,
    pub source: Source,
}

/// A review that didn't count, and why (for the Slack message and the audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub login: String,
    pub reason: String,
}

/// The quorum's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quorum {
    pub needed: u32,
    pub approvals: Vec<Counted>,
    /// Approvals given on an older commit.
    pub stale: Vec<String>,
    /// Eligible reviewers whose latest review requests changes on the head.
    pub changes_requested: Vec<String>,
    pub ignored: Vec<Ignored>,
    /// Rules whose own quorum doesn't hold yet, when several were combined ("rule b: 0 of 1 from
    /// security").
    pub unmet: Vec<String>,
    pub expired: bool,
    pub met: bool,
}

impl Quorum {
    /// Nobody has reviewed yet (a request just opened).
    pub fn waiting(needed: u32) -> Quorum {
        Quorum {
            needed,
            approvals: Vec::new(),
            stale: Vec::new(),
            changes_requested: Vec::new(),
            ignored: Vec::new(),
            unmet: Vec::new(),
            expired: false,
            met: needed == 0,
        }
    }

    /// "1 of 2", for Slack and the commit status.
    pub fn progress(&self) -> String {
        format!("{} of {}", self.approvals.len(), self.needed)
    }
}

/// What the quorum is computed from.
#[derive(Debug, Clone, Copy)]
pub struct QuorumInput<'a> {
    pub requirement: &'a ApprovalRequirement,
    /// The requester's identity subject and GitHub login.
    pub requester_subject: &'a str,
    pub requester_login: Option<&'a str>,
    pub pr_author: &'a str,
    /// Logins that authored, committed or pushed a commit after the bridge's own: like the
    /// requester, they can't approve (lower case).
    pub excluded: &'a [String],
    pub head_sha: &'a str,
    pub reviews: &'a [ReviewInput],
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Compute the quorum. `identity_of` maps a GitHub login to an identity.
pub fn quorum<'i>(
    input: &QuorumInput<'_>,
    identity_of: impl Fn(&str) -> Option<&'i Identity>,
) -> Quorum {
    let req = input.requirement;
    let mut approvals: Vec<Counted> = Vec::new();
    let mut approver_groups: Vec<&[String]> = Vec::new();
    let mut stale = Vec::new();
    let mut changes_requested = Vec::new();
    let mut ignored = Vec::new();
    for r in latest_decisive(input.reviews).values() {
        if r.state == ReviewState::Dismissed {
            continue;
        }
        let login = r.login.as_str();
        let identity = match eligible(input, r, &identity_of) {
            Ok(identity) => identity,
            Err(reason) => {
                ignored.push(Ignored {
                    login: login.to_string(),
                    reason,
                });
                continue;
            }
        };
        if r.commit_id != input.head_sha {
            if r.state == ReviewState::Approved {
                stale.push(login.to_string());
            }
            continue;
        }
        match r.state {
            ReviewState::Approved => {
                if !approvals.iter().any(|a| a.subject == identity.subject) {
                    approver_groups.push(&identity.groups);
                    approvals.push(Counted {
                        login: login.to_string(),
                        subject: identity.subject.clone(),
                        source: r.source,
                    });
                }
            }
            ReviewState::ChangesRequested => changes_requested.push(login.to_string()),
            ReviewState::Commented | ReviewState::Dismissed => {}
        }
    }
    let unmet = unmet_constraints(req, &approver_groups);
    let expired = input.now > input.expires_at;
    let met = !expired
        && changes_requested.is_empty()
        && unmet.is_empty()
        && u32::try_from(approvals.len()).unwrap_or(u32::MAX) >= req.approvers;
    Quorum {
        needed: req.approvers,
        approvals,
        stale,
        changes_requested,
        ignored,
        unmet,
        expired,
        met,
    }
}

/// The latest decisive review per login (comments don't count), in submission order (reviews
/// are listed in order).
fn latest_decisive(reviews: &[ReviewInput]) -> BTreeMap<String, &ReviewInput> {
    let mut latest = BTreeMap::new();
    for r in reviews {
        if r.state != ReviewState::Commented {
            latest.insert(r.login.to_ascii_lowercase(), r);
        }
    }
    latest
}

/// The reviewer's identity if their review may count toward the rule; `Err` is why it doesn't.
fn eligible<'i>(
    input: &QuorumInput<'_>,
    r: &ReviewInput,
    identity_of: &impl Fn(&str) -> Option<&'i Identity>,
) -> Result<&'i Identity, String> {
    let req = input.requirement;
    let login = r.login.as_str();
    if login.eq_ignore_ascii_case(input.pr_author) {
        return Err("the PR's author can't review it".into());
    }
    if r.source == Source::Slack
        && r.state == ReviewState::Approved
        && req.approve_in == crate::policy::model::ApproveIn::Github
    {
        return Err("approved in Slack, but this rule needs the approval in GitHub".into());
    }
    if input.excluded.iter().any(|l| l.eq_ignore_ascii_case(login)) {
        return Err(
            "they pushed to the PR after Slipway's commit, so they can't approve it".into(),
        );
    }
    if input
        .requester_login
        .is_some_and(|l| l.eq_ignore_ascii_case(login))
    {
        return Err("the requester can't approve their own change".into());
    }
    let identity = identity_of(login).ok_or("not mapped to a known identity")?;
    if identity.subject == input.requester_subject {
        return Err("the requester can't approve their own change".into());
    }
    if !req.groups.iter().any(|g| identity.in_group(g)) {
        return Err(format!("not in {}", req.groups.join(" or ")));
    }
    Ok(identity)
}

/// The combined rules whose own quorum the counted approvers (given by their groups) don't meet.
fn unmet_constraints(req: &ApprovalRequirement, approver_groups: &[&[String]]) -> Vec<String> {
    if req.all_of.is_empty() {
        return Vec::new();
    }
    req.all_of
        .iter()
        .filter_map(|c| {
            let have = approver_groups
                .iter()
                .filter(|groups| groups.iter().any(|g| c.groups.contains(g)))
                .count();
            (u32::try_from(have).unwrap_or(u32::MAX) < c.approvers).then(|| {
                format!(
                    "rule {}: {have} of {} from {}",
                    c.rule,
                    c.approvers,
                    c.groups.join(" or ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::policy::model::ApproveIn;

    fn ident(subject: &str, login: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: subject.into(),
            email: None,
            name: None,
            github: Some(login.into()),
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
            default_cluster: None,
        }
    }

    fn review(id: u64, login: &str, state: ReviewState, sha: &str) -> ReviewInput {
        ReviewInput {
            id,
            login: login.into(),
            state,
            commit_id: sha.into(),
            submitted_at: None,
            source: Source::Github,
        }
    }

    fn run(reviews: &[ReviewInput], head: &str) -> Quorum {
        run_needing(2, reviews, head)
    }

    fn run_needing(approvers: u32, reviews: &[ReviewInput], head: &str) -> Quorum {
        let req = ApprovalRequirement {
            rule: "standard".into(),
            approvers,
            groups: vec!["approvers".into()],
            approve_in: ApproveIn::Slack,
            expires_after_secs: 3600,
            all_of: Vec::new(),
        };
        let people = [
            ident("ada", "ada-approver", &["approvers"]),
            ident("bo", "bo-approver", &["approvers"]),
            ident("bo", "bo-second-login", &["approvers"]),
            ident("omar", "omar-operator", &["operators", "approvers"]),
            ident("vera", "vera-viewer", &["engineering"]),
        ];
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let input = QuorumInput {
            requirement: &req,
            requester_subject: "omar",
            requester_login: Some("omar-operator"),
            pr_author: "slipway[bot]",
            excluded: &[],
            head_sha: head,
            reviews,
            now: t,
            expires_at: t + chrono::Duration::hours(1),
        };
        quorum(&input, |login| {
            people.iter().find(|p| p.github.as_deref() == Some(login))
        })
    }

    #[test]
    fn two_distinct_approvers_on_head_meet_it() {
        let q = run(
            &[
                review(1, "ada-approver", ReviewState::Approved, "h2"),
                review(2, "bo-approver", ReviewState::Approved, "h2"),
            ],
            "h2",
        );
        assert!(q.met);
        assert_eq!(q.progress(), "2 of 2");
    }

    /// Self-service: nobody has to approve, but a "changes requested" still stops the merge.
    #[test]
    fn a_self_service_rule_holds_with_no_reviews_until_someone_requests_changes() {
        assert!(run_needing(0, &[], "h2").met);
        let q = run_needing(
            0,
            &[review(
                1,
                "ada-approver",
                ReviewState::ChangesRequested,
                "h2",
            )],
            "h2",
        );
        assert!(!q.met);
    }

    #[test]
    fn requester_outsiders_and_stale_reviews_do_not_count() {
        let q = run(
            &[
                review(1, "omar-operator", ReviewState::Approved, "h2"),
                review(2, "vera-viewer", ReviewState::Approved, "h2"),
                review(3, "ada-approver", ReviewState::Approved, "h1"),
                review(4, "stranger", ReviewState::Approved, "h2"),
                review(5, "slipway[bot]", ReviewState::Approved, "h2"),
            ],
            "h2",
        );
        assert!(!q.met);
        assert!(q.approvals.is_empty());
        assert_eq!(q.stale, ["ada-approver"]);
        assert_eq!(q.ignored.len(), 4);
    }

    #[test]
    fn one_person_counts_once_and_latest_review_wins() {
        let q = run(
            &[
                review(1, "bo-approver", ReviewState::Approved, "h"),
                review(2, "bo-second-login", ReviewState::Approved, "h"),
            ],
            "h",
        );
        assert_eq!(q.approvals.len(), 1);
        let q = run(
            &[
                review(1, "ada-approver", ReviewState::Approved, "h"),
                review(2, "ada-approver", ReviewState::Commented, "h"),
                review(3, "bo-approver", ReviewState::Approved, "h"),
                review(4, "bo-approver", ReviewState::ChangesRequested, "h"),
            ],
            "h",
        );
        assert_eq!(q.approvals.len(), 1, "a comment doesn't undo an approval");
        assert_eq!(q.changes_requested, ["bo-approver"]);
        assert!(!q.met);
        let q = run(
            &[
                review(1, "ada-approver", ReviewState::Approved, "h"),
                review(2, "ada-approver", ReviewState::Dismissed, "h"),
            ],
            "h",
        );
        assert!(q.approvals.is_empty());
    }

    #[test]
    fn combined_rules_each_need_their_own_quorum() {
        use crate::change::GroupQuorum;
        let req = ApprovalRequirement {
            rule: "standard+security".into(),
            approvers: 2,
            groups: vec!["approvers".into(), "security".into()],
            approve_in: ApproveIn::Slack,
            expires_after_secs: 3600,
            all_of: vec![
                GroupQuorum {
                    rule: "standard".into(),
                    approvers: 2,
                    groups: vec!["approvers".into()],
                },
                GroupQuorum {
                    rule: "security".into(),
                    approvers: 1,
                    groups: vec!["security".into()],
                },
            ],
        };
        let people = [
            ident("ada", "ada", &["approvers"]),
            ident("bo", "bo", &["approvers"]),
            ident("sam", "sam", &["approvers", "security"]),
        ];
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let q = |reviews: &[ReviewInput]| {
            let input = QuorumInput {
                requirement: &req,
                requester_subject: "omar",
                requester_login: None,
                pr_author: "slipway[bot]",
                excluded: &[],
                head_sha: "h",
                reviews,
                now: t,
                expires_at: t + chrono::Duration::hours(1),
            };
            quorum(&input, |login| {
                people.iter().find(|p| p.github.as_deref() == Some(login))
            })
        };
        let two_from_the_union = q(&[
            review(1, "ada", ReviewState::Approved, "h"),
            review(2, "bo", ReviewState::Approved, "h"),
        ]);
        assert!(!two_from_the_union.met, "security's own quorum is missing");
        assert_eq!(
            two_from_the_union.unmet,
            ["rule security: 0 of 1 from security"]
        );
        let with_security = q(&[
            review(1, "ada", ReviewState::Approved, "h"),
            review(3, "sam", ReviewState::Approved, "h"),
        ]);
        assert!(with_security.met, "{with_security:?}");
    }

    #[test]
    fn slack_approvals_do_not_count_where_the_rule_needs_github() {
        let mut req = ApprovalRequirement {
            rule: "production".into(),
            approvers: 1,
            groups: vec!["approvers".into()],
            approve_in: ApproveIn::Github,
            expires_after_secs: 3600,
            all_of: Vec::new(),
        };
        let people = [ident("ada", "ada", &["approvers"])];
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut from_slack = review(1, "ada", ReviewState::Approved, "h");
        from_slack.source = Source::Slack;
        let reviews = [from_slack];
        let q = |req: &ApprovalRequirement| {
            let input = QuorumInput {
                requirement: req,
                requester_subject: "omar",
                requester_login: None,
                pr_author: "slipway[bot]",
                excluded: &[],
                head_sha: "h",
                reviews: &reviews,
                now: t,
                expires_at: t + chrono::Duration::hours(1),
            };
            quorum(&input, |login| {
                people.iter().find(|p| p.github.as_deref() == Some(login))
            })
        };
        assert!(!q(&req).met);
        req.approve_in = ApproveIn::Slack;
        assert!(q(&req).met);
    }

    #[test]
    fn one_deadline_rule_for_bridge_and_runner() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let deadline = t0 + chrono::Duration::hours(4);
        let listed = |at: &'static str| ListedReview {
            id: 1,
            login: "ada",
            state: "APPROVED",
            commit_id: "h",
            submitted_at: Some(at),
            source: Source::Github,
        };
        let on_time = inputs_by_deadline(&[listed("2026-01-01T03:59:00Z")], deadline);
        assert_eq!(on_time.len(), 1);
        let late = inputs_by_deadline(&[listed("2026-01-01T04:01:00Z")], deadline);
        assert!(
            late.is_empty(),
            "submitted after the deadline: doesn't count"
        );
        let pending = ListedReview {
            state: "PENDING",
            ..listed("2026-01-01T01:00:00Z")
        };
        assert!(inputs_by_deadline(&[pending], deadline).is_empty());
        // Merged in time, run late: judged at the merge, so not expired.
        let merged = t0 + chrono::Duration::hours(3);
        let job_runs = t0 + chrono::Duration::hours(9);
        assert_eq!(judged_at(Some(merged), job_runs, deadline), merged);
        assert_eq!(judged_at(None, job_runs, deadline), deadline);
        assert_eq!(judged_at(None, t0, deadline), t0);
    }
}
