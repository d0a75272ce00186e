//! Slack request signing (v0): `v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`, a 5-minute
//! window, a constant-time compare, and a replay cache so a captured request can't be sent twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now.
pub const WINDOW_SECS: i64 = 5 * 60;

/// The shortest signing secret accepted. Slack's are 32 hex characters; anything much shorter
/// (above all an empty one, which anybody can sign with) is a configuration mistake.
pub const MIN_SECRET_BYTES: usize = crate::config::keys::MIN_HMAC_KEY_BYTES;

/// Why a request was rejected. Never shown to the caller (they get a bare 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Stale,
    BadSignature,
    Replayed,
    /// The bridge has no usable key: nothing can be verified, so nothing is accepted.
    NoSecret,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Stale => "stale",
            Rejection::BadSignature => "bad_signature",
            Rejection::Replayed => "replayed",
            Rejection::NoSecret => "no_secret",
        }
    }
}

/// A MAC that checked out, and the timestamp it covers: the replay cache's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The decoded MAC. Keying on bytes, not header text, means `v0=ABC…` and `v0=abc…` are
    /// one request.
    pub mac: [u8; 32],
    pub timestamp: i64,
}

fn base_string_mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The signature Slack would send for this body.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mac = base_string_mac(secret, timestamp, body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// HMAC accepts keys of any length; this only satisfies the type.
fn unreachable_hmac() -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(b"k")
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Check a signature against the secret and clock. Constant-time on the MAC. An empty secret
/// verifies nothing: anyone can compute a MAC under it.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, Rejection> {
    if secret.is_empty() {
        return Err(Rejection::NoSecret);
    }
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(Rejection::Missing);
    };
    let ts_num: i64 = ts.parse().map_err(|_| Rejection::Missing)?;
    if (now - ts_num).abs() > WINDOW_SECS {
        return Err(Rejection::Stale);
    }
    let Some(hex_sig) = sig.strip_prefix("v0=") else {
        return Err(Rejection::BadSignature);
    };
    let mut given = [0u8; 32];
    if hex::decode_to_slice(hex_sig, &mut given).is_err() {
        return Err(Rejection::BadSignature);
    }
    base_string_mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| Rejection::BadSignature)?;
    Ok(Verified {
        mac: given,
        timestamp: ts_num,
    })
}

/// Width of one replay-cache bucket, in seconds of request timestamp.
const BUCKET_SECS: i64 = 30;

/// MACs of accepted requests, in buckets by their signed timestamp. A request is only valid
/// while its timestamp is within [`WINDOW_SECS`] of now, so a bucket whose whole span is older
/// than that can never match again and is dropped whole. Each check touches one bucket, and
/// memory holds at most the requests signed in the last ten minutes (five either side of now).
#[derive(Debug, Default)]
pub struct ReplayCache {
    buckets: Mutex<BTreeMap<i64, HashSet<[u8; 32]>>>,
}

impl ReplayCache {
    /// Record a verified request; `false` if the same MAC was already accepted.
    pub fn first_time(&self, seen: &Verified, now: i64) -> bool {
        let mut buckets = slipway_infra::sync::lock(&self.buckets);
        // Buckets whose newest timestamp is already stale; at most one or two per call.
        let oldest_live = (now - WINDOW_SECS).div_euclid(BUCKET_SECS);
        while let Some(entry) = buckets.first_entry() {
            if *entry.key() >= oldest_live {
                break;
            }
            entry.remove();
        }
        // The MAC covers the timestamp, so one MAC only ever lives in its timestamp's bucket.
        buckets
            .entry(seen.timestamp.div_euclid(BUCKET_SECS))
            .or_default()
            .insert(seen.mac)
    }

    /// MACs held, for tests and metrics.
    pub fn len(&self) -> usize {
        slipway_infra::sync::lock(&self.buckets)
            .values()
            .map(HashSet::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test";

    #[test]
    fn signs_like_slack() {
        // Slack's documented example.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(secret, "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let ok = verify(
            secret,
            Some("1531420618"),
            Some("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
            body,
            1_531_420_618 + 10,
        )
        .unwrap();
        assert_eq!(ok.timestamp, 1_531_420_618);
    }

    #[test]
    fn rejects() {
        let s = SECRET;
        let sig = sign(s, "1000", b"body");
        assert!(verify(s, Some("1000"), Some(&sig), b"body", 1000).is_ok());
        assert_eq!(
            verify(s, Some("1000"), Some(&sig), b"bodx", 1000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(b"other", Some("1000"), Some(&sig), b"body", 1000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(s, Some("1000"), Some(&sig), b"body", 1000 + WINDOW_SECS + 1),
            Err(Rejection::Stale)
        );
        assert_eq!(
            verify(s, None, Some(&sig), b"body", 1000),
            Err(Rejection::Missing)
        );
        assert_eq!(
            verify(s, Some("1000"), Some("v1=abc"), b"body", 1000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            verify(s, Some("1000"), Some("v0=zz"), b"body", 1000),
            Err(Rejection::BadSignature)
        );
        let cache = ReplayCache::default();
        let seen = verify(s, Some("1000"), Some(&sig), b"body", 1000).unwrap();
        assert!(cache.first_time(&seen, 1000));
        assert!(!cache.first_time(&seen, 1001));
    }

    #[test]
    fn an_empty_key_verifies_nothing() {
        // A body signed under the empty key is exactly what an attacker can make.
        let sig = sign(b"", "1000", b"body");
        assert_eq!(
            verify(b"", Some("1000"), Some(&sig), b"body", 1000),
            Err(Rejection::NoSecret)
        );
    }

    #[test]
    fn the_replay_key_is_the_mac_not_its_spelling() {
        let sig = sign(SECRET, "1000", b"body");
        let upper = format!("v0={}", sig["v0=".len()..].to_ascii_uppercase());
        let cache = ReplayCache::default();
        let first = verify(SECRET, Some("1000"), Some(&sig), b"body", 1000).unwrap();
        let again = verify(SECRET, Some("1000"), Some(&upper), b"body", 1000).unwrap();
        assert!(cache.first_time(&first, 1000));
        assert!(!cache.first_time(&again, 1000));
    }

    #[test]
    fn expired_buckets_are_dropped_whole() {
        let cache = ReplayCache::default();
        let at = |ts: i64| {
            let sig = sign(SECRET, &ts.to_string(), b"body");
            verify(SECRET, Some(&ts.to_string()), Some(&sig), b"body", ts).unwrap()
        };
        for ts in 1000..1100 {
            assert!(cache.first_time(&at(ts), ts));
        }
        assert_eq!(cache.len(), 100);
        // Still inside the window: a replay of the first request is refused.
        assert!(!cache.first_time(&at(1000), 1000 + WINDOW_SECS));
        // Once every timestamp of a bucket is stale it goes; newer buckets stay.
        let later = 1100 + WINDOW_SECS;
        assert!(cache.first_time(&at(later), later));
        assert!(cache.len() < 100, "{}", cache.len());
        assert!(cache.len() > 1, "{}", cache.len());
        // Far later, only the newest request is held.
        let much_later = later + 10 * WINDOW_SECS;
        assert!(cache.first_time(&at(much_later), much_later));
        assert_eq!(cache.len(), 1);
    }
}
