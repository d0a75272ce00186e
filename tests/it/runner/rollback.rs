//! The runner applies a rule's `rollback_approvers` only to a deploy whose signed text carries
//! `--rollback-of` (which the bridge signs only after checking the failed deploy): the same
//! single approval that runs a roll back is refused for an ordinary deploy.

use super::rollout::{Plan, deploy_web_with};
use super::*;

/// The example policy's standard rule, with 1 approver for a roll back (2 otherwise).
pub(crate) const ROLLBACK_RULE: &[(&str, &str)] = &[(
    "    - id: standard\n      approvers: 2\n",
    "    - id: standard\n      approvers: 2\n      rollback_approvers: 1\n",
)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_approval_runs_a_signed_roll_back_and_nothing_else() {
    let plan = Plan {
        text: "/deploy web staging 1.5.0 --apply --rollback-of 7",
        policy_edits: ROLLBACK_RULE,
        approvers: &["ada-approver"],
    };
    let d = deploy_web_with(&plan, None, |_| {}, "").await;
    let body = result_comment(&d.fx, d.number, &d.cr.id);
    assert_eq!(d.out.status.code(), Some(0), "{body}");
    assert_eq!(execution_status(&d.fx, &d.sha)["state"], "success");

    // The same lone approval on an ordinary deploy: the current rule wants two.
    let plan = Plan {
        text: "/deploy web staging 1.5.0 --apply",
        policy_edits: ROLLBACK_RULE,
        approvers: &["ada-approver"],
    };
    let d = deploy_web_with(&plan, None, |_| {}, "").await;
    let body = result_comment(&d.fx, d.number, &d.cr.id);
    assert_eq!(d.out.status.code(), Some(1), "{body}");
    assert!(body.contains("don't meet the quorum"), "{body}");
}
