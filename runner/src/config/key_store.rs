//! `key_store`: the bridge's public keys and revocations published in Vault / OpenBao, read by
//! each run with the job's own OIDC token (JWT auth), so a leaked bridge key can be revoked for
//! every runner at once, without editing each runner's configuration:
//!
//! ```yaml
//! key_store:
//!   address: https://vault.internal:8200
//!   role: slipway-runner            # a JWT-auth role bound to this repository's workflow
//!   # mount: jwt                    # where JWT auth is mounted
//!   # audience: vault               # the OIDC token's audience the role expects
//!   path: secret/data/slipway/runner-keys   # KV v2: `<key id>: <public key>` fields and
//!                                           # `revoked: "id1,id2"`
//! ```
//!
//! The store adds keys and revocations to the file's; it can't take one away, and a key id the
//! two give different keys for is refused. A store that can't be read stops the run.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where the keys are published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyStoreConfig {
    pub address: String,
    pub role: String,
    #[serde(default = "default_mount")]
    pub mount: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// A KV v2 document (`<mount>/data/<path>`).
    pub path: String,
}

fn default_mount() -> String {
    "jwt".into()
}

fn default_audience() -> String {
    "vault".into()
}

/// The field of the document that lists revoked ids.
pub const REVOKED: &str = "revoked";

/// The file's keys and revocations with the store's added.
pub fn merge(
    keys: &BTreeMap<String, String>,
    revoked: &[String],
    store: &serde_json::Map<String, serde_json::Value>,
) -> Result<(BTreeMap<String, String>, Vec<String>), String> {
    let mut keys = keys.clone();
    let mut revoked = revoked.to_vec();
    for (id, value) in store {
        let Some(text) = value.as_str() else {
            return Err(format!("key_store: `{id}` is not a string"));
        };
        if id == REVOKED {
            revoked.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            continue;
        }
        match keys.get(id) {
            Some(mine) if mine.trim() != text.trim() => {
                return Err(format!(
                    "key id `{id}` has one key in `keys` and another in the key store: refusing \
                     to guess which one signs; fix whichever is wrong"
                ));
            }
            Some(_) => {}
            None => {
                keys.insert(id.clone(), text.to_string());
            }
        }
    }
    revoked.sort();
    revoked.dedup();
    Ok((keys, revoked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_adds_keys_and_revocations_and_never_replaces_a_key() {
        let file = BTreeMap::from([("bridge-2026".to_string(), "aa".to_string())]);
        let store = serde_json::json!({"bridge-2027": "bb", "revoked": "bridge-2026, bridge-2025"});
        let (keys, revoked) = merge(&file, &["old".into()], store.as_object().unwrap()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(revoked, ["bridge-2025", "bridge-2026", "old"]);
        let clash = serde_json::json!({"bridge-2026": "cc"});
        let e = merge(&file, &[], clash.as_object().unwrap()).unwrap_err();
        assert!(e.contains("another in the key store"), "{e}");
        let bad = serde_json::json!({"bridge-2028": 7});
        assert!(merge(&file, &[], bad.as_object().unwrap()).is_err());
    }
}
