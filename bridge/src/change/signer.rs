//! The change-request signing key and its id, as one value that follows rotations in the
//! secret store (`signing.key` and `signing.key_id` may both be store references).
//!
//! A new key must come with a new id: verifiers find keys by id, and what the old key signed
//! must keep verifying under the old id. A rotation that changes the key and keeps the id, or
//! takes a revoked id, is refused and the old key stays in force.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ed25519_dalek::{SigningKey, VerifyingKey};
use slipway_infra::sync::lock;

use crate::config::Live;
use crate::config::gitops::GitOpsConfig;

/// The key new change requests are signed with, and the id they name.
pub(crate) struct Signer {
    pub key: SigningKey,
    pub id: String,
}

/// The signer, rebuilt from `signing.key` and `signing.key_id` when either rotates.
pub(crate) fn live(cfg: &GitOpsConfig) -> Result<Live<Signer>, String> {
    let revoked = cfg.signing_revoked.clone();
    // Every id this process has signed with, and the public key it named; plus the trusted.
    let seen: Mutex<BTreeMap<String, VerifyingKey>> =
        Mutex::new(cfg.signing_trusted.iter().cloned().collect());
    Live::new(
        "signing.key, signing.key_id",
        vec![cfg.signing_key.clone(), cfg.signing_key_id.clone()],
        move |v| {
            let key = slipway_core::change::parse_signing_key(&v[0])
                .map_err(|e| format!("change-request signing key (signing.key): {e}"))?;
            let id = build_id(&v[1], &revoked)?;
            let mut seen = lock(&seen);
            if seen.get(&id).is_some_and(|k| *k != key.verifying_key()) {
                return Err(format!(
                    "signing.key changed but its id `{id}` names another key already: rotate \
                     signing.key_id together with signing.key, so what the old key signed still \
                     verifies under its own id"
                ));
            }
            seen.insert(id.clone(), key.verifying_key());
            Ok(Signer { key, id })
        },
    )
}

fn build_id(id: &str, revoked: &[String]) -> Result<String, String> {
    let id = id.trim();
    if id.is_empty() {
        return Err("signing.key_id is empty".into());
    }
    if revoked.iter().any(|r| r == id) {
        return Err(format!(
            "the signing key id `{id}` is revoked (signing.revoked): rotate to a new id"
        ));
    }
    Ok(id.to_string())
}

/// What this bridge's own change requests (and Slack review markers) verify with: the trusted
/// ids, the current signer and those rotations replaced while this process ran, less the
/// revoked ids.
pub(crate) fn keyring(cfg: &GitOpsConfig, signer: &Live<Signer>) -> slipway_core::change::Keyring {
    let mut keys = cfg.signing_trusted.clone();
    keys.extend(
        signer
            .all()
            .iter()
            .map(|s| (s.id.clone(), s.key.verifying_key())),
    );
    slipway_core::change::Keyring::new(keys, cfg.signing_revoked.clone())
}
