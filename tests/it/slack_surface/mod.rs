//! The Slack surfaces beyond slash commands (issue 23), through the real router with signed
//! requests and the Slack emulator: `@slipway` mentions answered in their thread, the message
//! shortcuts (*Explain with Slipway*, *Run again*), the Explain button on denials, the global
//! *Open a change request…* shortcut, and the App Home. `withdraw` has the change-request side
//! (App Home lists, Withdraw, `status`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_core::audit::EventKind;
use slipway_emulators::slack::{SlackEmulator, validate_view};
use slipway_tests::harness::{CHANNEL, TestApp, trigger_id};

mod socket;
mod withdraw;

const LONG: Duration = Duration::from_secs(30);

/// An Events API body for `event`, as Slack posts it.
pub(crate) fn event_body(event_id: &str, event: &Value) -> Vec<u8> {
    json!({
        "token": "deprecated", "team_id": "T0TEST", "api_app_id": "A0SLIPWAY",
        "event": event, "type": "event_callback", "event_id": event_id,
        "event_time": 1_700_000_000, "authorizations": [],
    })
    .to_string()
    .into_bytes()
}

/// Post an event body with these headers (signed, forged or replayed); the status.
async fn post_event_with(app: &TestApp, body: Vec<u8>, headers: &[(&str, String)]) -> u16 {
    app.post_raw("/slack/events", body, headers).await.0
}

/// Post a signed event; the status.
pub(crate) async fn post_event(app: &TestApp, body: Vec<u8>) -> u16 {
    let headers = app.signed_headers(&body);
    post_event_with(app, body, &headers).await
}

/// `@slipway <text>` by `user` at message `ts` (in thread `thread` if given).
pub(crate) fn mention(user: &str, ts: &str, thread: Option<&str>, text: &str) -> Value {
    let mut ev = json!({
        "type": "app_mention", "user": user, "team": "T0TEST", "channel": CHANNEL,
        "ts": ts, "event_ts": ts, "text": format!("<@U0SLIPBOT> {text}"),
    });
    if let Some(t) = thread {
        ev["thread_ts"] = json!(t);
    }
    ev
}

/// Post `@slipway <text>` by `user` at `ts` as event `event_id`; the status.
pub(crate) async fn mention_event(
    app: &TestApp,
    event_id: &str,
    user: &str,
    ts: &str,
    text: &str,
) -> u16 {
    post_event(app, event_body(event_id, &mention(user, ts, None, text))).await
}

