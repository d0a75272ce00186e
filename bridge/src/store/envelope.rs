//! Envelope encryption of secret state (people's linked tokens today). Each record is sealed
//! with its own AES-256-GCM data key; the data key is wrapped by AWS KMS, by Vault / OpenBao
//! Transit, or by the local key (`github.token_key`, the embedded default), always under an
//! encryption context naming the record's kind, its owner and its generation, so a row copied
//! to another person or kind does not open.
//!
//! Row format v3: `3 ‖ generation (8) ‖ scheme (1) ‖ wrapped length (2) ‖ wrapped key ‖ nonce ‖
//! ciphertext+tag`. Rows of the older v2 format (sealed directly with the local key) still
//! open, and come back re-sealed. A row whose key is wrapped under anything but the current
//! wrapping (another scheme, an older KMS key, an older Transit version) opens with what
//! wrapped it and comes back re-wrapped: rotation is lazy, one record as it is read.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use slipway_infra::secret_store::kms::Kms;
use slipway_infra::secret_store::vault::Vault;

use crate::config::{EnvelopeConfig, Live, Wrapping};

mod local;
mod wrap;
pub use local::TokenKey;

const SEALED_V3: u8 = 3;

/// What a record is and whose: bound into every seal.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// `github-token`…
    pub kind: &'static str,
    /// The Slack user the record belongs to.
    pub subject: &'a str,
    /// Bumped at each re-link, so an older row put back doesn't open.
    pub generation: u64,
}

impl Context<'_> {
    fn aad(&self) -> String {
        format!(
            "slipway/{}/v3/{}/{}",
            self.kind, self.subject, self.generation
        )
    }

    fn kms(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("slipway:kind".to_string(), self.kind.to_string()),
            ("slipway:slack_user".to_string(), self.subject.to_string()),
            (
                "slipway:generation".to_string(),
                self.generation.to_string(),
            ),
        ])
    }
}

/// A record's plaintext, and the row to write back when it was sealed the old way.
#[derive(Debug)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    pub rewrapped: Option<Vec<u8>>,
}

/// The wrappings this bridge can use, and the one new records get.
pub struct Envelope {
    current: Wrapping,
    /// Follows `github.token_key`'s rotations; rows wrapped by a key it replaced still open
    /// and are re-wrapped under the new one.
    local: Option<Live<TokenKey>>,
    kms: Option<(Kms, tokio::sync::OnceCell<String>)>,
    transit: Option<(Vault, String, String)>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// From the configuration; `local` is the local key, if one is set.
    pub fn new(local: Option<Live<TokenKey>>, cfg: &EnvelopeConfig) -> Result<Envelope, String> {
        let kms = cfg.kms_key_id.as_ref().map(|id| {
            (
                Kms::new(cfg.stores.aws.clone().unwrap_or_default(), id.clone()),
                tokio::sync::OnceCell::default(),
            )
        });
        let transit = match &cfg.transit {
            Some((mount, key)) => {
                let settings = cfg.stores.vault.clone().ok_or(
                    "secrets.envelope.transit_key needs the `secrets.vault` section (address and login)",
                )?;
                let vault = Vault::new(settings).map_err(|e| e.to_string())?;
                Some((vault, mount.clone(), key.clone()))
            }
            None => None,
        };
        Ok(Envelope {
            current: cfg.wrapping,
            local,
            kms,
            transit,
        })
    }

    /// New records' keys from `kms` (a client made elsewhere, with its own credentials); rows
    /// wrapped by `local` still open.
    pub fn with_kms(local: Option<TokenKey>, kms: Kms) -> Envelope {
        Envelope {
            current: Wrapping::Kms,
            local: local.map(Live::fixed),
            kms: Some((kms, tokio::sync::OnceCell::new())),
            transit: None,
        }
    }

    /// Only the local key (tests, and bridges without a key service).
    pub fn local(key: TokenKey) -> Envelope {
        Envelope {
            current: Wrapping::Local,
            local: Some(Live::fixed(key)),
            kms: None,
            transit: None,
        }
    }

    /// Whether records can be sealed at all.
    pub fn enabled(&self) -> bool {
        match self.current {
            Wrapping::Local => self.local.is_some(),
            Wrapping::Kms => self.kms.is_some(),
            Wrapping::Transit => self.transit.is_some(),
        }
    }

