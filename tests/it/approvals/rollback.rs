//! Roll back: a failed rollout reported by the runner gets a Roll back button in the thread; a
//! click opens an ordinary `/deploy` of the version before the failed change, as the clicker,
//! under the same policy. The click is checked against GitHub, never taken on trust.

use slipway_core::audit::EventKind;
use slipway_infra::github::{GitHub, Repo};

use super::*;

/// Merge PR `number` as an owner and wait until the bridge saw it (and released its lock).
pub(super) async fn merged(app: &TestApp, fx: &GitOpsFixture, number: u64) {
    fx.github
        .merge(OWNER, REPO, number, "olga-owner")
        .expect("merged");
    assert!(fx.github.wait_for_deliveries(LONG).await);
    let lock = format!(
        "refs/slipway/locks/{}",
        slipway_core::change::lock_slug("service:api/staging")
    );
    assert!(
        fx.github_wait(|| fx.github.ref_sha(OWNER, REPO, &lock).is_none())
            .await,
        "the bridge saw the merge and released the lock: {:?}",
        app.slack.responses()
    );
}

const FAILED: &str = "<!-- slipway-runner:cr-x -->\n<!-- slipway-rollout:failed -->\n**slipway-runner: executed** `kubectl apply -k apps/api/staging`: the rollout failed (CrashLoopBackOff)";

fn repo() -> Repo {
    Repo::parse(&format!("{OWNER}/{REPO}")).unwrap()
}

/// The ephemeral answers to `user`'s clicks so far.
fn answers(app: &TestApp) -> String {
    format!("{:?}", app.slack.responses())
}

async fn answered(app: &TestApp, needle: &str) -> bool {
    responses_contain(&app.slack, needle).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_offers_roll_back_to_the_previous_version_as_an_ordinary_change() {
    // The standard rule needs 2 approvers, and 1 for a roll back.
    let (app, fx, number) = with_open_pr_opts(Options {
        policy_edits: vec![(
            "    - id: standard\n      approvers: 2\n",
            "    - id: standard\n      approvers: 2\n      rollback_approvers: 1\n".to_string(),
        )],
        ..Options::default()
    })
    .await;
    let ts = change_message(&app).ts;
    let value = number.to_string();
    // Not merged yet: nothing to roll back.
    app.click("U0OPERATOR", "slipway_rollback", &value, &ts)
        .await;
    assert!(answered(&app, "was not merged").await, "{}", answers(&app));
    merged(&app, &fx, number).await;
    // Merged, but no failure reported by the runner: a person's comment with the marker is not
    // the runner's report.
    GitHub::user(&fx.github.api_url(), "tok-omar")
        .unwrap()
        .comment(&repo(), number, FAILED)
        .await
        .unwrap();
    app.click("U0OPERATOR", "slipway_rollback", &value, &ts)
        .await;
    assert!(
        answered(&app, "has not reported a failed rollout").await,
        "{}",
        answers(&app)
    );
    assert_eq!(
        fx.github.pulls(OWNER, REPO).len(),
        1,
        "no change was opened"
    );

    // The runner reports the failure: the thread shows it with the button.
    let runner = GitHub::user(&fx.github.api_url(), &fx.github.actions_token(OWNER, REPO)).unwrap();
    runner.comment(&repo(), number, FAILED).await.unwrap();
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .thread(slipway_tests::harness::CHANNEL, &ts)
                .iter()
                .any(|m| m.text.contains("Runner report")
                    && m.blocks.to_string().contains("slipway_rollback")))
            .await,
        "{:?}",
        app.slack.thread(slipway_tests::harness::CHANNEL, &ts)
    );
    let report = app
        .slack
        .thread(slipway_tests::harness::CHANNEL, &ts)
        .into_iter()
        .find(|m| m.blocks.to_string().contains("slipway_rollback"))
        .unwrap();
    assert!(validate_blocks(&report.blocks, Surface::Message).is_empty());

    // Someone the policy lets deploy clicks: a new change request for the version before.
    app.click("U0OPERATOR", "slipway_rollback", &value, &ts)
        .await;
    assert!(
        fx.github_wait(|| fx.github.pulls(OWNER, REPO).len() == 2)
            .await,
        "{}",
        answers(&app)
    );
    let rollback = fx.github.pulls(OWNER, REPO)[1].clone();
    assert!(
        rollback["title"].as_str().unwrap().contains("v1.0.0"),
        "back to the version before the failed change: {rollback}"
    );
    let branch = rollback["head"]["ref"].as_str().unwrap();
    let cr = crate::changes::change_file(&fx, branch);
    assert_eq!(
        cr.requester.slack_user_id, "U0OPERATOR",
        "made as the clicker"
    );
    assert!(
        cr.command
            .text
            .ends_with(&format!("--rollback-of {number}")),
        "{}",
        cr.command.text
    );
    assert_eq!(
        cr.policy.approval.approvers, 1,
        "the rule's rollback_approvers"
    );
    let failed = app
        .audit()
        .into_iter()
        .find(|r| r.kind == EventKind::Rollback)
        .expect("a rollback record");
    assert_eq!(failed.details.as_ref().unwrap()["to_version"], "v1.0.0");
    assert_eq!(
        failed.actor.as_ref().unwrap().slack_user_id.as_deref(),
        Some("U0OPERATOR")
    );
    assert!(
        failed
            .change_id
            .unwrap()
            .starts_with("cr-service-api-staging-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_back_click_by_someone_the_policy_denies_opens_nothing() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    merged(&app, &fx, number).await;
    let runner = GitHub::user(&fx.github.api_url(), &fx.github.actions_token(OWNER, REPO)).unwrap();
    runner.comment(&repo(), number, FAILED).await.unwrap();
    app.click("U0STRANGER", "slipway_rollback", &number.to_string(), &ts)
        .await;
    assert!(answered(&app, ":no_entry:").await, "{}", answers(&app));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.github.pulls(OWNER, REPO).len(), 1, "{}", answers(&app));
    assert!(
        app.audit().iter().any(|r| r.kind == EventKind::Decision
            && r.actor.as_ref().and_then(|a| a.slack_user_id.as_deref()) == Some("U0STRANGER")),
        "the denial is audited like a typed command's: {:?}",
        app.audit()
            .iter()
            .map(|r| (r.kind, r.actor.clone()))
            .collect::<Vec<_>>()
    );
}

/// Typing `--rollback-of` is the same as the button, so it is checked the same way: a version
/// other than the one before the failed change gets no rollback approvals and opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_rollback_of_another_version_is_refused() {
    let (app, fx, number) = with_open_pr().await;
    merged(&app, &fx, number).await;
    let runner = GitHub::user(&fx.github.api_url(), &fx.github.actions_token(OWNER, REPO)).unwrap();
    runner.comment(&repo(), number, FAILED).await.unwrap();
    app.ack(
        "U0OPERATOR",
        &format!("/deploy api staging v9.9.9 --apply --rollback-of {number}"),
    )
    .await;
    assert!(
        answered(&app, "is not a roll back of PR").await,
        "{}",
        answers(&app)
    );
    assert_eq!(fx.github.pulls(OWNER, REPO).len(), 1);
}
