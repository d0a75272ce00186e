//! Approvals: PR reviews mirrored between GitHub and Slack, with the quorum on the head SHA;
//! `/slipway link github` (device flow, tokens sealed at rest); the Approve and Reject modals; expiry on a
//! timer with a fake clock; auto-merge; real webhook payloads; a bridge restarted on the same
//! state; Block Kit snapshots within Slack's limits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use slipway_bridge::change::{
    ApprovalView, ApproveSummary, ReviewContext, Stage, approval_message, approve_modal,
    reject_modal,
};
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

pub(crate) async fn start_with(fx: &GitOpsFixture, mut opts: Options) -> TestApp {
    let mut env = approvals_env(fx);
    env.extend(std::mem::take(&mut opts.env));
    let app = TestApp::start_with(Options {
        env,
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

pub(crate) async fn open_pr(app: &TestApp, fx: &GitOpsFixture) -> u64 {
    open_pr_with(app, fx, "/deploy api staging v2.0.0 --apply").await
}

/// The operator types `line` (a `/deploy … --apply`): the first PR opens, with its Approve button.
pub(crate) async fn open_pr_with(app: &TestApp, fx: &GitOpsFixture, line: &str) -> u64 {
    app.ack("U0OPERATOR", line).await;
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

pub(crate) fn change_message(app: &TestApp) -> slipway_emulators::slack::Message {
    app.slack
        .messages()
        .into_iter()
        .find(|m| {
            m.channel == CHANNEL
                && m.thread_ts.is_none()
                && m.blocks.to_string().contains("Change request")
        })
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

pub(crate) fn pull(fx: &GitOpsFixture, number: u64) -> Value {
    fx.github
        .pulls(OWNER, REPO)
        .into_iter()
        .find(|p| p["number"].as_u64() == Some(number))
        .expect("the PR")
}

/// Link a person's token directly (the device flow has its own test).
pub(crate) async fn link(app: &TestApp, slack: &str, login: &str, token: &str) {
    app.state
        .change
        .as_ref()
        .expect("change service")
        .tokens
        .link(slack, login, token)
        .await
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

/// Waits until message `ts` (as last updated) contains `needle` in its blocks.
pub(crate) async fn message_contains(slack: &SlackEmulator, ts: &str, needle: &str) -> bool {
    slack
        .wait_until(LONG, |s| {
            s.messages()
                .iter()
                .any(|m| m.ts == ts && m.blocks.to_string().contains(needle))
        })
        .await
}

/// Waits until a reply in the thread of message `ts` contains `needle`.
async fn thread_contains(slack: &SlackEmulator, ts: &str, needle: &str) -> bool {
    slack
        .wait_until(LONG, |s| {
            s.thread(CHANNEL, ts)
                .iter()
                .any(|m| m.text.contains(needle))
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
pub(crate) async fn link_by_device_flow(
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

/// A view submission's form body, as Slack posts it.
fn view_submission(user: &str, view: &Value, values: &Value) -> Vec<u8> {
    let payload = json!({
        "type": "view_submission",
        "user": {"id": user, "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0SLIPWAY",
        "trigger_id": slipway_tests::harness::trigger_id("submit"),
        "view": {"id": view["id"], "callback_id": view["callback_id"], "private_metadata": view["private_metadata"], "state": {"values": values}},
    });
    serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes()
}

async fn submit_view(app: &TestApp, user: &str, view: &Value, values: Value) -> (u16, String) {
    let body = view_submission(user, view, &values);
    let headers = app.signed_headers(&body);
    app.post_raw("/slack/interactivity", body, &headers).await
}

/// The Approve button's value on message `ts` as it is now (it names the head SHA shown).
pub(crate) fn approve_value(slack: &SlackEmulator, ts: &str) -> String {
    let msg = slack
        .messages()
        .into_iter()
        .find(|m| m.ts == ts)
        .expect("the change message");
    crate::changes::button_value(&msg.blocks, "slipway_approve")
        .unwrap_or_else(|| panic!("no Approve button on {msg:?}"))
}

/// Wait for the modal opened after `before` views and return it.
async fn opened_view(slack: &SlackEmulator, before: usize, callback_id: &str) -> Value {
    assert!(
        slack.wait_until(LONG, |s| s.views().len() > before).await,
        "no {callback_id} dialog opened: {:?}",
        slack.responses()
    );
    let view = slack.views().swap_remove(before);
    assert_eq!(view["callback_id"], callback_id, "{view}");
    view
}

/// Approve in Slack as `user`: click message `ts`'s Approve button, then submit its dialog with
/// `comment`.
async fn approve_in_slack(app: &TestApp, user: &str, ts: &str, comment: &str) -> (u16, String) {
    let before = app.slack.views().len();
    app.click(user, "slipway_approve", &approve_value(&app.slack, ts), ts)
        .await;
    let view = opened_view(&app.slack, before, "slipway_approve").await;
    assert!(
        validate_view(&view).is_empty(),
        "{:?}",
        validate_view(&view)
    );
    let values =
        json!({"comment": {"approve_comment": {"type": "plain_text_input", "value": comment}}});
    submit_view(app, user, &view, values).await
}

mod cab;
mod evidence;
mod forged;
mod lifecycle;
mod linking;
mod notices;
mod restart;
mod reviews;
mod rollback;
mod rotation;
mod self_service;
mod snapshots;
mod story;
mod webhooks;
