//! Attacks on the Slack ingress: requests signed with the empty key, replays spelled in another
//! hex case, legacy payloads, and `response_url`s that point away from Slack. The first two run
//! the real `slipway serve`; the rest drive the real router.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_bridge::slack::signature::sign;
use slipway_core::audit::EventKind;
use slipway_emulators::slack::SlackEmulator;
use slipway_tests::harness::{BOT_TOKEN, CHANNEL, TestApp, free_port, http};

const APP_TOKEN: &str = "xapp-1-ingress-test";

/// `slipway serve` in Socket Mode with the given extra environment, on a free port.
fn serve(state: &std::path::Path, api_url: &str, port: u16, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.arg("serve")
        .current_dir(slipway_tests::repo_root())
        .env_remove("SLIPWAY_SLACK_SIGNING_SECRET")
        .env_remove("SLIPWAY_GITHUB_WEBHOOK_SECRET")
        .env("SLIPWAY_SOCKET_MODE", "1")
        .env("SLIPWAY_SLACK_APP_TOKEN", APP_TOKEN)
        .env("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("SLIPWAY_SLACK_API_URL", api_url)
        .env("SLIPWAY_POLICY", slipway_tests::example_policy())
        .env("SLIPWAY_STATE_DIR", state)
        .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            slipway_tests::harness::write_audit_key(state.parent().expect("a parent")),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// Stops the bridge by its own PID when the test ends, pass or fail.
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A POST with the form content type and the given headers; returns the status.
async fn post(url: &str, body: &[u8], headers: &[(&str, String)]) -> u16 {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req =
        hyper::Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body.to_vec())))
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

/// The reproduction from the issue: Socket Mode, an app token, no signing secret, and a command
/// signed with HMAC under the empty key, claiming to be the owner. It must not be decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_without_a_signing_secret_refuses_requests_signed_with_the_empty_key() {
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    slack.set_app_token(APP_TOKEN);
    let port = free_port();
    let state = dir.path().join("state");
    let mut bridge = Bridge(
        serve(&state, &slack.api_url(), port, &[])
            .spawn()
            .expect("slipway serve starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            bridge.0.try_wait().unwrap().is_none(),
            "slipway serve exited"
        );
        assert!(Instant::now() < deadline, "slipway serve never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(http("GET", &format!("{base}/healthz"), None).await.0, 200);

    let body = serde_urlencoded::to_string([
        ("command", "/kubectl"),
        ("text", "@production get pods -n web"),
        ("user_id", "U0OWNER"),
        ("user_name", "olga"),
        ("team_id", "T0TEST"),
        ("channel_id", CHANNEL),
        ("response_url", "http://127.0.0.1:9/response/1"),
        ("trigger_id", "forged.1"),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let forged = sign(b"", &ts, body.as_bytes());
    let headers = [
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", forged),
    ];
    for path in ["/slack/commands", "/slack/interactivity", "/slack/events"] {
        let status = post(&format!("{base}{path}"), body.as_bytes(), &headers).await;
        assert_eq!(status, 404, "{path}");
    }
    // Nothing was decided: no command record in the audit spool, nothing posted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = slipway_infra::spool::read_all(&state.join("audit")).unwrap_or_default();
    assert!(
        records.iter().all(|r| r.kind != EventKind::Command),
        "{records:?}"
    );
    assert!(slack.messages().is_empty() && slack.responses().is_empty());
}

/// A signing or webhook secret shorter than 16 bytes stops `serve` with what to set.
#[test]
fn a_short_signing_or_webhook_secret_stops_serve_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}/api", free_port());
    for (var, value, named) in [
        (
            "SLIPWAY_SLACK_SIGNING_SECRET",
            "0123456789",
            "SLIPWAY_SLACK_SIGNING_SECRET",
        ),
        (
            "SLIPWAY_GITHUB_WEBHOOK_SECRET",
            "hunter2",
            "SLIPWAY_GITHUB_WEBHOOK_SECRET",
        ),
    ] {
        let out = serve(
            &dir.path().join("state"),
            &closed,
            free_port(),
            &[(var, value)],
        )
        .output()
        .unwrap();
        let err = crate::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(
            err.contains(named) && err.contains("at least 16"),
            "{var}: {err}"
        );
        assert!(!err.contains(value), "the secret is never printed: {err}");
    }
}

/// The hex decoder takes either case, so the replay cache must key on the MAC's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_the_signature_upper_cased_is_refused() {
    let app = TestApp::start().await;
    let body = app.command_body("U0VIEWER", "/slipway", "whoami");
    let headers = app.signed_headers(&body);
    assert_eq!(
        app.post_raw("/slack/commands", body.clone(), &headers)
            .await
            .0,
        200
    );
    let upper: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, v)| match *k {
            "x-slack-signature" => (*k, format!("v0={}", v["v0=".len()..].to_ascii_uppercase())),
            _ => (*k, v.clone()),
        })
        .collect();
    assert_ne!(upper, headers);
    let (status, text) = app.post_raw("/slack/commands", body, &upper).await;
    assert_eq!((status, text.as_str()), (401, ""));
    assert!(
        app.get("/metrics")
            .await
            .contains(r#"slipway_signature_rejections_total{reason="replayed"} 1"#)
    );
}

