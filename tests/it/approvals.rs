//! Approvals: PR reviews mirrored between GitHub and Slack, with the quorum on the head SHA.

use std::time::Duration;

use serde_json::Value;
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO, WEBHOOK_SECRET};
use slipway_tests::harness::{Options, TestApp};

const LONG: Duration = Duration::from_secs(30);

/// A bridge with a change PR open for `/deploy api staging` (rule `standard`: 2 approvers from
/// approvers or platform-owners), GitHub webhooks pointed at the bridge.
async fn with_open_pr() -> (TestApp, GitOpsFixture, u64) {
    let fx = gitops::start().await;
    let app = TestApp::start_with(Options { env: fx.env.clone(), config_yaml: Some(fx.config_yaml.clone()), ..Options::default() }).await;
    fx.github.set_webhook(&format!("http://{}/github/webhook", app.addr), WEBHOOK_SECRET);
    app.ack("U0OPERATOR", "/deploy api staging v2.0.0 --apply").await;
    assert!(fx.github_wait(|| !fx.github.pulls(OWNER, REPO).is_empty()).await);
    let number = fx.github.pulls(OWNER, REPO)[0]["number"].as_u64().unwrap();
    assert!(app.slack.wait_until(LONG, |s| s.messages().iter().any(|m| m.blocks.to_string().contains("slipway_approve"))).await);
    (app, fx, number)
}

fn change_message(app: &TestApp) -> slipway_emulators::slack::Message {
    app.slack.messages().into_iter().find(|m| m.thread_ts.is_none() && m.blocks.to_string().contains("Change request")).expect("change message")
}

fn approval_status(fx: &GitOpsFixture, number: u64) -> Option<Value> {
    let pr = fx.github.pulls(OWNER, REPO).into_iter().find(|p| p["number"].as_u64() == Some(number))?;
    let sha = pr["head"]["sha"].as_str()?.to_string();
    // The newest status for the context (highest id), whatever order the listing uses.
    fx.github.statuses(OWNER, REPO, &sha).into_iter().filter(|s| s["context"] == "slipway/approval").max_by_key(|s| s["id"].as_u64().unwrap_or(0))
}

fn link(app: &TestApp, slack: &str, token: &str) {
    app.state.change.as_ref().expect("change service").tokens.link(slack, token);
}

async fn responses_contain(app: &TestApp, needle: &str) -> bool {
    app.slack.wait_until(LONG, |s| s.responses().iter().any(|r| r.body.to_string().contains(needle))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_click_approve_and_the_quorum_holds() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER1", "tok-ada");
    link(&app, "U0APPROVER2", "tok-bo");
    let ts = change_message(&app).ts;
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts).await;
    assert!(responses_contain(&app, "Approved PR").await, "{:?}", app.slack.responses());
    app.click("U0APPROVER2", "slipway_approve", &number.to_string(), &ts).await;
    assert!(fx.github_wait(|| fx.github.reviews(OWNER, REPO, number).len() == 2).await);
    let reviewers: Vec<String> = fx.github.reviews(OWNER, REPO, number).iter().map(|r| r["user"]["login"].as_str().unwrap().to_string()).collect();
    assert_eq!(reviewers, ["ada-approver", "bo-approver"], "reviews are made as the people, never the bot");
    assert!(fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "success")).await, "{:?}", approval_status(&fx, number));
    assert!(app.slack.wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts && m.blocks.to_string().contains("*2 of 2*"))).await, "{:?}", change_message(&app));
    let blocks = change_message(&app).blocks.to_string();
    assert!(blocks.contains("ada.approver@example.com (via Slack)"), "{blocks}");
    assert!(app.slack.validation_errors().is_empty(), "{:?}", app.slack.validation_errors());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_an_outsider_and_an_unlinked_approver_are_refused() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0OPERATOR", "tok-omar");
    link(&app, "U0VIEWER", "tok-vera");
    let ts = change_message(&app).ts;
    app.click("U0OPERATOR", "slipway_approve", &number.to_string(), &ts).await;
    assert!(responses_contain(&app, "you requested this change").await);
    app.click("U0VIEWER", "slipway_approve", &number.to_string(), &ts).await;
    assert!(responses_contain(&app, "you're not in those groups").await);
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts).await;
    assert!(responses_contain(&app, "/slipway link github").await);
    assert!(fx.github.reviews(OWNER, REPO, number).is_empty(), "nothing reached GitHub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_made_in_github_mirror_to_slack_and_a_push_makes_them_stale() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github.review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(app.slack.wait_until(LONG, |s| s.thread(slipway_tests::harness::CHANNEL, &ts).iter().any(|m| m.text.contains("ada-approver approved in GitHub"))).await, "{:?}", app.slack.thread(slipway_tests::harness::CHANNEL, &ts));
    assert!(app.slack.wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts && m.blocks.to_string().contains("*1 of 2*") && m.blocks.to_string().contains("via GitHub"))).await);
    // A new commit on the PR: the earlier approval no longer counts.
    let branch = fx.github.pulls(OWNER, REPO)[0]["head"]["ref"].as_str().unwrap().to_string();
    fx.github.push_direct(OWNER, REPO, &branch, &[("apps/api/staging/extra.yaml", "x: 1\n")], "sneaky change", "omar-operator");
    assert!(fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "pending" && s["description"].as_str().unwrap_or("").contains("stale"))).await, "{:?}", approval_status(&fx, number));
    assert!(app.slack.wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts && m.blocks.to_string().contains("stale") && m.blocks.to_string().contains("*0 of 2*"))).await, "{:?}", change_message(&app));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_changes_nothing() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github.review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(app.slack.wait_until(LONG, |s| s.thread(slipway_tests::harness::CHANNEL, &ts).iter().any(|m| m.text.contains("approved in GitHub"))).await);
    let before = app.slack.thread(slipway_tests::harness::CHANNEL, &ts).len();
    let delivery = fx.github.deliveries().into_iter().rev().find(|d| d.event == "pull_request_review").expect("review delivery");
    assert_eq!(fx.github.redeliver(&delivery.id).await, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.slack.thread(slipway_tests::harness::CHANNEL, &ts).len(), before);
    assert!(app.get("/metrics").await.contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_webhooks_are_refused() {
    let (app, _fx, _number) = with_open_pr().await;
    let body = br#"{"action":"submitted"}"#.to_vec();
    let (status, _) = app.post_raw("/github/webhook", body.clone(), &[("x-hub-signature-256", "sha256=00".into()), ("x-github-event", "pull_request_review".into()), ("x-github-delivery", "d-1".into())]).await;
    assert_eq!(status, 401);
    assert_eq!(app.post_raw("/github/webhook", body, &[]).await.0, 401);
    let bad = b"{not json".to_vec();
    let sig = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(&bad);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let (status, _) = app.post_raw("/github/webhook", bad, &[("x-hub-signature-256", sig), ("x-github-event", "pull_request".into()), ("x-github-delivery", "d-2".into())]).await;
    assert_eq!(status, 400);
    let metrics = app.get("/metrics").await;
    assert!(metrics.contains(r#"endpoint="github_webhook",outcome="malformed"} 1"#), "{metrics}");
}
