//! Envelope encryption of sealed state against real key services: AWS KMS (moto) and
//! OpenBao Transit. Each sealed token has its own data key, wrapped under a context naming the
//! record; a row copied to another person does not open; a key change re-wraps a row as it is
//! read.

use std::sync::Arc;

use slipway_bridge::change::{TokenKey, TokenStore};
use slipway_bridge::config::{EnvelopeConfig, Wrapping};
use slipway_bridge::store::envelope::Envelope;
use slipway_bridge::store::{MemoryStore, StateStore};
use slipway_infra::secret_store::kms::Kms;
use slipway_infra::secret_store::{Settings, VaultAuth, VaultSettings};
use slipway_tests::openbao::{OpenBao, ROOT};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const TOKEN: &str = "ghu_envelope_test_token_value";

fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let creds = aws_sdk_kms::config::Credentials::new("testing", "testing", None, None, "test");
    let config = aws_sdk_kms::config::Builder::new()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

fn create_key(moto: &str) -> String {
    let out = crate::aws::aws_setup(moto, &["kms", "create-key"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["KeyMetadata"]["Arn"].as_str().unwrap().to_string()
}

/// The wrapped data key of a v3 row (scheme byte, then its length).
fn wrapped(row: &[u8]) -> (u8, Vec<u8>) {
    let len = usize::from(u16::from_be_bytes([row[10], row[11]]));
    (row[9], row[12..12 + len].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_sealed_under_kms_bound_to_their_owner_and_re_wrapped_after_a_key_change() {
    let dir = tempfile::tempdir().unwrap();
    let moto = crate::aws::moto(dir.path()).await;
    let (first, second) = (create_key(&moto.url()), create_key(&moto.url()));
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let local = || Some(TokenKey::parse(KEY).unwrap());
    // A row the local key sealed, before KMS was configured.
    TokenStore::new(
        store.clone(),
        Some(Envelope::local(TokenKey::parse(KEY).unwrap())),
    )
    .link("U1", "ada", TOKEN)
    .await
    .unwrap();
    assert_eq!(wrapped(&store.sealed_token("U1").unwrap().unwrap()).0, 0);
    let under = |arn: &str, client| {
        TokenStore::new(
            store.clone(),
            Some(Envelope::with_kms(
                local(),
                Kms::with_client(client, arn.to_string()),
            )),
        )
    };
    // KMS configured: the local row opens, and is written back wrapped by KMS.
    let tokens = under(&first, kms_client(&moto.url()));
    assert_eq!(
        &*tokens.get("U1").await.unwrap().unwrap().token.expose(),
        TOKEN
    );
    let row = store.sealed_token("U1").unwrap().unwrap();
    assert_eq!(wrapped(&row).0, Wrapping::Kms.byte(), "re-sealed under KMS");
    assert!(!String::from_utf8_lossy(&row).contains(TOKEN));
    // Copied to another person: KMS refuses the other context.
    store.set_sealed_token_at("U2", &row, 1).unwrap();
    let e = tokens.get("U2").await.unwrap_err();
    assert!(e.contains("InvalidCiphertextException"), "{e}");
    // The key changes: the row opens with its old key and comes back wrapped by the new one.
    let tokens = under(&second, kms_client(&moto.url()));
    assert_eq!(
        &*tokens.get("U1").await.unwrap().unwrap().token.expose(),
        TOKEN
    );
    let rewrapped = store.sealed_token("U1").unwrap().unwrap();
    assert_ne!(wrapped(&rewrapped).1, wrapped(&row).1);
    let out = kms_client(&moto.url())
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(wrapped(&rewrapped).1))
        .encryption_context("slipway:kind", "github-token")
        .encryption_context("slipway:slack_user", "U1")
        .encryption_context("slipway:generation", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.key_id.as_deref(),
        Some(second.as_str()),
        "wrapped by the new key"
    );
    // Read again: nothing left to re-wrap.
    tokens.get("U1").await.unwrap();
    assert_eq!(store.sealed_token("U1").unwrap().unwrap(), rewrapped);
}

fn transit(bao: &OpenBao) -> Envelope {
    let cfg = EnvelopeConfig {
        wrapping: Wrapping::Transit,
        kms_key_id: None,
        transit: Some(("transit".into(), "slipway-state".into())),
        stores: Settings {
            vault: Some(VaultSettings {
                address: bao.url(),
                namespace: None,
                auth: VaultAuth::Token(ROOT.to_string().into()),
                timeout: std::time::Duration::from_secs(5),
            }),
            ..Settings::default()
        },
    };
    Envelope::new(None, &cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_sealed_under_openbao_transit_and_re_wrapped_after_the_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start(dir.path()).await;
    bao.api(
        "POST",
        "sys/mounts/transit",
        serde_json::json!({"type": "transit"}),
    )
    .await;
    bao.api(
        "POST",
        "transit/keys/slipway-state",
        serde_json::json!({"derived": true}),
    )
    .await;
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let tokens = TokenStore::new(store.clone(), Some(transit(&bao)));
    tokens.link("U1", "ada", TOKEN).await.unwrap();
    let row = store.sealed_token("U1").unwrap().unwrap();
    let (scheme, key) = wrapped(&row);
    assert_eq!(scheme, Wrapping::Transit.byte());
    assert!(
        key.starts_with(b"vault:v1:"),
        "{}",
        String::from_utf8_lossy(&key)
    );
    // The context is the record: another person's copy does not open.
    store.set_sealed_token_at("U2", &row, 1).unwrap();
    assert!(tokens.get("U2").await.is_err());
    // Rotate the Transit key: the next read re-wraps the row under version 2.
    bao.api(
        "POST",
        "transit/keys/slipway-state/rotate",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        &*tokens.get("U1").await.unwrap().unwrap().token.expose(),
        TOKEN
    );
    let (_, key) = wrapped(&store.sealed_token("U1").unwrap().unwrap());
    assert!(
        key.starts_with(b"vault:v2:"),
        "{}",
        String::from_utf8_lossy(&key)
    );
    assert_eq!(
        &*tokens.get("U1").await.unwrap().unwrap().token.expose(),
        TOKEN
    );
}
