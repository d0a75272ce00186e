//! After the PR opens: the Reject modal, expiry on a fake clock, and auto-merge.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_opens_a_modal_whose_reason_becomes_a_request_changes_review() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo").await;
    let ts = change_message(&app).ts;
    app.click("U0APPROVER2", "slipway_reject", &number.to_string(), &ts)
        .await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .views()
                .iter()
                .any(|v| v["callback_id"] == "slipway_reject"))
            .await,
        "{:?}",
        app.slack.responses()
    );
    let view = app
        .slack
        .views()
        .into_iter()
        .find(|v| v["callback_id"] == "slipway_reject")
        .unwrap();
    assert!(
        validate_view(&view).is_empty(),
        "{:?}",
        validate_view(&view)
    );
    assert!(
        fx.github.reviews(OWNER, REPO, number).is_empty(),
        "nothing happens until the dialog is submitted"
    );
    let values = json!({"reason": {"reject_reason": {"type": "plain_text_input", "value": "Roll out to a canary first, please."}}});
    let (status, body) = submit_view(&app, "U0APPROVER2", &view, values).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.is_empty() || !body.contains("errors"),
        "the modal closes: {body}"
    );
    assert!(
        fx.github_wait(|| !fx.github.reviews(OWNER, REPO, number).is_empty())
            .await
    );
    let review = &fx.github.reviews(OWNER, REPO, number)[0];
    assert_eq!(
        (review["user"]["login"].as_str(), review["state"].as_str()),
        (Some("bo-approver"), Some("CHANGES_REQUESTED"))
    );
    assert!(
        review["body"]
            .as_str()
            .unwrap()
            .contains("Roll out to a canary first, please."),
        "{review}"
    );
    assert!(responses_contain(&app.slack, "Requested changes on PR").await);
    assert!(
        fx.github_wait(
            || approval_status(&fx, number).is_some_and(|s| s["state"] == "failure"
                && s["description"]
                    .as_str()
                    .unwrap_or("")
                    .contains("changes requested"))
        )
        .await
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks
                    .to_string()
                    .contains("Changes requested by bo-approver")))
            .await,
        "{:?}",
        change_message(&app)
    );
    // The requester can't reject their own change through the dialog either.
    link(&app, "U0OPERATOR", "omar-operator", "tok-omar").await;
    app.click("U0OPERATOR", "slipway_reject", &number.to_string(), &ts)
        .await;
    assert!(app.slack.wait_until(LONG, |s| s.views().len() == 2).await);
    let view = app.slack.views().pop().unwrap();
    submit_view(
        &app,
        "U0OPERATOR",
        &view,
        json!({"reason": {"reject_reason": {"type": "plain_text_input", "value": "nah"}}}),
    )
    .await;
    assert!(responses_contain(&app.slack, "you requested this change").await);
    assert_eq!(fx.github.reviews(OWNER, REPO, number).len(), 1);
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
}

/// A clock that runs with real time plus an offset a test moves ahead.
#[derive(Debug, Default)]
pub(crate) struct JumpClock(Mutex<chrono::Duration>);

