//! Change steps (dry runs, opening PRs) run on the worker pool under the same per-user limits as
//! reads, and a dry run nobody confirms expires.

use std::time::Duration;

use slipway_tests::gitops::{self, OWNER, REPO};
use slipway_tests::harness::{Options, TestApp};

use crate::changes::{button_value, wait_pulls};

const LONG: Duration = Duration::from_secs(30);

async fn start(
    per_user: usize,
    env: Vec<(&'static str, String)>,
) -> (TestApp, gitops::GitOpsFixture) {
    let fx = gitops::start().await;
    let mut all = fx.env.clone();
    all.extend(env);
    let app = TestApp::start_with(Options {
        env: all,
        config_yaml: Some(fx.config_yaml.clone()),
        per_user,
        ..Options::default()
    })
    .await;
    (app, fx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_dry_runs_hold_a_slot_under_the_per_user_limit() {
    let (app, fx) = start(1, Vec::new()).await;
    // A slow GitHub keeps the first dry run busy while the next requests arrive.
    fx.github.set_latency(Duration::from_millis(700));
    let first = app.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    assert!(first.starts_with("Dry run of"), "{first}");
    let second = app.ack("U0OPERATOR", "/deploy api staging v3.0.0").await;
    assert!(
        second.contains(":hourglass: You already have 1"),
        "a second dry run waits for the first: {second}"
    );
    let read = app.ack("U0OPERATOR", "/kubectl get pods -n web").await;
    assert!(
        read.contains(":hourglass:"),
        "reads share the limit: {read}"
    );
    let other = app.ack("U0OWNER", "/deploy api staging v4.0.0").await;
    assert!(other.starts_with("Dry run of"), "per user: {other}");
    fx.github.set_latency(Duration::ZERO);
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .filter(|r| r.body.to_string().contains("slipway_confirm"))
                .count()
                == 2)
            .await,
        "{:?}",
        app.slack.responses()
    );
    let again = app.ack("U0OPERATOR", "/deploy api staging v3.0.0").await;
    assert!(
        again.starts_with("Dry run of"),
        "the slot is free again: {again}"
    );
}

pub(crate) fn confirm_value(app: &TestApp) -> String {
    app.slack
        .responses()
        .iter()
        .rev()
        .find_map(|r| button_value(&r.body["blocks"], "slipway_confirm"))
        .expect("a Confirm button")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_dry_run_expires_and_a_confirm_is_used_once() {
    let (app, fx) = start(2, vec![("SLIPWAY_PENDING_TTL", "2s".into())]).await;
    let svc = app.state.change.clone().expect("change service");
    app.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    let shown = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses()
            .iter()
            .any(|r| r.body.to_string().contains("slipway_confirm"))
    };
    assert!(app.slack.wait_until(LONG, shown).await);
    let stale = confirm_value(&app);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.click("U0OPERATOR", "slipway_confirm", &stale, "1.0")
        .await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("has expired")))
            .await
    );
    assert!(fx.github.pulls(OWNER, REPO).is_empty(), "nothing opened");

    let before = app.slack.responses().len();
    app.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s.responses().len() > before && shown(s))
            .await
    );
    assert_eq!(svc.pending_count(), 1, "the expired dry run was dropped");
    let fresh = confirm_value(&app);
    assert_ne!(fresh, stale);
    app.click("U0OPERATOR", "slipway_confirm", &fresh, "1.0")
        .await;
    wait_pulls(&fx, 1).await;
    assert_eq!(
        svc.pending_count(),
        0,
        "a confirmed change is no longer pending"
    );
    app.click("U0OPERATOR", "slipway_confirm", &fresh, "1.0")
        .await;
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .any(|r| r.body.to_string().contains("already confirmed")))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fx.github.pulls(OWNER, REPO).len(),
        1,
        "one PR for one Confirm"
    );
}
