//! Secret references into a real OpenBao (KV v2, AppRole): resolved at start, refreshed while
//! the bridge runs, a rotated Slack signing secret accepted with the old one for the grace
//! window, and an outage ridden out on the last good value until `max_staleness`, then closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use slipway_bridge::config::Config;
use slipway_bridge::slack::signature::sign;
use slipway_tests::harness::{Options, TestApp};
use slipway_tests::openbao::{OpenBao, SECRET_ID};

const OLD: &str = "old-signing-secret-from-openbao-1";
const NEW: &str = "new-signing-secret-from-openbao-2";

fn vault_config(bao: &OpenBao, timing: &str) -> String {
    format!(
        "slack:\n  signing_secret: {{ vault: \"secret/data/slipway#signing_secret\" }}\n\
         secrets:\n{timing}{}",
        bao.approle_yaml()
    )
}

async fn start(bao: &OpenBao, timing: &str) -> TestApp {
    TestApp::start_with(Options {
        config_yaml: Some(vault_config(bao, timing)),
        env: vec![("SLIPWAY_SLACK_SIGNING_SECRET", String::new())],
        ..Options::default()
    })
    .await
}

/// A distinct slash command signed with `secret`; the HTTP status.
async fn send(app: &TestApp, secret: &str) -> u16 {
    let body = app.command_body("U0ALICE", "/slipway", "help");
    let ts = chrono::Utc::now().timestamp().to_string();
    let headers = vec![
        ("x-slack-request-timestamp", ts.clone()),
        ("x-slack-signature", sign(secret.as_bytes(), &ts, &body)),
    ];
    app.post_raw("/slack/commands", body, &headers).await.0
}

fn series(metrics: &str, name: &str) -> i64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            l.rsplit(' ')
                .next()?
                .trim_end_matches(".0")
                .parse::<i64>()
                .ok()
        })
        .sum()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_signing_secret_rotated_in_openbao_while_requests_flow_fails_none() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start(dir.path()).await;
    bao.put("slipway", &[("signing_secret", OLD)]).await;
    let app = Arc::new(
        start(
            &bao,
            "  refresh_interval: 1s\n  rotation_grace: 4s\n  max_staleness: 1h\n",
        )
        .await,
    );
    // Slack's side: signs with the old secret until it learns the new one.
    let use_new = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (app, use_new, sent, failed, stop) = (
            app.clone(),
            use_new.clone(),
            sent.clone(),
            failed.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let secret = if use_new.load(Ordering::Relaxed) {
                    NEW
                } else {
                    OLD
                };
                if send(&app, secret).await != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    bao.put("slipway", &[("signing_secret", NEW)]).await;
    wait_for(
        "the bridge to read the new secret",
        Duration::from_secs(10),
        async || series(&app.get("/metrics").await, "slipway_secret_rotations_total") == 1,
    )
    .await;
    // Requests signed with the old secret after the rotation: inside the grace window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    use_new.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > 40, "too few requests flowed");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the rotation"
    );
    // The grace window ends: the old secret no longer verifies; a guessed one never did.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(send(&app, OLD).await, 401);
    assert_eq!(send(&app, "some-other-secret-value-123").await, 401);
    assert_eq!(send(&app, NEW).await, 200);
    assert_secrets_are_nowhere(&app, &[OLD, NEW, SECRET_ID]).await;
}

