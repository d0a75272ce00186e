//! The CAB gate (`audit.servicenow.cab_gate`): a change whose quorum holds waits, as
//! `slipway/approval` = `pending`, and is not auto-merged, until the ServiceNow change request
//! the sink filed for it is CAB-approved; a rejection fails it. ServiceNow is the emulator of
//! its Table API (no instance here); the bridge finds the change by its correlation id.

use std::fmt::Write as _;

use slipway_emulators::servicenow::ServiceNowEmulator;

use super::*;

/// A bridge whose ServiceNow sink gates merges, with an auto-merging change PR open.
async fn gated() -> (TestApp, GitOpsFixture, ServiceNowEmulator, u64) {
    let snow = ServiceNowEmulator::start("slipway", "pw").await;
    let mut fx = gitops::start().await;
    let _ = write!(
        fx.config_yaml,
        "audit:\n  servicenow:\n    url: {}\n    user: slipway\n    password: pw\n    \
         cab_gate: true\n",
        snow.base_url()
    );
    let opts = Options {
        policy_edits: vec![(
            "approve_in: slack",
            "approve_in: slack\n      auto_merge: true".to_string(),
        )],
        ..Options::default()
    };
    let app = start_with(&fx, opts).await;
    let number = open_pr(&app, &fx).await;
    for who in ["ada-approver", "bo-approver"] {
        fx.github
            .review(OWNER, REPO, number, who, "APPROVE", "lgtm");
    }
    (app, fx, snow, number)
}

fn change_id(fx: &GitOpsFixture, number: u64) -> String {
    pull(fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .trim_start_matches("slipway/")
        .to_string()
}

async fn status_is(fx: &GitOpsFixture, number: u64, state: &str, needle: &str) -> bool {
    fx.github_wait(|| {
        approval_status(fx, number).is_some_and(|s| {
            s["state"] == state && s["description"].as_str().unwrap_or("").contains(needle)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waits_for_its_cab_approval_in_servicenow_before_it_merges() {
    let (app, fx, snow, number) = gated().await;
    let ts = change_message(&app).ts;
    assert!(
        status_is(&fx, number, "pending", "CAB: waiting for approval of CHG").await,
        "{:?}",
        approval_status(&fx, number)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        pull(&fx, number)["merged"],
        false,
        "not merged before the CAB"
    );

    let id = change_id(&fx, number);
    assert!(snow.set_approval(&id, "approved"), "{:?}", snow.changes());
    assert!(
        fx.github_wait(|| pull(&fx, number)["merged"] == true).await,
        "merged once the CAB approved: {:?}",
        approval_status(&fx, number)
    );
    assert!(
        thread_contains(&app.slack, &ts, "the CAB approved CHG").await,
        "{:?}",
        app.slack.thread(CHANNEL, &ts)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cab_rejection_fails_the_change() {
    let (_app, fx, snow, number) = gated().await;
    assert!(status_is(&fx, number, "pending", "CAB: waiting for approval").await);
    assert!(snow.set_approval(&change_id(&fx, number), "rejected"));
    assert!(
        status_is(&fx, number, "failure", "the CAB rejected CHG").await,
        "{:?}",
        approval_status(&fx, number)
    );
    assert_eq!(pull(&fx, number)["merged"], false);
}

/// Someone files a second change with the same correlation id, already approved: the gate
/// trusts neither, and nothing merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_twin_filed_by_hand_in_servicenow_does_not_open_the_gate() {
    let (_app, fx, snow, number) = gated().await;
    assert!(status_is(&fx, number, "pending", "CAB: waiting for approval").await);
    let mut twin = serde_json::Map::new();
    twin.insert("correlation_id".into(), json!(change_id(&fx, number)));
    twin.insert("approval".into(), json!("approved"));
    snow.file_by_hand(twin);
    // Any event judges the PR again.
    fx.github
        .review(OWNER, REPO, number, "olga-owner", "COMMENT", "poke");
    assert!(
        status_is(&fx, number, "pending", "CAB: the approval can't be read").await,
        "{:?}",
        approval_status(&fx, number)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(pull(&fx, number)["merged"], false);
}
