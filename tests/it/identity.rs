//! Identity: who a Slack user is, and how quickly that stops being true.

use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_tests::harness::TestApp;

/// A signed Events API `user_change`, shaped like Slack's example.
fn user_change(event_id: &str, user: &str, deleted: bool) -> Vec<u8> {
    serde_json::json!({
        "type": "event_callback",
        "team_id": "T0TEST",
        "api_app_id": "A0SLIPWAY",
        "event_id": event_id,
        "event_time": 1_700_000_000,
        "event": {
            "type": "user_change",
            "user": {
                "id": user, "team_id": "T0TEST", "name": "vera", "deleted": deleted,
                "profile": {"email": "vera.viewer@example.com", "real_name": "Vera Viewer"},
                "is_bot": false, "updated": 1_700_000_000
            },
            "cache_ts": 1_700_000_000,
            "event_ts": "1700000000.000100"
        }
    })
    .to_string()
    .into_bytes()
}

/// A Slack admin deactivates someone: Slack's `user_change` arrives, and their very next
/// command is denied with the reason, even though the policy file still lists them; the
/// deactivation is audited, and reactivation restores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_deactivation_denies_the_next_command_even_for_a_static_entry() {
    let app = TestApp::start().await;
    let line = "/kubectl get pods -n web";
    assert!(app.ack("U0VIEWER", line).await.starts_with("Running"));
    let body = user_change("Ev0DEACT", "U0VIEWER", true);
    let headers = app.signed_headers(&body);
    assert_eq!(app.post_raw("/slack/events", body, &headers).await.0, 200);
    let denied = app.ack("U0VIEWER", line).await;
    assert!(
        denied.contains("Slack says this account is deactivated"),
        "{denied}"
    );
    let audit = app.audit();
    let deactivation = audit
        .iter()
        .find(|r| r.kind == EventKind::Identity)
        .expect("an identity record");
    assert_eq!(
        deactivation.details.as_ref().unwrap()["action"],
        "slack_deactivated"
    );
    let last = audit.last().unwrap();
    assert_eq!(last.kind, EventKind::Decision);
    assert_eq!(last.decision.as_ref().unwrap().rule, "identity.refused");
    tokio::time::sleep(Duration::from_millis(10)).await;
    let body = user_change("Ev0REACT", "U0VIEWER", false);
    let headers = app.signed_headers(&body);
    assert_eq!(app.post_raw("/slack/events", body, &headers).await.0, 200);
    assert!(app.ack("U0VIEWER", line).await.starts_with("Running"));
}
