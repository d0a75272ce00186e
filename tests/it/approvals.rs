//! Approvals: PR reviews mirrored between GitHub and Slack, with the quorum on the head SHA;
//! `/slipway link github` (device flow, tokens sealed at rest); Reject's reason modal; expiry on a
//! timer with a fake clock; auto-merge; real webhook payloads; a bridge restarted on the same
//! state; Block Kit snapshots within Slack's limits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use slipway_bridge::change::{ApprovalView, RejectContext, Stage, approval_message, reject_modal};
use slipway_bridge::clock::Clock;
use slipway_core::approval::Source;
use slipway_emulators::slack::{SlackEmulator, Surface, validate_blocks, validate_view};
use slipway_tests::gitops::{self, GitOpsFixture, OWNER, REPO, WEBHOOK_SECRET};
use slipway_tests::harness::{BOT_TOKEN, CHANNEL, Options, SIGNING_SECRET, TestApp};

const LONG: Duration = Duration::from_secs(30);
/// The key linked tokens are sealed with in tests (32 bytes, hex).
const TOKEN_KEY: &str = "5c1f0b7a9e3d2c4b6a8f0e1d3c5b7a9f2e4d6c8b0a1f3e5d7c9b1a3f5e7d9c0b";
/// The GitHub App's OAuth client id in tests.
const CLIENT_ID: &str = "Iv1.slipwaytest0001";

/// What every approvals bridge gets on top of the GitOps fixture: a token key, the App's client
/// id (registered in the emulator with the device flow on, polled every second) and a short
/// expiry sweep.
fn approvals_env(fx: &GitOpsFixture) -> Vec<(&'static str, String)> {
    fx.github.register_oauth_client(CLIENT_ID, true);
    fx.github.set_device_flow_interval(1);
    let mut env = fx.env.clone();
    env.extend([
        ("SLIPWAY_TOKEN_KEY", TOKEN_KEY.to_string()),
        ("SLIPWAY_GITHUB_CLIENT_ID", CLIENT_ID.to_string()),
        ("SLIPWAY_EXPIRY_INTERVAL", "200ms".to_string()),
    ]);
    env
}

async fn start_with(fx: &GitOpsFixture, opts: Options) -> TestApp {
    let app = TestApp::start_with(Options {
        env: approvals_env(fx),
        config_yaml: Some(fx.config_yaml.clone()),
        ..opts
    })
    .await;
    fx.github.set_webhook(
        &format!("http://{}/github/webhook", app.addr),
        WEBHOOK_SECRET,
    );
    app
}

async fn open_pr(app: &TestApp, fx: &GitOpsFixture) -> u64 {
    app.ack("U0OPERATOR", "/deploy api staging v2.0.0 --apply")
        .await;
    assert!(
        fx.github_wait(|| !fx.github.pulls(OWNER, REPO).is_empty())
            .await
    );
    let number = fx.github.pulls(OWNER, REPO)[0]["number"].as_u64().unwrap();
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.blocks.to_string().contains("slipway_approve")))
            .await
    );
    number
}

/// A bridge with a change PR open for `/deploy api staging` (rule `standard`: 2 approvers from
/// approvers or platform-owners), GitHub webhooks pointed at the bridge.
async fn with_open_pr() -> (TestApp, GitOpsFixture, u64) {
    with_open_pr_opts(Options::default()).await
}

async fn with_open_pr_opts(opts: Options) -> (TestApp, GitOpsFixture, u64) {
    let fx = gitops::start().await;
    let app = start_with(&fx, opts).await;
    let number = open_pr(&app, &fx).await;
    (app, fx, number)
}

fn change_message(app: &TestApp) -> slipway_emulators::slack::Message {
    app.slack
        .messages()
        .into_iter()
        .find(|m| m.thread_ts.is_none() && m.blocks.to_string().contains("Change request"))
        .expect("change message")
}

fn approval_status(fx: &GitOpsFixture, number: u64) -> Option<Value> {
    let pr = fx
        .github
        .pulls(OWNER, REPO)
        .into_iter()
        .find(|p| p["number"].as_u64() == Some(number))?;
    let sha = pr["head"]["sha"].as_str()?.to_string();
    fx.github.status(OWNER, REPO, &sha, "slipway/approval")
}

