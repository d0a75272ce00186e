//! The local key: the embedded default that wraps data keys when no key service is
//! configured, and the key v2 rows were sealed with directly.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;

/// Format version of a sealed row (the first byte): `2 ‖ generation (8 bytes, big-endian) ‖
/// nonce ‖ ciphertext+tag`, the generation also bound in the associated data.
pub(super) const SEALED_V2: u8 = 2;

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

    /// A v2 row: `version ‖ generation ‖ nonce ‖ ciphertext+tag`, sealed directly with this
    /// key (what bridges wrote before envelope encryption; kept so tests can make one).
    pub fn seal_v2(
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

    /// Open a v2 row, which must be of the person's current `generation`.
    pub(super) fn open_v2(
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

impl TokenKey {
    /// A data key wrapped under this key: `nonce ‖ ciphertext+tag`, bound to `aad`.
    pub(super) fn wrap(&self, dek: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_string())?;
        let mut data = dek.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut data,
            )
            .map_err(|_| "wrapping the data key failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub(super) fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<[u8; 32], String> {
        let (nonce, ct) = wrapped
            .split_at_checked(NONCE_LEN)
            .ok_or("the wrapped data key is truncated")?;
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| "the wrapped data key is truncated".to_string())?;
        let mut data = ct.to_vec();
        let dek = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut data)
            .map_err(|_| {
                "the data key can't be unwrapped (wrong local key, or not this record's)"
                    .to_string()
            })?;
        dek.try_into()
            .map_err(|_| "the data key is not 32 bytes".to_string())
    }
}
