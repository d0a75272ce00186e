//! Approve and Reject in Slack as the person, reviews made in GitHub mirrored back, the quorum on the head SHA, and the runner's report in the thread.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_click_approve_and_the_quorum_holds() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo").await;
    let ts = change_message(&app).ts;
    let (status, body) = approve_in_slack(&app, "U0APPROVER1", &ts, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        responses_contain(&app.slack, "Approved PR").await,
        "{:?}",
        app.slack.responses()
    );
    approve_in_slack(&app, "U0APPROVER2", &ts, "Checked the image digest.").await;
    assert!(
        fx.github_wait(|| fx.github.reviews(OWNER, REPO, number).len() == 2)
            .await
    );
    let reviewers: Vec<String> = fx
        .github
        .reviews(OWNER, REPO, number)
        .iter()
        .map(|r| r["user"]["login"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reviewers,
        ["ada-approver", "bo-approver"],
        "reviews are made as the people, never the bot"
    );
    let head = pull(&fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    let reviews = fx.github.reviews(OWNER, REPO, number);
    assert!(
        reviews.iter().all(|r| r["commit_id"] == head.as_str()),
        "bound to the head the dialog showed: {reviews:?}"
    );
    assert!(
        reviews[1]["body"]
            .as_str()
            .unwrap()
            .contains("Checked the image digest."),
        "the dialog's comment is the review's text: {}",
        reviews[1]
    );
    let key = slipway_core::change::parse_signing_key(slipway_tests::gitops::SIGNING_KEY_HEX)
        .unwrap()
        .verifying_key();
    assert!(
        slipway_core::change::is_slack_review(
            reviews[1]["body"].as_str().unwrap(),
            &slipway_core::change::Keyring::from(vec![("test".into(), key)]),
            &format!("{OWNER}/{REPO}"),
            number,
            &head,
            "bo-approver"
        ),
        "the review carries the bridge's signed Slack marker: {}",
        reviews[1]
    );
    assert!(
        fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "success"))
            .await,
        "{:?}",
        approval_status(&fx, number)
    );
    assert!(
        message_contains(&app.slack, &ts, "*2 of 2*").await,
        "{:?}",
        change_message(&app)
    );
    let blocks = change_message(&app).blocks.to_string();
    assert!(
        blocks.contains("ada.approver@example.com (via Slack)"),
        "{blocks}"
    );
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
    // Not auto-merged: the `standard` rule doesn't ask for it.
    assert_eq!(pull(&fx, number)["merged"], false);
    // Each Slack approval is audited once, as Slack-sourced (the webhook echo is not re-recorded).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let approvals: Vec<_> = app
        .audit()
        .into_iter()
        .filter(|r| r.kind == slipway_core::audit::EventKind::Approval)
        .collect();
    assert_eq!(approvals.len(), 2, "{approvals:?}");
    assert!(
        approvals
            .iter()
            .all(|r| r.approvals[0].source == slipway_core::audit::ApprovalSource::Slack)
    );
    // The thread tells each approval once, where it was made: GitHub's webhook echoes of the
    // Slack reviews are not told again.
    assert!(fx.github.wait_for_deliveries(LONG).await);
    assert_told(&app, &ts, "bo.approver@example.com approved in Slack").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines: Vec<String> = app
        .slack
        .thread(CHANNEL, &ts)
        .iter()
        .map(|m| m.text.clone())
        .collect();
    for who in ["ada.approver@example.com", "bo.approver@example.com"] {
        let told = lines
            .iter()
            .filter(|l| l.contains(&format!("{who} approved in Slack")))
            .count();
        assert_eq!(told, 1, "{who}: {lines:?}");
    }
    assert!(!lines.iter().any(|l| l.contains("in GitHub")), "{lines:?}");
    // The quorum is met: Approve is gone; Reject stays (changes requested would still block).
    let blocks = change_message(&app).blocks.to_string();
    assert!(
        !blocks.contains("slipway_approve") && blocks.contains("slipway_reject"),
        "{blocks}"
    );
}

