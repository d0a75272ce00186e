//! Logins in progress shared by replicas (issue 19): the browser's `/sso/start` and
//! `/sso/callback` may each reach a different replica than the one that answered
//! `/slipway link sso`, so with Redis the login lives there, not in one process.
//!
//! `<prefix>sso:state:<sha256 of state>` holds the login for ten minutes (only the digest of
//! the state is a key, as in memory); `<prefix>sso:user:<slack user>` names the user's current
//! one, so asking again replaces it; taking a login is a `GETDEL` that also leaves a
//! `sso:taken:` mark, so a write that lands late can't bring a used state back. The ack does not
//! wait for the write (its one Redis round trip is the gate's): it is started at once, and a
//! person needs seconds to click the link it answers with.
//!
//! The stored login (PKCE verifier, nonce, response URL) is sealed with AES-256-GCM under a key
//! derived from the state itself, which exists only in the link the person was sent: a Redis
//! dump, backup or replica shows neither the verifier nor the response URL, and there is no key
//! at rest to wrap (unlike the linked tokens, which outlive any link and use the envelope).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use openidconnect::{Nonce as OidcNonce, PkceCodeChallenge, PkceCodeVerifier};
use serde::{Deserialize, Serialize};

use super::pending::{Flow, Refusal, TTL_SECS, expired, hex_digest};
use crate::config::Secret;
use crate::shared::Redis;

/// Store a login unless its state was already taken; replace the user's earlier one.
/// KEYS: 1 the state's key, 2 the user's key, 3 the taken mark. ARGV: 1 the login, 2 ttl ms,
/// 3 the state keys' prefix, 4 the state's digest.
const INSERT: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local old = redis.call('GET', KEYS[2])
if old and old ~= ARGV[4] then redis.call('DEL', ARGV[3] .. old) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
return 1";

/// A login as sealed. The verifier and the nonce are what the provider's answer is checked
/// against; each lives ten minutes.
#[derive(Serialize, Deserialize)]
struct Wire {
    slack_user: String,
    response_url: String,
    verifier: String,
    nonce: String,
    issued: i64,
}

impl Wire {
    fn of(flow: &Flow) -> Wire {
        Wire {
            slack_user: flow.slack_user.clone(),
            response_url: flow.response_url.expose().to_string(),
            verifier: flow.verifier.secret().clone(),
            nonce: flow.nonce.secret().clone(),
            issued: flow.issued,
        }
    }

    fn flow(self) -> Flow {
        let verifier = PkceCodeVerifier::new(self.verifier);
        Flow {
            slack_user: self.slack_user,
            response_url: Secret::new(&self.response_url),
            challenge: PkceCodeChallenge::from_code_verifier_sha256(&verifier),
            verifier,
            nonce: OidcNonce::new(self.nonce),
            issued: self.issued,
        }
    }
}

/// The logins in progress, in the shared Redis.
#[derive(Debug, Clone)]
pub struct SharedLogins {
    redis: Redis,
}

fn ttl_ms() -> u64 {
    u64::try_from(TTL_SECS * 1000).unwrap_or(u64::MAX)
}

impl SharedLogins {
    pub fn new(redis: Redis) -> SharedLogins {
        SharedLogins { redis }
    }

    fn state_key(&self, digest: &str) -> String {
        self.redis.key(&format!("sso:state:{digest}"))
    }

    /// Keep `flow` under `state`, written after the ack.
    pub fn insert(&self, state: &str, flow: &Flow) {
        let (me, digest) = (self.clone(), hex_digest(state));
        let Some(json) = serde_json::to_vec(&Wire::of(flow))
            .ok()
            .and_then(|j| seal(state, &digest, j))
        else {
            tracing::error!("sealing an SSO login failed; the link won't work");
            return;
        };
        let user = flow.slack_user.clone();
        tokio::spawn(async move {
            if let Err(e) = me.write(&digest, &user, json).await {
                tracing::error!(error = %e, "keeping an SSO login in the shared state failed; the link won't work");
            }
        });
    }

    async fn write(
        &self,
        digest: &str,
        user: &str,
        json: String,
    ) -> Result<(), crate::shared::Unavailable> {
        let keys = [
            self.state_key(digest),
            self.redis.key(&format!("sso:user:{user}")),
            self.redis.key(&format!("sso:taken:{digest}")),
        ];
        let (prefix, digest) = (self.state_key(""), digest.to_string());
        self.redis
            .run(|mut c| async move {
                redis::Script::new(INSERT)
                    .key(&keys[..])
                    .arg(json)
                    .arg(ttl_ms())
                    .arg(prefix)
                    .arg(digest)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    /// What the authorization request needs, leaving the login pending.
    pub async fn peek(
        &self,
        state: &str,
        now: i64,
    ) -> Result<(PkceCodeChallenge, OidcNonce), Refusal> {
        let digest = hex_digest(state);
        let key = self.state_key(&digest);
        let raw: Option<String> = self
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let flow = live(raw, state, &digest, now)?;
        Ok((flow.challenge, flow.nonce))
    }

    /// Take the login out, everywhere: this state can't be used again on any replica.
    pub async fn take(&self, state: &str, now: i64) -> Result<Flow, Refusal> {
        let digest = hex_digest(state);
        let (key, taken) = (
            self.state_key(&digest),
            self.redis.key(&format!("sso:taken:{digest}")),
        );
        let (raw,): (Option<String>,) = self
            .redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("GETDEL")
                    .arg(key)
                    .cmd("SET")
                    .arg(taken)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl_ms())
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await
            .map_err(|_| Refusal::Unavailable)?;
        live(raw, state, &digest, now)
    }
}

/// The AEAD key of the login under `state`: only the link's holder can derive it.
fn sealing_key(state: &str) -> Option<LessSafeKey> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"slipway/sso-login/v1\0");
    h.update(state.as_bytes());
    let key = UnboundKey::new(&AES_256_GCM, &h.finalize()).ok()?;
    Some(LessSafeKey::new(key))
}

/// `base64(nonce || ciphertext+tag)`, bound to the state's digest (its Redis key).
fn seal(state: &str, digest: &str, mut data: Vec<u8>) -> Option<String> {
    use base64::Engine as _;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    sealing_key(state)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(digest.as_bytes()),
            &mut data,
        )
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    Some(base64::engine::general_purpose::STANDARD.encode(out))
}

fn open(state: &str, digest: &str, sealed: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()?;
    let (nonce, data) = raw.split_at_checked(NONCE_LEN)?;
    let mut data = data.to_vec();
    let plain = sealing_key(state)?
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).ok()?,
            Aad::from(digest.as_bytes()),
            &mut data,
        )
        .ok()?;
    Some(plain.to_vec())
}

/// A stored login that is still valid.
fn live(raw: Option<String>, state: &str, digest: &str, now: i64) -> Result<Flow, Refusal> {
    let plain = open(state, digest, &raw.ok_or(Refusal::Unknown)?).ok_or_else(|| {
        tracing::error!("an SSO login in the shared state does not open under its state");
        Refusal::Unknown
    })?;
    let wire: Wire = serde_json::from_slice(&plain).map_err(|e| {
        tracing::error!(error = %e, "an SSO login in the shared state is unreadable");
        Refusal::Unknown
    })?;
    let flow = wire.flow();
    if expired(&flow, now) {
        return Err(Refusal::Expired);
    }
    Ok(flow)
}

#[cfg(test)]
mod tests;
