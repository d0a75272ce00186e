//! Keys built into a client or a signer (the GitHub App key, the change-request signing key and
//! its id, the token-sealing key) read from a real OpenBao and rotated there while the bridge
//! runs: the next use takes the new key, and what the old keys signed or sealed still verifies
//! and opens.

use slipway_bridge::change::{TokenKey, TokenStore};
use slipway_bridge::store::envelope::Envelope;
use slipway_core::change::{Keyring, is_slack_review};
use slipway_infra::secret_store::Stores;
use slipway_tests::gitops::{APP_ID, APP_KEY_PEM, SIGNING_KEY_HEX};
use slipway_tests::openbao::OpenBao;

use super::*;

const NEW_TOKEN_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

fn keys_yaml(bao: &OpenBao) -> String {
    format!(
        "github:\n  private_key: {{ vault: \"secret/data/slipway#app_key\" }}\n  token_key: {{ vault: \"secret/data/slipway#token_key\" }}\n\
         signing:\n  key: {{ vault: \"secret/data/slipway#signing_key\" }}\n  key_id: {{ vault: \"secret/data/slipway#signing_key_id\" }}\n\
         secrets:\n  refresh_interval: 1h\n{}",
        bao.approle_yaml()
    )
}

/// One refresher round, as the timer would run it.
async fn refresh(app: &TestApp) {
    let book = app.state.config.secrets.clone();
    let stores = Stores::new(book.settings.clone());
    let now = chrono::Utc::now().timestamp();
    slipway_bridge::secrets::refresh(&stores, &book, now, &app.state.metrics.secrets).await;
}

fn verifying(hex: &str) -> ed25519_dalek::VerifyingKey {
    slipway_core::change::parse_signing_key(hex)
        .unwrap()
        .verifying_key()
}

/// The signed Slack marker of `login`'s review on `number`, checked against one key.
fn marked_by(fx: &GitOpsFixture, number: u64, login: &str, id: &str, hex: &str) -> bool {
    let head = pull(fx, number)["head"]["sha"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = Keyring::from(vec![(id.to_string(), verifying(hex))]);
    fx.github.reviews(OWNER, REPO, number).iter().any(|r| {
        r["user"]["login"] == login
            && is_slack_review(
                r["body"].as_str().unwrap_or(""),
                &keys,
                &format!("{OWNER}/{REPO}"),
                number,
                &head,
                login,
            )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_built_into_clients_follow_a_rotation_in_openbao_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start(dir.path()).await;
    bao.put(
        "slipway",
        &[
            ("app_key", APP_KEY_PEM),
            ("signing_key", SIGNING_KEY_HEX),
            ("signing_key_id", "bridge-1"),
            ("token_key", TOKEN_KEY),
        ],
    )
    .await;
    let mut fx = gitops::start().await;
    fx.config_yaml.push_str(&keys_yaml(&bao));
    let unset = |k| (k, String::new());
    let app = start_with(
        &fx,
        Options {
            env: vec![
                unset("SLIPWAY_GITHUB_PRIVATE_KEY"),
                unset("SLIPWAY_SIGNING_KEY"),
                unset("SLIPWAY_SIGNING_KEY_ID"),
                unset("SLIPWAY_TOKEN_KEY"),
            ],
            ..Options::default()
        },
    )
    .await;
    let number = open_pr(&app, &fx).await;
    let branch = pull(&fx, number)["head"]["ref"]
        .as_str()
        .unwrap()
        .to_string();
    let signed = crate::changes::change_file(&fx, &branch);
    assert_eq!(signed.signature.as_ref().unwrap().key_id, "bridge-1");
    link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
    let svc = app.state.change.clone().unwrap();
    let before = svc.gh().installation_token().await.expect("a token");

    // Rotate all three in the store; GitHub forgets the old App key.
    let new_app_key = slipway_emulators::github::generate_app_key_pem().unwrap();
    fx.github.set_app_key(APP_ID, &new_app_key);
    let new_signing = hex::encode([42u8; 32]);
    bao.put(
        "slipway",
        &[
            ("app_key", new_app_key.as_str()),
            ("signing_key", new_signing.as_str()),
            ("signing_key_id", "bridge-2"),
            ("token_key", NEW_TOKEN_KEY),
        ],
    )
    .await;
    refresh(&app).await;

    let after = svc.gh().installation_token().await.expect(
        "a new installation token, minted with a JWT the new App key signed (the old is refused)",
    );
    assert_ne!(before, after, "the rebuilt client minted afresh");

    // The old request (signed by bridge-1) still verifies; the approval is made with the token
    // sealed under the old token key; its Slack marker is signed by the new key.
    let ts = change_message(&app).ts;
    let (status, body) = approve_in_slack(&app, "U0APPROVER1", &ts, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        fx.github_wait(|| fx.github.reviews(OWNER, REPO, number).len() == 1)
            .await,
        "{:?}",
        app.slack.responses()
    );
    assert!(marked_by(
        &fx,
        number,
        "ada-approver",
        "bridge-2",
        &new_signing
    ));
    assert!(!marked_by(
        &fx,
        number,
        "ada-approver",
        "bridge-1",
        SIGNING_KEY_HEX
    ));

    // Reading the token re-wrapped it: the new token key alone opens it now.
    let only_new = TokenStore::new(
        svc.store.clone(),
        Some(Envelope::local(TokenKey::parse(NEW_TOKEN_KEY).unwrap())),
    );
    let reopened = only_new
        .get("U0APPROVER1")
        .await
        .expect("opens under the new key");
    assert_eq!(reopened.map(|a| a.login).as_deref(), Some("ada-approver"));

    // A new key under an id that already names another key is refused: bridge-2 stays in force.
    bao.put(
        "slipway",
        &[
            ("app_key", new_app_key.as_str()),
            ("signing_key", &hex::encode([43u8; 32])),
            ("signing_key_id", "bridge-2"),
            ("token_key", NEW_TOKEN_KEY),
        ],
    )
    .await;
    refresh(&app).await;
    link(&app, "U0APPROVER2", "bo-approver", "tok-bo").await;
    approve_in_slack(&app, "U0APPROVER2", &ts, "").await;
    assert!(
        fx.github_wait(|| fx.github.reviews(OWNER, REPO, number).len() == 2)
            .await
    );
    assert!(marked_by(
        &fx,
        number,
        "bo-approver",
        "bridge-2",
        &new_signing
    ));
}
