//! Who sees output: reads on protected resources answer only the requester, with a "Share in
//! channel" button; policy can set it per resource; protected output never reaches a channel
//! shared with another organisation.

use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_tests::harness::{CHANNEL, Options, TestApp};

use crate::changes::button_value;

const LONG: Duration = Duration::from_secs(30);

/// The private result of a run that printed `needle`, once it arrived: its Share button's value.
async fn private_result(app: &TestApp, needle: &str) -> String {
    let found = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses().into_iter().find_map(|r| {
            let text = r.body.to_string();
            (text.contains(needle) && text.contains("slipway_share"))
                .then(|| button_value(&r.body["blocks"], "slipway_share"))
                .flatten()
        })
    };
    assert!(
        app.slack.wait_until(LONG, |s| found(s).is_some()).await,
        "{:?}",
        app.slack.responses()
    );
    found(&app.slack).unwrap()
}

fn in_channel(app: &TestApp, needle: &str) -> bool {
    app.slack
        .messages()
        .iter()
        .any(|m| m.channel == CHANNEL && m.blocks.to_string().contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_read_output_is_private_until_its_requester_shares_it() {
    let app = TestApp::start().await;
    let ack = app
        .ack("U0OPERATOR", "/kubectl @production get pods -n web")
        .await;
    assert!(ack.starts_with("Running"), "{ack}");
    let run = private_result(&app, "web-7d9f-abcde").await;
    assert!(
        !in_channel(&app, "web-7d9f-abcde"),
        "nothing in the channel"
    );

    // Someone else's click shares nothing.
    app.click("U0OWNER", "slipway_share", &run, "1.0").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("Only the person who ran")))
            .await
    );
    assert!(!in_channel(&app, "web-7d9f-abcde"));

    app.click("U0OPERATOR", "slipway_share", &run, "1.0").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.channel == CHANNEL
                && m.blocks.to_string().contains("web-7d9f-abcde")
                && m.blocks.to_string().contains("Shared by <@U0OPERATOR>")))
            .await,
        "{:?}",
        app.slack.messages()
    );
    assert!(app.audit().iter().any(|r| r.kind == EventKind::Share));
    let unprotected = app.ack("U0OPERATOR", "/kubectl get pods -n web").await;
    assert!(unprotected.starts_with("Running"), "{unprotected}");
    assert!(
        app.slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.thread_ts.is_none()
                && m.blocks.to_string().contains("kubectl get pods")
                && !m.blocks.to_string().contains("Shared by")))
            .await,
        "output on unprotected resources still goes to the channel"
    );
}

fn prod_output_in_channel() -> Options {
    Options {
        policy_edits: vec![(
            "limits:",
            "channels:\n  - { id: prod-in-channel, resources: [\"kube:production/*\"], output: channel }\n\nlimits:".to_string(),
        )],
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_output_never_reaches_a_channel_shared_with_another_organisation() {
    // The policy shows production output in the channel…
    let app = TestApp::start_with(prod_output_in_channel()).await;
    app.ack("U0OPERATOR", "/kubectl @production get pods -n web")
        .await;
    assert!(
        app.slack
            .wait_until(LONG, |_| in_channel(&app, "kubectl get pods"))
            .await,
        "the policy's `output: channel` applies"
    );
    // …except in a channel shared with another organisation.
    let app = TestApp::start_with(prod_output_in_channel()).await;
    app.slack.set_channel_external(CHANNEL, true);
    app.ack("U0OPERATOR", "/kubectl @production get pods -n web")
        .await;
    private_result(&app, "web-7d9f-abcde").await;
    assert!(
        app.slack.messages().is_empty(),
        "nothing in the shared channel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_protected_output_into_a_shared_channel_is_refused() {
    let app = TestApp::start().await;
    app.slack.set_channel_external(CHANNEL, true);
    app.ack("U0OPERATOR", "/kubectl @production get pods -n web")
        .await;
    let run = private_result(&app, "web-7d9f-abcde").await;
    app.click("U0OPERATOR", "slipway_share", &run, "1.0").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s.responses().iter().any(|r| r
                .body
                .to_string()
                .contains("shared with another organisation")))
            .await
    );
    assert!(!in_channel(&app, "web-7d9f-abcde"));
}