fn pull(fx: &GitOpsFixture, number: u64) -> Value {
    fx.github
        .pulls(OWNER, REPO)
        .into_iter()
        .find(|p| p["number"].as_u64() == Some(number))
        .expect("the PR")
}

/// Link a person's token directly (the device flow has its own test).
fn link(app: &TestApp, slack: &str, login: &str, token: &str) {
    app.state
        .change
        .as_ref()
        .expect("change service")
        .tokens
        .link(slack, login, token)
        .expect("linked");
}

async fn responses_contain(slack: &SlackEmulator, needle: &str) -> bool {
    slack
        .wait_until(LONG, |s| {
            s.responses()
                .iter()
                .any(|r| r.body.to_string().contains(needle))
        })
        .await
}

/// The one-time code in the flow's message ("… enter the code *ABCD-1234* …").
fn user_code(text: &str) -> String {
    let after = text
        .split("enter the code *")
        .nth(1)
        .expect("a code in the message");
    after.split('*').next().expect("code").to_string()
}

/// Run `/slipway link github` as `slack` and approve the code as GitHub user `login`; returns
/// the flow's last message.
async fn link_by_device_flow(
    slack: &SlackEmulator,
    fx: &GitOpsFixture,
    run: impl AsyncFnOnce(&str) -> String,
    slack_user: &str,
    login: &str,
) -> String {
    let before = slack.responses().len();
    let ack = run(slack_user).await;
    assert!(ack.contains("Starting GitHub authorization"), "{ack}");
    let code_msg = |s: &SlackEmulator| {
        s.responses()
            .into_iter()
            .skip(before)
            .filter_map(|r| r.body["text"].as_str().map(String::from))
            .find(|t| t.contains("enter the code"))
    };
    assert!(
        slack.wait_until(LONG, |s| code_msg(s).is_some()).await,
        "no code shown: {:?}",
        slack.responses()
    );
    let code = user_code(&code_msg(slack).unwrap());
    assert!(
        fx.github.authorize_device(&code, login),
        "code {code} pending"
    );
    let ends = |t: &str| {
        [
            "Linked GitHub account",
            "nothing was",
            "declined",
            "expired",
        ]
        .iter()
        .any(|w| t.contains(w))
    };
    let last = |s: &SlackEmulator| {
        s.responses()
            .into_iter()
            .skip(before)
            .filter_map(|r| r.body["text"].as_str().map(String::from))
            .find(|t| ends(t))
    };
    assert!(
        slack.wait_until(LONG, |s| last(s).is_some()).await,
        "the flow didn't finish: {:?}",
        slack.responses()
    );
    last(slack).unwrap()
}