/// A review typed in GitHub that looks like one made in Slack (a marker that doesn't verify
/// under the bridge's keys) is told in the thread and audited as made in GitHub: the marker
/// only silences the echo of the bridge's own reviews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_review_carrying_a_forged_slack_marker_is_told_and_audited_as_made_in_github() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    let head = pull(&fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    let forger = slipway_core::change::parse_signing_key(&"07".repeat(32)).unwrap();
    let marker = slipway_core::change::slack_review_marker(
        &forger,
        "test",
        &format!("{OWNER}/{REPO}"),
        number,
        &head,
        "ada-approver",
    );
    fx.github.review(
        OWNER,
        REPO,
        number,
        "ada-approver",
        "APPROVE",
        &format!("Approved in Slack by ada.approver@example.com.\n\n{marker}"),
    );
    assert_told(&app, &ts, "ada-approver approved in GitHub").await;
    assert!(
        app.slack
            .wait_until(LONG, |_| app
                .audit()
                .iter()
                .any(|r| r.kind == slipway_core::audit::EventKind::Approval
                    && r.approvals[0].source
                        == slipway_core::audit::ApprovalSource::Github))
            .await,
        "audited as a GitHub review"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_an_outsider_and_an_unlinked_approver_are_refused() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0OPERATOR", "omar-operator", "tok-omar").await;
    link(&app, "U0VIEWER", "vera-viewer", "tok-vera").await;
    let ts = change_message(&app).ts;
    app.click("U0OPERATOR", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(responses_contain(&app.slack, "you requested this change").await);
    app.click("U0VIEWER", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(responses_contain(&app.slack, "you're not in those groups").await);
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(responses_contain(&app.slack, "/slipway link github").await);
    // Reject is refused as well, before any dialog opens, for someone not linked.
    app.click("U0APPROVER2", "slipway_reject", &number.to_string(), &ts)
        .await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .filter(|r| r.body.to_string().contains("/slipway link github"))
                .count()
                == 2)
            .await
    );
    assert!(
        app.slack.views().is_empty(),
        "no modal for someone who can't review"
    );
    assert!(
        fx.github.reviews(OWNER, REPO, number).is_empty(),
        "nothing reached GitHub"
    );
}

/// An approval binds to the commit the approver was shown: a commit pushed after the message
/// (or after the dialog opened) refuses it, and nothing reaches GitHub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_refused_when_the_pr_moved_after_the_approver_looked() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo").await;
    let ts = change_message(&app).ts;
    let shown = approve_value(&app.slack, &ts);
    let head = pull(&fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        shown,
        format!("{number}@{head}"),
        "the button names the head"
    );

    // Ada opens the dialog; it shows the commit it binds to.
    let before = app.slack.views().len();
    app.click("U0APPROVER1", "slipway_approve", &shown, &ts)
        .await;
    let view = opened_view(&app.slack, before, "slipway_approve").await;
    assert!(
        view["blocks"].to_string().contains(&head[..7]),
        "{}",
        view["blocks"]
    );
    assert!(view["blocks"].to_string().contains("/deploy api staging"));

    // A commit lands on the PR before either of them submits.
    push_to_pr(&fx, number);
    let (status, body) = submit_view(&app, "U0APPROVER1", &view, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        responses_contain(&app.slack, "has a new commit").await,
        "{:?}",
        app.slack.responses()
    );
    // Bo clicks the button of the message as it was before the push.
    let refusals = |s: &SlackEmulator| {
        s.responses()
            .iter()
            .filter(|r| r.body.to_string().contains("has a new commit"))
            .count()
    };
    app.click("U0APPROVER2", "slipway_approve", &shown, &ts)
        .await;
    assert!(app.slack.wait_until(LONG, |s| refusals(s) == 2).await);
    assert_eq!(
        app.slack.views().len(),
        before + 1,
        "no dialog for a moved PR"
    );
    assert!(
        fx.github.reviews(OWNER, REPO, number).is_empty(),
        "nothing reached GitHub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_made_in_github_mirror_to_slack_and_a_push_makes_them_stale() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert_told(&app, &ts, "ada-approver approved in GitHub").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks.to_string().contains("*1 of 2*")
                && m.blocks.to_string().contains("via GitHub")))
            .await
    );
    // A new commit on the PR: the earlier approval no longer counts.
    push_to_pr(&fx, number);
    assert!(
        fx.github_wait(
            || approval_status(&fx, number).is_some_and(|s| s["state"] == "pending"
                && s["description"].as_str().unwrap_or("").contains("stale"))
        )
        .await,
        "{:?}",
        approval_status(&fx, number)
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks.to_string().contains("Stale")
                && m.blocks.to_string().contains("*0 of 2*")))
            .await,
        "{:?}",
        change_message(&app)
    );
}