impl JumpClock {
    pub(crate) fn jump(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for JumpClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
}

/// A bridge on a [`JumpClock`], with a change PR open.
pub(crate) async fn with_open_pr_on_a_clock() -> (Arc<JumpClock>, TestApp, GitOpsFixture, u64) {
    let clock = Arc::new(JumpClock::default());
    let (app, fx, number) = with_open_pr_opts(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    (clock, app, fx, number)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_expiry_is_commented_closed_unlocked_and_shown_expired() {
    let (clock, app, fx, number) = with_open_pr_on_a_clock().await;
    let ts = change_message(&app).ts;
    let lock_ref = format!(
        "refs/slipway/locks/{}",
        slipway_core::change::lock_slug("service:api/staging")
    );
    let lock_ref = lock_ref.as_str();
    assert!(
        fx.github.ref_sha(OWNER, REPO, lock_ref).is_some(),
        "the change holds its lock"
    );
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "one of two");
    assert!(message_contains(&app.slack, &ts, "*1 of 2*").await);
    // Several sweeps pass before the deadline: nothing happens.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(pull(&fx, number)["state"], "open");

    // The rule's `expires_after` is 24h; the clock jumps past it and the timer does the rest.
    clock.jump(chrono::Duration::hours(25));
    assert!(
        fx.github_wait(|| pull(&fx, number)["state"] == "closed")
            .await,
        "{}",
        pull(&fx, number)
    );
    assert_eq!(pull(&fx, number)["merged"], false);
    let comments = fx.github.comments(OWNER, REPO, number);
    assert!(
        comments
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("expired")
                && c["body"].as_str().unwrap_or("").contains("1 of 2")),
        "{comments:?}"
    );
    assert!(
        fx.github_wait(|| fx.github.ref_sha(OWNER, REPO, lock_ref).is_none())
            .await,
        "the lock is released"
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks
                    .to_string()
                    .contains("expired without enough approvals")
                && !m.blocks.to_string().contains("slipway_approve")))
            .await,
        "{:?}",
        change_message(&app)
    );
    assert!(
        app.audit()
            .iter()
            .any(|r| r.kind == slipway_core::audit::EventKind::Expiry)
    );
    // Only once, however many sweeps run.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        fx.github
            .comments(OWNER, REPO, number)
            .iter()
            .filter(|c| c["body"].as_str().unwrap_or("").contains("expired"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_merge_merges_with_the_expected_head_once_the_quorum_holds() {
    let opts = Options {
        policy_edits: vec![(
            "approve_in: slack",
            "approve_in: slack\n      auto_merge: true".to_string(),
        )],
        ..Options::default()
    };
    let (app, fx, number) = with_open_pr_opts(opts).await;
    let ts = change_message(&app).ts;
    let head = pull(&fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "ok");
    assert!(message_contains(&app.slack, &ts, "*1 of 2*").await);
    assert_eq!(
        pull(&fx, number)["merged"],
        false,
        "one approval is not the quorum"
    );
    fx.github
        .review(OWNER, REPO, number, "olga-owner", "APPROVE", "ok");
    assert!(
        fx.github_wait(|| pull(&fx, number)["merged"] == true).await,
        "{}",
        pull(&fx, number)
    );
    let pr = pull(&fx, number);
    assert_eq!(
        pr["head"]["sha"],
        head.as_str(),
        "merged at the head both approvals were given on"
    );
    assert_eq!(pr["merged_by"]["login"], "slipway[bot]");
    let merge = fx.github.branch_sha(OWNER, REPO, "main").unwrap();
    assert_eq!(pr["merge_commit_sha"], merge.as_str());
    // The emulator logs a call after answering it, so the merge is visible before its log entry.
    assert!(
        fx.github_wait(|| fx.github.calls().iter().any(|c| c.method == "PUT"
            && c.path.ends_with(&format!("/pulls/{number}/merge"))
            && c.status == 200))
            .await
    );
    assert!(
        fx.github
            .file_at(OWNER, REPO, "main", "apps/api/staging/kustomization.yaml")
            .unwrap()
            .contains("v2.0.0")
    );
    assert!(
        message_contains(&app.slack, &ts, "merged").await,
        "{:?}",
        change_message(&app)
    );
    let blocks = change_message(&app).blocks.to_string();
    assert!(
        !blocks.contains("slipway_approve") && !blocks.contains("slipway_reject"),
        "after the merge only View PR is left: {blocks}"
    );
    assert!(
        fx.github_wait(|| fx
            .github
            .ref_sha(
                OWNER,
                REPO,
                &format!(
                    "refs/slipway/locks/{}",
                    slipway_core::change::lock_slug("service:api/staging")
                )
            )
            .is_none())
            .await,
        "lock released on merge"
    );
}