fn sign_github(body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn webhook(app: &TestApp, event: &str, delivery: &str, body: Vec<u8>) -> (u16, String) {
    let sig = sign_github(&body);
    app.post_raw(
        "/github/webhook",
        body,
        &[
            ("x-hub-signature-256", sig),
            ("x-github-event", event.into()),
            ("x-github-delivery", delivery.into()),
            ("content-type", "application/json".into()),
        ],
    )
    .await
}

/// A view submission, as Slack posts it.
async fn submit_view(app: &TestApp, user: &str, view: &Value, values: Value) -> (u16, String) {
    let payload = json!({
        "type": "view_submission",
        "user": {"id": user, "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0SLIPWAY",
        "trigger_id": "trigger.submit",
        "view": {"id": view["id"], "callback_id": view["callback_id"], "private_metadata": view["private_metadata"], "state": {"values": values}},
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes();
    let headers = app.signed_headers(&body);
    app.post_raw("/slack/interactivity", body, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_click_approve_and_the_quorum_holds() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada");
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo");
    let ts = change_message(&app).ts;
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(
        responses_contain(&app.slack, "Approved PR").await,
        "{:?}",
        app.slack.responses()
    );
    app.click("U0APPROVER2", "slipway_approve", &number.to_string(), &ts)
        .await;
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
    assert!(
        fx.github_wait(|| approval_status(&fx, number).is_some_and(|s| s["state"] == "success"))
            .await,
        "{:?}",
        approval_status(&fx, number)
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.ts == ts && m.blocks.to_string().contains("*2 of 2*")))
            .await,
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requester_an_outsider_and_an_unlinked_approver_are_refused() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0OPERATOR", "omar-operator", "tok-omar");
    link(&app, "U0VIEWER", "vera-viewer", "tok-vera");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_made_in_github_mirror_to_slack_and_a_push_makes_them_stale() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .thread(CHANNEL, &ts)
                .iter()
                .any(|m| m.text.contains("ada-approver approved in GitHub")))
            .await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks.to_string().contains("*1 of 2*")
                && m.blocks.to_string().contains("via GitHub")))
            .await
    );
    // A new commit on the PR: the earlier approval no longer counts.
    let branch = fx.github.pulls(OWNER, REPO)[0]["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    fx.github.push_direct(
        OWNER,
        REPO,
        &branch,
        &[("apps/api/staging/extra.yaml", "x: 1\n")],
        "sneaky change",
        "omar-operator",
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_changes_nothing() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "lgtm");
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .thread(CHANNEL, &ts)
                .iter()
                .any(|m| m.text.contains("approved in GitHub")))
            .await
    );
    let before = app.slack.thread(CHANNEL, &ts).len();
    let delivery = fx
        .github
        .deliveries()
        .into_iter()
        .rev()
        .find(|d| d.event == "pull_request_review")
        .expect("review delivery");
    assert_eq!(fx.github.redeliver(&delivery.id).await, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.slack.thread(CHANNEL, &ts).len(), before);
    assert!(
        app.get("/metrics")
            .await
            .contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} 1"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_webhooks_are_refused() {
    let (app, _fx, _number) = with_open_pr().await;
    let body = br#"{"action":"submitted"}"#.to_vec();
    let (status, _) = app
        .post_raw(
            "/github/webhook",
            body.clone(),
            &[
                ("x-hub-signature-256", "sha256=00".into()),
                ("x-github-event", "pull_request_review".into()),
                ("x-github-delivery", "d-1".into()),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(app.post_raw("/github/webhook", body, &[]).await.0, 401);
    let (status, _) = webhook(&app, "pull_request", "d-2", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"endpoint="github_webhook",outcome="malformed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_github_runs_the_device_flow_and_keeps_only_the_policys_account_sealed() {
    let (app, fx, number) = with_open_pr().await;
    let run = |user: &str| {
        let user = user.to_string();
        let app = &app;
        async move { app.ack(&user, "/slipway link github").await }
    };
    let done = link_by_device_flow(
        &app.slack,
        &fx,
        async |u| run(u).await,
        "U0APPROVER1",
        "ada-approver",
    )
    .await;
    assert!(
        done.contains("Linked GitHub account `ada-approver`"),
        "{done}"
    );
    let svc = app.state.change.as_ref().unwrap();
    let linked = svc.tokens.get("U0APPROVER1").unwrap().expect("linked");
    assert_eq!(linked.login, "ada-approver");
    assert!(linked.token.expose().starts_with("ghu_") && linked.expires_at.is_some());
    // At rest the token is ciphertext.
    let db = std::fs::read(app.dir.path().join("state/state.redb")).unwrap();
    assert!(
        !db.windows(linked.token.expose().len())
            .any(|w| w == linked.token.expose().as_bytes()),
        "the token is not stored in the clear"
    );
    assert!(!db.windows(4).any(|w| w == b"ghu_"));

    // The linked token makes the review, as ada.
    let ts = change_message(&app).ts;
    app.click("U0APPROVER1", "slipway_approve", &number.to_string(), &ts)
        .await;
    assert!(
        fx.github_wait(|| fx
            .github
            .reviews(OWNER, REPO, number)
            .iter()
            .any(|r| r["user"]["login"] == "ada-approver" && r["state"] == "APPROVED"))
            .await
    );
    assert!(responses_contain(&app.slack, "Approved PR").await);

    // Bo signs in to GitHub as ada: refused, nothing stored.
    let done = link_by_device_flow(
        &app.slack,
        &fx,
        async |u| run(u).await,
        "U0APPROVER2",
        "ada-approver",
    )
    .await;
    assert!(
        done.contains("you authorized as GitHub user `ada-approver`")
            || done.contains("You authorized as GitHub user `ada-approver`"),
        "{done}"
    );
    assert!(
        done.contains("the policy maps you to `bo-approver`"),
        "{done}"
    );
    assert!(svc.tokens.get("U0APPROVER2").unwrap().is_none());

    // Olga declines in GitHub.
    let before = app.slack.responses().len();
    assert!(run("U0OWNER").await.contains("Starting"));
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .skip(before)
                .any(|r| r.body.to_string().contains("enter the code")))
            .await
    );
    let code = user_code(
        &app.slack
            .responses()
            .into_iter()
            .skip(before)
            .find_map(|r| {
                r.body["text"]
                    .as_str()
                    .filter(|t| t.contains("enter the code"))
                    .map(String::from)
            })
            .unwrap(),
    );
    assert!(fx.github.deny_device(&code));
    assert!(
        responses_contain(&app.slack, "declined in GitHub").await,
        "{:?}",
        app.slack.responses()
    );
    assert!(svc.tokens.get("U0OWNER").unwrap().is_none());
    // Someone unknown to the policy is told at once.
    assert!(
        app.ack("U0NOBODY", "/slipway link github")
            .await
            .contains("doesn't know you")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_is_refused_without_a_token_key() {
    let fx = gitops::start().await;
    let app = TestApp::start_with(Options {
        env: fx.env.clone(),
        config_yaml: Some(fx.config_yaml.clone()),
        ..Options::default()
    })
    .await;
    let ack = app.ack("U0APPROVER1", "/slipway link github").await;
    assert!(
        ack.contains("SLIPWAY_TOKEN_KEY") && ack.contains("won't store"),
        "{ack}"
    );
    assert!(app.slack.responses().is_empty(), "no flow started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_opens_a_modal_whose_reason_becomes_a_request_changes_review() {
    let (app, fx, number) = with_open_pr().await;
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo");
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
    link(&app, "U0OPERATOR", "omar-operator", "tok-omar");
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
struct JumpClock(Mutex<chrono::Duration>);

impl JumpClock {
    fn jump(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for JumpClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.0.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_expiry_is_commented_closed_unlocked_and_shown_expired() {
    let clock = Arc::new(JumpClock::default());
    let (app, fx, number) = with_open_pr_opts(Options {
        clock: Some(clock.clone()),
        ..Options::default()
    })
    .await;
    let ts = change_message(&app).ts;
    let lock_ref = "refs/slipway/locks/service-api-staging";
    assert!(
        fx.github.ref_sha(OWNER, REPO, lock_ref).is_some(),
        "the change holds its lock"
    );
    fx.github
        .review(OWNER, REPO, number, "ada-approver", "APPROVE", "one of two");
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.ts == ts && m.blocks.to_string().contains("*1 of 2*")))
            .await
    );
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
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.ts == ts && m.blocks.to_string().contains("*1 of 2*")))
            .await
    );
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
    assert!(fx.github.calls().iter().any(|c| c.method == "PUT"
        && c.path.ends_with(&format!("/pulls/{number}/merge"))
        && c.status == 200));
    assert!(
        fx.github
            .file_at(OWNER, REPO, "main", "apps/api/staging/kustomization.yaml")
            .unwrap()
            .contains("v2.0.0")
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.ts == ts && m.blocks.to_string().contains("merged")))
            .await,
        "{:?}",
        change_message(&app)
    );
    assert!(
        fx.github_wait(|| fx
            .github
            .ref_sha(OWNER, REPO, "refs/slipway/locks/service-api-staging")
            .is_none())
            .await,
        "lock released on merge"
    );
}

