//! Conversation tests of the Slack bridge: signed requests through the real router, the real
//! kubectl against the Kubernetes emulator, results in the Slack emulator.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use slipway_core::audit::EventKind;
use slipway_tests::harness::{CHANNEL, Options, TestApp};

const LONG: Duration = Duration::from_secs(30);

/// The Cancel button's value (the run id) in a message's blocks.
fn cancel_value(blocks: &serde_json::Value) -> Option<String> {
    blocks.as_array()?.iter().find_map(|b| {
        b["elements"]
            .as_array()?
            .iter()
            .find(|e| e["action_id"] == "slipway_cancel")
            .and_then(|e| e["value"].as_str())
            .map(String::from)
    })
}

/// Processes whose command line mentions `needle` (our temp dir), other than ourselves.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_lists_pods_in_staging() {
    let app = TestApp::start().await;
    let ack = app.ack("U0VIEWER", "/kubectl get pods -n web").await;
    assert_eq!(
        ack,
        "Running `kubectl get pods --namespace=web` on staging (namespace web) as viewer…"
    );

    let msg = app
        .wait_message("kubectl get pods --namespace=web", LONG)
        .await
        .expect("run message posted");
    assert_eq!(msg.channel, CHANNEL);
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    assert!(
        main.blocks.to_string().contains(":white_check_mark:"),
        "{}",
        main.blocks
    );
    let output = thread[0].blocks.to_string();
    assert!(
        output.contains("web-7d9f-abcde") && output.contains("Running"),
        "{output}"
    );
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
    // The real kubectl talked to the API with the bridge's credentials.
    assert!(
        app.kube
            .requests()
            .iter()
            .any(|r| r.path.starts_with("/api/v1/namespaces/web/pods") && r.had_bearer)
    );

    let audit = app.audit();
    let decision = audit
        .iter()
        .find(|r| r.kind == EventKind::Decision)
        .expect("decision record");
    assert_eq!(
        decision.actor.as_ref().and_then(|a| a.subject.as_deref()),
        Some("vera.viewer@example.com")
    );
    let exec = audit
        .iter()
        .find(|r| r.kind == EventKind::Execution)
        .expect("execution record");
    let out = exec.output.as_ref().expect("output");
    assert_eq!(out.exit_code, Some(0));
    assert!(out.excerpt.contains("web-7d9f-abcde"));
    assert!(slipway_core::audit::verify_chain(&audit).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_is_denied_secrets_and_nothing_runs() {
    let app = TestApp::start().await;
    let ack = app
        .ack(
            "U0VIEWER",
            "/kubectl get secret db-credentials -n web -o yaml",
        )
        .await;
    assert!(ack.contains("Secret contents are never shown"), "{ack}");
    let ack = app
        .ack("U0VIEWER", "/kubectl describe secret db-credentials -n web")
        .await;
    assert!(ack.contains("can't be described"), "{ack}");
    let ack = app.ack("U0VIEWER", "/kubectl get pods -n prod").await;
    assert!(
        ack.starts_with(":no_entry: viewers may not run read commands in namespace prod"),
        "{ack}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty());
    assert!(
        app.kube_object_requests().is_empty(),
        "nothing may reach the cluster: {:?}",
        app.kube_object_requests()
    );
    let denials = app
        .audit()
        .into_iter()
        .filter(|r| {
            r.decision
                .as_ref()
                .is_some_and(|d| d.outcome == slipway_core::policy::Outcome::Deny)
        })
        .count();
    assert_eq!(denials, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_denied_with_who_to_ask() {
    let app = TestApp::start().await;
    let ack = app.ack("U0STRANGER", "/kubectl get pods -n web").await;
    assert!(
        ack.contains("doesn't know Slack user U0STRANGER") && ack.contains("#platform"),
        "{ack}"
    );
    let audit = app.audit();
    assert_eq!(
        audit[0].decision.as_ref().map(|d| d.rule.as_str()),
        Some("identity.unknown")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_command_is_cancelled_by_the_button_and_its_process_group_is_gone() {
    let app = TestApp::start().await;
    app.kube.add_namespace("slow");
    app.kube
        .set_slow_namespace("slow", Duration::from_secs(120));
    let ack = app.ack("U0VIEWER", "/kubectl get pods -n slow").await;
    assert!(ack.starts_with("Running"), "{ack}");
    let msg = app
        .wait_message("--namespace=slow", LONG)
        .await
        .expect("run message");
    let run_id = cancel_value(&msg.blocks).expect("a Cancel button while running");
    let marker = app.dir.path().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_mentioning(&marker).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !processes_mentioning(&marker).is_empty(),
        "kubectl should be running"
    );

    // Someone else (not an owner) can't cancel it.
    assert_eq!(
        app.click("U0APPROVER1", "slipway_cancel", &run_id, &msg.ts)
            .await,
        200
    );
    assert!(
        app.slack
            .wait_until(LONG, |s| s.responses().iter().any(|r| r
                .body
                .to_string()
                .contains("Only the person who ran this command")))
            .await
    );
    assert!(
        cancel_value(&app.slack.messages()[0].blocks).is_some(),
        "still running"
    );

    // The requester can.
    assert_eq!(
        app.click("U0VIEWER", "slipway_cancel", &run_id, &msg.ts)
            .await,
        200
    );
    let (main, _) = app.wait_finished(&msg.ts, LONG).await;
    let text = main.blocks.to_string();
    assert!(
        text.contains("was cancelled by <@U0VIEWER>") && text.contains("process group was killed"),
        "{text}"
    );
    assert!(
        processes_mentioning(&marker).is_empty(),
        "the process group must be gone: {:?}",
        processes_mentioning(&marker)
    );
    assert!(
        app.audit()
            .iter()
            .any(|r| r.kind == EventKind::Cancellation)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_can_cancel_someone_elses_run() {
    let app = TestApp::start().await;
    app.kube.add_namespace("slow");
    app.kube
        .set_slow_namespace("slow", Duration::from_secs(120));
    app.ack("U0OPERATOR", "/kubectl get pods -n slow").await;
    let msg = app
        .wait_message("--namespace=slow", LONG)
        .await
        .expect("run message");
    let run_id = cancel_value(&msg.blocks).expect("cancel button");
    app.click("U0OWNER", "slipway_cancel", &run_id, &msg.ts)
        .await;
    let (main, _) = app.wait_finished(&msg.ts, LONG).await;
    assert!(
        main.blocks
            .to_string()
            .contains("was cancelled by <@U0OWNER>")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_command_hits_the_timeout_and_its_process_group_is_gone() {
    let app = TestApp::start_with(Options {
        read_timeout: Some("2s"),
        ..Options::default()
    })
    .await;
    app.kube.add_namespace("slow");
    app.kube
        .set_slow_namespace("slow", Duration::from_secs(120));
    let started = Instant::now();
    app.ack("U0VIEWER", "/kubectl get pods -n slow").await;
    let msg = app
        .wait_message("--namespace=slow", LONG)
        .await
        .expect("run message");
    let (main, _) = app.wait_finished(&msg.ts, LONG).await;
    let text = main.blocks.to_string();
    assert!(text.contains("timed out after 2s"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let marker = app.dir.path().display().to_string();
    assert!(
        processes_mentioning(&marker).is_empty(),
        "{:?}",
        processes_mentioning(&marker)
    );
}

/// Samples of every secret type the redactor covers.
const SECRETS: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "hunter2-db-password",
    "sup3r-s3cret-token-value",
    "pa55w0rd-in-url",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_with_every_secret_type_arrives_redacted() {
    let app = TestApp::start().await;
    let log = format!(
        "starting\nAWS_ACCESS_KEY_ID={}\naws_secret_access_key = {}\ntoken: {}\nslack {}\nAuthorization: Bearer {}\n\
         -----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\npassword={}\n{{\"api_token\": \"{}\"}}\n\
         connecting to postgres://app:{}@db.internal:5432/app\nready\n",
        SECRETS[0],
        SECRETS[1],
        SECRETS[2],
        SECRETS[3],
        SECRETS[4],
        SECRETS[5],
        SECRETS[6],
        SECRETS[7],
        SECRETS[8]
    );
    app.kube.set_pod_log("web", "web-7d9f-abcde", &log);
    app.ack("U0VIEWER", "/kubectl logs web-7d9f-abcde -n web")
        .await;
    let msg = app
        .wait_message("kubectl logs", LONG)
        .await
        .expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    let everything = format!(
        "{}{}{:?}",
        main.blocks,
        thread[0].blocks,
        app.slack.messages()
    );
    assert!(
        everything.contains("REDACTED") && everything.contains("ready"),
        "{everything}"
    );
    let audit = serde_json::to_string(&app.audit()).unwrap();
    for secret in SECRETS {
        assert!(!everything.contains(secret), "{secret} leaked to Slack");
        assert!(
            !audit.contains(secret),
            "{secret} leaked to the audit trail"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_commands_are_all_acked_in_time_and_overflow_is_busy() {
    let app = std::sync::Arc::new(
        TestApp::start_with(Options {
            workers: 2,
            queue: 10,
            per_user: 1000,
            read_timeout: Some("20s"),
            ..Options::default()
        })
        .await,
    );
    app.kube.add_namespace("slow");
    app.kube.set_slow_namespace("slow", Duration::from_secs(10));
    let users = [
        "U0VIEWER",
        "U0OPERATOR",
        "U0OWNER",
        "U0PRODDEPLOY",
        "U0APPROVER1",
        "U0APPROVER2",
    ];
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = app.clone();
        let user = users[i % users.len()];
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let (status, v) = app.command(user, "/kubectl get pods -n slow").await;
            (
                status,
                v["text"].as_str().unwrap_or_default().to_string(),
                t.elapsed(),
            )
        }));
    }
    let (mut running, mut busy) = (0, 0);
    for t in tasks {
        let (status, text, took) = t.await.unwrap();
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(3), "ack took {took:?}");
        if text.starts_with("Running") {
            running += 1;
        } else {
            assert!(text.contains("Slipway is busy"), "{text}");
            busy += 1;
        }
    }
    assert_eq!(running + busy, 200);
    assert!(
        (10..=12).contains(&running),
        "queue bound 10 + 2 workers, got {running}"
    );
    assert!(busy >= 186, "{busy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_limit_answers_busy() {
    let app = TestApp::start_with(Options {
        per_user: 2,
        ..Options::default()
    })
    .await;
    app.kube.add_namespace("slow");
    app.kube.set_slow_namespace("slow", Duration::from_secs(60));
    for _ in 0..2 {
        assert!(
            app.ack("U0VIEWER", "/kubectl get pods -n slow")
                .await
                .starts_with("Running")
        );
    }
    let third = app.ack("U0VIEWER", "/kubectl get pods -n slow").await;
    assert!(
        third.contains("You already have 2 command(s) running"),
        "{third}"
    );
    // Another user is unaffected.
    assert!(
        app.ack("U0OPERATOR", "/kubectl get pods -n web")
            .await
            .starts_with("Running")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_replayed_and_oversized_requests_are_refused_and_run_nothing() {
    let app = TestApp::start().await;
    let body = app.command_body("U0OWNER", "/kubectl", "get pods -n web");

    // Forged: wrong signature, and a signature from another secret.
    let (s, text) = app
        .post_raw(
            "/slack/commands",
            body.clone(),
            &[
                (
                    "x-slack-request-timestamp",
                    chrono::Utc::now().timestamp().to_string(),
                ),
                ("x-slack-signature", "v0=deadbeef".into()),
            ],
        )
        .await;
    assert_eq!((s, text.as_str()), (401, ""));
    let ts = chrono::Utc::now().timestamp().to_string();
    let other = slipway_bridge::slack::signature::sign(b"not-the-secret", &ts, &body);
    assert_eq!(
        app.post_raw(
            "/slack/commands",
            body.clone(),
            &[
                ("x-slack-request-timestamp", ts),
                ("x-slack-signature", other)
            ]
        )
        .await
        .0,
        401
    );
    // Missing headers.
    assert_eq!(
        app.post_raw("/slack/commands", body.clone(), &[]).await.0,
        401
    );
    // Stale: correctly signed, six minutes old.
    let old = (chrono::Utc::now().timestamp() - 360).to_string();
    let sig = slipway_bridge::slack::signature::sign(
        slipway_tests::harness::SIGNING_SECRET.as_bytes(),
        &old,
        &body,
    );
    assert_eq!(
        app.post_raw(
            "/slack/commands",
            body.clone(),
            &[
                ("x-slack-request-timestamp", old),
                ("x-slack-signature", sig)
            ]
        )
        .await
        .0,
        401
    );
    // Replayed: the first delivery is accepted, the identical second one is not.
    let viewer = app.command_body("U0VIEWER", "/slipway", "whoami");
    let headers = app.signed_headers(&viewer);
    assert_eq!(
        app.post_raw("/slack/commands", viewer.clone(), &headers)
            .await
            .0,
        200
    );
    assert_eq!(
        app.post_raw("/slack/commands", viewer, &headers).await.0,
        401
    );
    // Oversized.
    let mut big = app.command_body("U0OWNER", "/kubectl", "get pods -n web");
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    let headers = app.signed_headers(&big);
    assert_eq!(app.post_raw("/slack/commands", big, &headers).await.0, 413);
    // Interactivity and events are guarded the same way.
    assert_eq!(
        app.post_raw("/slack/interactivity", b"payload=%7B%7D".to_vec(), &[])
            .await
            .0,
        401
    );
    assert_eq!(
        app.post_raw(
            "/slack/events",
            br#"{"type":"url_verification","challenge":"x"}"#.to_vec(),
            &[]
        )
        .await
        .0,
        401
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty());
    assert!(app.kube_object_requests().is_empty());
    // Rejections are tallied into one aggregated audit record.
    slipway_bridge::app::flush_rejections(&app.state).await;
    let audit = app.audit();
    let rejected: Vec<_> = audit
        .iter()
        .filter(|r| r.kind == EventKind::SignatureRejected)
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].details.as_ref().unwrap()["total"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_check_url_verification_and_event_retries() {
    let app = TestApp::start().await;
    assert_eq!(
        app.post_raw("/slack/commands", b"ssl_check=1&token=x".to_vec(), &[])
            .await
            .0,
        200
    );
    let body = br#"{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#.to_vec();
    let headers = app.signed_headers(&body);
    let (status, text) = app.post_raw("/slack/events", body, &headers).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let event = br#"{"type":"event_callback","event_id":"Ev0PV52K25","event":{"type":"app_mention","text":"hi"}}"#.to_vec();
    for _ in 0..2 {
        let h = app.signed_headers(&event);
        // Retries are re-signed by Slack; both are accepted, the second is recognised as a duplicate.
        assert_eq!(
            app.post_raw("/slack/events", event.clone(), &h).await.0,
            200
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let metrics = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"slipway_requests_total{endpoint="events",outcome="duplicate"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("slipway_ack_latency_seconds"));
    assert_eq!(app.get("/healthz").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_explain_and_help() {
    let app = TestApp::start().await;
    let who = app.ack("U0PRODDEPLOY", "/slipway whoami").await;
    assert!(
        who.contains("pat.proddeploy@example.com")
            && who.contains("prod-deploys")
            && who.contains("Role: operator")
            && who.contains("(from the policy file)"),
        "{who}"
    );
    let why = app
        .ack("U0OPERATOR", "/slipway explain /deploy api production")
        .await;
    assert!(
        why.contains("*deny*") && why.contains("prod-deploys-only"),
        "{why}"
    );
    let help = app.ack("U0VIEWER", "/slipway help").await;
    for family in ["/kubectl", "/tf", "/aws", "/deploy", "/silence", "/slipway"] {
        assert!(help.contains(family), "{help}");
    }
    let bad = app.ack("U0VIEWER", "/kubectl get pods; rm -rf /").await;
    assert!(bad.contains("without a shell"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_output_is_cut_to_block_kit_limits_with_a_note() {
    let app = TestApp::start().await;
    let mut log = String::new();
    for i in 0..2000 {
        let _ = writeln!(log, "log line {i:05} with some padding text");
    }
    app.kube.set_pod_log("web", "web-7d9f-abcde", &log);
    app.ack("U0VIEWER", "/kubectl logs web-7d9f-abcde -n web")
        .await;
    let msg = app
        .wait_message("kubectl logs", LONG)
        .await
        .expect("run message");
    let (_, thread) = app.wait_finished(&msg.ts, LONG).await;
    let blocks = thread[0].blocks.to_string();
    assert!(
        blocks.contains("Output truncated") && blocks.contains("audit record"),
        "{blocks}"
    );
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
    // The full redacted output is kept with the audit record.
    let exec = app
        .audit()
        .into_iter()
        .find(|r| r.kind == EventKind::Execution)
        .unwrap();
    assert!(exec.output.unwrap().excerpt.contains("log line 01999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_updates_are_retried_after_retry_after() {
    let app = TestApp::start().await;
    app.slack.rate_limit_next("chat.postMessage", 1, 1);
    app.ack("U0VIEWER", "/kubectl get pods -n web").await;
    let msg = app
        .wait_message("kubectl get pods", LONG)
        .await
        .expect("posted after the 429");
    app.wait_finished(&msg.ts, LONG).await;
    let calls = app.slack.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.method == "chat.postMessage" && c.error.as_deref() == Some("ratelimited")),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_grid_user_ids_resolve() {
    let app = TestApp::start().await;
    let who = app.ack("W0OWNER", "/slipway whoami").await;
    assert!(
        who.contains("olga.owner@example.com") && who.contains("Role: owner"),
        "{who}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_feeds_the_same_handlers() {
    let app = TestApp::start().await;
    let socket = app.socket_mode().await;
    let ack = app
        .slack
        .socket_send(
            "slash_commands",
            serde_json::json!({
                "token": "x", "team_id": "T0TEST", "team_domain": "test", "channel_id": CHANNEL, "channel_name": "ops",
                "user_id": "U0VIEWER", "user_name": "vera", "command": "/kubectl", "text": "get pods -n web",
                "api_app_id": "A0SLIPWAY", "response_url": app.slack.new_response_url(), "trigger_id": "t.socket"
            }),
        )
        .await
        .expect("an ack with a payload");
    assert!(
        ack.to_string()
            .contains("Running `kubectl get pods --namespace=web`"),
        "{ack}"
    );
    let msg = app
        .wait_message("kubectl get pods", LONG)
        .await
        .expect("run message");
    app.wait_finished(&msg.ts, LONG).await;
    socket.stop().await;
}
