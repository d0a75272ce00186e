//! The state in the shared Redis, so every replica sees what another wrote (issue 19). Keys,
//! under the configured prefix:
//!
//! - `threads` (hash: PR → `[channel, ts]`), `deadlines` (hash: PR → `[head, expires_at]`)
//! - `tokens` (hash: Slack user → sealed bytes), `token_generations` (hash: Slack user → n),
//!   written together in one `MULTI`
//! - `reviews:<pr>` and `pushers:<pr>` (sets), `bridge_commits` (set)
//! - `delivery:<key>` (string, `SET NX EX`: the first replica to record a webhook delivery
//!   handles it, a redelivery to another replica is refused atomically), indexed by time in
//!   `deliveries` (sorted set) for [`StateStore::prune_deliveries`]; the TTL bounds them anyway.
//!
//! Each call is one round trip on a pooled blocking connection (see [`crate::shared::blocking`]);
//! none of them is on the Slack ack path.

use std::collections::BTreeSet;
use std::fmt;

use redis::Connection;

use super::{Deadline, Notice, Result, SlackThread, StateStore, StoreError};
use crate::shared::blocking::Pool;

/// How long a delivery key lives without a prune: the embedded store's memory (a week).
pub const DELIVERY_TTL_SECS: i64 = 7 * 24 * 3600;

/// Record a delivery once: `SET NX EX` and its time index, atomically.
const FIRST_DELIVERY: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
  return 1
end
return 0";

/// Forget the deliveries recorded before ARGV[1]; ARGV[2] is the key prefix of each.
const PRUNE_DELIVERIES: &str = r"
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for _, id in ipairs(old) do redis.call('DEL', ARGV[2] .. id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return #old";

/// The shared store.
#[derive(Clone)]
pub struct RedisStore {
    pool: Pool,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool", &self.pool)
            .finish()
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, raw: Option<String>) -> Result<Option<T>> {
    raw.map(|s| {
        serde_json::from_str(&s)
            .map_err(|e| StoreError(format!("a stored {what} is unreadable: {e}")))
    })
    .transpose()
}

impl RedisStore {
    pub fn new(pool: Pool) -> RedisStore {
        RedisStore { pool }
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T> {
        self.pool.run(f).map_err(|e| StoreError(e.to_string()))
    }

    fn hget(&self, hash: &str, field: &str) -> Result<Option<String>> {
        let key = self.pool.key(hash);
        self.run(|c| redis::cmd("HGET").arg(&key).arg(field).query(c))
    }

    fn hset(&self, hash: &str, field: &str, value: impl redis::ToRedisArgs) -> Result<()> {
        let key = self.pool.key(hash);
        self.run(|c| redis::cmd("HSET").arg(&key).arg(field).arg(value).exec(c))
    }

    fn hdel(&self, hash: &str, field: &str) -> Result<()> {
        let key = self.pool.key(hash);
        self.run(|c| redis::cmd("HDEL").arg(&key).arg(field).exec(c))
    }

    fn sadd(&self, set: &str, member: impl redis::ToRedisArgs) -> Result<()> {
        let key = self.pool.key(set);
        self.run(|c| redis::cmd("SADD").arg(&key).arg(member).exec(c))
    }

    fn smembers<T: redis::FromRedisValue + Ord>(&self, set: &str) -> Result<BTreeSet<T>> {
        let key = self.pool.key(set);
        self.run(|c| redis::cmd("SMEMBERS").arg(&key).query(c))
    }
}

fn json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError(format!("encoding: {e}")))
}

impl StateStore for RedisStore {
    fn thread(&self, pr: u64) -> Result<Option<SlackThread>> {
        let raw = self.hget("threads", &pr.to_string())?;
        Ok(decode::<(String, String)>("Slack thread", raw)?
            .map(|(channel, ts)| SlackThread { channel, ts }))
    }

    fn set_thread(&self, pr: u64, thread: &SlackThread) -> Result<()> {
        let v = json(&(&thread.channel, &thread.ts))?;
        self.hset("threads", &pr.to_string(), v)
    }

    fn sealed_token(&self, slack_user: &str) -> Result<Option<Vec<u8>>> {
        let key = self.pool.key("tokens");
        self.run(|c| redis::cmd("HGET").arg(&key).arg(slack_user).query(c))
    }

