//! People's linked GitHub user tokens, encrypted at rest.
//!
//! Each token is sealed by the state [`Envelope`]: its own AES-256-GCM data key, wrapped by
//! KMS, Transit or the local key (`github.token_key` / `SLIPWAY_TOKEN_KEY`), under a context
//! naming the kind, the Slack user and the link's generation, so a sealed row copied to another
//! user, or put back after a re-link, fails to open. The store only ever holds ciphertext.
//! Without a way to seal nothing is stored and linking is refused.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::store::StateStore;
pub use crate::store::envelope::TokenKey;
use crate::store::envelope::{Context, Envelope};

/// The record kind bound into every sealed token.
const KIND: &str = "github-token";

/// A person's linked GitHub account.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    /// The login GitHub reported for the token (`GET /user`).
    pub login: String,
    pub token: Secret,
    pub linked_at: DateTime<Utc>,
    /// When the user access token stops working, if GitHub said.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for LinkedAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkedAccount")
            .field("login", &self.login)
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What is sealed: never logged, never stored in the clear.
#[derive(Serialize, Deserialize)]
struct Plain {
    login: String,
    token: String,
    linked_at: DateTime<Utc>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// People's GitHub user tokens, by Slack user id (from `/slipway link github`), sealed in the
/// state store.
#[derive(Debug)]
pub struct TokenStore {
    store: Arc<dyn StateStore>,
    envelope: Option<Envelope>,
}

impl TokenStore {
    pub fn new(store: Arc<dyn StateStore>, envelope: Option<Envelope>) -> TokenStore {
        let envelope = envelope.filter(Envelope::enabled);
        TokenStore { store, envelope }
    }

    /// Whether tokens can be stored at all (a key is configured).
    pub fn enabled(&self) -> bool {
        self.envelope.is_some()
    }

    fn envelope(&self) -> Result<&Envelope, String> {
        self.envelope.as_ref().ok_or_else(|| "no token encryption key is configured (SLIPWAY_TOKEN_KEY / github.token_key, or secrets.envelope), so GitHub accounts can't be linked".to_string())
    }

    /// Store a linked account (replacing any earlier one).
    pub async fn link_account(
        &self,
        slack_user: &str,
        account: &LinkedAccount,
    ) -> Result<(), String> {
        let plain = Plain {
            login: account.login.clone(),
            token: account.token.expose().to_string(),
            linked_at: account.linked_at,
            expires_at: account.expires_at,
        };
        let json = serde_json::to_vec(&plain).map_err(|e| e.to_string())?;
        let generation = self
            .store
            .token_generation(slack_user)
            .map_err(|e| e.to_string())?
            + 1;
        let ctx = Context {
            kind: KIND,
            subject: slack_user,
            generation,
        };
        let sealed = self.envelope()?.seal(ctx, &json).await?;
        self.store
            .set_sealed_token_at(slack_user, &sealed, generation)
            .map_err(|e| e.to_string())
    }

    /// Store a token for `slack_user` as GitHub login `login`, with no known expiry.
    pub async fn link(&self, slack_user: &str, login: &str, token: &str) -> Result<(), String> {
        self.link_account(
            slack_user,
            &LinkedAccount {
                login: login.to_string(),
                token: Secret::new(token),
                linked_at: Utc::now(),
                expires_at: None,
            },
        )
        .await
    }

    /// The linked account, if any. An undecryptable row is an error (not silently "unlinked").
    /// A row sealed the old way is written back re-wrapped, unless a re-link replaced it
    /// meanwhile.
    pub async fn get(&self, slack_user: &str) -> Result<Option<LinkedAccount>, String> {
        let Some(sealed) = self
            .store
            .sealed_token(slack_user)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let generation = self
            .store
            .token_generation(slack_user)
            .map_err(|e| e.to_string())?;
        let ctx = Context {
            kind: KIND,
            subject: slack_user,
            generation,
        };
        let opened = self.envelope()?.open(ctx, &sealed).await?;
        if let Some(row) = opened.rewrapped
            && self.store.token_generation(slack_user).ok() == Some(generation)
            && let Err(e) = self.store.set_sealed_token_at(slack_user, &row, generation)
        {
            tracing::warn!(error = %e, "re-wrapping a sealed token failed; it stays as it was");
        }
        let p: Plain = serde_json::from_slice(&opened.plaintext)
            .map_err(|_| "the stored token is damaged".to_string())?;
        Ok(Some(LinkedAccount {
            login: p.login,
            token: Secret::new(p.token),
            linked_at: p.linked_at,
            expires_at: p.expires_at,
        }))
    }

    pub fn unlink(&self, slack_user: &str) -> Result<(), String> {
        self.store
            .remove_token(slack_user)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::store::MemoryStore;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn keys_parse_from_hex_or_base64_and_nothing_else() {
        assert!(TokenKey::parse(KEY_HEX).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(KEY_HEX).unwrap());
        assert!(TokenKey::parse(&b64).is_ok());
        assert!(
            TokenKey::parse(&KEY_HEX[..62])
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(TokenKey::parse("not a key!").is_err());
        assert_eq!(
            format!("{:?}", TokenKey::parse(KEY_HEX).unwrap()),
            "TokenKey(***)"
        );
    }

    fn local(hex: &str) -> Envelope {
        Envelope::local(TokenKey::parse(hex).unwrap())
    }

    #[tokio::test]
    async fn sealed_at_rest_bound_to_the_person_and_the_key() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let tokens = TokenStore::new(store.clone(), Some(local(KEY_HEX)));
        tokens
            .link("U1", "ada", "ghu_secret_token_value")
            .await
            .unwrap();
        let sealed = store.sealed_token("U1").unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&sealed).contains("ghu_secret"),
            "ciphertext only"
        );
        let got = tokens.get("U1").await.unwrap().unwrap();
        assert_eq!(
            (got.login.as_str(), &*got.token.expose()),
            ("ada", "ghu_secret_token_value")
        );
        assert!(!format!("{got:?}").contains("ghu_"));
        // Two seals of the same token differ (fresh nonce).
        tokens
            .link("U1", "ada", "ghu_secret_token_value")
            .await
            .unwrap();
        assert_ne!(store.sealed_token("U1").unwrap().unwrap(), sealed);
        // Put back after a newer link (a rollback): refused.
        store.set_sealed_token("U1", &sealed).unwrap();
        assert!(tokens.get("U1").await.unwrap_err().contains("rolled back"));
        tokens
            .link("U1", "ada", "ghu_secret_token_value")
            .await
            .unwrap();
        // Copied to another person, or read with another key: refused.
        store.set_sealed_token_at("U2", &sealed, 1).unwrap();
        assert!(tokens.get("U2").await.is_err());
        let other = TokenStore::new(store.clone(), Some(local(&"ab".repeat(32))));
        assert!(other.get("U1").await.is_err());
        assert_eq!(tokens.get("U3").await.unwrap(), None);
        let off = TokenStore::new(store, None);
        assert!(!off.enabled());
        assert!(
            off.link("U1", "ada", "t")
                .await
                .unwrap_err()
                .contains("SLIPWAY_TOKEN_KEY")
        );
    }
}
