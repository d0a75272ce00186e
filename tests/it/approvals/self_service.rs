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

fn merge_records(app: &TestApp) -> Vec<slipway_core::audit::AuditRecord> {
    app.audit()
        .into_iter()
        .filter(|r| r.kind == slipway_core::audit::EventKind::Merge)
        .collect()
}

/// GitHub's `pull_request` `closed` delivery.
fn closed_delivery(fx: &GitOpsFixture) -> slipway_emulators::github::Delivery {
    fx.github
        .deliveries()
        .into_iter()
        .find(|d| d.event == "pull_request" && d.action.as_deref() == Some("closed"))
        .expect("closed delivery")
}

/// Merges a self-service change; returns the app, fixture, PR number and its merge commit.
async fn merged() -> (TestApp, GitOpsFixture, u64, String) {
    let fx = gitops::start().await;
    let app = start_with(&fx, self_service_staging()).await;
    let number = open_pr(&app, &fx).await;
    assert!(
        fx.github_wait(|| pull(&fx, number)["merged"] == true).await,
        "{}",
        pull(&fx, number)
    );
    let merge = pull(&fx, number)["merge_commit_sha"]
        .as_str()
        .unwrap()
        .to_string();
    (app, fx, number, merge)
}

/// The bridge sees the merge in GitHub's signed `pull_request` `closed` webhook and writes the
/// merge record to the spool (and through it to every sink), once, even when redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_change_pr_writes_one_merge_record() {
    let (app, fx, number, merge) = merged().await;
    assert!(
        fx.github_wait(|| merge_records(&app).len() == 1).await,
        "{:#?}",
        app.audit()
    );
    let record = merge_records(&app).remove(0);
    let pr = record.pr.as_ref().unwrap();
    assert_eq!(
        (pr.repo.as_str(), pr.number),
        (format!("{OWNER}/{REPO}").as_str(), number)
    );
    assert_eq!(pr.merge_sha.as_deref(), Some(merge.as_str()));
    assert_eq!(
        pr.head_sha.as_deref(),
        pull(&fx, number)["head"]["sha"].as_str()
    );
    assert!(record.change_id.as_deref().unwrap().starts_with("cr-"));
    let actor = record.actor.as_ref().unwrap();
    assert_eq!(actor.github_login.as_deref(), Some("slipway[bot]"));
    assert!(record.writer.starts_with("bridge:"));

    let closed = closed_delivery(&fx);
    assert_eq!(fx.github.redeliver(&closed.id).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        merge_records(&app).len(),
        1,
        "a redelivery recorded the merge again"
    );
}

/// Only GitHub's signed word about the configured repository makes a merge record: a forged
/// signature is refused, and a signed event about another repository's PR is not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_foreign_merge_event_writes_no_merge_record() {
    let (app, fx, _, _) = merged().await;
    assert!(fx.github_wait(|| merge_records(&app).len() == 1).await);
    let closed = closed_delivery(&fx);
    let mut payload = closed.payload.clone();
    payload["pull_request"]["merge_commit_sha"] = json!("f".repeat(40));
    let body = serde_json::to_vec(&payload).unwrap();
    let (status, _) = app
        .post_raw(
            "/github/webhook",
            body,
            &[
                ("x-hub-signature-256", format!("sha256={}", "0".repeat(64))),
                ("x-github-event", "pull_request".into()),
                ("x-github-delivery", "forged-1".into()),
                ("content-type", "application/json".into()),
            ],
        )
        .await;
    assert_eq!(status, 401);
    payload["repository"]["full_name"] = json!("someone/else");
    let (status, _) = webhook(
        &app,
        "pull_request",
        "foreign-1",
        serde_json::to_vec(&payload).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let merges = merge_records(&app);
    assert_eq!(merges.len(), 1, "{merges:#?}");
    assert_ne!(
        merges[0].pr.as_ref().unwrap().merge_sha.as_deref(),
        Some("f".repeat(40).as_str())
    );
}
