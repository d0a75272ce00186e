//! Logins between `/slipway link sso` and the provider's callback. Each is bound to the Slack
//! user who asked, used at most once, and gone after [`TTL_SECS`]. A Slack user has at most one:
//! asking again replaces it, so the store is bounded by the number of people. Embedded they are
//! in this process ([`Local`]); with replicas, in the shared Redis (`pending_shared`),
//! since the browser's requests may reach any replica.
//!
//! Only a SHA-256 digest of each `state` is kept, and a callback's state is compared with every
//! pending digest in constant time, so neither the map nor the comparison tells anything about
//! a state the caller doesn't already have.

use std::collections::HashMap;
use std::sync::Mutex;

use openidconnect::{Nonce, PkceCodeChallenge, PkceCodeVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// How long a login link works.
pub const TTL_SECS: i64 = 10 * 60;

/// One login in progress. `Debug` shows none of its secrets (the verifier and the nonce print
/// redacted; the response URL is a [`Secret`]).
#[derive(Debug)]
pub struct Flow {
    pub slack_user: String,
    /// Where to confirm in Slack (the command's `response_url`), if Slack gave one.
    pub response_url: Secret,
    pub verifier: PkceCodeVerifier,
    pub challenge: PkceCodeChallenge,
    pub nonce: Nonce,
    /// Unix seconds.
    pub issued: i64,
}

/// Why a state was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Never issued, already used, or replaced by a newer request.
    Unknown,
    Expired,
    /// The shared state (Redis) can't be reached to look.
    Unavailable,
}

#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    flow: Flow,
}

/// The logins in progress in this process, by Slack user.
#[derive(Debug, Default)]
pub struct Local(Mutex<HashMap<String, Entry>>);

fn digest(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// The state's digest as a key: the state itself is never stored.
pub(super) fn hex_digest(state: &str) -> String {
    hex::encode(digest(state))
}

pub(super) fn expired(flow: &Flow, now: i64) -> bool {
    now - flow.issued >= TTL_SECS || now < flow.issued - 60
}

impl Local {
    /// Keep `flow` under `state`, replacing the Slack user's earlier one; expired ones go.
    pub fn insert(&self, state: &str, flow: Flow, now: i64) {
        let mut map = slipway_infra::sync::lock(&self.0);
        map.retain(|_, e| !expired(&e.flow, now));
        map.insert(
            flow.slack_user.clone(),
            Entry {
                digest: digest(state),
                flow,
            },
        );
    }

    /// The Slack user whose pending login `state` is (constant-time per comparison).
    fn owner(map: &HashMap<String, Entry>, state: &str) -> Option<String> {
        let d = digest(state);
        map.iter()
            .find(|(_, e)| bool::from(e.digest.ct_eq(&d)))
            .map(|(user, _)| user.clone())
    }

    /// What the authorization request needs (challenge and nonce), leaving the login pending.
    pub fn peek(&self, state: &str, now: i64) -> Result<(PkceCodeChallenge, Nonce), Refusal> {
        let map = slipway_infra::sync::lock(&self.0);
        let user = Self::owner(&map, state).ok_or(Refusal::Unknown)?;
        let flow = &map.get(&user).ok_or(Refusal::Unknown)?.flow;
        if expired(flow, now) {
            return Err(Refusal::Expired);
        }
        Ok((flow.challenge.clone(), flow.nonce.clone()))
    }

    /// Take the login out: whatever happens next, this state can't be used again.
    pub fn take(&self, state: &str, now: i64) -> Result<Flow, Refusal> {
        let mut map = slipway_infra::sync::lock(&self.0);
        let user = Self::owner(&map, state).ok_or(Refusal::Unknown)?;
        let flow = map.remove(&user).ok_or(Refusal::Unknown)?.flow;
        if expired(&flow, now) {
            return Err(Refusal::Expired);
        }
        Ok(flow)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    impl Local {
        fn len(&self) -> usize {
            slipway_infra::sync::lock(&self.0).len()
        }
    }

    pub(crate) fn flow(user: &str, issued: i64) -> Flow {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        Flow {
            slack_user: user.into(),
            response_url: Secret::new("https://hooks.slack.com/commands/T/1/secret"),
            verifier,
            challenge,
            nonce: Nonce::new_random(),
            issued,
        }
    }

    #[test]
    fn a_state_works_once_for_the_user_it_was_issued_to() {
        let p = Local::default();
        p.insert("state-a", flow("U0ADA", 100), 100);
        p.insert("state-b", flow("U0BOB", 100), 100);
        assert!(p.peek("state-a", 101).is_ok(), "peeking leaves it pending");
        assert_eq!(p.take("state-a", 102).unwrap().slack_user, "U0ADA");
        assert_eq!(p.take("state-a", 103).unwrap_err(), Refusal::Unknown);
        assert_eq!(p.take("nonsense", 103).unwrap_err(), Refusal::Unknown);
        assert_eq!(p.take("", 103).unwrap_err(), Refusal::Unknown);
        assert_eq!(p.take("state-b", 104).unwrap().slack_user, "U0BOB");
    }

    #[test]
    fn links_expire_and_a_new_request_replaces_the_old() {
        let p = Local::default();
        p.insert("old", flow("U0ADA", 0), 0);
        p.insert("new", flow("U0ADA", 10), 10);
        assert_eq!(p.len(), 1);
        assert_eq!(p.take("old", 11).unwrap_err(), Refusal::Unknown);
        p.insert("late", flow("U0ADA", 0), 0);
        assert_eq!(p.peek("late", TTL_SECS).unwrap_err(), Refusal::Expired);
        assert_eq!(p.take("late", TTL_SECS).unwrap_err(), Refusal::Expired);
        assert_eq!(p.len(), 0, "an expired state is gone once tried");
        p.insert("x", flow("U0ADA", 0), 0);
        p.insert("y", flow("U0BOB", TTL_SECS + 1), TTL_SECS + 1);
        assert_eq!(p.len(), 1, "an insert sweeps expired logins");
    }

    #[test]
    fn debug_shows_no_secret() {
        let f = flow("U0ADA", 0);
        let verifier = f.verifier.secret().clone();
        let nonce = f.nonce.secret().clone();
        let shown = format!("{f:?}");
        assert!(!shown.contains(&verifier), "{shown}");
        assert!(!shown.contains(&nonce), "{shown}");
        assert!(!shown.contains("hooks.slack.com"), "{shown}");
    }
}
