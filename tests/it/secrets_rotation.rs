//! The rest of what is built from a secret follows a rotation in a real OpenBao without a
//! restart: the audit sinks' credentials, the Google Workspace key and the bridge's GCP
//! identity (whose token minter is rebuilt). A rotated value that can't be used is refused and
//! the old one stays in force. (The GitHub App key, the signing key and the token key:
//! `approvals::rotation`.)

use slipway_bridge::config::{Config, Live};
use slipway_infra::secret_store::Stores;
use slipway_tests::openbao::OpenBao;

fn google_key(email: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "client_email": email,
        "private_key": slipway_emulators::github::generate_app_key_pem().unwrap(),
        "private_key_id": "k1",
        "token_uri": "http://127.0.0.1:9/token",
    })
    .to_string()
}

fn yaml(bao: &OpenBao, gcp: &slipway_emulators::gcp::GcpEmulator) -> String {
    let at = |key: &str| format!("{{ vault: \"secret/data/slipway-sinks#{key}\" }}");
    format!(
        "slack:\n  signing_secret: rotation-test-signing-secret\n  bot_token: xoxb-rotation-test\n\
         audit:\n  jira:\n    url: http://127.0.0.1:9/jira\n    project: OPS\n    token: {}\n\
         \x20 webhook:\n    url: http://127.0.0.1:9/hook\n    secret: {}\n\
         \x20 loki:\n    url: http://127.0.0.1:9\n    user: slipway\n    password: {}\n\
         \x20 s3:\n    bucket: audit\n    retention_days: 1\n    endpoint_url: http://127.0.0.1:9\n    access_key_id: AKIASLIPWAY\n    secret_access_key: {}\n\
         google:\n  service_account: {}\n  admin_email: admin@example.com\n\
         gcp:\n  credentials: {}\n  token_url: {}\n  iam_credentials_url: {}/iamcredentials\n\
         secrets:\n  refresh_interval: 1h\n{}",
        at("jira"),
        at("hook"),
        at("loki"),
        at("s3"),
        at("google"),
        at("gcp"),
        gcp.token_url(),
        gcp.base_url(),
        bao.approle_yaml()
    )
}

async fn refresh(config: &Config) {
    let book = config.secrets.clone();
    let metrics = slipway_bridge::metrics::Metrics::new().secrets;
    let stores = Stores::new(book.settings.clone());
    slipway_bridge::secrets::refresh(&stores, &book, chrono::Utc::now().timestamp(), &metrics)
        .await;
}

/// What each sink would send now: Jira's and Loki's `Authorization`, the webhook's key, S3's
/// secret key.
fn sent(config: &Config) -> [String; 4] {
    let audit = &config.audit;
    let s3 = audit.s3.as_ref().unwrap().credentials.as_ref().unwrap();
    [
        audit.jira.as_ref().unwrap().auth.header(),
        audit.loki.as_ref().unwrap().auth.as_ref().unwrap().header(),
        audit.webhook.as_ref().unwrap().secret.get(),
        s3.secret_access_key.get(),
    ]
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn put(bao: &OpenBao, n: u32, google: &str, gcp: &str) {
    let (jira, hook, loki, s3) = (
        format!("jira-{n}"),
        format!("hook-{n}"),
        format!("loki-{n}"),
        format!("s3-{n}"),
    );
    let doc = [
        ("jira", jira.as_str()),
        ("hook", hook.as_str()),
        ("loki", loki.as_str()),
        ("s3", s3.as_str()),
        ("google", google),
        ("gcp", gcp),
    ];
    bao.put("slipway-sinks", &doc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_credentials_and_google_identities_follow_a_rotation_in_openbao() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start(dir.path()).await;
    let gcp = slipway_emulators::gcp::GcpEmulator::start().await;
    let ex = gcp.seed_example();
    let workspace_1 = google_key("sync-1@acme.iam.gserviceaccount.com");
    put(&bao, 1, &workspace_1, &ex.bridge.json).await;
    let yaml = yaml(&bao, &gcp);
    let config = tokio::task::spawn_blocking(move || crate::secrets::load(&yaml))
        .await
        .unwrap()
        .expect("config");
    assert_eq!(
        sent(&config),
        [
            "Bearer jira-1".to_string(),
            basic("slipway", "loki-1"),
            "hook-1".into(),
            "s3-1".into()
        ]
    );
    let google = config.google.as_ref().unwrap().service_account.clone();
    assert_eq!(
        google.get().client_email,
        "sync-1@acme.iam.gserviceaccount.com"
    );
    let gcp_config = config.gcp.clone().unwrap();
    let minter = Live::new("gcp.credentials", vec![gcp_config.credentials.clone()], {
        let g = gcp_config.clone();
        move |_| {
            slipway_infra::gcp::Minter::new(g.minter_settings(), std::time::Duration::from_secs(5))
                .map_err(|e| e.to_string())
        }
    })
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    minter
        .get()
        .own_token(now)
        .await
        .expect("a token as the bridge");

    // Rotate everything; the GCP identity moves to another account (the emulator tells them
    // apart by who a token was issued to).
    put(
        &bao,
        2,
        &google_key("sync-2@acme.iam.gserviceaccount.com"),
        &ex.reader.json,
    )
    .await;
    refresh(&config).await;
    assert_eq!(
        sent(&config),
        [
            "Bearer jira-2".to_string(),
            basic("slipway", "loki-2"),
            "hook-2".into(),
            "s3-2".into()
        ]
    );
    assert_eq!(
        google.get().client_email,
        "sync-2@acme.iam.gserviceaccount.com"
    );
    minter
        .get()
        .own_token(now)
        .await
        .expect("a token as the new identity");
    // Sorted: the emulator orders tokens by expiry, and both were issued within one second.
    let mut principals: Vec<String> = gcp
        .issued_tokens()
        .into_iter()
        .map(|t| t.principal)
        .collect();
    principals.sort();
    let mut expected = [
        format!("serviceAccount:{}", ex.bridge.client_email),
        format!("serviceAccount:{}", ex.reader.client_email),
    ];
    expected.sort();
    assert_eq!(
        principals, expected,
        "one token as each: the rebuilt minter signs in with the rotated key"
    );

    // A rotated key that isn't a key: refused, the last good one stays.
    put(&bao, 3, "not json", "not json").await;
    refresh(&config).await;
    assert_eq!(
        google.get().client_email,
        "sync-2@acme.iam.gserviceaccount.com"
    );
    assert_eq!(
        config.gcp.as_ref().unwrap().key.get().client_email,
        ex.reader.client_email
    );
    assert_eq!(sent(&config)[0], "Bearer jira-3", "the tokens still follow");
}
