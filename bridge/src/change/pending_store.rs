//! Changes between their ack and their PR. Each lives until it is used or its deadline passes
//! (`execution.pending_ttl`, 15 minutes by default): a dry run nobody confirms doesn't stay
//! forever.
//!
//! Embedded, they sit in this process. With Redis (issue 19) they sit in the shared Redis, so a
//! Confirm click load-balanced to another replica finds the dry run this one acked:
//! `<prefix>pending:<token>` holds the change as JSON and expires at its deadline (`PXAT`), and
//! taking one is a `GETDEL`, so a double click that reaches two replicas opens one PR.
//!
//! The ack that registers a dry run must not wait on Redis (its one round trip is the replay
//! gate's), so [`PendingChanges::insert`] keeps the change in a local staging map and writes it
//! to Redis on a blocking task; until the write lands, this replica answers from the map. Nobody
//! else can see the change before then, and its Confirm button is only posted after the dry run,
//! which runs after the write was started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use slipway_core::change::{PolicyBinding, Requester};
use slipway_core::command::{Family, Target, Tier};

use super::pending::Pending;
use crate::shared::blocking::Pool;

type Now = chrono::DateTime<chrono::Utc>;

/// Where pending changes live.
#[derive(Debug)]
pub enum PendingChanges {
    Embedded(Mutex<HashMap<String, Pending>>),
    Redis(Arc<Shared>),
}

impl Default for PendingChanges {
    fn default() -> Self {
        PendingChanges::Embedded(Mutex::default())
    }
}

/// The Redis side: the pool, the changes whose write has not landed yet, and the key that
/// seals what is written. Redis is shared with whoever can reach it: a change that was not
/// sealed by a replica (one planted or edited in Redis) is never confirmed.
pub struct Shared {
    pool: Pool,
    staged: Mutex<HashMap<String, Pending>>,
    mac_key: [u8; 32],
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// A stored change: its JSON and the HMAC-SHA256 over it.
#[derive(Serialize, Deserialize)]
struct Sealed {
    wire: String,
    mac: String,
}

fn mac_of(key: &[u8; 32], wire: &str) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac as _;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(wire.as_bytes());
    mac
}

/// The MAC key every replica derives from the change-request signing key they share, for this
/// one purpose (so a MAC never doubles as anything else).
pub fn mac_key(signing: &ed25519_dalek::SigningKey) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"slipway/pending-change-mac/v1\0");
    h.update(signing.to_bytes());
    h.finalize().into()
}

/// A [`Pending`] as stored: the command travels as its text and is parsed again on the way
/// back (the parser is pure), so the command AST needs no wire format of its own.
#[derive(Serialize, Deserialize)]
struct Wire {
    token: String,
    decision_audit_id: String,
    text: String,
    family: Family,
    argv: Vec<String>,
    target: Target,
    tier: Tier,
    resource: String,
    requester: Requester,
    policy: PolicyBinding,
    channel: String,
    response_url: String,
    expected_confirmation: Option<String>,
    confirmation: Option<String>,
    expires_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pinned_image: Option<super::artifact::PinnedImage>,
}

impl Wire {
    fn of(p: &Pending) -> Wire {
        Wire {
            token: p.token.clone(),
            decision_audit_id: p.decision_audit_id.clone(),
            text: p.text.clone(),
            family: p.family,
            argv: p.argv.clone(),
            target: p.target.clone(),
            tier: p.tier,
            resource: p.resource.clone(),
            requester: p.requester.clone(),
            policy: p.policy.clone(),
            channel: p.channel.clone(),
            response_url: p.response_url.clone(),
            expected_confirmation: p.expected_confirmation.clone(),
            confirmation: p.confirmation.clone(),
            expires_at: p.expires_at,
            pinned_image: p.pinned_image.clone(),
        }
    }