pub(crate) fn home_opened(user: &str) -> Value {
    json!({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home", "event_ts": "1.0"})
}

/// The interactivity form body for `payload`.
pub(crate) fn interaction_body(payload: &Value) -> Vec<u8> {
    serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes()
}

/// A message shortcut (`message_action`) on a message with `text`, clicked by `user`.
fn message_action(
    slack: &SlackEmulator,
    user: &str,
    callback: &str,
    text: &str,
    trigger: &str,
) -> Value {
    json!({
        "type": "message_action", "callback_id": callback, "trigger_id": trigger,
        "user": {"id": user, "team_id": "T0TEST"}, "team": {"id": "T0TEST"},
        "channel": {"id": CHANNEL, "name": "ops"}, "message_ts": "1700000000.000100",
        "response_url": slack.new_response_url(), "action_ts": "1.1",
        "message": {"type": "message", "user": "U0SOMEONE", "ts": "1700000000.000100", "text": text},
    })
}

/// *Explain with Slipway* by `user` on a message showing `text`, with a trigger id Slack issued
/// (valid 3 s); the payload and that trigger id.
fn explain_action(slack: &SlackEmulator, user: &str, text: &str) -> (Value, String) {
    let trigger = slack.trigger_id();
    let payload = message_action(slack, user, "slipway_explain", text, &trigger);
    (payload, trigger)
}

async fn post_interaction(app: &TestApp, payload: &Value) -> (u16, Duration) {
    let body = interaction_body(payload);
    let headers = app.signed_headers(&body);
    let started = Instant::now();
    let (status, _) = app.post_raw("/slack/interactivity", body, &headers).await;
    (status, started.elapsed())
}

/// Waits for a thread reply (a channel message with `thread_ts`) containing `needle`.
async fn thread_reply(slack: &SlackEmulator, thread: &str, needle: &str) -> bool {
    slack
        .wait_until(LONG, |s| {
            s.thread(CHANNEL, thread)
                .iter()
                .any(|m| m.text.contains(needle) || m.blocks.to_string().contains(needle))
        })
        .await
}

async fn ephemeral_in_thread(
    slack: &SlackEmulator,
    user: &str,
    thread: &str,
    needle: &str,
) -> bool {
    slack
        .wait_until(LONG, |s| {
            s.ephemerals().iter().any(|e| {
                e.user == user
                    && e.thread_ts.as_deref() == Some(thread)
                    && (e.text.contains(needle) || e.blocks.to_string().contains(needle))
            })
        })
        .await
}

/// Every message and view Slipway sent was within Block Kit's limits.
pub(crate) fn no_block_kit_errors(slack: &SlackEmulator) {
    let errors = slack.validation_errors();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Waits until a `response_url` post contains every one of `needles` (text or blocks).
async fn responded(slack: &SlackEmulator, needles: &[&str]) -> bool {
    let found = slack
        .wait_until(LONG, |s| {
            s.responses().iter().any(|r| {
                let body = r.body.to_string();
                needles.iter().all(|n| body.contains(n))
            })
        })
        .await;
    if !found {
        eprintln!("responses: {:?}", slack.responses());
    }
    found
}

fn calls(slack: &SlackEmulator, method: &str) -> usize {
    slack.calls().iter().filter(|c| c.method == method).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_is_answered_in_its_thread_with_chat_post_message() {
    let app = TestApp::start().await;
    let started = Instant::now();
    let status = mention_event(&app, "Ev0HELP", "U0VIEWER", "1700000100.000100", "help").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        thread_reply(&app.slack, "1700000100.000100", "/kubectl").await,
        "{:?}",
        app.slack.messages()
    );
    // In a thread: the answer goes to the thread, not under the reply.
    let ev = mention(
        "U0VIEWER",
        "1700000200.000300",
        Some("1700000200.000100"),
        "help kubectl",
    );
    assert_eq!(post_event(&app, event_body("Ev0HELP2", &ev)).await, 200);
    assert!(thread_reply(&app.slack, "1700000200.000100", "kubectl").await);
    assert!(app.slack.thread(CHANNEL, "1700000200.000300").is_empty());
    no_block_kit_errors(&app.slack);
}

/// whoami is personal: it reaches the person alone (ephemeral, in the thread), and the thread
/// says so; a denied read gets the Explain button; an allowed read runs in the thread as them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_follows_the_slash_commands_visibility_and_runs_reads_as_the_person() {
    let app = TestApp::start().await;
    let ts = "1700000300.000100";
    mention_event(&app, "Ev0WHO", "U0VIEWER", ts, "whoami").await;
    assert!(
        ephemeral_in_thread(&app.slack, "U0VIEWER", ts, "vera.viewer@example.com").await,
        "{:?}",
        app.slack.ephemerals()
    );
    assert!(thread_reply(&app.slack, ts, "only they can see it").await);
    assert!(
        !app.slack
            .messages()
            .iter()
            .any(|m| m.text.contains("vera.viewer")),
        "whoami stays private"
    );

    let denied = "1700000400.000100";
    mention_event(
        &app,
        "Ev0DENY",
        "U0VIEWER",
        denied,
        "kubectl get pods -n prod",
    )
    .await;
    assert!(
        ephemeral_in_thread(&app.slack, "U0VIEWER", denied, "slipway_explain_decision").await,
        "{:?}",
        app.slack.ephemerals()
    );

    let read = "1700000500.000100";
    mention_event(
        &app,
        "Ev0READ",
        "U0VIEWER",
        read,
        "/kubectl get pods -n web",
    )
    .await;
    assert!(
        thread_reply(&app.slack, read, "web-7d9f-abcde").await,
        "{:#?}",
        app.slack.messages()
    );
    let decision = app
        .audit()
        .into_iter()
        .rev()
        .find(|r| {
            r.kind == EventKind::Decision
                && r.command
                    .as_ref()
                    .is_some_and(|c| c.text.contains("-n web"))
        })
        .expect("the read's decision");
    assert_eq!(
        decision.actor.as_ref().unwrap().slack_user_id.as_deref(),
        Some("U0VIEWER")
    );
    no_block_kit_errors(&app.slack);
}

/// A change named in a mention is not started: its dry run needs a private way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_never_starts_a_change() {
    let app = TestApp::start().await;
    let ts = "1700000600.000100";
    mention_event(
        &app,
        "Ev0CHG",
        "U0OPERATOR",
        ts,
        "/kubectl scale deployment/web --replicas=3 -n web",
    )
    .await;
    assert!(ephemeral_in_thread(&app.slack, "U0OPERATOR", ts, "is a change").await);
    let audit = app.audit();
    assert!(
        !audit
            .iter()
            .any(|r| r.command.as_ref().is_some_and(|c| c.text.contains("scale")))
    );
}

/// Attacker: a forged or unsigned `app_mention`, and a captured one sent again, get 401 and
/// no answer; Slack's own retry (same event id, new signature) is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_retried_mentions_are_not_answered_twice() {
    let app = TestApp::start().await;
    let body = event_body(
        "Ev0FORGE",
        &mention("U0OWNER", "1700000700.000100", None, "whoami"),
    );
    let (status, _) = app.post_raw("/slack/events", body.clone(), &[]).await;
    assert_eq!(status, 401, "unsigned");
    let mut headers = app.signed_headers(&body);
    headers[1].1 = format!("v0={}", "0".repeat(64));
    assert_eq!(
        post_event_with(&app, body.clone(), &headers).await,
        401,
        "forged"
    );

    let ts = "1700000800.000100";
    let body = event_body("Ev0ONCE", &mention("U0VIEWER", ts, None, "help"));
    let headers = app.signed_headers(&body);
    assert_eq!(post_event_with(&app, body.clone(), &headers).await, 200);
    assert_eq!(
        post_event_with(&app, body.clone(), &headers).await,
        401,
        "a replay"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut retry = app.signed_headers(&body);
    retry.push(("x-slack-retry-num", "1".into()));
    assert_eq!(
        post_event_with(&app, body, &retry).await,
        200,
        "a retry is acked"
    );
    assert!(thread_reply(&app.slack, ts, "/kubectl").await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.slack.thread(CHANNEL, ts).len(), 1, "answered once");
    assert!(app.slack.thread(CHANNEL, "1700000700.000100").is_empty());
    assert_eq!(calls(&app.slack, "chat.postEphemeral"), 0);
}

/// *Explain with Slipway*: acked at once, and `views.open` with that very trigger shows the
/// decision for the clicker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explain_shortcut_opens_a_modal_with_the_clickers_decision() {
    let app = TestApp::start().await;
    let (payload, trigger) = explain_action(
        &app.slack,
        "U0VIEWER",
        "can someone run `/kubectl get pods -n prod`?",
    );
    let (status, took) = post_interaction(&app, &payload).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        app.slack.wait_until(LONG, |s| !s.views().is_empty()).await,
        "{:?}",
        app.slack.calls()
    );
    assert!(
        app.slack.trigger_used(&trigger),
        "views.open used the payload's trigger_id"
    );
    let view = app.slack.views().remove(0);
    assert!(
        validate_view(&view).is_empty(),
        "{:?}",
        validate_view(&view)
    );
    let text = view.to_string();
    assert!(text.contains("*deny*"), "{text}");

    // The same command explained to an owner: their own decision.
    let (payload, trigger) = explain_action(&app.slack, "U0OWNER", "`/kubectl get pods -n prod`");
    post_interaction(&app, &payload).await;
    assert!(app.slack.wait_until(LONG, |s| s.views().len() == 2).await);
    assert!(app.slack.trigger_used(&trigger));
    assert!(
        app.slack.views()[1].to_string().contains("*allow*"),
        "{}",
        app.slack.views()[1]
    );
}

