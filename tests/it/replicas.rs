//! Several bridge replicas sharing one real Redis (issue 19): what one replica accepted, the
//! other knows; while Redis is down nothing is half-done, and `/readyz` drains the replica.

use std::time::Duration;

use slipway_tests::harness::{Options, TestApp};
use slipway_tests::redis_server::RedisServer;

/// A replica of the bridge on `redis`, with its own state directory and audit writer id.
async fn replica(redis: &RedisServer, name: &str) -> TestApp {
    TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", name.to_string()),
        ],
        ..Options::default()
    })
    .await
}

fn count(metrics: &str, endpoint: &str, outcome: &str) -> u64 {
    let series = format!(r#"slipway_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}} "#);
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_signed_request_sent_to_two_replicas_is_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let a = replica(&redis, "a").await;
    let b = replica(&redis, "b").await;
    let body = a.command_body("U0VIEWER", "/slipway", "whoami");
    let headers = a.signed_headers(&body);
    let first = a.post_raw("/slack/commands", body.clone(), &headers).await;
    let second = b.post_raw("/slack/commands", body, &headers).await;
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(second.0, 401, "the replay to the other replica: {second:?}");
    let metrics = b.get("/metrics").await;
    assert!(
        metrics.contains(r#"slipway_signature_rejections_total{reason="replayed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_event_retry_delivered_to_both_replicas_is_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let a = replica(&redis, "a").await;
    let b = replica(&redis, "b").await;
    let event = br#"{"type":"event_callback","event_id":"Ev0REPLICA1","event":{"type":"app_mention","text":"hi"}}"#.to_vec();
    // Slack re-signs a retry (a new timestamp): both deliveries are genuine, one is a retry.
    let h1 = a.signed_headers(&event);
    assert_eq!(a.post_raw("/slack/events", event.clone(), &h1).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let h2 = b.signed_headers(&event);
    assert_eq!(b.post_raw("/slack/events", event, &h2).await.0, 200);
    let (ma, mb) = (a.get("/metrics").await, b.get("/metrics").await);
    assert_eq!(count(&ma, "events", "ok") + count(&mb, "events", "ok"), 1);
    assert_eq!(count(&mb, "events", "duplicate"), 1, "{mb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_commands_are_refused_and_readyz_drains_then_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(dir.path());
    let a = replica(&redis, "a").await;
    let ready = a.get_status("/readyz").await;
    assert_eq!(ready.0, 200, "{ready:?}");
    assert!(ready.1.contains(r#""shared_state":"ok""#), "{ready:?}");
    assert!(
        a.ack("U0VIEWER", "/slipway whoami")
            .await
            .contains("viewer")
    );

    redis.kill();
    let refused = a.ack("U0VIEWER", "/kubectl get pods -n web").await;
    assert!(
        refused.contains("can't reach its shared state") && refused.contains("nothing was run"),
        "{refused}"
    );
    let not_ready = a.get_status("/readyz").await;
    assert_eq!(not_ready.0, 503, "{not_ready:?}");
    assert!(not_ready.1.contains("unreachable"), "{not_ready:?}");
    assert_eq!(a.get("/healthz").await, "ok");
    let audit_before = a.audit().len();
    // The decision is recorded (every invocation is), then why nothing ran; nothing is queued.
    assert!(
        a.audit()
            .iter()
            .any(|r| r.details.as_ref().is_some_and(|d| d["end"]
                .as_str()
                .is_some_and(|e| e.contains("(Redis) was unreachable")))),
        "the trail says the command was not queued"
    );

    redis.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while a.get_status("/readyz").await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not become ready again without a restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ack = a.ack("U0VIEWER", "/kubectl get pods -n web").await;
    assert!(!ack.contains("shared state"), "{ack}");
    assert!(a.audit().len() > audit_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_readyz_is_ready_while_the_audit_spool_is_writable() {
    let app = TestApp::start().await;
    let (status, body) = app.get_status("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""shared_state":"embedded""#), "{body}");
    assert_eq!(
        app.get("/healthz").await,
        "ok",
        "liveness is separate from readiness"
    );
}

/// Wait (up to `secs`) until `f` holds, polling.
async fn eventually(secs: u64, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sentinel_failover_the_replicas_follow_the_new_master_without_a_restart() {
    use slipway_tests::redis_server::{RedisSentinel, wait_for_replication};
    let dir = tempfile::tempdir().unwrap();
    let mut master = RedisServer::start(dir.path());
    let replica_of = format!("127.0.0.1 {}", master.port);
    let standby = RedisServer::start_with(dir.path(), &["--replicaof", &replica_of]);
    wait_for_replication(&standby);
    let sentinel = RedisSentinel::start(dir.path(), master.port);
    eventually(15, "the Sentinel knows the replica", async || {
        sentinel.replicas() == 1
    })
    .await;
    let via_sentinel = |name: &'static str| {
        TestApp::start_with(Options {
            env: vec![
                (
                    "SLIPWAY_REDIS_SENTINELS",
                    format!("{}@{}", RedisSentinel::MASTER, sentinel.addr()),
                ),
                ("SLIPWAY_AUDIT_WRITER", name.to_string()),
            ],
            ..Options::default()
        })
    };
    let a = via_sentinel("a").await;
    let b = via_sentinel("b").await;
    assert!(
        a.ack("U0VIEWER", "/slipway whoami")
            .await
            .contains("viewer")
    );

    master.kill();
    eventually(30, "the Sentinel promotes the standby", async || {
        sentinel.master_port() == standby.port
    })
    .await;
    for app in [&a, &b] {
        eventually(20, "the replica is ready on the new master", async || {
            app.get_status("/readyz").await.0 == 200
        })
        .await;
    }
    assert!(
        b.ack("U0VIEWER", "/slipway whoami")
            .await
            .contains("viewer")
    );
    // Replays are caught on the new master, across replicas.
    let body = a.command_body("U0VIEWER", "/slipway", "whoami");
    let headers = a.signed_headers(&body);
    let first = a.post_raw("/slack/commands", body.clone(), &headers).await;
    let second = b.post_raw("/slack/commands", body, &headers).await;
    assert_eq!((first.0, second.0), (200, 401), "{first:?} {second:?}");
}

fn verify_spools(spools: &[&std::path::Path]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.args(["audit", "verify"]);
    for s in spools {
        cmd.arg("--spool").arg(s);
    }
    let out = cmd
        .args(slipway_tests::harness::audit_writer_args())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_checks_every_replicas_chain_together_and_finds_a_break_in_either() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let a = replica(&redis, "a").await;
    let b = replica(&redis, "b").await;
    assert!(
        a.ack("U0VIEWER", "/slipway whoami")
            .await
            .contains("viewer")
    );
    assert!(
        b.ack("U0VIEWER", "/slipway whoami")
            .await
            .contains("viewer")
    );
    let (sa, sb) = (
        a.dir.path().join("state/audit"),
        b.dir.path().join("state/audit"),
    );
    let (code, text) = verify_spools(&[&sa, &sb]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("bridge:a") && text.contains("bridge:b") && text.contains("2 writer(s)"),
        "{text}"
    );

    // Someone with the second replica's disk rewrites one of its records.
    let file = std::fs::read_dir(&sb)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("b's spool file");
    let text_b = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text_b.replacen("U0VIEWER", "U0OWNER", 1)).unwrap();
    let (code, text) = verify_spools(&[&sa, &sb]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("bridge:b"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_socket_mode_an_envelope_redelivered_to_the_other_replica_is_handled_once() {
    use slipway_emulators::slack::Delivery;
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path());
    let a = replica(&redis, "a").await;
    // B talks to A's Slack emulator: one workspace, two connections.
    let b = TestApp::start_with(Options {
        env: vec![
            ("SLIPWAY_REDIS_URL", redis.url()),
            ("SLIPWAY_AUDIT_WRITER", "b".into()),
            ("SLIPWAY_SLACK_API_URL", a.slack.api_url()),
        ],
        ..Options::default()
    })
    .await;
    a.slack.set_app_token("xapp-1-test-app-token");
    let mut stops = Vec::new();
    for app in [&a, &b] {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = app.state.clone();
        tokio::spawn(async move {
            let token = slipway_bridge::config::Secret::new("xapp-1-test-app-token");
            slipway_bridge::app::socket::run(state, &token, async move {
                let _ = rx.await;
            })
            .await
        });
        stops.push(tx);
        let want = stops.len();
        assert!(
            a.slack
                .wait_until(Duration::from_secs(10), |s| s.socket_connections() == want)
                .await
        );
    }
    let event = serde_json::json!({
        "token": "x", "team_id": "T0TEST", "api_app_id": "A0SLIPWAY",
        "type": "event_callback", "event_id": "Ev0SOCKETDUP", "event_time": 1_700_000_000,
        "event": {
            "type": "app_mention", "user": "U0VIEWER", "text": "<@U0BOT> hi",
            "ts": "1700000000.000100", "channel": "C0OPS", "event_ts": "1700000000.000100"
        }
    });
    for (connection, retry_attempt) in [(0, 0), (1, 1)] {
        let delivery = Delivery {
            connection: Some(connection),
            retry_attempt,
        };
        a.slack
            .socket_send_to(delivery, "events_api", event.clone())
            .await;
    }
    let (ma, mb) = (a.get("/metrics").await, b.get("/metrics").await);
    assert_eq!(count(&ma, "events", "ok") + count(&mb, "events", "ok"), 1);
    assert_eq!(
        count(&ma, "events", "duplicate") + count(&mb, "events", "duplicate"),
        1
    );

    let command = serde_json::json!({
        "token": "x", "team_id": "T0TEST", "team_domain": "test", "channel_id": "C0OPS",
        "channel_name": "ops", "user_id": "U0VIEWER", "user_name": "vera", "command": "/slipway",
        "text": "whoami", "api_app_id": "A0SLIPWAY", "response_url": a.slack.new_response_url(),
        "trigger_id": "t.socket.redelivered"
    });
    let mut acks = Vec::new();
    for (connection, retry_attempt) in [(0, 0), (1, 1)] {
        let delivery = Delivery {
            connection: Some(connection),
            retry_attempt,
        };
        let ack = a
            .slack
            .socket_send_to(delivery, "slash_commands", command.clone())
            .await;
        acks.push(ack.map(|v| v["text"].as_str().unwrap_or_default().to_string()));
    }
    assert!(
        acks[0].as_deref().is_some_and(|t| t.contains("viewer")),
        "{acks:?}"
    );
    assert!(
        acks[1]
            .as_deref()
            .is_some_and(|t| t.contains("already received")),
        "the redelivery is acked and dropped: {acks:?}"
    );
    for stop in stops {
        let _ = stop.send(());
    }
}
