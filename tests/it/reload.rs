//! Policy hot reload: SIGHUP on the real `slipway serve`, and a change to the policy file on
//! the GitOps default branch. An invalid policy never replaces a valid one.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use slipway_bridge::slack::signature::sign;
use slipway_core::audit::EventKind;
use slipway_emulators::slack::SlackEmulator;
use slipway_tests::harness::{BOT_TOKEN, SIGNING_SECRET, free_port, http};

/// Stops the bridge by its own PID when the test ends.
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/slipway whoami` as `user`, signed, to the bridge on `port`; the ephemeral text.
async fn whoami(port: u16, user: &str, n: u32) -> String {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let body = serde_urlencoded::to_string([
        ("command", "/slipway"),
        ("text", "whoami"),
        ("user_id", user),
        ("team_id", "T0TEST"),
        ("channel_id", "C0OPS"),
        ("trigger_id", &format!("trig.{n}")),
        (
            "response_url",
            "https://hooks.slack.com/commands/T0TEST/1/x",
        ),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign(SIGNING_SECRET.as_bytes(), &ts, body.as_bytes());
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = hyper::Request::post(format!("http://127.0.0.1:{port}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["text"].as_str().unwrap_or_default().to_string()
}

/// The outcome of each `PolicyReload` record, in order.
fn reload_outcomes(audit: &[slipway_core::audit::AuditRecord]) -> Vec<String> {
    audit
        .iter()
        .filter(|r| r.kind == EventKind::PolicyReload)
        .map(|r| {
            r.details.as_ref().unwrap()["outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// `kill -HUP <pid>` (the kill binary, no shell).
fn hup(bridge: &Bridge) {
    let status = Command::new("kill")
        .args(["-HUP", &bridge.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A new person added to the file is known after SIGHUP; a broken file then changes nothing,
/// says why in the support channel, counts in the metric, and both attempts are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_valid_policy_and_keeps_it_when_the_next_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    let example = std::fs::read_to_string(slipway_tests::example_policy()).unwrap();
    let policy = dir.path().join("slipway.yaml");
    std::fs::write(&policy, &example).unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let bridge = Bridge(
        Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .arg("serve")
            .current_dir(slipway_tests::repo_root())
            .env_remove("SLIPWAY_GITHUB_WEBHOOK_SECRET")
            .env("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN)
            .env("SLIPWAY_SLACK_API_URL", slack.api_url())
            .env("SLIPWAY_POLICY", &policy)
            .env("SLIPWAY_STATE_DIR", &state)
            .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
                slipway_tests::harness::write_audit_key(dir.path()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    for _ in 0..100 {
        if tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        .is_ok_and(|c| c.is_ok())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(whoami(port, "U0NEWHIRE", 1).await.contains("doesn't know"));

    let added = example.replacen(
        "  users:\n",
        "  users:\n    - slack: [U0NEWHIRE]\n      subject: nia.newhire@example.com\n      groups: [engineering]\n",
        1,
    );
    std::fs::write(&policy, added).unwrap();
    hup(&bridge);
    let mut known = String::new();
    for n in 0..50 {
        known = whoami(port, "U0NEWHIRE", 10 + n).await;
        if known.contains("nia.newhire@example.com") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(known.contains("nia.newhire@example.com"), "{known}");

    std::fs::write(&policy, "version: 1\nroles: [not valid\n").unwrap();
    hup(&bridge);
    let mut text = String::new();
    for _ in 0..50 {
        text = http("GET", &metrics, None).await.1;
        if text.contains(r#"slipway_policy_reloads_total{outcome="invalid"} 1"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains(r#"slipway_policy_reloads_total{outcome="applied"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"slipway_policy_reloads_total{outcome="invalid"} 1"#),
        "{text}"
    );
    assert!(
        whoami(port, "U0NEWHIRE", 99)
            .await
            .contains("nia.newhire@example.com")
    );
    let told = slack.messages();
    assert!(
        told.iter().any(|m| m.channel == "#platform"
            && m.text.contains("refused a new policy")
            && m.text.contains("slipway.yaml:2:")),
        "{told:?}"
    );
    drop(bridge);
    let audit = slipway_infra::spool::read_all(&state.join("audit")).unwrap();
    assert_eq!(reload_outcomes(&audit), ["applied", "invalid"]);
}

/// The policy file changed on the GitOps default branch (it got there through review): the
/// bridge follows it. The same file pushed to any other branch changes nothing, and a broken
/// one on the default branch keeps the policy in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_on_the_gitops_default_branch_is_followed_and_other_branches_are_not() {
    use slipway_tests::gitops::{self, OWNER, REPO};
    let fx = gitops::start().await;
    let app = crate::approvals::start_with(&fx, slipway_tests::harness::Options::default()).await;
    assert!(
        app.ack("U0NEWHIRE", "/slipway whoami")
            .await
            .contains("doesn't know")
    );
    let example = std::fs::read_to_string(slipway_tests::example_policy()).unwrap();
    let added = example.replacen(
        "  users:\n",
        "  users:\n    - slack: [U0NEWHIRE]\n      subject: nia.newhire@example.com\n      groups: [engineering]\n",
        1,
    );
    let file = [("policy/slipway.yaml", added.as_str())];
    fx.github
        .push_direct(OWNER, REPO, "not-main", &file, "sneak a user in", "mallory");
    assert!(fx.github.wait_for_deliveries(Duration::from_secs(20)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.ack("U0NEWHIRE", "/slipway whoami")
            .await
            .contains("doesn't know")
    );

    fx.github
        .push_direct(OWNER, REPO, "main", &file, "policy: add Nia", "olga-owner");
    let mut who = String::new();
    for _ in 0..100 {
        who = app.ack("U0NEWHIRE", "/slipway whoami").await;
        if who.contains("nia.newhire@example.com") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(who.contains("nia.newhire@example.com"), "{who}");

    let broken = [("policy/slipway.yaml", "version: 1\nroles: [not valid\n")];
    fx.github
        .push_direct(OWNER, REPO, "main", &broken, "policy: oops", "olga-owner");
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        outcomes = reload_outcomes(&app.audit());
        if outcomes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outcomes, ["applied", "invalid"]);
    assert!(
        app.ack("U0NEWHIRE", "/slipway whoami")
            .await
            .contains("nia.newhire@example.com")
    );
}