/// Attacker: a forged or unsigned `message_action` opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_message_shortcut_opens_nothing() {
    let app = TestApp::start().await;
    let payload = message_action(
        &app.slack,
        "U0OWNER",
        "slipway_explain",
        "`/kubectl get pods`",
        &trigger_id("forged"),
    );
    let body = interaction_body(&payload);
    assert_eq!(
        app.post_raw("/slack/interactivity", body.clone(), &[])
            .await
            .0,
        401
    );
    let mut headers = app.signed_headers(&body);
    headers[0].1 = "1000000000".into();
    assert_eq!(
        app.post_raw("/slack/interactivity", body, &headers).await.0,
        401,
        "stale timestamp"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(app.slack.views().is_empty());
}

/// *Run again* runs the result's command as the clicker; a clicker whose policy denies it is
/// refused (with Explain) and nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_again_is_decided_for_the_clicker() {
    let app = TestApp::start().await;
    let again = |namespace: &str| {
        let result = format!(
            ":white_check_mark: `kubectl get pods --namespace={namespace}` on *staging (namespace {namespace})* finished"
        );
        message_action(
            &app.slack,
            "U0VIEWER",
            "slipway_run_again",
            &result,
            &trigger_id("again"),
        )
    };
    assert_eq!(post_interaction(&app, &again("prod")).await.0, 200);
    assert!(responded(&app.slack, &[":no_entry:", "slipway_explain_decision"]).await);
    assert!(
        app.kube_object_requests()
            .iter()
            .all(|r| !r.path.contains("/namespaces/prod/"))
    );

    post_interaction(&app, &again("web")).await;
    let msg = app
        .wait_message("kubectl get pods --namespace=web", LONG)
        .await
        .expect("the run");
    let (_, thread) = app.wait_finished(&msg.ts, LONG).await;
    assert!(thread.iter().any(|m| m.text.contains("web-7d9f-abcde")));
    assert!(
        msg.blocks.to_string().contains("U0VIEWER"),
        "run as the clicker: {}",
        msg.blocks
    );
}

