//! Data keys: made and wrapped the current way, unwrapped the way a row says, and re-wrapped
//! when that is not the current way any more.

use super::{Context, Envelope};
use crate::config::Wrapping;

impl Envelope {
    /// A fresh data key and its wrapped form.
    pub(super) async fn new_data_key(
        &self,
        ctx: Context<'_>,
    ) -> Result<([u8; 32], Vec<u8>), String> {
        match self.current {
            Wrapping::Local => {
                let key = self.local.as_ref().ok_or(NO_LOCAL_KEY)?.get();
                let mut dek = [0u8; 32];
                aws_lc_rs::rand::fill(&mut dek)
                    .map_err(|_| "no randomness for a data key".to_string())?;
                Ok((dek, key.wrap(&dek, ctx.aad().as_bytes())?))
            }
            Wrapping::Kms => {
                let (kms, _) = self.kms.as_ref().ok_or("no KMS key is configured")?;
                let k = kms.generate(&ctx.kms()).await.map_err(|e| e.to_string())?;
                Ok((k.plaintext, k.wrapped))
            }
            Wrapping::Transit => {
                let (vault, mount, key) = self
                    .transit
                    .as_ref()
                    .ok_or("no Transit key is configured")?;
                let (dek, ct) = vault
                    .transit_datakey(mount, key, &ctx.aad())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((dek, ct.into_bytes()))
            }
        }
    }

    /// The data key of a row wrapped by `scheme`, and its wrapping under the current key when
    /// the row's is older (same scheme, rotated key).
    pub(super) async fn unwrap(
        &self,
        ctx: Context<'_>,
        scheme: Wrapping,
        wrapped: &[u8],
    ) -> Result<([u8; 32], Option<Vec<u8>>), String> {
        match scheme {
            Wrapping::Local => self.unwrap_local(ctx, wrapped),
            Wrapping::Kms => self.unwrap_kms(ctx, wrapped).await,
            Wrapping::Transit => self.unwrap_transit(ctx, wrapped).await,
        }
    }

    /// Tries the current local key, then those rotations replaced; a row opened by an older
    /// one gets its data key wrapped under the current one.
    fn unwrap_local(
        &self,
        ctx: Context<'_>,
        wrapped: &[u8],
    ) -> Result<([u8; 32], Option<Vec<u8>>), String> {
        let keys = self.local.as_ref().ok_or(NO_LOCAL_KEY)?.all();
        let aad = ctx.aad();
        let mut first_error = None;
        for (n, key) in keys.iter().enumerate() {
            match key.unwrap(wrapped, aad.as_bytes()) {
                Ok(dek) if n > 0 && self.current == Wrapping::Local => {
                    return Ok((dek, Some(keys[0].wrap(&dek, aad.as_bytes())?)));
                }
                Ok(dek) => return Ok((dek, None)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| NO_LOCAL_KEY.to_string()))
    }

    async fn unwrap_kms(
        &self,
        ctx: Context<'_>,
        wrapped: &[u8],
    ) -> Result<([u8; 32], Option<Vec<u8>>), String> {
        let (kms, current_arn) = self.kms.as_ref().ok_or(
            "the stored record's key is wrapped by AWS KMS, and no KMS key is configured \
             (secrets.envelope.kms_key_id)",
        )?;
        let context = ctx.kms();
        let (dek, arn) = kms
            .decrypt(wrapped, &context)
            .await
            .map_err(|e| e.to_string())?;
        if self.current != Wrapping::Kms {
            return Ok((dek, None));
        }
        let current = current_arn
            .get_or_try_init(|| kms.key_arn())
            .await
            .map_err(|e| e.to_string())?;
        if arn == *current {
            return Ok((dek, None));
        }
        let (rewrapped, _) = kms
            .encrypt(&dek, &context)
            .await
            .map_err(|e| e.to_string())?;
        Ok((dek, Some(rewrapped)))
    }

    async fn unwrap_transit(
        &self,
        ctx: Context<'_>,
        wrapped: &[u8],
    ) -> Result<([u8; 32], Option<Vec<u8>>), String> {
        let (vault, mount, key) = self.transit.as_ref().ok_or(
            "the stored record's key is wrapped by Vault Transit, and no Transit key is configured \
             (secrets.envelope.transit_key)",
        )?;
        let ciphertext =
            std::str::from_utf8(wrapped).map_err(|_| "the wrapped data key is damaged")?;
        let aad = ctx.aad();
        let dek = vault
            .transit_decrypt(mount, key, ciphertext, &aad)
            .await
            .map_err(|e| e.to_string())?;
        if self.current != Wrapping::Transit {
            return Ok((dek, None));
        }
        let version = ciphertext
            .strip_prefix("vault:v")
            .and_then(|r| r.split(':').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let latest = vault
            .transit_latest_version(mount, key)
            .await
            .map_err(|e| e.to_string())?;
        if version >= latest {
            return Ok((dek, None));
        }
        let rewrapped = vault
            .transit_rewrap(mount, key, ciphertext, &aad)
            .await
            .map_err(|e| e.to_string())?;
        Ok((dek, Some(rewrapped.into_bytes())))
    }
}

const NO_LOCAL_KEY: &str =
    "no local key is configured (SLIPWAY_TOKEN_KEY / github.token_key), so records can't be sealed";
