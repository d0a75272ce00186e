//! People's linked GitHub user tokens, encrypted at rest.
//!
//! A token is sealed with AES-256-GCM (aws-lc-rs, already the bridge's TLS crypto) under the
//! configured 32-byte key (`github.token_key` / `SLIPWAY_TOKEN_KEY`), with a fresh random nonce
//! per write and the Slack user id as associated data, so a sealed row copied to another user
//! fails to open. The store only ever holds ciphertext. Without a key nothing is stored and
//! linking is refused.

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::store::StateStore;

/// Format version of a sealed row (the first byte): `2 ‖ generation (8 bytes, big-endian) ‖
/// nonce ‖ ciphertext+tag`, the generation also bound in the associated data.
const SEALED_V2: u8 = 2;

/// The key linked tokens are sealed with.
pub struct TokenKey(LessSafeKey);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

impl TokenKey {
    /// 32 bytes, as 64 hex digits or base64 (standard or URL-safe, padding optional).
    pub fn parse(text: &str) -> Result<TokenKey, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            let t = text.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
                .map_err(|_| "the token key (SLIPWAY_TOKEN_KEY / github.token_key) must be 32 bytes as 64 hex digits or base64".to_string())?
        };
        if bytes.len() != 32 {
            return Err(format!(
                "the token key (SLIPWAY_TOKEN_KEY / github.token_key) must be 32 bytes; it is {}",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| "the token key is not a valid AES-256 key".to_string())?;
        Ok(TokenKey(LessSafeKey::new(key)))
    }

    fn aad(slack_user: &str, generation: u64) -> Vec<u8> {
        format!("slipway/github-token/v2/{slack_user}/{generation}").into_bytes()
    }

    /// `version ‖ generation ‖ nonce ‖ ciphertext+tag`.
    pub fn seal(
        &self,
        slack_user: &str,
        generation: u64,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_string())?;
        let mut data = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(slack_user, generation)),
                &mut data,
            )
            .map_err(|_| "sealing the token failed".to_string())?;
        let mut out = Vec::with_capacity(9 + NONCE_LEN + data.len());
        out.push(SEALED_V2);
        out.extend_from_slice(&generation.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Open a sealed row, which must be of the person's current `generation`.
    pub fn open(
        &self,
        slack_user: &str,
        generation: u64,
        sealed: &[u8],
    ) -> Result<Vec<u8>, String> {
        let Some((&SEALED_V2, rest)) = sealed.split_first() else {
            return Err(
                "the stored token has an old or unknown format; run `/slipway link github` again"
                    .into(),
            );
        };
        if rest.len() < 8 + NONCE_LEN {
            return Err("the stored token is truncated".into());
        }
        let (gen_bytes, rest) = rest.split_at(8);
        let sealed_gen = u64::from_be_bytes(gen_bytes.try_into().unwrap_or_default());
        if sealed_gen != generation {
            return Err(format!(
                "the stored token is from link {sealed_gen}, not the current {generation}: it was rolled back, so it is refused; run `/slipway link github` again"
            ));
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| "the stored token is truncated".to_string())?;
        let mut data = ct.to_vec();
        let plain = self
            .0
            .open_in_place(
                nonce,
                Aad::from(Self::aad(slack_user, generation)),
                &mut data,
            )
            .map_err(|_| {
                "the stored token can't be decrypted (wrong key, or not this person's)".to_string()
            })?;
        Ok(plain.to_vec())
    }
}

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
    key: Option<TokenKey>,
}

impl TokenStore {
    pub fn new(store: Arc<dyn StateStore>, key: Option<TokenKey>) -> TokenStore {
        TokenStore { store, key }
    }

    /// Whether tokens can be stored at all (a key is configured).
    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    fn key(&self) -> Result<&TokenKey, String> {
        self.key.as_ref().ok_or_else(|| "no token encryption key is configured (SLIPWAY_TOKEN_KEY / github.token_key), so GitHub accounts can't be linked".to_string())
    }

    /// Store a linked account (replacing any earlier one).
    pub fn link_account(&self, slack_user: &str, account: &LinkedAccount) -> Result<(), String> {
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
        let sealed = self.key()?.seal(slack_user, generation, &json)?;
        self.store
            .set_sealed_token_at(slack_user, &sealed, generation)
            .map_err(|e| e.to_string())
    }

    /// Store a token for `slack_user` as GitHub login `login`, with no known expiry.
    pub fn link(&self, slack_user: &str, login: &str, token: &str) -> Result<(), String> {
        self.link_account(
            slack_user,
            &LinkedAccount {
                login: login.to_string(),
                token: Secret::new(token),
                linked_at: Utc::now(),
                expires_at: None,
            },
        )
    }

    /// The linked account, if any. An undecryptable row is an error (not silently "unlinked").
    pub fn get(&self, slack_user: &str) -> Result<Option<LinkedAccount>, String> {
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
        let plain = self.key()?.open(slack_user, generation, &sealed)?;
        let p: Plain = serde_json::from_slice(&plain)
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

    #[test]
    fn sealed_at_rest_bound_to_the_person_and_the_key() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let tokens = TokenStore::new(store.clone(), Some(TokenKey::parse(KEY_HEX).unwrap()));
        tokens.link("U1", "ada", "ghu_secret_token_value").unwrap();
        let sealed = store.sealed_token("U1").unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&sealed).contains("ghu_secret"),
            "ciphertext only"
        );
        let got = tokens.get("U1").unwrap().unwrap();
        assert_eq!(
            (got.login.as_str(), &*got.token.expose()),
            ("ada", "ghu_secret_token_value")
        );
        assert!(!format!("{got:?}").contains("ghu_"));
        // Two seals of the same token differ (fresh nonce).
        tokens.link("U1", "ada", "ghu_secret_token_value").unwrap();
        assert_ne!(store.sealed_token("U1").unwrap().unwrap(), sealed);
        // Put back after a newer link (a rollback): refused.
        store.set_sealed_token("U1", &sealed).unwrap();
        assert!(tokens.get("U1").unwrap_err().contains("rolled back"));
        tokens.link("U1", "ada", "ghu_secret_token_value").unwrap();
        // Copied to another person, or read with another key: refused.
        store.set_sealed_token_at("U2", &sealed, 1).unwrap();
        assert!(tokens.get("U2").is_err());
        let other = TokenStore::new(
            store.clone(),
            Some(TokenKey::parse(&"ab".repeat(32)).unwrap()),
        );
        assert!(other.get("U1").is_err());
        assert_eq!(tokens.get("U3").unwrap(), None);
        let off = TokenStore::new(store, None);
        assert!(!off.enabled());
        assert!(
            off.link("U1", "ada", "t")
                .unwrap_err()
                .contains("SLIPWAY_TOKEN_KEY")
        );
    }
}
