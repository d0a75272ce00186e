//! `/silence` through the real bridge against a real Alertmanager 0.25 on loopback.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use slipway_core::audit::EventKind;
use slipway_tests::harness::{Daemon, Options, TestApp, free_port, http, resolve_tool};

const LONG: Duration = Duration::from_secs(30);

async fn alertmanager(dir: &Path) -> Daemon {
    let bin = resolve_tool(
        "prometheus-alertmanager",
        "install Alertmanager: `apt-get install -y prometheus-alertmanager` (scripts/install-deps does this)",
    );
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
    )
    .unwrap();
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let port = free_port();
    let mut cmd = std::process::Command::new(bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Empty: no gossip listener (it would bind 0.0.0.0:9094).
        .arg("--cluster.listen-address=");
    Daemon::start("alertmanager", cmd, port, "/-/ready", dir.join("am.log")).await
}

async fn app_with(am: &Daemon) -> TestApp {
    TestApp::start_with(Options {
        per_user: 4,
        env: vec![("SLIPWAY_ALERTMANAGER_URL", am.url())],
        ..Options::default()
    })
    .await
}

async fn get(am: &Daemon, path: &str) -> Value {
    let (status, body) = http("GET", &format!("{}{path}", am.url()), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Run one command to the end; returns the final main message's and the reply's blocks.
async fn run(app: &TestApp, user: &str, line: &str, shown: &str) -> (String, String) {
    let before = app.slack.messages().len();
    let ack = app.ack(user, line).await;
    assert!(ack.starts_with(&format!("Running `{shown}`")), "{ack}");
    let found = app
        .slack
        .wait_until(LONG, |s| {
            s.messages()
                .iter()
                .skip(before)
                .any(|m| m.thread_ts.is_none() && m.blocks.to_string().contains(shown))
        })
        .await;
    assert!(found, "no run message for {line}");
    let msg = app
        .slack
        .messages()
        .into_iter()
        .skip(before)
        .find(|m| m.thread_ts.is_none() && m.blocks.to_string().contains(shown))
        .unwrap();
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    (main.blocks.to_string(), thread[0].blocks.to_string())
}

fn silence_ids(app: &TestApp) -> Vec<String> {
    app.audit()
        .iter()
        .filter(|r| r.kind == EventKind::Execution)
        .filter_map(|r| r.details.as_ref()?["silence_id"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_and_expire_silences() {
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager(dir.path()).await;
    let alert = r#"[{"labels": {"alertname": "HighLatency", "service": "api"}}]"#;
    let (status, body) = http(
        "POST",
        &format!("{}/api/v2/alerts", am.url()),
        Some(alert.into()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let app = app_with(&am).await;

    let (main, out) = run(
        &app,
        "U0OPERATOR",
        "/silence alertname=HighLatency service=api 2h deploying the fix",
        "silence alertname=HighLatency service=api for 2h",
    )
    .await;
    assert!(
        main.contains(":white_check_mark:") && main.contains("created silence `"),
        "{main}"
    );
    assert!(main.contains("(1 alert suppressed now)"), "{main}");
    assert!(out.contains("HighLatency{service="), "{out}");
    let id = silence_ids(&app)
        .pop()
        .expect("silence id in the audit details");

    // Alertmanager has it, created by the identity, linked to the Slack message.
    let s = get(&am, &format!("/api/v2/silence/{id}")).await;
    assert_eq!(s["createdBy"], "omar.operator@example.com");
    assert_eq!(s["status"]["state"], "active");
    let comment = s["comment"].as_str().unwrap();
    assert!(comment.starts_with("deploying the fix"), "{comment}");
    assert!(
        comment.contains("/archives/C0OPS/p"),
        "permalink in {comment}"
    );
    let ends = chrono::DateTime::parse_from_rfc3339(s["endsAt"].as_str().unwrap()).unwrap();
    let starts = chrono::DateTime::parse_from_rfc3339(s["startsAt"].as_str().unwrap()).unwrap();
    assert!(
        (ends - starts - chrono::Duration::hours(2))
            .num_seconds()
            .abs()
            < 5
    );
    let alerts = get(&am, "/api/v2/alerts").await;
    assert_eq!(alerts[0]["status"]["state"], "suppressed");
    assert_eq!(alerts[0]["status"]["silencedBy"][0], id.as_str());

    // Anyone who may read alerts sees it, with what it suppresses.
    let (_, out) = run(&app, "U0VIEWER", "/silence list", "silence list").await;
    assert!(
        out.contains(&id) && out.contains("omar.operator@example.com"),
        "{out}"
    );
    assert!(
        out.contains("suppressing 1 alert: HighLatency{service="),
        "{out}"
    );

    // Viewers can't expire; another operator is not the creator; the creator can.
    let ack = app.ack("U0VIEWER", &format!("/silence expire {id}")).await;
    assert!(ack.starts_with(":no_entry:"), "{ack}");
    let shown = format!("silence expire {id}");
    let line = format!("/silence expire {id}");
    let (main, _) = run(&app, "U0PRODDEPLOY", &line, &shown).await;
    assert!(
        main.contains(":x:") && main.contains("was created by omar.operator@example.com"),
        "{main}"
    );
    assert_eq!(
        get(&am, &format!("/api/v2/silence/{id}")).await["status"]["state"],
        "active"
    );
    let (main, _) = run(&app, "U0OPERATOR", &line, &shown).await;
    assert!(
        main.contains(":white_check_mark:") && main.contains("expired silence"),
        "{main}"
    );
    assert_eq!(
        get(&am, &format!("/api/v2/silence/{id}")).await["status"]["state"],
        "expired"
    );
    let mut state = Value::Null;
    for _ in 0..50 {
        state = get(&am, "/api/v2/alerts").await[0]["status"]["state"].clone();
        if state == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "active");

    // An owner may expire anyone's silence; an unknown id is said plainly.
    run(
        &app,
        "U0OPERATOR",
        "/silence alertname=DiskFull 30m",
        "silence alertname=DiskFull for 30m",
    )
    .await;
    let second = silence_ids(&app).pop().unwrap();
    assert_ne!(second, id);
    let (main, _) = run(
        &app,
        "U0OWNER",
        &format!("/silence expire {second}"),
        &format!("silence expire {second}"),
    )
    .await;
    assert!(main.contains("expired silence"), "{main}");
    let missing = "00000000-0000-4000-8000-000000000000";
    let (main, _) = run(
        &app,
        "U0OWNER",
        &format!("/silence expire {missing}"),
        &format!("silence expire {missing}"),
    )
    .await;
    assert!(main.contains("there is no silence"), "{main}");
    assert!(
        app.slack.validation_errors().is_empty(),
        "{:?}",
        app.slack.validation_errors()
    );
    let audit = app.audit();
    assert!(slipway_core::audit::verify_chain(&audit).is_ok());
    drop(am);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_durations_bad_matchers_and_missing_config_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager(dir.path()).await;
    let app = app_with(&am).await;
    let cases = [
        (
            "U0OPERATOR",
            "/silence alertname=HighLatency 5h",
            "silences are capped at 4h for operators",
        ),
        (
            "U0OWNER",
            "/silence alertname=HighLatency 25h",
            "silences are capped at 1day",
        ),
        (
            "U0VIEWER",
            "/silence alertname=HighLatency 1h",
            "viewers may not manage silences",
        ),
        (
            "U0OPERATOR",
            "/silence alertname=HighLatency service=~(api 1h",
            "has an invalid regular expression",
        ),
        (
            "U0OPERATOR",
            "/silence 1alert=HighLatency 1h",
            "`1alert` is not a valid label name",
        ),
        (
            "U0OPERATOR",
            "/silence alert-name=HighLatency 1h",
            "is not a valid label name",
        ),
        (
            "U0OPERATOR",
            "/silence service=~api.* 1h",
            "at least one exact matcher",
        ),
    ];
    for (user, line, want) in cases {
        let ack = app.ack(user, line).await;
        assert!(
            ack.starts_with(":no_entry:") && ack.contains(want),
            "{line}: {ack}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty(), "nothing may run");
    assert_eq!(get(&am, "/api/v2/silences").await, serde_json::json!([]));

    // Without an Alertmanager URL for the environment, the bridge says so.
    let bare = TestApp::start().await;
    let ack = bare
        .ack("U0OPERATOR", "/silence alertname=HighLatency 1h")
        .await;
    assert!(
        ack.contains("has no Alertmanager configured") && ack.contains("SLIPWAY_ALERTMANAGER_URL"),
        "{ack}"
    );
    drop(am);
}
