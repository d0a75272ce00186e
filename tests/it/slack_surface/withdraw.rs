//! Change requests on the Slack surfaces: the App Home's lists (waiting for my approval, my
//! requests with Withdraw, locks), Withdraw itself, and `@slipway status`.

use serde_json::Value;
use slipway_core::audit::EventKind;
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO};
use slipway_tests::harness::{Options, TestApp};

use super::{LONG, event_body, home_opened, mention_event, post_event, thread_reply};
use crate::approvals::{change_message, link, message_contains, open_pr, pull, start_with};

fn lock_ref() -> String {
    format!(
        "refs/slipway/locks/{}",
        slipway_core::change::lock_slug("service:api/staging")
    )
}

async fn with_open_pr() -> (TestApp, GitOpsFixture, u64) {
    let fx = gitops::start().await;
    let app = start_with(&fx, Options::default()).await;
    let number = open_pr(&app, &fx).await;
    (app, fx, number)
}

/// Open `user`'s App Home and wait until a publish contains `needle`.
async fn home_with(app: &TestApp, user: &str, event_id: &str, needle: &str) -> Value {
    post_event(app, event_body(event_id, &home_opened(user))).await;
    let found = app
        .slack
        .wait_until(LONG, |s| {
            s.home(user).is_some_and(|h| h.to_string().contains(needle))
        })
        .await;
    assert!(
        found,
        "{needle} not in {user}'s home: {:?}",
        app.slack.home(user)
    );
    let home = app.slack.home(user).unwrap();
    let errors = slipway_emulators::slack::validate_view(&home);
    assert!(errors.is_empty(), "{errors:?}");
    home
}

fn buttons(home: &Value, action: &str) -> Vec<String> {
    home["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["action_id"] == action)
        .filter_map(|e| e["value"].as_str().map(String::from))
        .collect()
}

/// The requester sees their request with Withdraw; an approver sees it waiting for them with
/// Approve and Reject. Withdraw closes the PR with a comment, releases the
/// lock, updates the thread and the App Home, and is audited. Only the requester (who can
/// change the resource) sees the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_from_the_app_home_closes_unlocks_updates_and_audits() {
    let (app, fx, number) = with_open_pr().await;
    let approver = home_with(
        &app,
        "U0APPROVER1",
        "Ev0HOMEA",
        "Waiting for your approval* (1)",
    )
    .await;
    assert_eq!(buttons(&approver, "slipway_approve").len(), 1, "{approver}");
    assert!(buttons(&approver, "slipway_withdraw").is_empty());
    // A viewer can't deploy: the lock is not on a resource they can change.
    assert!(!approver.to_string().contains("locked by"), "{approver}");

    let mine = home_with(&app, "U0OPERATOR", "Ev0HOMEO", "Your open requests* (1)").await;
    assert_eq!(buttons(&mine, "slipway_withdraw"), vec![number.to_string()]);
    assert!(
        mine.to_string().contains("`service:api/staging` locked by"),
        "{mine}"
    );
    assert!(fx.github.ref_sha(OWNER, REPO, &lock_ref()).is_some());

    app.click("U0OPERATOR", "slipway_withdraw", &number.to_string(), "")
        .await;
    assert!(
        fx.github_wait(|| pull(&fx, number)["state"] == "closed")
            .await
    );
    assert_eq!(pull(&fx, number)["merged"], false);
    let comments = fx.github.comments(OWNER, REPO, number);
    assert!(
        comments.iter().any(|c| c["body"]
            .as_str()
            .unwrap_or("")
            .contains("withdrawn in Slack by omar.operator@example.com")),
        "{comments:?}"
    );
    assert!(
        fx.github_wait(|| fx.github.ref_sha(OWNER, REPO, &lock_ref()).is_none())
            .await,
        "the lock is released"
    );
    let ts = change_message(&app).ts;
    assert!(
        super::thread_reply(&app.slack, &ts, "withdrawn by omar.operator@example.com").await,
        "{:#?}",
        app.slack.messages()
    );
    assert!(message_contains(&app.slack, &ts, "closed").await);
    let found = app.slack.wait_until(LONG, |s| {
        s.home("U0OPERATOR").is_some_and(|h| {
            h.to_string().contains("Withdrew change request")
                && h.to_string().contains("Your open requests* (0)")
        })
    });
    assert!(found.await, "{:?}", app.slack.home("U0OPERATOR"));
    // The approver, who looked within the hour, sees it gone from their list.
    let republished = app.slack.wait_until(LONG, |s| {
        s.home("U0APPROVER1")
            .is_some_and(|h| h.to_string().contains("Waiting for your approval* (0)"))
    });
    assert!(republished.await, "{:?}", app.slack.home("U0APPROVER1"));
    let record = app
        .audit()
        .into_iter()
        .find(|r| r.kind == EventKind::Cancellation)
        .expect("audited");
    let details = record.details.unwrap();
    assert_eq!(
        (details["action"].as_str(), details["result"].as_str()),
        (Some("withdrawn"), Some("withdrawn"))
    );
    assert_eq!(record.pr.unwrap().number, number);
    super::no_block_kit_errors(&app.slack);
}