    /// Back to a change; `None` if its text no longer parses to the same family.
    fn pending(self) -> Option<Pending> {
        let parsed = slipway_core::command::parse_line(&self.text).ok()?;
        (parsed.family() == self.family).then_some(Pending {
            token: self.token,
            decision_audit_id: self.decision_audit_id,
            text: self.text,
            command: parsed.command,
            family: self.family,
            argv: self.argv,
            target: self.target,
            tier: self.tier,
            resource: self.resource,
            requester: self.requester,
            policy: self.policy,
            channel: self.channel,
            response_url: self.response_url,
            expected_confirmation: self.expected_confirmation,
            confirmation: self.confirmation,
            expires_at: self.expires_at,
            pinned_image: self.pinned_image,
            override_freeze: parsed.override_freeze,
        })
    }
}

/// A stored change, if a replica sealed it (constant-time check) and it still parses.
fn decode(key: &[u8; 32], raw: Option<String>) -> Option<Pending> {
    use hmac::Mac as _;
    let sealed: Sealed = serde_json::from_str(&raw?).ok().or_else(|| {
        tracing::error!("a shared pending change is not sealed; refused");
        None
    })?;
    let given = hex::decode(&sealed.mac).unwrap_or_default();
    if mac_of(key, &sealed.wire).verify_slice(&given).is_err() {
        tracing::error!(
            "a shared pending change's seal does not verify (written outside Slipway?); refused"
        );
        return None;
    }
    let wire: Wire = match serde_json::from_str(&sealed.wire) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "a shared pending change is unreadable; dropped");
            return None;
        }
    };
    wire.pending()
}

impl PendingChanges {
    /// Pending changes in the shared Redis.
    pub fn redis(pool: Pool, mac_key: [u8; 32]) -> PendingChanges {
        PendingChanges::Redis(Arc::new(Shared {
            pool,
            staged: Mutex::default(),
            mac_key,
        }))
    }

    /// Keep `p` until its deadline, dropping every change whose deadline has passed.
    pub fn insert(&self, p: Pending, now: Now) {
        match self {
            PendingChanges::Embedded(map) => {
                let mut map = slipway_infra::sync::lock(map);
                map.retain(|_, q| q.expires_at > now);
                map.insert(p.token.clone(), p);
            }
            PendingChanges::Redis(shared) => {
                if p.expires_at <= now {
                    return;
                }
                let token = p.token.clone();
                let mut staged = slipway_infra::sync::lock(&shared.staged);
                staged.retain(|_, q| q.expires_at > now);
                staged.insert(token.clone(), p);
                drop(staged);
                let shared = shared.clone();
                let write = move || shared.flush(&token);
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(write)),
                    Err(_) => write(),
                }
            }
        }
    }

    /// A copy of the live change `token`, which stays pending.
    pub fn get(&self, token: &str, now: Now) -> Option<Pending> {
        let found = match self {
            PendingChanges::Embedded(map) => slipway_infra::sync::lock(map).get(token).cloned(),
            PendingChanges::Redis(shared) => shared.get(token),
        };
        found.filter(|p| p.expires_at > now)
    }

    /// The live change `token`, no longer pending. With Redis this is one `GETDEL`: of two
    /// replicas taking the same change at once, one gets it.
    pub fn remove(&self, token: &str, now: Now) -> Option<Pending> {
        let found = match self {
            PendingChanges::Embedded(map) => slipway_infra::sync::lock(map).remove(token),
            PendingChanges::Redis(shared) => shared.take(token),
        };
        found.filter(|p| p.expires_at > now)
    }

    /// Shared only: the Redis key of `token`, for the ack's script to take it (`GETDEL`) in the
    /// same round trip as the slot it needs; and the change, if this replica still holds it
    /// unwritten (then there is nothing to take from Redis).
    pub fn shared_take(&self, token: &str) -> Option<(String, Option<Pending>)> {
        match self {
            PendingChanges::Embedded(_) => None,
            PendingChanges::Redis(shared) => {
                let staged = slipway_infra::sync::lock(&shared.staged).remove(token);
                Some((shared.key(token), staged))
            }
        }
    }

    /// A change as the ack's script took it from Redis; `None` if expired, unreadable or not
    /// sealed by a replica.
    pub fn taken(&self, raw: String, now: Now) -> Option<Pending> {
        match self {
            PendingChanges::Embedded(_) => None,
            PendingChanges::Redis(shared) => {
                decode(&shared.mac_key, Some(raw)).filter(|p| p.expires_at > now)
            }
        }
    }

    /// How many changes are pending (embedded: expired ones included until the next insert;
    /// shared: this replica's unwritten ones only).
    pub fn count(&self) -> usize {
        match self {
            PendingChanges::Embedded(map) => slipway_infra::sync::lock(map).len(),
            PendingChanges::Redis(shared) => slipway_infra::sync::lock(&shared.staged).len(),
        }
    }
}