fn examples_dir() -> PathBuf {
    slipway_tests::repo_root().join("tests/fixtures/github/examples")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_github_payloads_parse_and_prs_slipway_didnt_open_are_ignored() {
    let (app, fx, number) = with_open_pr().await;
    let ts = change_message(&app).ts;
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 11, "{files:?}");
    // Let the emulator's own deliveries (push, status…) land first, then count.
    assert!(fx.github.wait_for_deliveries(LONG).await);
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .thread(CHANNEL, &ts)
                .iter()
                .any(|m| m.text.contains("opened")))
            .await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ignored_before = metric(
        &app.get("/metrics").await,
        r#"slipway_requests_total{endpoint="github_webhook",outcome="ignored"}"#,
    );
    let before = app.slack.thread(CHANNEL, &ts).len();
    for (i, path) in files.iter().enumerate() {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("derived.")
            .to_string();
        let event = name.split('.').next().unwrap().to_string();
        let (status, body) = webhook(
            &app,
            &event,
            &format!("example-{i}"),
            std::fs::read(path).unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{}: {body}", path.display());
    }
    let metrics = app.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            r#"slipway_requests_total{endpoint="github_webhook",outcome="ignored"}"#
        ),
        ignored_before + u64::try_from(files.len()).unwrap(),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.slack.thread(CHANNEL, &ts).len(),
        before,
        "none of them is a Slipway PR"
    );

    // The same real shapes, pointed at Slipway's PR: handled. The payload is a trigger; the
    // bridge re-reads the PR and its reviews from GitHub.
    let branch = gitops_branch(&fx, number);
    for (i, file) in [
        "derived.pull_request_review.submitted.approved.json",
        "pull_request.synchronize.json",
        "pull_request_review.dismissed.json",
    ]
    .iter()
    .enumerate()
    {
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(examples_dir().join(file)).unwrap()).unwrap();
        v["pull_request"]["number"] = json!(number);
        v["pull_request"]["head"]["ref"] = json!(branch);
        let event = file
            .trim_start_matches("derived.")
            .split('.')
            .next()
            .unwrap();
        let (status, _) = webhook(
            &app,
            event,
            &format!("pointed-{i}"),
            v.to_string().into_bytes(),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert!(
        app.slack
            .wait_until(LONG, |s| s.thread(CHANNEL, &ts).len() >= before + 3)
            .await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
    let thread: Vec<String> = app
        .slack
        .thread(CHANNEL, &ts)
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert!(
        thread
            .iter()
            .any(|t| t.contains("approved in GitHub · approvals 0 of 2")),
        "{thread:?}"
    );
    assert!(
        thread.iter().any(|t| t.contains("pushed a new commit")),
        "{thread:?}"
    );
    assert!(
        thread.iter().any(|t| t.contains("was dismissed")),
        "{thread:?}"
    );
    assert!(
        app.get("/metrics")
            .await
            .contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="ok"}"#)
    );
}

