//! Slack request signing (v0): `v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`, a 5-minute
//! window, a constant-time compare, and a replay cache so a captured request can't be sent twice.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from now.
pub const WINDOW_SECS: i64 = 5 * 60;

/// Why a request was rejected. Never shown to the caller (they get a bare 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Stale,
    BadSignature,
    Replayed,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Stale => "stale",
            Rejection::BadSignature => "bad_signature",
            Rejection::Replayed => "replayed",
        }
    }
}

/// The signature Slack would send for this body.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// HMAC accepts keys of any length; this only satisfies the type.
fn unreachable_hmac() -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(b"k")
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Check a signature against the secret and clock. Constant-time on the MAC.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Rejection> {
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
    let Ok(given) = hex::decode(hex_sig) else {
        return Err(Rejection::BadSignature);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| Rejection::BadSignature)
}

/// Signatures seen inside the window. A valid request is accepted once.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, i64>>,
}

impl ReplayCache {
    /// Record a signature; `false` if it was already seen within the window.
    pub fn first_time(&self, signature: &str, now: i64) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() > 10_000 {
            seen.retain(|_, t| now - *t <= WINDOW_SECS);
        }
        match seen.get(signature) {
            Some(t) if now - *t <= WINDOW_SECS => false,
            _ => {
                seen.insert(signature.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_slack() {
        // Slack's documented example.
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(secret, "1531420618", body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        assert_eq!(
            verify(
                secret,
                Some("1531420618"),
                Some("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
                body,
                1_531_420_618 + 10
            ),
            Ok(())
        );
    }

    #[test]
    fn rejects() {
        let s = b"secret";
        let sig = sign(s, "1000", b"body");
        assert_eq!(verify(s, Some("1000"), Some(&sig), b"body", 1000), Ok(()));
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
        assert!(cache.first_time(&sig, 1000));
        assert!(!cache.first_time(&sig, 1001));
    }
}
