//! The job queue shared by replicas (issue 19): a Redis Stream read by one consumer group, so a
//! read queued on any replica runs on whichever has a free worker, and a replica that dies
//! mid-run loses nothing: its pending entries go idle and another replica claims them
//! (`XAUTOCLAIM`) and runs the read again. The owner of a running job keeps it with heartbeats
//! (`XCLAIM … JUSTID`, only while the entry is still its own), so a live replica's long read is
//! never claimed away.
//!
//! What travels is the command as Slack sent it and the id of its audited decision, not an argv:
//! the worker judges it again under the policy it holds and builds the process itself, so
//! whoever can write to Redis can't make a replica run what policy wouldn't, and the paths in a
//! spec (work directory, kubeconfig cache) are the worker's own.
//!
//! Limits are two sorted sets (per user, all), scored by a deadline: a slot is taken and the
//! entry added in one script, heartbeats push running slots' deadlines on, and a slot whose
//! replica vanished without a successor expires instead of leaking.

use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};

use crate::shared::{Redis, Unavailable};

/// The consumer group every replica's workers read through.
pub const GROUP: &str = "workers";
/// How long a worker blocks on the stream per read.
pub const BLOCK: Duration = Duration::from_secs(2);
/// How long "posted" marks are kept (longer than any redelivery).
const POSTED_TTL_SECS: u64 = 24 * 3600;

/// The owner's heartbeat: only while the entry is still pending to this consumer, reset its
/// idle time, push the slot deadlines on and refresh the run's registry entry. Returns
/// `{1 if still ours, who cancelled it (KEYS[5]) or nil}`: a Cancel is kept there as well as
/// published, so one sent while this replica's subscriber was reconnecting still lands.
const HEARTBEAT: &str = r"
local cancel = redis.call('GET', KEYS[5])
local p = redis.call('XPENDING', KEYS[3], ARGV[3], ARGV[5], ARGV[5], 1)
if #p == 0 or p[1][2] ~= ARGV[4] then return {0, cancel} end
redis.call('XCLAIM', KEYS[3], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID')
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[1])
redis.call('ZADD', KEYS[2], 'XX', deadline, ARGV[1])
redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[2])
return {1, cancel}";

/// What a heartbeat found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Beat {
    /// The entry is still this replica's (`false` too when Redis can't be reached).
    pub ours: bool,
    /// Someone cancelled the run (whoever clicked, as the replica that took the click checked).
    pub cancelled_by: Option<String>,
}

/// A command on its way through the stream: what Slack sent, and the decision already audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireJob {
    /// The run id (the Cancel button's value, the posted-once key).
    pub id: String,
    pub command: String,
    pub text: String,
    pub user_id: String,
    pub team_id: Option<String>,
    pub enterprise_id: Option<String>,
    pub user_name: String,
    pub channel: String,
    pub response_url: String,
    pub decision_audit_id: String,
    /// The thread to answer in (a command from an `@slipway` mention has no `response_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
}

/// One entry taken from the stream.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The stream entry id (for the heartbeat and the ack).
    pub entry: String,
    /// `None` when the entry could not be read (it is acknowledged and dropped).
    pub job: Option<WireJob>,
    /// Claimed from a replica that stopped answering: this is a second attempt.
    pub retried: bool,
}

/// Who holds a running read, as every replica can see it (for Cancel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    pub replica: String,
    pub requester: String,
}

/// The shared queue's settings and keys.
#[derive(Debug, Clone)]
pub struct Shared {
    pub redis: Redis,
    /// This replica's consumer name.
    pub replica: String,
    pub claim_timeout: Duration,
    pub per_user: usize,
    /// Queued and running jobs allowed across the deployment.
    pub bound: usize,
}