/// A counter's value in Prometheus text (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn gitops_branch(fx: &GitOpsFixture, number: u64) -> String {
    pull(fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string()
}

fn snapshot_dir() -> PathBuf {
    slipway_tests::repo_root().join("tests/fixtures/blockkit")
}

/// Compare `value` with the committed snapshot `name`; `SLIPWAY_UPDATE_SNAPSHOTS=1` rewrites it.
fn check_snapshot(name: &str, value: &Value) {
    let path = snapshot_dir().join(name);
    let text = format!("{}\n", serde_json::to_string_pretty(value).unwrap());
    if std::env::var_os("SLIPWAY_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot_dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run with SLIPWAY_UPDATE_SNAPSHOTS=1 and commit it",
            path.display()
        )
    });
    assert_eq!(
        committed,
        text,
        "{} differs from the rendering (SLIPWAY_UPDATE_SNAPSHOTS=1 rewrites it after review)",
        path.display()
    );
}

fn sample_view(stage: Stage) -> ApprovalView {
    ApprovalView {
        change_id: "cr-service-api-staging-1a2b3c4d".into(),
        pr_number: 42,
        pr_url: "https://github.com/acme/gitops/pull/42".into(),
        requester_slack_id: "U0OPERATOR".into(),
        rule: "standard".into(),
        needed: 2,
        approvals: vec![("ada.approver@example.com".into(), Source::Slack)],
        stale: Vec::new(),
        changes_requested: Vec::new(),
        expires_at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap(),
        stage,
    }
}

fn message_json(m: &slipway_bridge::slack::client::Message) -> Value {
    json!({"text": m.text, "blocks": m.blocks})
}