    /// Seal `plaintext` as `ctx` under a fresh data key wrapped the current way.
    pub async fn seal(&self, ctx: Context<'_>, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let (dek, wrapped) = self.new_data_key(ctx).await?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_string())?;
        let mut data = plaintext.to_vec();
        aead(&dek)?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row_aad(ctx, self.current)),
                &mut data,
            )
            .map_err(|_| "sealing the record failed".to_string())?;
        Ok(row(ctx.generation, self.current, &wrapped, &nonce, &data))
    }

    /// Open a row sealed as `ctx`.
    pub async fn open(&self, ctx: Context<'_>, sealed: &[u8]) -> Result<Opened, String> {
        if sealed.first() == Some(&local::SEALED_V2) {
            let keys = self.local.as_ref().ok_or(
                "the stored record was sealed with the local key (github.token_key), which is no longer set",
            )?;
            let plaintext = first_ok(&keys.all(), |key| {
                key.open_v2(ctx.subject, ctx.generation, sealed)
            })?;
            let rewrapped = Some(self.seal(ctx, &plaintext).await?);
            return Ok(Opened {
                plaintext,
                rewrapped,
            });
        }
        let parts = Parts::parse(sealed)?;
        if parts.generation != ctx.generation {
            return Err(format!(
                "the stored token is from link {}, not the current {}: it was rolled back, so it is refused; run `/slipway link github` again",
                parts.generation, ctx.generation
            ));
        }
        let (dek, newer) = self.unwrap(ctx, parts.scheme, parts.wrapped).await?;
        let mut data = parts.data.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(parts.nonce)
            .map_err(|_| "the stored record is truncated".to_string())?;
        let plaintext = aead(&dek)?
            .open_in_place(nonce, Aad::from(row_aad(ctx, parts.scheme)), &mut data)
            .map_err(|_| {
                "the stored record can't be decrypted (wrong key, or not this person's)".to_string()
            })?
            .to_vec();
        let rewrapped = match newer {
            Some(wrapped) => Some(row(
                ctx.generation,
                parts.scheme,
                &wrapped,
                parts.nonce,
                parts.data,
            )),
            None if parts.scheme != self.current => Some(self.seal(ctx, &plaintext).await?),
            None => None,
        };
        Ok(Opened {
            plaintext,
            rewrapped,
        })
    }
}

/// The first key's success, else the newest key's error.
pub(super) fn first_ok<K, T>(
    keys: &[std::sync::Arc<K>],
    f: impl Fn(&K) -> Result<T, String>,
) -> Result<T, String> {
    let mut first_error = None;
    for key in keys {
        match f(key) {
            Ok(v) => return Ok(v),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "no key to open the record with".into()))
}

fn aead(dek: &[u8; 32]) -> Result<LessSafeKey, String> {
    let key = UnboundKey::new(&AES_256_GCM, dek).map_err(|_| "a bad data key".to_string())?;
    Ok(LessSafeKey::new(key))
}

/// The data's associated data: the context and the scheme (a row can't be relabelled).
fn row_aad(ctx: Context<'_>, scheme: Wrapping) -> Vec<u8> {
    format!("{}/{}", ctx.aad(), scheme.byte()).into_bytes()
}

fn row(generation: u64, scheme: Wrapping, wrapped: &[u8], nonce: &[u8], data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(wrapped.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(12 + wrapped.len() + nonce.len() + data.len());
    out.push(SEALED_V3);
    out.extend_from_slice(&generation.to_be_bytes());
    out.push(scheme.byte());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&wrapped[..usize::from(len)]);
    out.extend_from_slice(nonce);
    out.extend_from_slice(data);
    out
}

/// A v3 row's fields.
struct Parts<'a> {
    generation: u64,
    scheme: Wrapping,
    wrapped: &'a [u8],
    nonce: &'a [u8],
    data: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Parts<'a>, String> {
        let truncated = || "the stored record is truncated".to_string();
        let Some((&SEALED_V3, rest)) = sealed.split_first() else {
            return Err(
                "the stored token has an old or unknown format; run `/slipway link github` again"
                    .into(),
            );
        };
        let (generation, rest) = rest.split_at_checked(8).ok_or_else(truncated)?;
        let (scheme, rest) = rest.split_first().ok_or_else(truncated)?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (wrapped, rest) = rest.split_at_checked(len).ok_or_else(truncated)?;
        let (nonce, data) = rest.split_at_checked(NONCE_LEN).ok_or_else(truncated)?;
        Ok(Parts {
            generation: u64::from_be_bytes(generation.try_into().map_err(|_| truncated())?),
            scheme: Wrapping::from_byte(*scheme)
                .ok_or("the stored record names an unknown key wrapping")?,
            wrapped,
            nonce,
            data,
        })
    }
}

#[cfg(test)]
mod tests;