/// Drop the group's consumers that hold nothing and have not read for `ARGV[2]` ms: each
/// replica start adds one (`<writer>#<uuid>`), and a stopped replica's stays until removed.
/// One script, so no entry can be delivered to a consumer between the check and the delete
/// (deleting a consumer drops its pending entries). This replica (`ARGV[3]`) is never dropped.
const PRUNE_CONSUMERS: &str = r"
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local pruned = 0
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) and f['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    pruned = pruned + 1
  end
end
return pruned
";

impl Shared {
    /// Remove consumers of stopped replicas (nothing pending, idle longer than `idle`);
    /// returns how many went.
    pub async fn prune_consumers(&self, idle: Duration) -> Result<u64, Unavailable> {
        let (stream, me) = (self.stream(), self.replica.clone());
        self.redis
            .run(|mut c| async move {
                redis::Script::new(PRUNE_CONSUMERS)
                    .key(stream)
                    .arg(GROUP)
                    .arg(ms(idle))
                    .arg(me)
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    pub fn stream(&self) -> String {
        self.redis.key("jobs")
    }

    pub(super) fn user_slots(&self, user: &str) -> String {
        self.redis.key(&format!("active:user:{user}"))
    }

    pub(super) fn all_slots(&self) -> String {
        self.redis.key("active")
    }

    pub fn run_key(&self, id: &str) -> String {
        self.redis.key(&format!("run:{id}"))
    }

    /// Who cancelled run `id`, kept for the heartbeat of the replica running it.
    fn cancel_key(&self, id: &str) -> String {
        self.redis.key(&format!("cancel:{id}"))
    }

    /// The channel Cancel clicks travel on to the replica running the command.
    pub fn cancel_channel(&self) -> String {
        self.redis.key("cancel")
    }

    /// Give `id`'s slot back.
    pub async fn release(&self, id: &str, user: &str) -> Result<(), Unavailable> {
        let (user_key, all, id) = (self.user_slots(user), self.all_slots(), id.to_string());
        self.redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("ZREM")
                    .arg(user_key)
                    .arg(&id)
                    .ignore()
                    .cmd("ZREM")
                    .arg(all)
                    .arg(&id)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// A worker's own connection, its reply timeout longer than a blocking read, with the
    /// stream and group in place.
    pub async fn worker_connection(&self) -> Result<MultiplexedConnection, Unavailable> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(BLOCK + Duration::from_secs(3)));
        let client = self.redis.client().await?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.ensure_group(&mut conn).await?;
        Ok(conn)
    }

    /// The stream and its group, created if missing (every replica may try; one does).
    pub async fn ensure_group(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.stream())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// The next job for this replica: first one a dead replica left idle past the claim
    /// timeout, else a new one (waiting up to [`BLOCK`]). Uses the worker's own connection:
    /// a blocking read must not hold up the shared one.
    pub async fn next(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<Option<Delivery>> {
        let claimed: Value = redis::cmd("XAUTOCLAIM")
            .arg(self.stream())
            .arg(GROUP)
            .arg(&self.replica)
            .arg(ms(self.claim_timeout))
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        if let Some(d) = autoclaimed(&claimed) {
            return Ok(Some(d));
        }
        let read: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.replica)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(ms(BLOCK))
            .arg("STREAMS")
            .arg(self.stream())
            .arg(">")
            .query_async(conn)
            .await?;
        Ok(read_group(&read))
    }

    /// Keep a running job ours for another claim timeout, and hear of a Cancel that may have
    /// missed the pub/sub channel.
    pub async fn heartbeat(&self, entry: &str, id: &str, user: &str, requester: &str) -> Beat {
        let keys = [
            self.user_slots(user),
            self.all_slots(),
            self.stream(),
            self.run_key(id),
            self.cancel_key(id),
        ];
        let registry = serde_json::json!({"replica": self.replica, "requester": requester});
        let lease = ms(self.claim_timeout * 2);
        let args = (
            id.to_string(),
            lease,
            self.replica.clone(),
            entry.to_string(),
        );
        let r: Result<(i64, Option<String>), _> = self
            .redis
            .run(|mut c| async move {
                redis::Script::new(HEARTBEAT)
                    .key(&keys[..])
                    .arg(args.0)
                    .arg(args.1)
                    .arg(GROUP)
                    .arg(args.2)
                    .arg(args.3)
                    .arg(registry.to_string())
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        r.map_or_else(
            |_| Beat::default(),
            |(ours, cancelled_by)| Beat {
                ours: ours == 1,
                cancelled_by,
            },
        )
    }

    /// A job is done (or dropped): acknowledge and delete its entry, free its slot, forget its
    /// registry entry.
    pub async fn done(&self, entry: &str, id: &str, user: &str) -> Result<(), Unavailable> {
        let (stream, entry) = (self.stream(), entry.to_string());
        let keys = (self.user_slots(user), self.all_slots(), self.run_key(id));
        let id = id.to_string();
        self.redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("XACK")
                    .arg(&stream)
                    .arg(GROUP)
                    .arg(&entry)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&stream)
                    .arg(&entry)
                    .ignore()
                    .cmd("ZREM")
                    .arg(keys.0)
                    .arg(&id)
                    .ignore()
                    .cmd("ZREM")
                    .arg(keys.1)
                    .arg(&id)
                    .ignore()
                    .cmd("DEL")
                    .arg(keys.2)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Claim the right to post `id`'s result: `true` for exactly one caller. If Redis can't
    /// say, post (a duplicate beats a lost result).
    pub async fn claim_post(&self, id: &str) -> bool {
        let (key, me) = (
            self.redis.key(&format!("posted:{id}")),
            self.replica.clone(),
        );
        let r: Result<Option<String>, _> = self
            .redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(me)
                    .arg("NX")
                    .arg("EX")
                    .arg(POSTED_TTL_SECS)
                    .query_async(&mut c)
                    .await
            })
            .await;
        !matches!(r, Ok(None))
    }

    /// Whether `id`'s result was already posted (a claimed job that finished before its
    /// replica died is not run again).
    pub async fn posted(&self, id: &str) -> bool {
        let key = self.redis.key(&format!("posted:{id}"));
        let r: Result<bool, _> = self
            .redis
            .run(|mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await })
            .await;
        r.unwrap_or(false)
    }

    /// Where `id`'s run message is, so a replica that runs it again can say on it that it
    /// was interrupted (best effort: the retry posts its own message either way).
    pub async fn note_message(&self, id: &str, ts: &str) {
        let (key, ts) = (self.redis.key(&format!("message:{id}")), ts.to_string());
        let r: Result<(), _> = self
            .redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(ts)
                    .arg("EX")
                    .arg(POSTED_TTL_SECS)
                    .query_async(&mut c)
                    .await
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, run = %id, "could not note the run message");
        }
    }

    /// The run message of `id` posted by an earlier attempt, if any.
    pub async fn message_of(&self, id: &str) -> Option<String> {
        let key = self.redis.key(&format!("message:{id}"));
        self.redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
            .ok()
            .flatten()
    }

    /// Who runs `id`, if anyone does.
    pub async fn running(&self, id: &str) -> Result<Option<RunEntry>, Unavailable> {
        let key = self.run_key(id);
        let v: Option<String> = self
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Tell every replica to cancel `id` on behalf of `by` (the one running it acts at once),
    /// and keep the request for its heartbeat in case the message is missed.
    pub async fn publish_cancel(&self, id: &str, by: &str) -> Result<(), Unavailable> {
        let msg = serde_json::json!({"run_id": id, "by": by}).to_string();
        let (channel, key, by) = (self.cancel_channel(), self.cancel_key(id), by.to_string());
        self.redis
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(key)
                    .arg(by)
                    .arg("EX")
                    .arg(POSTED_TTL_SECS)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(channel)
                    .arg(msg)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Reads in the stream that no replica's worker has taken yet (the group's lag).
    pub async fn waiting(&self) -> Result<u64, Unavailable> {
        let stream = self.stream();
        let groups: Value = self
            .redis
            .run(|mut c| async move {
                redis::cmd("XINFO")
                    .arg("GROUPS")
                    .arg(stream)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(group_lag(&groups).unwrap_or(0))
    }
}

/// A duration as Redis wants milliseconds.
pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `XAUTOCLAIM`'s reply: `[cursor, [[id, [field, value…]]…], deleted?]` (the third element
/// since Redis 7.0; before it, a deleted entry came back as `[id, nil]`).
fn autoclaimed(v: &Value) -> Option<Delivery> {
    let Value::Array(parts) = v else { return None };
    let Some(Value::Array(entries)) = parts.get(1) else {
        return None;
    };
    entries.first().and_then(|e| entry(e, true))
}

/// `XREADGROUP`'s reply: nil, or `[[stream, [[id, [field, value…]]]]]` (a map under RESP3).
fn read_group(v: &Value) -> Option<Delivery> {
    let streams: Vec<&Value> = match v {
        Value::Array(s) => s.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        _ => return None,
    };
    streams.into_iter().find_map(|s| {
        let entries = match s {
            Value::Array(pair) => pair.get(1)?,
            other => other,
        };
        let Value::Array(entries) = entries else {
            return None;
        };
        entries.first().and_then(|e| entry(e, false))
    })
}

fn entry(v: &Value, retried: bool) -> Option<Delivery> {
    let Value::Array(pair) = v else { return None };
    let id = text(pair.first()?)?;
    let job = match pair.get(1) {
        Some(Value::Array(fields)) => fields
            .chunks(2)
            .find(|kv| kv.first().and_then(text).as_deref() == Some("job"))
            .and_then(|kv| kv.get(1).and_then(text))
            .and_then(|j| serde_json::from_str(&j).ok()),
        _ => None,
    };
    Some(Delivery {
        entry: id,
        job,
        retried,
    })
}

/// The `lag` of the workers' group in an `XINFO GROUPS` reply (a list of field/value lists,
/// or maps under RESP3).
fn group_lag(v: &Value) -> Option<u64> {
    let Value::Array(groups) = v else { return None };
    groups.iter().find_map(|g| {
        let fields: Vec<(String, &Value)> = match g {
            Value::Array(kv) => kv
                .chunks(2)
                .filter_map(|p| Some((text(p.first()?)?, p.get(1)?)))
                .collect(),
            Value::Map(m) => m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect(),
            _ => return None,
        };
        let named = fields
            .iter()
            .any(|(k, v)| k == "name" && text(v).as_deref() == Some(GROUP));
        let lag = fields.iter().find(|(k, _)| k == "lag").map(|(_, v)| v);
        match (named, lag) {
            (true, Some(Value::Int(n))) => u64::try_from(*n).ok(),
            _ => None,
        }
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