#[test]
fn block_kit_snapshots_match_and_fit_slacks_limits() {
    let mut cases: Vec<(&str, Value)> = Vec::new();
    // The message as a change request opens (flow.rs renders the same template this way).
    let opened = slipway_bridge::templates::render_blocks(
        "blocks/change.json.j2",
        json!({
            "headline": ":memo: *Change request* `cr-service-api-staging-1a2b3c4d` opened: <https://github.com/acme/gitops/pull/42|#42> Deploy api to staging (v2.0.0)",
            "context": "Requested by <@U0OPERATOR> · needs 2 approval(s) from approvers or platform-owners (rule `standard`) · expires 2026-03-02 09:30 UTC",
            "diff": "```\n--- a/apps/api/staging/kustomization.yaml\n+++ b/apps/api/staging/kustomization.yaml\n@@ -8 +8 @@\n-    newTag: \"v1.0.0\"\n+    newTag: \"v2.0.0\"\n```",
            "note": "",
            "buttons": [
                {"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": "42"},
                {"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": "42"},
                {"action_id": "slipway_open_pr", "text": "View PR", "url": "https://github.com/acme/gitops/pull/42", "value": "42"}
            ],
        }),
    )
    .unwrap();
    cases.push(("change_opened.json", json!({"blocks": opened})));
    cases.push((
        "approval_waiting.json",
        message_json(&approval_message(&sample_view(Stage::Waiting))),
    ));
    let mut stale = sample_view(Stage::Waiting);
    stale.approvals.clear();
    stale.stale = vec!["ada-approver".into()];
    cases.push((
        "approval_stale.json",
        message_json(&approval_message(&stale)),
    ));
    let mut approved = sample_view(Stage::Approved);
    approved
        .approvals
        .push(("bo.approver@example.com".into(), Source::Github));
    cases.push((
        "approval_approved.json",
        message_json(&approval_message(&approved)),
    ));
    let mut rejected = sample_view(Stage::ChangesRequested);
    rejected.changes_requested = vec!["bo-approver".into()];
    cases.push((
        "approval_changes_requested.json",
        message_json(&approval_message(&rejected)),
    ));
    cases.push((
        "approval_merged.json",
        message_json(&approval_message(&ApprovalView {
            approvals: approved.approvals.clone(),
            ..sample_view(Stage::Merged)
        })),
    ));
    cases.push((
        "approval_expired_closed.json",
        message_json(&approval_message(&sample_view(Stage::ExpiredClosed))),
    ));
    for (name, value) in &cases {
        let errors = validate_blocks(&value["blocks"], Surface::Message);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        check_snapshot(name, value);
    }
    let modal = reject_modal(
        &RejectContext {
            pr: 42,
            response_url: "https://hooks.slack.com/actions/T0TEST/1/abc".into(),
        },
        "bo-approver",
    )
    .unwrap();
    assert!(
        validate_view(&modal).is_empty(),
        "{:?}",
        validate_view(&modal)
    );
    check_snapshot("reject_modal.json", &modal);

    // Limits hold whatever the data: hundreds of reviewers, long names.
    let mut huge = sample_view(Stage::Waiting);
    huge.approvals = (0..300)
        .map(|i| {
            (
                format!("person-{i}-with-a-rather-long-name@example.com"),
                Source::Github,
            )
        })
        .collect();
    huge.stale = (0..300).map(|i| format!("stale-reviewer-{i}")).collect();
    huge.changes_requested = (0..300).map(|i| format!("objector-{i}")).collect();
    let m = approval_message(&huge);
    assert!(!m.blocks.is_empty(), "the template rendered");
    let errors = validate_blocks(&Value::Array(m.blocks), Surface::Message);
    assert!(errors.is_empty(), "{errors:?}");
}

// ---- A restarted bridge: the real binary, killed and started again on the same state dir. ----

/// One `slipway serve` process.
struct Bridge {
    child: std::process::Child,
    addr: String,
    log: PathBuf,
}