impl Shared {
    fn key(&self, token: &str) -> String {
        self.pool.key(&format!("pending:{token}"))
    }

    /// Write a staged change to Redis, then unstage it. Taken meanwhile, it is deleted again.
    /// A failed write is retried a few times (a Redis blip must not leave the change visible
    /// to this replica only); after that it stays staged here until its deadline.
    fn flush(&self, token: &str) {
        let mut pause = std::time::Duration::from_millis(200);
        for attempt in 1..=4 {
            let Some(p) = slipway_infra::sync::lock(&self.staged).get(token).cloned() else {
                return;
            };
            match self.write(token, &p) {
                Ok(()) => break,
                Err(e) if attempt == 4 => {
                    tracing::error!(error = %e, token, "sharing a pending change failed; only this replica has it");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, token, attempt, "sharing a pending change; retrying");
                }
            }
            std::thread::sleep(pause);
            pause *= 2;
        }
        let still = slipway_infra::sync::lock(&self.staged)
            .remove(token)
            .is_some();
        if !still {
            let key = self.key(token);
            let _ = self.pool.run(|c| redis::cmd("DEL").arg(&key).exec(c));
        }
    }

    fn write(&self, token: &str, p: &Pending) -> Result<(), String> {
        let key = self.key(token);
        let wire = serde_json::to_string(&Wire::of(p)).map_err(|e| e.to_string())?;
        let mac = hex::encode(hmac::Mac::finalize(mac_of(&self.mac_key, &wire)).into_bytes());
        let json = serde_json::to_string(&Sealed { wire, mac }).map_err(|e| e.to_string())?;
        let at = u64::try_from(p.expires_at.timestamp_millis()).unwrap_or(0);
        self.pool
            .run(|c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(json)
                    .arg("PXAT")
                    .arg(at)
                    .exec(c)
            })
            .map_err(|e| e.to_string())
    }

    fn get(&self, token: &str) -> Option<Pending> {
        if let Some(p) = slipway_infra::sync::lock(&self.staged).get(token) {
            return Some(p.clone());
        }
        let key = self.key(token);
        match self.pool.run(|c| redis::cmd("GET").arg(&key).query(c)) {
            Ok(raw) => decode(&self.mac_key, raw),
            Err(e) => {
                tracing::error!(error = %e, "reading a pending change");
                None
            }
        }
    }

    fn take(&self, token: &str) -> Option<Pending> {
        if let Some(p) = slipway_infra::sync::lock(&self.staged).remove(token) {
            return Some(p);
        }
        let key = self.key(token);
        match self.pool.run(|c| redis::cmd("GETDEL").arg(&key).query(c)) {
            Ok(raw) => decode(&self.mac_key, raw),
            Err(e) => {
                tracing::error!(error = %e, "taking a pending change");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use slipway_core::change::ApprovalRequirement;
    use slipway_core::command::Namespace;
    use slipway_core::policy::model::ApproveIn;

    use super::*;
    use crate::shared::test_server::TestRedis;

    fn sample(token: &str, expires_at: Now) -> Pending {
        let parsed = slipway_core::command::parse_line(
            "/kubectl @staging scale deploy/api --replicas=3 -n web",
        )
        .unwrap();
        Pending {
            token: token.into(),
            decision_audit_id: "ev-1".into(),
            text: parsed.text.clone(),
            family: parsed.family(),
            argv: parsed.argv().unwrap_or_default(),
            command: parsed.command,
            target: Target::Cluster {
                cluster: Some("staging".into()),
                namespace: Namespace::Named("web".into()),
            },
            tier: Tier::Change,
            resource: "kube:staging/web".into(),
            requester: Requester {
                slack_user_id: "U1".into(),
                slack_team_id: Some("T1".into()),
                slack_enterprise_id: None,
                subject: "ada".into(),
                email: None,
                github_login: None,
                role: "operator".into(),
                groups: vec!["ops".into()],
            },
            policy: PolicyBinding {
                rule: "r".into(),
                approval: ApprovalRequirement {
                    rule: "standard".into(),
                    approvers: 1,
                    groups: vec!["approvers".into()],
                    approve_in: ApproveIn::Slack,
                    expires_after_secs: 60,
                    all_of: Vec::new(),
                },
            },
            channel: "C1".into(),
            response_url: "https://hooks.slack.test/r".into(),
            expected_confirmation: None,
            confirmation: None,
            expires_at,
            pinned_image: None,
            override_freeze: None,
        }
    }

    /// The same checks for both: live changes are found, taken once, and expire.
    fn exercise(a: &PendingChanges, b: &PendingChanges) {
        let now = chrono::Utc::now();
        let later = now + chrono::Duration::minutes(15);
        a.insert(sample("t1", later), now);
        let got = b.get("t1", now).expect("seen from the other side");
        assert_eq!(got.text, sample("t1", later).text);
        assert_eq!(got.command, sample("t1", later).command);
        assert_eq!(got.expires_at.timestamp_millis(), later.timestamp_millis());
        assert!(b.get("t1", later).is_none(), "expired at its deadline");
        assert!(b.remove("t1", now).is_some());
        assert!(a.remove("t1", now).is_none(), "taken once");
        assert!(a.get("t1", now).is_none());
        a.insert(sample("t2", now), now);
        assert!(b.get("t2", now).is_none(), "already expired");
    }

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_change_planted_or_edited_in_redis_is_never_taken() {
        let server = TestRedis::start();
        let now = chrono::Utc::now();
        let later = now + chrono::Duration::minutes(5);
        let a = PendingChanges::redis(Pool::new(server.config("slipway:")), KEY);
        a.insert(sample("t4", later), now);
        let PendingChanges::Redis(shared) = &a else {
            unreachable!()
        };
        let stored: String = shared
            .pool
            .run(|c| redis::cmd("GET").arg(shared.key("t4")).query(c))
            .unwrap();
        assert!(
            a.taken(stored.clone(), now).is_some(),
            "sealed by a replica"
        );
        // Edited: another requester in the same wire; the seal no longer verifies.
        let edited = stored.replace(r#"\"subject\":\"ada\""#, r#"\"subject\":\"eve\""#);
        assert_ne!(edited, stored);
        assert!(a.taken(edited, now).is_none());
        // Planted: a bare wire, or one sealed with a key no replica holds.
        let sealed: Sealed = serde_json::from_str(&stored).unwrap();
        assert!(a.taken(sealed.wire.clone(), now).is_none());
        let other = PendingChanges::redis(Pool::new(server.config("slipway:")), [9; 32]);
        assert!(other.taken(stored, now).is_none());
    }

    #[test]
    fn embedded_pending_changes() {
        let p = PendingChanges::default();
        exercise(&p, &p);
    }

    #[test]
    fn a_dry_run_kept_by_one_replica_is_confirmed_on_another() {
        let server = TestRedis::start();
        let a = PendingChanges::redis(Pool::new(server.config("slipway:")), KEY);
        let b = PendingChanges::redis(Pool::new(server.config("slipway:")), KEY);
        exercise(&a, &b);
    }

    #[test]
    fn a_double_click_reaching_two_replicas_takes_the_change_once() {
        let server = TestRedis::start();
        let now = chrono::Utc::now();
        let a = PendingChanges::redis(Pool::new(server.config("slipway:")), KEY);
        a.insert(sample("t3", now + chrono::Duration::minutes(5)), now);
        assert_eq!(a.count(), 0, "written through (no runtime here)");
        let taken: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let r = PendingChanges::redis(Pool::new(server.config("slipway:")), KEY);
                    scope.spawn(move || usize::from(r.remove("t3", now).is_some()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 1);
    }
}
