//! Leader election over Redis (issue 19): the sweeps and pollers that must run once per
//! deployment (change expiry, the identity snapshot, discovery, the Google sync) run only on the
//! replica holding the lease. The lease is `SET <prefix>leader <token> NX PX`, renewed by a
//! compare-and-extend script; every acquisition takes a new fencing number (`INCR`), and each
//! leader action first checks that Redis still holds this replica's token, so a leader that
//! stalled past its lease (a long GC pause, a partition) is refused instead of acting beside
//! its successor. Embedded (one replica), this process always leads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::Redis;

/// Take the lease if nobody holds it: a new fencing number, and the token `id:fence`.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return fence";

/// Extend the lease only if it is still ours.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// Give the lease up only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Proof of leadership for one action: the fencing number the lease was taken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence(pub u64);

/// Who leads: this process alone (embedded), or whoever holds the Redis lease.
#[derive(Debug, Clone)]
pub enum Leader {
    Embedded,
    Redis(Arc<Lease>),
}

/// One replica's side of the Redis lease.
#[derive(Debug)]
pub struct Lease {
    redis: Redis,
    /// This replica's name in the token (its audit writer and a per-process id).
    id: String,
    ttl: Duration,
    /// The fencing number while this replica believes it leads; 0 when it doesn't.
    fence: AtomicU64,
    /// Shutting down: campaign no more.
    stepped_down: AtomicBool,
}

impl Leader {
    /// The lease on `redis` for replica `id`, lasting `ttl` unless renewed. Call
    /// [`Leader::start`] to campaign.
    pub fn redis(redis: Redis, id: String, ttl: Duration) -> Leader {
        Leader::Redis(Arc::new(Lease {
            redis,
            id,
            ttl,
            fence: AtomicU64::new(0),
            stepped_down: AtomicBool::new(false),
        }))
    }

    /// Campaign for the lease and renew it every third of its life, for the life of the
    /// process. Embedded: nothing to do.
    pub fn start(&self) {
        if let Leader::Redis(lease) = self {
            let lease = lease.clone();
            tokio::spawn(async move {
                let every = lease.ttl / 3;
                while !lease.stepped_down.load(Ordering::Relaxed) {
                    lease.campaign().await;
                    tokio::time::sleep(every).await;
                }
            });
        }
    }

    /// A clean shutdown: stop campaigning and give the lease up, so a successor takes over at
    /// once instead of after the lease expires.
    pub async fn step_down(&self) {
        if let Leader::Redis(lease) = self {
            lease.stepped_down.store(true, Ordering::Relaxed);
            lease.release().await;
        }
    }

    /// Whether this replica may act as leader now, checked against Redis (the fencing check):
    /// the fence to act under, or `None` (not the leader, the lease was lost, or Redis is
    /// unreachable). Call it before each leader action.
    pub async fn lead(&self) -> Option<Fence> {
        match self {
            Leader::Embedded => Some(Fence(0)),
            Leader::Redis(lease) => {
                let fence = lease.fence.load(Ordering::Relaxed);
                if fence == 0 {
                    return None;
                }
                lease.check(Fence(fence)).await.then_some(Fence(fence))
            }
        }
    }
}

impl Lease {
    fn token(&self, fence: Fence) -> String {
        format!("{}:{}", self.id, fence.0)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// One round: renew the lease if held, else try to take it.
    pub async fn campaign(&self) {
        if self.stepped_down.load(Ordering::Relaxed) {
            return;
        }
        let held = self.fence.load(Ordering::Relaxed);
        if held != 0 {
            if self.renew(Fence(held)).await {
                return;
            }
            tracing::warn!(fence = held, "lost the leader lease");
            self.fence.store(0, Ordering::Relaxed);
        }
        if let Some(f) = self.acquire().await {
            tracing::info!(fence = f.0, "took the leader lease");
            self.fence.store(f.0, Ordering::Relaxed);
        }
    }

    /// Take the lease if it is free: the new fence.
    pub async fn acquire(&self) -> Option<Fence> {
        let (leader, counter) = (self.redis.key("leader"), self.redis.key("leader:fence"));
        let (id, ttl) = (self.id.clone(), self.ttl_ms());
        let fence: u64 = self
            .redis
            .run(|mut c| async move {
                redis::Script::new(ACQUIRE)
                    .key(leader)
                    .key(counter)
                    .arg(id)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await
            .ok()?;
        (fence != 0).then_some(Fence(fence))
    }

    /// Extend the lease taken under `fence`; `false` if it is no longer ours.
    pub async fn renew(&self, fence: Fence) -> bool {
        let (key, token, ttl) = (self.redis.key("leader"), self.token(fence), self.ttl_ms());
        let r: Result<i64, _> = self
            .redis
            .run(|mut c| async move {
                redis::Script::new(RENEW)
                    .key(key)
                    .arg(token)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        r.is_ok_and(|n| n == 1)
    }

    /// The fencing check: Redis still holds the token taken under `fence`.
    pub async fn check(&self, fence: Fence) -> bool {
        let (key, token) = (self.redis.key("leader"), self.token(fence));
        let held: Result<Option<String>, _> = self
            .redis
            .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await;
        held.is_ok_and(|h| h.is_some_and(|h| h == token))
    }

    /// Give the lease up (a clean shutdown), so a successor needn't wait for it to expire.
    pub async fn release(&self) {
        let held = self.fence.swap(0, Ordering::Relaxed);
        if held == 0 {
            return;
        }
        let (key, token) = (self.redis.key("leader"), self.token(Fence(held)));
        let _: Result<i64, _> = self
            .redis
            .run(|mut c| async move {
                redis::Script::new(RELEASE)
                    .key(key)
                    .arg(token)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
    }
}