impl Bridge {
    async fn start(env: &[(&str, String)], dir: &Path, name: &str) -> Bridge {
        let port = slipway_tests::harness::free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SLIPWAY_LISTEN", &addr)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("slipway serve starts");
        let bridge = Bridge { child, addr, log };
        for _ in 0..300 {
            if bridge
                .request("GET", "/healthz", Vec::new(), &[])
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                return bridge;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the bridge did not start: {}", bridge.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Option<(u16, String)> {
        use http_body_util::BodyExt;
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            client.request(
                req.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .ok()?,
            ),
        )
        .await
        .ok()?
        .ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn signed(&self, path: &str, body: Vec<u8>) -> (u16, String) {
        let ts = Utc::now().timestamp().to_string();
        let sig = slipway_bridge::slack::signature::sign(SIGNING_SECRET.as_bytes(), &ts, &body);
        self.request(
            "POST",
            path,
            body,
            &[
                ("x-slack-request-timestamp", ts),
                ("x-slack-signature", sig),
            ],
        )
        .await
        .unwrap_or_else(|| panic!("POST {path}: {}", self.log_text()))
    }

    async fn command(
        &self,
        slack: &SlackEmulator,
        user: &str,
        command: &str,
        text: &str,
    ) -> String {
        let body = serde_urlencoded::to_string([
            ("team_id", "T0TEST"),
            ("channel_id", CHANNEL),
            ("user_id", user),
            ("command", command),
            ("text", text),
            ("response_url", &slack.new_response_url()),
            (
                "trigger_id",
                &format!(
                    "trigger.{user}.{}",
                    Utc::now().timestamp_nanos_opt().unwrap_or_default()
                ),
            ),
        ])
        .unwrap();
        let (status, body) = self.signed("/slack/commands", body.into_bytes()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn click(
        &self,
        slack: &SlackEmulator,
        user: &str,
        action_id: &str,
        value: &str,
        ts: &str,
    ) {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "team_id": "T0TEST"},
            "team": {"id": "T0TEST"},
            "trigger_id": "trigger.click",
            "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
            "response_url": slack.new_response_url(),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "slipway_change", "value": value, "action_ts": "1"}],
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])
            .unwrap()
            .into_bytes();
        assert_eq!(self.signed("/slack/interactivity", body).await.0, 200);
    }

    async fn metrics(&self) -> String {
        self.request("GET", "/metrics", Vec::new(), &[])
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// SIGKILL: a crash, not a clean shutdown.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bridge_keeps_mirroring_to_the_original_message() {
    let fx = gitops::start().await;
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slipway.yaml");
    std::fs::write(&config, &fx.config_yaml).unwrap();
    let mut env: Vec<(&str, String)> = vec![
        ("SLIPWAY_CONFIG", config.display().to_string()),
        ("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
        ("SLIPWAY_SLACK_API_URL", slack.api_url()),
        (
            "SLIPWAY_POLICY",
            slipway_tests::example_policy().display().to_string(),
        ),
        (
            "SLIPWAY_STATE_DIR",
            dir.path().join("state").display().to_string(),
        ),
        ("SLIPWAY_AUDIT_WRITER", "bridge-restart-test".into()),
    ];
    env.extend(approvals_env(&fx));

    let first = Bridge::start(&env, dir.path(), "first").await;
    fx.github.set_webhook(
        &format!("http://{}/github/webhook", first.addr),
        WEBHOOK_SECRET,
    );
    let ack = first
        .command(
            &slack,
            "U0OPERATOR",
            "/deploy",
            "api staging v2.0.0 --apply",
        )
        .await;
    assert!(ack.starts_with("Opening a pull request"), "{ack}");
    assert!(
        fx.github_wait(|| !fx.github.pulls(OWNER, REPO).is_empty())
            .await,
        "{}",
        first.log_text()
    );
    let number = fx.github.pulls(OWNER, REPO)[0]["number"].as_u64().unwrap();
    assert!(
        slack
            .wait_until(LONG, |s| s.messages().iter().any(
                |m| m.thread_ts.is_none() && m.blocks.to_string().contains("slipway_approve")
            ))
            .await,
        "{}",
        first.log_text()
    );
    let ts = slack
        .messages()
        .into_iter()
        .find(|m| m.thread_ts.is_none() && m.blocks.to_string().contains("slipway_approve"))
        .unwrap()
        .ts;
    // Ada and Olga link their GitHub accounts; Ada approves in Slack.
    for (user, login) in [("U0APPROVER1", "ada-approver"), ("U0OWNER", "olga-owner")] {
        let done = link_by_device_flow(
            &slack,
            &fx,
            async |u| first.command(&slack, u, "/slipway", "link github").await,
            user,
            login,
        )
        .await;
        assert!(
            done.contains("Linked GitHub account"),
            "{done}: {}",
            first.log_text()
        );
    }
    first
        .click(
            &slack,
            "U0APPROVER1",
            "slipway_approve",
            &number.to_string(),
            &ts,
        )
        .await;
    assert!(
        responses_contain(&slack, "Approved PR").await,
        "{}",
        first.log_text()
    );
    assert!(
        slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks
                    .to_string()
                    .contains("ada.approver@example.com (via Slack)")))
            .await
    );
    assert!(fx.github.wait_for_deliveries(LONG).await);
    let old_delivery = fx
        .github
        .deliveries()
        .into_iter()
        .find(|d| d.event == "pull_request_review")
        .expect("a delivery before the restart");

    // Crash; start again on the same state directory (new port, as after a reschedule).
    first.kill();
    let second = Bridge::start(&env, dir.path(), "second").await;
    fx.github.set_webhook(
        &format!("http://{}/github/webhook", second.addr),
        WEBHOOK_SECRET,
    );

    // A GitHub review updates the original Slack message, and Ada's approval is still "via Slack".
    fx.github
        .review(OWNER, REPO, number, "bo-approver", "APPROVE", "lgtm");
    let found = slack
        .wait_until(LONG, |s| {
            s.messages().iter().any(|m| {
                let b = m.blocks.to_string();
                m.ts == ts
                    && b.contains("*2 of 2*")
                    && b.contains("ada.approver@example.com (via Slack)")
                    && b.contains("bo.approver@example.com (via GitHub)")
            })
        })
        .await;
    assert!(
        found,
        "{:?}\n{}",
        slack.messages().into_iter().find(|m| m.ts == ts),
        second.log_text()
    );
    assert!(
        slack
            .thread(CHANNEL, &ts)
            .iter()
            .any(|m| m.text.contains("bo-approver approved in GitHub"))
    );
    assert_eq!(
        slack
            .messages()
            .iter()
            .filter(|m| m.thread_ts.is_none() && m.blocks.to_string().contains("Change request"))
            .count(),
        1,
        "no second message"
    );
    // A delivery handled before the restart is still a duplicate.
    assert_eq!(fx.github.redeliver(&old_delivery.id).await, 200);
    assert!(
        second
            .metrics()
            .await
            .contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} 1"#),
        "{}",
        second.metrics().await
    );
    // Olga's token, linked before the restart, still opens and reviews as her.
    second
        .click(
            &slack,
            "U0OWNER",
            "slipway_approve",
            &number.to_string(),
            &ts,
        )
        .await;
    assert!(
        fx.github_wait(|| fx
            .github
            .reviews(OWNER, REPO, number)
            .iter()
            .any(|r| r["user"]["login"] == "olga-owner"))
            .await,
        "{}",
        second.log_text()
    );
    assert!(!second.log_text().contains("ghu_"), "no token in the logs");
    second.kill();
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
    // The runner comments with its marker (as the workflow's bot token would).
    let installation: u64 = fx
        .env
        .iter()
        .find(|(k, _)| *k == "SLIPWAY_GITHUB_INSTALLATION_ID")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let token = fx.github.installation_token(installation);
    let gh = slipway_infra::github::GitHub::user(&fx.github.api_url(), &token).unwrap();
    let repo = slipway_infra::github::Repo::parse(&format!("{OWNER}/{REPO}")).unwrap();
    gh.comment(&repo, number, "<!-- slipway-runner:cr-x -->\n**slipway-runner: executed** `kubectl apply -k apps/api/staging` in 2.1s\n\nOK")
        .await
        .unwrap();
    // An ordinary comment is not mirrored.
    gh.comment(&repo, number, "just a human remark")
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !app.slack
            .thread(slipway_tests::harness::CHANNEL, &ts)
            .iter()
            .any(|m| m.text.contains("human remark"))
    );
}
