//! The policy's `channels` section. Who sees output: reads on protected resources answer only
//! the requester, with a "Share in channel" button; policy can set it per resource; protected
//! output never reaches a channel shared with another organisation. Where commands may run:
//! `only_in` and `direct_messages: false`, refused naming the allowed channels.

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
            "channels:\n",
            "channels:\n  - { id: prod-in-channel, resources: [\"kube:production/*\"], output: channel }\n".to_string(),
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

/// Production deploys only in `#prod-ops` (`C0PRODOPS`), on top of the example policy's
/// "production not in DMs".
fn deploys_in_prod_ops() -> Options {
    Options {
        policy_edits: vec![(
            "channels:\n",
            "channels:\n  - { id: deploys-in-prod-ops, resources: [\"service:*/production\"], commands: [deploy], only_in: [C0PRODOPS] }\n".to_string(),
        )],
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_typed_where_the_policy_keeps_it_out_is_refused_naming_the_allowed_channels() {
    let app = TestApp::start_with(deploys_in_prod_ops()).await;
    // A production read in a direct message: refused before anything runs, and audited.
    let (status, v) = app
        .command_in(
            "D0OMAR",
            "U0OPERATOR",
            "/kubectl @production get pods -n web",
        )
        .await;
    assert_eq!(status, 200);
    let text = v["text"].as_str().unwrap_or_default();
    assert!(text.contains("may not be run in a direct message"), "{v}");
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    // A production deploy outside #prod-ops: the refusal names the channel to use.
    let (_, v) = app
        .command_in(CHANNEL, "U0PRODDEPLOY", "/deploy api production --apply")
        .await;
    let text = v["text"].as_str().unwrap_or_default();
    assert!(text.contains("may only be run in <#C0PRODOPS>"), "{v}");
    // The same deploy in a DM is refused too: a DM can't be listed.
    let (_, v) = app
        .command_in("D0PAT", "U0PRODDEPLOY", "/deploy api production")
        .await;
    assert!(
        v["text"]
            .as_str()
            .unwrap_or_default()
            .contains("<#C0PRODOPS>"),
        "{v}"
    );
    // The read in a channel runs; a staging read in a DM runs (nothing scopes staging).
    let ack = app
        .ack("U0OPERATOR", "/kubectl @production get pods -n web")
        .await;
    assert!(ack.starts_with("Running"), "{ack}");
    let (_, v) = app
        .command_in("D0OMAR", "U0OPERATOR", "/kubectl get pods -n web")
        .await;
    assert!(
        v["text"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Running"),
        "{v}"
    );

    let denials: Vec<String> = app
        .audit()
        .into_iter()
        .filter(|r| r.kind == EventKind::Decision)
        .filter_map(|r| {
            r.decision
                .filter(|d| d.rule.starts_with("channels."))
                .map(|d| d.rule)
        })
        .collect();
    assert_eq!(
        denials,
        [
            "channels.production-not-in-dms",
            "channels.deploys-in-prod-ops",
            "channels.deploys-in-prod-ops"
        ],
        "each refusal audited with its entry"
    );
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains("slipway_refusals_total{reason=\"channels.deploys-in-prod-ops\"} 2"),
        "{metrics}"
    );
}