    fn set_sealed_token(&self, slack_user: &str, sealed: &[u8]) -> Result<()> {
        self.hset("tokens", slack_user, sealed)
    }

    fn token_generation(&self, slack_user: &str) -> Result<u64> {
        let key = self.pool.key("token_generations");
        let n: Option<u64> = self.run(|c| redis::cmd("HGET").arg(&key).arg(slack_user).query(c))?;
        Ok(n.unwrap_or(0))
    }

    fn set_sealed_token_at(&self, slack_user: &str, sealed: &[u8], generation: u64) -> Result<()> {
        let (tokens, generations) = (self.pool.key("tokens"), self.pool.key("token_generations"));
        self.run(|c| {
            redis::pipe()
                .atomic()
                .hset(&tokens, slack_user, sealed)
                .ignore()
                .hset(&generations, slack_user, generation)
                .ignore()
                .exec(c)
        })
    }

    fn remove_token(&self, slack_user: &str) -> Result<()> {
        self.hdel("tokens", slack_user)
    }

    fn add_slack_review(&self, pr: u64, review: u64) -> Result<()> {
        self.sadd(&format!("reviews:{pr}"), review)
    }

    fn slack_reviews(&self, pr: u64) -> Result<BTreeSet<u64>> {
        self.smembers(&format!("reviews:{pr}"))
    }

    fn add_notice(&self, pr: u64, notice: &Notice) -> Result<()> {
        self.sadd(&format!("notices:{pr}"), notice.encode())
    }

    fn notices(&self, pr: u64) -> Result<Vec<Notice>> {
        let all: BTreeSet<String> = self.smembers(&format!("notices:{pr}"))?;
        Ok(all.iter().filter_map(|n| Notice::decode(n)).collect())
    }

    fn first_delivery(&self, id: &str, at: i64) -> Result<bool> {
        let keys = [
            self.pool.key(&format!("delivery:{id}")),
            self.pool.key("deliveries"),
        ];
        let first: i64 = self.run(|c| {
            redis::Script::new(FIRST_DELIVERY)
                .key(&keys[0])
                .key(&keys[1])
                .arg(at)
                .arg(DELIVERY_TTL_SECS)
                .arg(id)
                .invoke(c)
        })?;
        Ok(first == 1)
    }

    fn prune_deliveries(&self, before: i64) -> Result<usize> {
        let (index, prefix) = (self.pool.key("deliveries"), self.pool.key("delivery:"));
        let n: i64 = self.run(|c| {
            redis::Script::new(PRUNE_DELIVERIES)
                .key(&index)
                .arg(before)
                .arg(&prefix)
                .invoke(c)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn deadline(&self, pr: u64) -> Result<Option<Deadline>> {
        let raw = self.hget("deadlines", &pr.to_string())?;
        Ok(
            decode::<(String, i64)>("deadline", raw)?.map(|(head_sha, expires_at)| Deadline {
                head_sha,
                expires_at,
            }),
        )
    }

    fn set_deadline(&self, pr: u64, deadline: &Deadline) -> Result<()> {
        let v = json(&(&deadline.head_sha, deadline.expires_at))?;
        self.hset("deadlines", &pr.to_string(), v)
    }

    fn remove_deadline(&self, pr: u64) -> Result<()> {
        self.hdel("deadlines", &pr.to_string())
    }

    fn add_bridge_commit(&self, sha: &str) -> Result<()> {
        self.sadd("bridge_commits", sha.to_ascii_lowercase())
    }

    fn is_bridge_commit(&self, sha: &str) -> Result<bool> {
        let key = self.pool.key("bridge_commits");
        let sha = sha.to_ascii_lowercase();
        self.run(|c| redis::cmd("SISMEMBER").arg(&key).arg(&sha).query(c))
    }

    fn add_pusher(&self, pr: u64, login: &str) -> Result<()> {
        self.sadd(&format!("pushers:{pr}"), login.to_ascii_lowercase())
    }

    fn pushers(&self, pr: u64) -> Result<BTreeSet<String>> {
        self.smembers(&format!("pushers:{pr}"))
    }
}
