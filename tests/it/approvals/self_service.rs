//! Self-service (`approvers: 0`): the change is still a signed, audited PR, merged by the
//! bridge once branch protection's required checks pass, with nobody's approval.

use super::*;

const SELF_SERVICE: &str = "    - { resources: [\"stack:*\"], rule: stacks }";

fn self_service_staging() -> Options {
    Options {
        policy_edits: vec![
            (
                "    - id: stacks\n",
                "    - id: self-service\n      approvers: 0\n      groups: []\n      expires_after: 1h\n    - id: stacks\n".to_string(),
            ),
            (
                SELF_SERVICE,
                format!("{SELF_SERVICE}\n    - {{ resources: [\"service:api/staging\"], rule: self-service }}"),
            ),
        ],
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_service_change_merges_itself_once_the_required_checks_pass() {
    let fx = gitops::start().await;
    fx.github.require_status(OWNER, REPO, "ci");
    let app = start_with(&fx, self_service_staging()).await;
    let number = open_pr(&app, &fx).await;
    let head = pull(&fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    // Nobody needs to approve: `slipway/approval` is green at once, but CI hasn't passed, so
    // GitHub refuses the merge.
    assert!(
        fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "success"))
            .await,
        "{:?}",
        approval_status(&fx, number)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pull(&fx, number)["merged"],
        false,
        "merged before CI passed"
    );
    fx.github
        .set_status(OWNER, REPO, &head, "ci", "pending", "ci-bot");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pull(&fx, number)["merged"],
        false,
        "merged on a pending check"
    );
    fx.github
        .set_status(OWNER, REPO, &head, "ci", "success", "ci-bot");
    assert!(
        fx.github_wait(|| pull(&fx, number)["merged"] == true).await,
        "{}",
        pull(&fx, number)
    );
    let pr = pull(&fx, number);
    assert_eq!(pr["head"]["sha"], head.as_str());
    assert_eq!(pr["merged_by"]["login"], "slipway[bot]");
    let change = change_message(&app).ts;
    assert!(message_contains(&app.slack, &change, "merged").await);
}