/// A real legacy message-button click (`interactive_message`: attachment actions have `name`
/// and no `action_id`) is acknowledged and does nothing, instead of "malformed interaction".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_interactive_message_is_acknowledged_and_ignored() {
    let app = TestApp::start().await;
    let payload = serde_json::json!({
        "type": "interactive_message",
        "actions": [{"name": "slipway_cancel", "type": "button", "value": "run-1"}],
        "callback_id": "legacy_buttons",
        "team": {"id": "T0TEST", "domain": "test"},
        "channel": {"id": CHANNEL, "name": "ops"},
        "user": {"id": "U0OWNER", "name": "olga"},
        "action_ts": "1531420618.000001",
        "message_ts": "1531420600.000100",
        "attachment_id": "1",
        "token": "deprecated-verification-token",
        "is_app_unfurl": false,
        "original_message": {"text": "Cancel?", "attachments": [{"callback_id": "legacy_buttons", "id": 1, "actions": [{"id": "1", "name": "slipway_cancel", "text": "Cancel", "type": "button", "value": "run-1", "style": ""}]}]},
        "response_url": app.slack.new_response_url(),
        "trigger_id": "13345224609.738474920.8088930838d88f008e0"
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes();
    let headers = app.signed_headers(&body);
    let (status, text) = app.post_raw("/slack/interactivity", body, &headers).await;
    assert_eq!((status, text.as_str()), (200, ""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.responses().is_empty() && app.slack.messages().is_empty());
    assert!(
        app.get("/metrics")
            .await
            .contains(r#"endpoint="interactivity",outcome="ignored"} 1"#)
    );
}

/// A Cancel click whose `response_url` is the one given; returns the HTTP status.
async fn cancel_click(app: &TestApp, response_url: &str) -> u16 {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": {"id": "U0OWNER", "team_id": "T0TEST"},
        "team": {"id": "T0TEST"},
        "api_app_id": "A0SLIPWAY",
        "trigger_id": slipway_tests::harness::trigger_id("cancel"),
        "container": {"type": "message", "message_ts": "1.1", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": "slipway_cancel", "block_id": "slipway_run", "value": "run-gone", "action_ts": "1"}],
    });
    let body = serde_urlencoded::to_string([("payload", payload.to_string())])
        .unwrap()
        .into_bytes();
    let headers = app.signed_headers(&body);
    app.post_raw("/slack/interactivity", body, &headers).await.0
}

/// The bot follows a payload's `response_url` only to Slack's hosts or the configured Slack
/// API origin: another port, or a loopback-looking host name, gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_urls_outside_slack_get_nothing() {
    let app = TestApp::start().await;
    let elsewhere = SlackEmulator::start(BOT_TOKEN).await;
    let other_port = elsewhere.new_response_url();
    let same_port_as_localhost = app
        .slack
        .new_response_url()
        .replace("127.0.0.1", "localhost");
    let evil_name = other_port.replace("127.0.0.1", "localhost.evil.example");
    for url in [&other_port, &same_port_as_localhost, &evil_name] {
        assert_eq!(cancel_click(&app, url).await, 200, "{url}");
    }
    // The control: the configured API's own origin is followed.
    assert_eq!(cancel_click(&app, &app.slack.new_response_url()).await, 200);
    assert!(
        app.slack
            .wait_until(Duration::from_secs(20), |s| !s.responses().is_empty())
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        elsewhere.responses().is_empty(),
        "{:?}",
        elsewhere.responses()
    );
    assert_eq!(
        app.slack.responses().len(),
        1,
        "{:?}",
        app.slack.responses()
    );
}