/// GitHub lists reviews 100 a page at most: approvals after a hundred other reviews are on the
/// second page, and the quorum must read it (a partial list could also miss a "changes
/// requested").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_on_the_second_page_of_reviews_count() {
    let (app, fx, number) = with_open_pr().await;
    // A hundred comments whose webhooks never arrive (the receiver was down), then two approvals.
    fx.github
        .set_webhook("http://127.0.0.1:1/github/webhook", gitops::WEBHOOK_SECRET);
    for i in 0..100 {
        fx.github.review(
            OWNER,
            REPO,
            number,
            "chatty-reviewer",
            "COMMENT",
            &format!("note {i}"),
        );
    }
    assert!(fx.github.wait_for_deliveries(LONG).await);
    fx.github.set_webhook(
        &format!("http://{}/github/webhook", app.addr),
        gitops::WEBHOOK_SECRET,
    );
    for who in ["ada-approver", "bo-approver"] {
        fx.github
            .review(OWNER, REPO, number, who, "APPROVE", "lgtm");
    }
    assert_eq!(fx.github.reviews(OWNER, REPO, number).len(), 102);
    assert!(
        fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "success"))
            .await,
        "{:?}",
        approval_status(&fx, number)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_made_in_github_are_audited_once() {
    let (app, fx, number) = with_open_pr().await;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    let audited = || {
        app.audit()
            .into_iter()
            .filter(|r| r.kind == slipway_core::audit::EventKind::Approval)
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if !audited().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = audited();
    assert_eq!(records.len(), 1, "{records:?}");
    let a = records[0].approvals.first().expect("approval");
    assert_eq!(a.who, "ada.approver@example.com");
    assert_eq!(a.source, slipway_core::audit::ApprovalSource::Github);
    assert!(
        records[0]
            .change_id
            .as_deref()
            .is_some_and(|c| c.starts_with("cr-service-api-staging-"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runners_report_on_the_pr_is_mirrored_into_the_slack_thread() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    let repo = slipway_infra::github::Repo::parse(&format!("{OWNER}/{REPO}")).unwrap();
    let as_login =
        |token: &str| slipway_infra::github::GitHub::user(&fx.github.api_url(), token).unwrap();
    // Forged reports: the runner's marker, written by a person who can comment on the PR, and
    // by the Slipway App itself (whose token the bridge holds, not the runner).
    let installation: u64 = fx
        .env
        .iter()
        .find(|(k, _)| *k == "SLIPWAY_GITHUB_INSTALLATION_ID")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let forged = "<!-- slipway-runner:cr-x -->\n<!-- slipway-rollout:failed -->\n**slipway-runner: executed** `kubectl delete ns prod` (forged)";
    for token in [
        "tok-omar".to_string(),
        fx.github.installation_token(installation),
    ] {
        as_login(&token)
            .comment(&repo, number, forged)
            .await
            .unwrap();
    }
    // The runner comments with its marker as the workflow job's GITHUB_TOKEN does:
    // github-actions[bot], the bridge's default runner login.
    let runner = as_login(&fx.github.actions_token(OWNER, REPO));
    runner.comment(&repo, number, "<!-- slipway-runner:cr-x -->\n<!-- slipway-rollout:failed -->\n**slipway-runner: executed** `kubectl apply -k apps/api/staging` in 2.1s\n\nOK")
        .await
        .unwrap();
    // An ordinary comment is not mirrored.
    runner
        .comment(&repo, number, "just a human remark")
        .await
        .unwrap();
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .thread(slipway_tests::harness::CHANNEL, &ts)
                .iter()
                .any(
                    |m| m.text.contains("Runner report") && m.text.contains("executed")
                ))
            .await,
        "{:?}",
        app.slack.thread(slipway_tests::harness::CHANNEL, &ts)
    );
    assert!(fx.github.wait_for_deliveries(LONG).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Only the runner's own report counts as a failed rollout, however many carry the marker.
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains("slipway_rollouts_total{outcome=\"failed\"} 1\n"),
        "{metrics}"
    );
    let thread = app.slack.thread(slipway_tests::harness::CHANNEL, &ts);
    assert!(
        !thread
            .iter()
            .any(|m| m.text.contains("human remark") || m.text.contains("forged")),
        "{thread:?}"
    );
    assert_eq!(
        thread
            .iter()
            .filter(|m| m.text.contains("Runner report"))
            .count(),
        1,
        "{thread:?}"
    );
}

/// The requester pushes one more commit to the PR's branch, outside Slipway.
/// A commit pushed to the PR by `omar-operator` (the requester) that keeps the diff the request
/// signed (the rendered manifest, rewritten as it is): the head moves, the request still verifies.
fn push_to_pr(fx: &GitOpsFixture, number: u64) {
    let branch = pull(fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let path = "apps/api/staging/kustomization.yaml";
    let same = fx.github.file_at(OWNER, REPO, &branch, path).unwrap();
    fx.github.push_direct(
        OWNER,
        REPO,
        &branch,
        &[(path, &same)],
        "touch",
        "omar-operator",
    );
}

/// Waits until the thread of message `ts` tells `needle`.
async fn assert_told(app: &TestApp, ts: &str, needle: &str) {
    assert!(
        thread_contains(&app.slack, ts, needle).await,
        "{needle}: {:?}",
        app.slack.thread(CHANNEL, ts)
    );
}