/// Secrets never reach `Debug`, metrics or the audit trail.
async fn assert_secrets_are_nowhere(app: &TestApp, values: &[&str]) {
    let debug = format!("{:?}", app.state.config);
    let metrics = app.get("/metrics").await;
    let audit = serde_json::to_string(&app.audit()).unwrap();
    for v in values {
        assert!(!debug.contains(v), "a secret is in the config's Debug");
        assert!(!metrics.contains(v), "a secret is in /metrics");
        assert!(!audit.contains(v), "a secret is in the audit trail");
    }
    assert!(metrics.contains("secret=\"vault secret/data/slipway#signing_secret\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_keeps_the_last_good_value_then_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = OpenBao::start(dir.path()).await;
    bao.put("slipway", &[("signing_secret", OLD)]).await;
    let app = start(&bao, "  refresh_interval: 1s\n  max_staleness: 3s\n").await;
    assert_eq!(send(&app, OLD).await, 200);
    bao.kill();
    // Within the staleness window the last good value is used, and the age shows.
    wait_for("a failed refresh", Duration::from_secs(10), async || {
        series(
            &app.get("/metrics").await,
            "slipway_secret_reads_total{store=\"vault\",outcome=\"failed\"}",
        ) > 0
    })
    .await;
    assert_eq!(send(&app, OLD).await, 200, "the last good value is in use");
    // Past it: every endpoint but the probes answers 503, and the replica is not ready.
    wait_for(
        "the bridge to fail closed",
        Duration::from_secs(10),
        async || send(&app, OLD).await == 503,
    )
    .await;
    let (status, body) = app.get_status("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"secrets\":\"stale\""), "{body}");
    assert_eq!(app.get_status("/healthz").await.0, 200);
    assert!(
        series(
            &app.get("/metrics").await,
            "slipway_secret_staleness_seconds"
        ) >= 3
    );
    // The store comes back: the next refresh reopens the bridge.
    bao.resume().await;
    bao.put("slipway", &[("signing_secret", OLD)]).await;
    wait_for(
        "the bridge to reopen",
        Duration::from_secs(10),
        async || send(&app, OLD).await == 200,
    )
    .await;
    assert_eq!(app.get_status("/readyz").await.0, 200);
}

/// Load `yaml` as `slipway serve` would, with the example policy.
pub(crate) fn load(yaml: &str) -> Result<Config, String> {
    load_with(yaml, &[])
}

fn load_with(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.yaml");
    std::fs::write(&path, yaml).unwrap();
    let policy = slipway_tests::example_policy().display().to_string();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    Config::load_with(Some(&path), &move |k| {
        if k == "SLIPWAY_POLICY" {
            return Some(policy.clone());
        }
        vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_secret_manager_references_are_read_as_the_bridge_with_the_accessor_role_only() {
    let gcp = slipway_emulators::gcp::GcpEmulator::start().await;
    let ex = gcp.seed_example();
    gcp.add_secret_version(&ex.project, "slack", r#"{"signing_secret":"old-value-1"}"#);
    gcp.add_secret_version(
        &ex.project,
        "slack",
        &format!(r#"{{"signing_secret":"{NEW}"}}"#),
    );
    let yaml = format!(
        "slack:\n  signing_secret: {{ gcp_secretmanager: \"projects/{}/secrets/slack#signing_secret\" }}\n\
         gcp:\n  token_url: {}\n  iam_credentials_url: {}/iamcredentials\n\
         secrets:\n  gcp:\n    endpoint: {}/secretmanager\n",
        ex.project,
        gcp.token_url(),
        gcp.base_url(),
        gcp.base_url()
    );
    let key = ex.bridge.json.clone();
    let vars = [("SLIPWAY_GCP_CREDENTIALS", key.as_str())];
    // The project's viewer role reads no payloads: the bridge refuses to start, and says why.
    let e = load_with(&yaml, &vars).unwrap_err();
    assert!(
        e.contains("secretmanager.versions.access") && e.contains("does not start"),
        "{e}"
    );
    gcp.grant_secret_accessor(
        &ex.project,
        &format!("serviceAccount:{}", ex.bridge.client_email),
    );
    let config = load_with(&yaml, &vars).unwrap();
    assert_eq!(
        &*config.slack.signing_secret.expose(),
        NEW,
        "the latest version"
    );
    let tokens = gcp.issued_tokens();
    assert!(
        tokens
            .iter()
            .any(|t| t.principal == format!("serviceAccount:{}", ex.bridge.client_email)),
        "read with the bridge's own identity: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_refuses_to_start_without_its_secret_store_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut bao = OpenBao::start(dir.path()).await;
    bao.put("slipway", &[("signing_secret", OLD)]).await;
    let yaml = vault_config(&bao, "");
    assert!(load(&yaml).is_ok(), "the store answers: the config loads");
    // A key the document doesn't have: named, with the keys it has, and no value.
    let e = load(&yaml.replace("#signing_secret", "#bot_token")).unwrap_err();
    assert!(e.contains("vault secret/data/slipway#bot_token"), "{e}");
    assert!(
        e.contains("has no key `bot_token` (it has signing_secret)"),
        "{e}"
    );
    // A wrong AppRole secret: the login is refused, and the message doesn't echo it.
    let e = load(&yaml.replace(SECRET_ID, "not-the-secret-id-9876543210")).unwrap_err();
    assert!(
        e.contains("vault approle login") && e.contains("does not start"),
        "{e}"
    );
    assert!(!e.contains("not-the-secret-id") && !e.contains(OLD), "{e}");
    // No store at all.
    bao.kill();
    let e = load(&yaml).unwrap_err();
    assert!(
        e.contains("can't read the secret vault secret/data/slipway#signing_secret"),
        "{e}"
    );
    assert!(e.contains("does not start"), "{e}");
}

const SM_SIGNING: &str = "signing-secret-in-secrets-manager-1";
const SM_ROTATED: &str = "signing-secret-in-secrets-manager-2";

/// The real `slipway serve`, its secrets in Secrets Manager (moto), its log in a file.
fn serve_with_aws_secrets(
    dir: &std::path::Path,
    moto: &str,
    slack: &str,
    port: u16,
) -> std::process::Child {
    let config = dir.join("slipway.yaml");
    std::fs::write(
        &config,
        format!(
            "slack:\n  signing_secret: {{ aws_secretsmanager: \"slipway/bridge#signing_secret\" }}\n  \
             bot_token: {{ aws_secretsmanager: \"slipway/bridge#bot_token\" }}\n\
             secrets:\n  refresh_interval: 1s\n  aws:\n    region: us-east-1\n    endpoint_url: {moto}\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("bridge.log")).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(slipway_tests::repo_root())
        .env_remove("SLIPWAY_SLACK_SIGNING_SECRET")
        .env_remove("SLIPWAY_SLACK_BOT_TOKEN")
        .env("RUST_LOG", "debug")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("SLIPWAY_SLACK_API_URL", slack)
        .env("SLIPWAY_POLICY", slipway_tests::example_policy())
        .env("SLIPWAY_STATE_DIR", dir.join("state"))
        .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            slipway_tests::harness::write_audit_key(dir),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("slipway serve starts")
}

/// A signed `/slipway whoami` to a bridge at `url`; the status.
async fn command_to(url: &str, secret: &str, n: usize) -> u16 {
    let body = serde_urlencoded::to_string([
        ("team_id", "T0TEST"),
        ("channel_id", slipway_tests::harness::CHANNEL),
        ("user_id", "U0VIEWER"),
        ("command", "/slipway"),
        ("text", "whoami"),
        ("response_url", "https://hooks.slack.com/commands/T0/1/x"),
        ("trigger_id", &format!("1.2.{n}")),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign(secret.as_bytes(), &ts, body.as_bytes());
    let (status, _) = slipway_tests::harness::http_with(
        "POST",
        &format!("{url}/slack/commands"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-slack-request-timestamp", &ts),
            ("x-slack-signature", &sig),
        ],
        Some(body),
    )
    .await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_manager_references_rotate_without_a_restart_and_never_reach_the_log() {
    use slipway_tests::harness::BOT_TOKEN;
    let dir = tempfile::tempdir().unwrap();
    let moto = crate::aws::moto(dir.path()).await;
    let value =
        |signing: &str| format!(r#"{{"signing_secret":"{signing}","bot_token":"{BOT_TOKEN}"}}"#);
    crate::aws::aws_setup(
        &moto.url(),
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            "slipway/bridge",
            "--secret-string",
            &value(SM_SIGNING),
        ],
    );
    let slack = slipway_emulators::slack::SlackEmulator::start(BOT_TOKEN).await;
    let port = slipway_tests::harness::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut bridge = serve_with_aws_secrets(dir.path(), &moto.url(), &slack.api_url(), port);
    wait_for(
        "the bridge to listen",
        Duration::from_secs(30),
        async || {
            slipway_tests::harness::try_http("GET", &format!("{url}/healthz"), None)
                .await
                .is_some()
        },
    )
    .await;
    assert_eq!(command_to(&url, SM_SIGNING, 1).await, 200);
    crate::aws::aws_setup(
        &moto.url(),
        &[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            "slipway/bridge",
            "--secret-string",
            &value(SM_ROTATED),
        ],
    );
    let mut n = 2;
    wait_for(
        "the rotated secret to be in force",
        Duration::from_secs(15),
        async || {
            n += 1;
            command_to(&url, SM_ROTATED, n).await == 200
        },
    )
    .await;
    let metrics = slipway_tests::harness::http("GET", &format!("{url}/metrics"), None)
        .await
        .1;
    let _ = bridge.kill();
    let _ = bridge.wait();
    let log = std::fs::read_to_string(dir.path().join("bridge.log")).unwrap();
    assert!(log.contains("secret rotated"), "{log}");
    for v in [SM_SIGNING, SM_ROTATED, BOT_TOKEN] {
        assert!(!log.contains(v), "a secret value is in the bridge's log");
        assert!(!metrics.contains(v), "a secret value is in /metrics");
    }
    let audit = std::fs::read_dir(dir.path().join("state/audit"))
        .unwrap()
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect::<String>();
    assert!(audit.contains("whoami"), "the commands were audited");
    assert!(!audit.contains(SM_SIGNING) && !audit.contains(SM_ROTATED));
}

/// An Ed25519 key as OpenBao's JWT auth takes it (SPKI PEM), and a token it signs.
fn jwt_key() -> (ed25519_dalek::SigningKey, String) {
    use base64::Engine as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(key.verifying_key().as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    (
        key,
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
    )
}

fn jwt(key: &ed25519_dalek::SigningKey, issuer: &str) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = chrono::Utc::now().timestamp();
    let signed = format!(
        "{}.{}",
        b64(serde_json::json!({"alg": "EdDSA", "typ": "JWT"})),
        b64(
            serde_json::json!({"iss": issuer, "sub": "slipway-bridge", "aud": "vault",
                               "iat": now, "exp": now + 3600})
        )
    );
    let sig = key.sign(signed.as_bytes());
    format!(
        "{signed}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.to_bytes())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_login_reads_the_secrets_and_outlives_its_short_token_lease() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start(dir.path()).await;
    bao.put("slipway", &[("signing_secret", OLD)]).await;
    let (key, pem) = jwt_key();
    slipway_tests::openbao::enable_jwt(&bao, &pem, "https://ci.example", 2).await;
    let jwt_file = dir.path().join("token.jwt");
    std::fs::write(&jwt_file, jwt(&key, "https://ci.example")).unwrap();
    let yaml = format!(
        "slack:\n  signing_secret: {{ vault: \"secret/data/slipway#signing_secret\" }}\n\
         secrets:\n  refresh_interval: 1s\n  vault:\n    address: {}\n    auth:\n      \
         method: jwt\n      role: slipway\n      jwt_file: {}\n",
        bao.url(),
        jwt_file.display()
    );
    let app = TestApp::start_with(Options {
        config_yaml: Some(yaml.clone()),
        env: vec![("SLIPWAY_SLACK_SIGNING_SECRET", String::new())],
        ..Options::default()
    })
    .await;
    assert_eq!(send(&app, OLD).await, 200);
    // Past two token leases (2 s, renewable to 4 s): renewed, then logged in again, no failure.
    tokio::time::sleep(Duration::from_secs(5)).await;
    bao.put("slipway", &[("signing_secret", NEW)]).await;
    wait_for("the rotated value", Duration::from_secs(10), async || {
        send(&app, NEW).await == 200
    })
    .await;
    let metrics = app.get("/metrics").await;
    assert_eq!(
        series(
            &metrics,
            "slipway_secret_reads_total{store=\"vault\",outcome=\"failed\"}"
        ),
        0,
        "{metrics}"
    );
    // A token another key signed is refused at login: no start.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    std::fs::write(&jwt_file, jwt(&other, "https://ci.example")).unwrap();
    let e = load(&yaml).unwrap_err();
    assert!(e.contains("vault jwt login"), "{e}");
}
