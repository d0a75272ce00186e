//! The ack's one Redis round trip (issue 19): on shared state every Slack ack (a read, a
//! denial, a meta command, a dry run, a destructive command and its typed confirmation, an
//! event) makes exactly one, counted by the bridge itself; and a replay that reaches another
//! replica after the decision queues nothing.

use std::time::Duration;

use slipway_tests::gitops::{self, OWNER, REPO};
use slipway_tests::redis_server::RedisServer;

use crate::changes::{submit_view, wait_pulls};
use crate::replicas_state::change_replica;

const LONG: Duration = Duration::from_secs(30);

/// A series' value, rounded (the histogram's counts and sums are whole numbers).
fn series(metrics: &str, name: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(-1, |n| n.trim().trim_end_matches(".0").parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ack_on_shared_state_makes_exactly_one_redis_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let fx = gitops::start().await;
    let a = change_replica(&redis, &fx, "a").await;
    // Different people, so no one reaches the per-user limit (a slow read under load).
    let read = a.ack("U0VIEWER", "/kubectl get pods -n web").await;
    assert!(read.starts_with("Running"), "{read}");
    let denied = a.ack("U0VIEWER", "/deploy api staging v2.0.0").await;
    assert!(denied.contains(":no_entry:"), "{denied}");
    let meta = a.ack("U0VIEWER", "/slipway whoami").await;
    assert!(!meta.is_empty());
    let dry = a.ack("U0OPERATOR", "/deploy api staging v2.0.0").await;
    assert!(dry.starts_with("Dry run of"), "{dry}");
    let destructive = a
        .ack(
            "U0OWNER",
            "/kubectl delete deployment/old-api -n web --apply",
        )
        .await;
    assert!(destructive.contains("dialog"), "{destructive}");
    assert!(a.slack.wait_until(LONG, |s| !s.views().is_empty()).await);
    let token = a.slack.views()[0]["private_metadata"]
        .as_str()
        .unwrap()
        .to_string();
    // A wrong phrase (refused on the input, the change put back), then the right one.
    let (status, body) = submit_view(&a, "U0OWNER", &token, "old").await;
    assert!(status == 200 && body.contains("response_action"), "{body}");
    let (status, body) = submit_view(&a, "U0OWNER", &token, "deployment/old-api").await;
    assert_eq!((status, body.as_str()), (200, ""));
    wait_pulls(&fx, 1).await;
    let event = br#"{"type":"event_callback","event_id":"Ev0TRIPS","event":{"type":"app_mention","text":"hi"}}"#.to_vec();
    let headers = a.signed_headers(&event);
    assert_eq!(a.post_raw("/slack/events", event, &headers).await.0, 200);

    let metrics = a.get("/metrics").await;
    let name = "slipway_ack_redis_round_trips";
    let acks = series(&metrics, &format!("{name}_count"));
    assert_eq!(acks, 8, "every ack counted: {metrics}");
    assert_eq!(
        series(&metrics, &format!("{name}_sum")),
        acks,
        "one round trip each"
    );
    assert_eq!(
        series(&metrics, &format!(r#"{name}_bucket{{le="0.0"}}"#)),
        0,
        "none made without the gate's check"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_replayed_to_another_replica_is_refused_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let fx = gitops::start().await;
    let a = change_replica(&redis, &fx, "a").await;
    let b = change_replica(&redis, &fx, "b").await;
    let body = a.command_body("U0OWNER", "/kubectl", "get pods -n web");
    let headers = a.signed_headers(&body);
    let first = a.post_raw("/slack/commands", body.clone(), &headers).await;
    assert_eq!(first.0, 200, "{first:?}");
    // B decides and records it (it has not seen the request), then the queue's script finds
    // the replay: 401, and nothing queued.
    let second = b.post_raw("/slack/commands", body.clone(), &headers).await;
    assert_eq!(second.0, 401, "{second:?}");
    // B again: refused before anything is decided (its own replay cache).
    let third = b.post_raw("/slack/commands", body, &headers).await;
    assert_eq!(third.0, 401, "{third:?}");
    let started = |s: &slipway_emulators::slack::SlackEmulator| {
        s.messages()
            .iter()
            .filter(|m| m.thread_ts.is_none() && m.blocks.to_string().contains("get pods"))
            .count()
    };
    assert!(a.slack.wait_until(LONG, |s| started(s) >= 1).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(started(&a.slack) + started(&b.slack), 1, "one run");
    let trail = b.audit();
    let refused: Vec<_> = trail
        .iter()
        .filter(|r| {
            r.details.as_ref().is_some_and(|d| {
                d["end"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("not queued: a replay"))
            })
        })
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "B says once why it ran nothing: {trail:#?}"
    );
    let decisions = trail
        .iter()
        .filter(|r| {
            r.command
                .as_ref()
                .is_some_and(|c| c.text.contains("get pods"))
        })
        .count();
    assert_eq!(decisions, 1, "B recorded one decision, not two");
    let metrics = b.get("/metrics").await;
    assert!(
        metrics.contains(r#"slipway_signature_rejections_total{reason="replayed"} 2"#),
        "{metrics}"
    );
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
}
