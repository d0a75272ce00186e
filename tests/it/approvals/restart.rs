//! A bridge restarted on the same state keeps mirroring to the original message.

use super::*;

/// One `slipway serve` process.
struct Bridge {
    child: std::process::Child,
    addr: String,
    log: PathBuf,
}

impl Bridge {
    async fn start(env: &[(&str, String)], dir: &Path, name: &str) -> Bridge {
        let port = slipway_tests::harness::free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .arg("serve")
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SLIPWAY_LISTEN", &addr)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("slipway serve starts");
        let bridge = Bridge { child, addr, log };
        for _ in 0..300 {
            if bridge
                .request("GET", "/healthz", Vec::new(), &[])
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                return bridge;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the bridge did not start: {}", bridge.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Option<(u16, String)> {
        use http_body_util::BodyExt;
        let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            client.request(
                req.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .ok()?,
            ),
        )
        .await
        .ok()?
        .ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        Some((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn signed(&self, path: &str, body: Vec<u8>) -> (u16, String) {
        let ts = Utc::now().timestamp().to_string();
        let sig = slipway_bridge::slack::signature::sign(SIGNING_SECRET.as_bytes(), &ts, &body);
        self.request(
            "POST",
            path,
            body,
            &[
                ("x-slack-request-timestamp", ts),
                ("x-slack-signature", sig),
            ],
        )
        .await
        .unwrap_or_else(|| panic!("POST {path}: {}", self.log_text()))
    }

    async fn command(
        &self,
        slack: &SlackEmulator,
        user: &str,
        command: &str,
        text: &str,
    ) -> String {
        let body = serde_urlencoded::to_string([
            ("team_id", "T0TEST"),
            ("channel_id", CHANNEL),
            ("user_id", user),
            ("command", command),
            ("text", text),
            ("response_url", &slack.new_response_url()),
            (
                "trigger_id",
                &format!(
                    "trigger.{user}.{}",
                    Utc::now().timestamp_nanos_opt().unwrap_or_default()
                ),
            ),
        ])
        .unwrap();
        let (status, body) = self.signed("/slack/commands", body.into_bytes()).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["text"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn click(
        &self,
        slack: &SlackEmulator,
        user: &str,
        action_id: &str,
        value: &str,
        ts: &str,
    ) {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "team_id": "T0TEST"},
            "team": {"id": "T0TEST"},
            "trigger_id": slipway_tests::harness::trigger_id("click"),
            "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
            "response_url": slack.new_response_url(),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "slipway_change", "value": value, "action_ts": "1"}],
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])
            .unwrap()
            .into_bytes();
        assert_eq!(self.signed("/slack/interactivity", body).await.0, 200);
    }

    /// Click Approve on message `ts` and submit the dialog it opens.
    async fn approve(&self, slack: &SlackEmulator, user: &str, ts: &str) {
        self.approve_with(slack, user, ts, &approve_value(slack, ts))
            .await;
    }

    /// [`Self::approve`] with the button's `value` as a client drew it earlier.
    async fn approve_with(&self, slack: &SlackEmulator, user: &str, ts: &str, value: &str) {
        let before = slack.views().len();
        self.click(slack, user, "slipway_approve", value, ts).await;
        let view = opened_view(slack, before, "slipway_approve").await;
        let body = view_submission(user, &view, &json!({}));
        assert_eq!(self.signed("/slack/interactivity", body).await.0, 200);
    }