/// Attacker: Withdraw clicked (or its payload forged with a valid signature) by someone who is
/// neither the requester nor an owner changes nothing, and the refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_by_someone_else_is_refused_and_audited() {
    let (app, fx, number) = with_open_pr().await;
    app.click("U0APPROVER1", "slipway_withdraw", &number.to_string(), "")
        .await;
    let refused = app.slack.wait_until(LONG, |s| {
        s.home("U0APPROVER1")
            .is_some_and(|h| h.to_string().contains("Only the requester of PR"))
    });
    assert!(refused.await, "{:?}", app.slack.home("U0APPROVER1"));
    assert_eq!(pull(&fx, number)["state"], "open");
    assert!(fx.github.ref_sha(OWNER, REPO, &lock_ref()).is_some());
    let record = app
        .audit()
        .into_iter()
        .find(|r| r.kind == EventKind::Cancellation)
        .expect("audited");
    assert_eq!(record.details.unwrap()["result"], "refused");

    // An owner may.
    app.click("U0OWNER", "slipway_withdraw", &number.to_string(), "")
        .await;
    assert!(
        fx.github_wait(|| pull(&fx, number)["state"] == "closed")
            .await
    );
}

/// `@slipway status <PR>` answers in the thread with the request's state and approvals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_by_mention_shows_the_request() {
    let (app, _fx, number) = with_open_pr().await;
    let ts = "1700000900.000100";
    mention_event(
        &app,
        "Ev0STATUS",
        "U0VIEWER",
        ts,
        &format!("status #{number}"),
    )
    .await;
    assert!(
        thread_reply(&app.slack, ts, &format!("PR #{number}>")).await,
        "{:?}",
        app.slack.messages()
    );
    assert!(thread_reply(&app.slack, ts, "approvals 0 of 2").await);
    let text = change_message(&app).blocks.to_string();
    let id = text
        .split('`')
        .find(|w| w.starts_with("cr-"))
        .expect("the change id")
        .to_string();
    mention_event(
        &app,
        "Ev0STATUSID",
        "U0VIEWER",
        "1700000950.000100",
        &format!("status {id}"),
    )
    .await;
    assert!(thread_reply(&app.slack, "1700000950.000100", &format!("PR #{number}>")).await);
    let ts = "1700001000.000100";
    mention_event(&app, "Ev0STATUS2", "U0VIEWER", ts, "status 999").await;
    assert!(thread_reply(&app.slack, ts, "is not an open Slipway change request").await);
}

/// The global shortcut's modal starts the same change as the typed `/deploy`: its dry run, with
/// Confirm, reaches the submitter through the picked conversation's `response_url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_modal_starts_the_typed_dry_run() {
    let fx = gitops::start().await;
    let app = start_with(&fx, Options::default()).await;
    let response_url = app.slack.new_response_url();
    let field = |v: &str| serde_json::json!({"type": "plain_text_input", "value": v});
    let values = serde_json::json!({
        "kind": {"change_kind": {"type": "static_select", "selected_option": {"value": "deploy"}}},
        "name": {"change_name": field("api")}, "where": {"change_where": field("staging")},
        "amount": {"change_amount": field("v2.0.0")},
    });
    let payload = serde_json::json!({"type": "view_submission", "user": {"id": "U0OPERATOR", "team_id": "T0TEST"},
        "trigger_id": slipway_tests::harness::trigger_id("submit"),
        "view": {"id": "V1", "callback_id": "slipway_change", "private_metadata": "", "state": {"values": values}},
        "response_urls": [{"block_id": "channel", "action_id": "change_channel", "channel_id": slipway_tests::harness::CHANNEL, "response_url": response_url}]});
    let body = super::interaction_body(&payload);
    let headers = app.signed_headers(&body);
    assert_eq!(
        app.post_raw("/slack/interactivity", body, &headers).await.0,
        200
    );
    assert!(
        super::responded(
            &app.slack,
            &["slipway_confirm", "/deploy api staging v2.0.0"]
        )
        .await
    );
    let decision = app
        .audit()
        .into_iter()
        .find(|r| r.kind == EventKind::Decision)
        .expect("decided");
    assert_eq!(
        decision.actor.unwrap().slack_user_id.as_deref(),
        Some("U0OPERATOR")
    );
    assert!(
        fx.github.pulls(OWNER, REPO).is_empty(),
        "a dry run opens no PR"
    );
}

/// The App Home's Approve opens the same review modal as the channel's, bound to the head it
/// showed; its submission is a review made as the approver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_from_the_app_home_opens_the_review_modal() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    let home = home_with(
        &app,
        "U0APPROVER1",
        "Ev0HOMEAP",
        "Waiting for your approval* (1)",
    )
    .await;
    let value = buttons(&home, "slipway_approve")
        .pop()
        .expect("an Approve button");
    let head = pull(&fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(value, format!("{number}@{head}"));
    app.click("U0APPROVER1", "slipway_approve", &value, "")
        .await;
    let opened = app.slack.wait_until(LONG, |s| {
        s.views()
            .iter()
            .any(|v| v["callback_id"] == "slipway_approve")
    });
    assert!(opened.await, "{:?}", app.slack.views());
}