/// Denials are ephemeral, so they carry Explain: a click explains the decision to the clicker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_carries_an_explain_button() {
    let app = TestApp::start().await;
    let (status, ack) = app.command("U0VIEWER", "/kubectl get pods -n prod").await;
    assert_eq!(status, 200);
    let blocks = json!(ack["blocks"]);
    assert!(
        slipway_emulators::slack::validate_blocks(
            &blocks,
            slipway_emulators::slack::Surface::Message
        )
        .is_empty()
    );
    let value = crate::changes::button_value(&blocks, "slipway_explain_decision")
        .expect("an Explain button");
    assert_eq!(value, "/kubectl get pods -n prod");
    app.click("U0VIEWER", "slipway_explain_decision", &value, "")
        .await;
    assert!(responded(&app.slack, &["*deny*"]).await);
}

/// The global shortcut's modal builds the typed command: bad input is flagged on the form; a
/// good one is decided for the submitter and answered through the picked channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_shortcut_builds_a_typed_command_under_the_same_policy() {
    let app = TestApp::start().await;
    let trigger = app.slack.trigger_id();
    let payload = json!({"type": "shortcut", "callback_id": "slipway_change", "trigger_id": trigger,
        "user": {"id": "U0VIEWER", "team_id": "T0TEST"}, "team": {"id": "T0TEST"}, "action_ts": "1.2"});
    assert_eq!(post_interaction(&app, &payload).await.0, 200);
    assert!(app.slack.wait_until(LONG, |s| !s.views().is_empty()).await);
    let view = app.slack.views().remove(0);
    assert!(
        validate_view(&view).is_empty(),
        "{:?}",
        validate_view(&view)
    );
    assert_eq!(view["callback_id"], "slipway_change");
    let response_url = app.slack.new_response_url();
    let submit = |values: Value| {
        json!({"type": "view_submission", "user": {"id": "U0VIEWER", "team_id": "T0TEST"},
            "trigger_id": trigger_id("submit"), "view": {"id": view["id"], "callback_id": "slipway_change", "private_metadata": "", "state": {"values": values}},
            "response_urls": [{"block_id": "channel", "action_id": "change_channel", "channel_id": CHANNEL, "response_url": response_url}]})
    };
    let field = |v: &str| json!({"type": "plain_text_input", "value": v});
    let kind = |v: &str| json!({"change_kind": {"type": "static_select", "selected_option": {"value": v}}});
    let bad = submit(
        json!({"kind": kind("scale"), "name": {"change_name": field("web")}, "where": {"change_where": field("web")}}),
    );
    let body = interaction_body(&bad);
    let headers = app.signed_headers(&body);
    let (status, text) = app.post_raw("/slack/interactivity", body, &headers).await;
    assert_eq!(status, 200);
    assert!(text.contains("\"amount\""), "{text}");
    let good = submit(
        json!({"kind": kind("scale"), "name": {"change_name": field("web")}, "where": {"change_where": field("web")}, "amount": {"change_amount": field("3")}}),
    );
    let (status, _) = post_interaction(&app, &good).await;
    assert_eq!(status, 200);
    assert!(
        responded(&app.slack, &[":no_entry:"]).await,
        "the viewer may not scale"
    );
    let decision = app
        .audit()
        .into_iter()
        .rev()
        .find(|r| r.kind == EventKind::Decision)
        .unwrap();
    assert_eq!(
        decision.command.unwrap().text,
        "/kubectl scale deployment/web --replicas=3 -n web"
    );
}

