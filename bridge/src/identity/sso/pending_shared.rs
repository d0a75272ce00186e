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

use openidconnect::{Nonce, PkceCodeChallenge, PkceCodeVerifier};
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

/// A login as stored. The verifier and the nonce are what the provider's answer is checked
/// against; Redis is inside the trust boundary (ACL user, TLS), and each lives ten minutes.
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
            nonce: Nonce::new(self.nonce),
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
        let Ok(json) = serde_json::to_string(&Wire::of(flow)) else {
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
    pub async fn peek(&self, state: &str, now: i64) -> Result<(PkceCodeChallenge, Nonce), Refusal> {
        let key = self.state_key(&hex_digest(state));
        let raw: Option<String> = self
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
            .map_err(|_| Refusal::Unavailable)?;
        let flow = live(raw, now)?;
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
        live(raw, now)
    }
}

/// A stored login that is still valid.
fn live(raw: Option<String>, now: i64) -> Result<Flow, Refusal> {
    let wire: Wire = serde_json::from_str(&raw.ok_or(Refusal::Unknown)?).map_err(|e| {
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