    async fn metrics(&self) -> String {
        self.request("GET", "/metrics", Vec::new(), &[])
            .await
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// SIGKILL: a crash, not a clean shutdown.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bridge_keeps_mirroring_to_the_original_message() {
    let fx = gitops::start().await;
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slipway.yaml");
    std::fs::write(&config, &fx.config_yaml).unwrap();
    let mut env: Vec<(&str, String)> = vec![
        ("SLIPWAY_CONFIG", config.display().to_string()),
        ("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
        ("SLIPWAY_SLACK_API_URL", slack.api_url()),
        (
            "SLIPWAY_POLICY",
            slipway_tests::example_policy().display().to_string(),
        ),
        (
            "SLIPWAY_STATE_DIR",
            dir.path().join("state").display().to_string(),
        ),
        ("SLIPWAY_AUDIT_WRITER", "bridge-restart-test".into()),
        (
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            slipway_tests::harness::write_audit_key(dir.path())
                .display()
                .to_string(),
        ),
    ];
    env.extend(approvals_env(&fx));

    let first = Bridge::start(&env, dir.path(), "first").await;
    fx.github.set_webhook(
        &format!("http://{}/github/webhook", first.addr),
        WEBHOOK_SECRET,
    );
    let ack = first
        .command(
            &slack,
            "U0OPERATOR",
            "/deploy",
            "api staging v2.0.0 --apply",
        )
        .await;
    assert!(ack.starts_with("Opening a pull request"), "{ack}");
    assert!(
        fx.github_wait(|| !fx.github.pulls(OWNER, REPO).is_empty())
            .await,
        "{}",
        first.log_text()
    );
    let number = fx.github.pulls(OWNER, REPO)[0]["number"].as_u64().unwrap();
    assert!(
        slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.channel == CHANNEL
                && m.thread_ts.is_none()
                && m.blocks.to_string().contains("slipway_approve")))
            .await,
        "{}",
        first.log_text()
    );
    let ts = slack
        .messages()
        .into_iter()
        .find(|m| {
            m.channel == CHANNEL
                && m.thread_ts.is_none()
                && m.blocks.to_string().contains("slipway_approve")
        })
        .unwrap()
        .ts;
    // Ada and Olga link their GitHub accounts; Ada approves in Slack.
    for (user, login) in [("U0APPROVER1", "ada-approver"), ("U0OWNER", "olga-owner")] {
        let done = link_by_device_flow(
            &slack,
            &fx,
            async |u| first.command(&slack, u, "/slipway", "link github").await,
            user,
            login,
        )
        .await;
        assert!(
            done.contains("Linked GitHub account"),
            "{done}: {}",
            first.log_text()
        );
    }
    first.approve(&slack, "U0APPROVER1", &ts).await;
    assert!(
        responses_contain(&slack, "Approved PR").await,
        "{}",
        first.log_text()
    );
    assert!(
        slack
            .wait_until(LONG, |s| s.messages().iter().any(|m| m.ts == ts
                && m.blocks
                    .to_string()
                    .contains("ada.approver@example.com (via Slack)")))
            .await
    );
    assert!(fx.github.wait_for_deliveries(LONG).await);
    let old_delivery = fx
        .github
        .deliveries()
        .into_iter()
        .find(|d| d.event == "pull_request_review")
        .expect("a delivery before the restart");

    // Crash; start again on the same state directory (new port, as after a reschedule).
    first.kill();
    let second = Bridge::start(&env, dir.path(), "second").await;
    fx.github.set_webhook(
        &format!("http://{}/github/webhook", second.addr),
        WEBHOOK_SECRET,
    );

    // A GitHub review updates the original Slack message, and Ada's approval is still "via Slack".
    // (The message loses its Approve button once the quorum holds; a client that still shows
    // it can click it: Olga does, below.)
    let drawn_before = approve_value(&slack, &ts);
    fx.github
        .review(OWNER, REPO, number, "bo-approver", "APPROVE", "lgtm");
    let found = slack
        .wait_until(LONG, |s| {
            s.messages().iter().any(|m| {
                let b = m.blocks.to_string();
                m.ts == ts
                    && b.contains("*2 of 2*")
                    && b.contains("ada.approver@example.com (via Slack)")
                    && b.contains("bo.approver@example.com (via GitHub)")
            })
        })
        .await;
    assert!(
        found,
        "{:?}\n{}",
        slack.messages().into_iter().find(|m| m.ts == ts),
        second.log_text()
    );
    // The thread line follows the message update.
    assert!(thread_contains(&slack, &ts, "bo-approver approved in GitHub").await);
    assert_eq!(
        slack
            .messages()
            .iter()
            .filter(|m| m.channel == CHANNEL
                && m.thread_ts.is_none()
                && m.blocks.to_string().contains("Change request"))
            .count(),
        1,
        "no second message in the channel (the approvers' DMs are apart)"
    );
    // A delivery handled before the restart is still a duplicate, and so is its body replayed
    // under a fresh delivery id.
    assert_eq!(fx.github.redeliver(&old_delivery.id).await, 200);
    let replay = second
        .request(
            "POST",
            "/github/webhook",
            old_delivery.body.clone().into_bytes(),
            &[
                (
                    "x-hub-signature-256",
                    sign_github(old_delivery.body.as_bytes()),
                ),
                ("x-github-event", old_delivery.event.clone()),
                ("x-github-delivery", "replayed-after-restart".into()),
            ],
        )
        .await;
    assert_eq!(
        replay,
        Some((200, "duplicate delivery".to_string())),
        "{}",
        second.log_text()
    );
    assert!(
        second
            .metrics()
            .await
            .contains(r#"slipway_requests_total{endpoint="github_webhook",outcome="duplicate"} 2"#),
        "{}",
        second.metrics().await
    );
    // Olga's token, linked before the restart, still opens and reviews as her.
    second
        .approve_with(&slack, "U0OWNER", &ts, &drawn_before)
        .await;
    assert!(
        fx.github_wait(|| fx
            .github
            .reviews(OWNER, REPO, number)
            .iter()
            .any(|r| r["user"]["login"] == "olga-owner"))
            .await,
        "{}",
        second.log_text()
    );
    assert!(!second.log_text().contains("ghu_"), "no token in the logs");
    second.kill();
}
