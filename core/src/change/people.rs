//! The signed identity snapshot: the identity provider's people as the bridge knew them, for the
//! runner, which can't ask the directory. The bridge signs it with the change-request key and
//! commits each new one to the `slipway/identities` branch of the GitOps repository; the runner
//! judges a merge's quorum with the snapshot in force at the merge (the newest generated at or
//! before it, and not older than a bound, so an old snapshot can't be replayed).

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use super::{Signature, canonical, check_signature, signature_over};
use crate::policy::Identity;

/// The branch snapshots are committed to, and the file each commit holds.
pub const SNAPSHOT_BRANCH: &str = "slipway/identities";
pub const SNAPSHOT_FILE: &str = "identities.json";
pub const SNAPSHOT_VERSION: u32 = 1;

/// The directory's people at `generated_at`. No emails: only what judging a review needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    pub generated_at: DateTime<Utc>,
    /// `scim` or `google`.
    pub provider: String,
    pub people: Vec<SnapshotPerson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPerson {
    pub subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// `false` once the IdP deactivated them or Slack deactivated a linked account.
    pub active: bool,
}

impl Snapshot {
    fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        canonical(&serde_json::to_value(&unsigned).unwrap_or_default()).into_bytes()
    }

    /// Sign (replacing any signature) with the change-request key.
    #[must_use]
    pub fn signed(mut self, key: &SigningKey, key_id: &str) -> Self {
        self.signature = None;
        self.signature = Some(signature_over(&self.signing_bytes(), key, key_id));
        self
    }

    /// The version and the signature, against the keys the runner trusts.
    pub fn verify(&self, keys: &super::Keyring) -> Result<(), String> {
        if self.version != SNAPSHOT_VERSION {
            return Err(format!(
                "identity snapshot version {} is not supported",
                self.version
            ));
        }
        let sig = self
            .signature
            .as_ref()
            .ok_or("the identity snapshot is not signed")?;
        check_signature(sig, &self.signing_bytes(), keys).map_err(|e| match e {
            super::VerifyError::UnknownKey(k) => {
                format!("the identity snapshot is signed with unknown key `{k}`")
            }
            _ => "the identity snapshot's signature does not match its content".to_string(),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn from_json(text: &str) -> Result<Snapshot, String> {
        serde_json::from_str(text).map_err(|e| format!("the identity snapshot is malformed: {e}"))
    }

    /// The active person with this GitHub login (without case), as an identity to judge.
    pub fn by_github(&self, login: &str) -> Option<Identity> {
        let p = self.people.iter().find(|p| {
            p.active
                && p.github
                    .as_deref()
                    .is_some_and(|g| g.eq_ignore_ascii_case(login))
        })?;
        Some(Identity {
            subject: p.subject.clone(),
            email: None,
            name: None,
            github: p.github.clone(),
            groups: p.groups.clone(),
            default_cluster: None,
        })
    }
}

/// Among verified snapshots, the one in force at `at`: the newest generated at or before it,
/// and generated no more than `max_age` before it (the bridge re-signs one at least that often).
pub fn in_force_at(
    snapshots: &[Snapshot],
    at: DateTime<Utc>,
    max_age: chrono::Duration,
) -> Result<&Snapshot, String> {
    let best = snapshots
        .iter()
        .filter(|s| s.generated_at <= at)
        .max_by_key(|s| s.generated_at)
        .ok_or_else(|| format!("no identity snapshot was made at or before {at}"))?;
    if at - best.generated_at > max_age {
        return Err(format!(
            "the newest identity snapshot before {at} is from {}, older than the {} hours allowed",
            best.generated_at,
            max_age.num_hours()
        ));
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::change::Keyring;

    fn snapshot(at: DateTime<Utc>, gina_active: bool) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            generated_at: at,
            provider: "scim".into(),
            people: vec![SnapshotPerson {
                subject: "gina@example.com".into(),
                slack: vec!["U0GINA".into()],
                github: Some("gina-gh".into()),
                groups: vec!["approvers".into()],
                active: gina_active,
            }],
            signature: None,
        }
    }

    #[test]
    fn signed_snapshots_verify_and_any_edit_or_other_key_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let keys = Keyring::from(vec![("bridge".to_string(), key.verifying_key())]);
        let t = Utc.with_ymd_and_hms(2026, 12, 4, 6, 0, 0).unwrap();
        let s = snapshot(t, false).signed(&key, "bridge");
        s.verify(&keys).unwrap();
        let back = Snapshot::from_json(&s.to_json()).unwrap();
        back.verify(&keys).unwrap();
        let mut revived = back.clone();
        revived.people[0].active = true;
        assert!(
            revived
                .verify(&keys)
                .unwrap_err()
                .contains("does not match")
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        let forged = snapshot(t, true).signed(&other, "bridge");
        assert!(forged.verify(&keys).is_err());
        assert!(
            snapshot(t, true)
                .verify(&keys)
                .unwrap_err()
                .contains("not signed")
        );
        let unknown = snapshot(t, true).signed(&key, "someone");
        assert!(unknown.verify(&keys).unwrap_err().contains("unknown key"));
        assert_eq!(
            back.by_github("GINA-gh"),
            None,
            "inactive people judge nothing"
        );
        assert_eq!(
            snapshot(t, true).by_github("gina-gh").unwrap().groups,
            ["approvers"]
        );
    }

    #[test]
    fn the_snapshot_in_force_is_the_newest_before_the_merge_and_not_too_old() {
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0).unwrap();
        let all = vec![
            snapshot(t(1), true),
            snapshot(t(3), false),
            snapshot(t(9), true),
        ];
        let day = chrono::Duration::hours(24);
        assert!(!in_force_at(&all, t(5), day).unwrap().people[0].active);
        assert!(in_force_at(&all, t(2), day).unwrap().people[0].active);
        assert!(in_force_at(&all, t(0), day).is_err());
        assert!(in_force_at(&all, t(9), chrono::Duration::hours(0)).is_ok());
        assert!(
            in_force_at(&all[..1], t(5), chrono::Duration::hours(2))
                .unwrap_err()
                .contains("older than")
        );
    }
}
