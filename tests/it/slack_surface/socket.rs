//! Socket Mode: the same surfaces through Slack's WebSocket envelopes instead of signed HTTP.

use serde_json::{Value, json};
use slipway_tests::harness::{CHANNEL, TestApp};

use super::{LONG, event_body, explain_action, home_opened, mention, thread_reply};

/// Socket Mode feeds the same handlers: a denial's ack carries Explain, a mention is answered
/// in its thread, a message shortcut opens its modal, and the App Home is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_serves_the_same_surfaces() {
    let app = TestApp::start().await;
    let socket = app.socket_mode().await;
    let command = json!({"token": "x", "team_id": "T0TEST", "team_domain": "test", "channel_id": CHANNEL,
        "channel_name": "ops", "user_id": "U0VIEWER", "user_name": "vera", "command": "/kubectl",
        "text": "get pods -n prod", "api_app_id": "A0SLIPWAY",
        "response_url": app.slack.new_response_url(), "trigger_id": "t.socket.deny"});
    let ack = app
        .slack
        .socket_send("slash_commands", command)
        .await
        .expect("an ack");
    assert!(
        ack.to_string().contains("slipway_explain_decision"),
        "{ack}"
    );

    let ts = "1700002000.000100";
    let body: Value = serde_json::from_slice(&event_body(
        "Ev0SOCKET",
        &mention("U0VIEWER", ts, None, "help"),
    ))
    .unwrap();
    app.slack.socket_send("events_api", body).await;
    assert!(
        thread_reply(&app.slack, ts, "/kubectl").await,
        "{:?}",
        app.slack.messages()
    );

    let (shortcut, trigger) = explain_action(&app.slack, "U0VIEWER", "`/kubectl get pods -n web`");
    app.slack.socket_send("interactive", shortcut).await;
    assert!(
        app.slack.wait_until(LONG, |s| !s.views().is_empty()).await,
        "{:?}",
        app.slack.calls()
    );
    assert!(app.slack.trigger_used(&trigger));

    let body: Value =
        serde_json::from_slice(&event_body("Ev0SOCKHOME", &home_opened("U0VIEWER"))).unwrap();
    app.slack.socket_send("events_api", body).await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s.home("U0VIEWER").is_some())
            .await
    );
    socket.stop().await;
}