/// `app_home_opened` publishes the person's App Home: who they are, what their roles grant,
/// and their runs; a run of theirs ending republishes it, opening it again at once doesn't.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_home_is_published_for_the_person_and_follows_their_runs() {
    let app = TestApp::start().await;
    assert_eq!(
        post_event(&app, event_body("Ev0HOME", &home_opened("U0VIEWER"))).await,
        200
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s.home("U0VIEWER").is_some())
            .await,
        "{:?}",
        app.slack.calls()
    );
    let home = app.slack.home("U0VIEWER").unwrap();
    assert!(
        validate_view(&home).is_empty(),
        "{:?}",
        validate_view(&home)
    );
    let text = home.to_string();
    for needle in [
        "vera.viewer@example.com",
        "viewer-read",
        "kube:staging/*",
        "None since Slipway last started",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    // Opened again at once (flipping tabs): nothing changed, so it is not read and published again.
    assert_eq!(
        post_event(&app, event_body("Ev0HOME2", &home_opened("U0VIEWER"))).await,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.slack.published_homes().len(), 1);
    assert!(
        app.ack("U0VIEWER", "/kubectl get pods -n web")
            .await
            .starts_with("Running")
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .home("U0VIEWER")
                .is_some_and(|h| h.to_string().contains("/kubectl get pods -n web")))
            .await,
        "republished after the run: {:?}",
        app.slack.home("U0VIEWER")
    );
    assert!(
        app.slack.home("U0OWNER").is_none(),
        "only the person who looked"
    );
}
