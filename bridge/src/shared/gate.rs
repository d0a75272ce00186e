//! The ack path's one shared check: has this signed request been accepted before (a replay),
//! and has this event or trigger been handled before (a retry)? Embedded, both live in this
//! process; on Redis, both are `SET NX EX` in one pipelined round trip, so a captured request
//! replayed to another replica, or a Slack retry that lands on another replica, is caught.

use std::sync::Mutex;

use super::redis::{Redis, Unavailable};
use crate::fifo::FifoSet;
use crate::slack::signature::{ReplayCache, Verified, WINDOW_SECS};

/// How long a dedupe key (an event id, a trigger id) is remembered: Slack retries an event
/// three times within the hour.
pub const DEDUPE_TTL_SECS: u64 = 3600;

/// A replay key lives until no request with its timestamp can be valid any more (the signing
/// window either side of now), with a minute of clock skew between replicas.
const REPLAY_TTL_SECS: u64 = (2 * WINDOW_SECS + 60).unsigned_abs();

/// What the gate found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The same signed request was accepted before: refuse it.
    pub replayed: bool,
    /// The dedupe key (if any) is new: handle the request. `false`: a retry, already handled.
    pub fresh: bool,
}

/// Where the keys live.
#[derive(Debug)]
pub enum Gate {
    Embedded {
        replay: ReplayCache,
        seen: Mutex<FifoSet>,
    },
    Redis(Redis),
}

impl Gate {
    /// The single-process gate.
    pub fn embedded() -> Gate {
        Gate::Embedded {
            replay: ReplayCache::default(),
            seen: Mutex::new(FifoSet::new(10_000)),
        }
    }

    /// Record a verified request and, if given, its dedupe key (`event:<id>`, `trigger:<id>`).
    /// A replayed request does not record its dedupe key.
    pub async fn admit(
        &self,
        seen: &Verified,
        dedupe: Option<&str>,
        now: i64,
    ) -> Result<Admission, Unavailable> {
        match self {
            Gate::Embedded { replay, seen: ids } => {
                if !replay.first_time(seen, now) {
                    return Ok(Admission {
                        replayed: true,
                        fresh: false,
                    });
                }
                let fresh = dedupe.is_none_or(|k| slipway_infra::sync::lock(ids).insert(k));
                Ok(Admission {
                    replayed: false,
                    fresh,
                })
            }
            Gate::Redis(r) => {
                let replay_key = r.key(&format!("replay:{}", hex::encode(seen.mac)));
                let dedupe_key = dedupe.map(|k| r.key(&format!("seen:{k}")));
                let replies: Vec<Option<String>> = r
                    .run(|mut c| async move {
                        let mut pipe = redis::pipe();
                        set_nx(&mut pipe, &replay_key, REPLAY_TTL_SECS);
                        if let Some(k) = &dedupe_key {
                            set_nx(&mut pipe, k, DEDUPE_TTL_SECS);
                        }
                        pipe.query_async(&mut c).await
                    })
                    .await?;
                let first = replies.first().is_some_and(Option::is_some);
                let again = dedupe.is_none() || replies.get(1).is_some_and(Option::is_some);
                // A replayed request is refused whatever its dedupe key says.
                Ok(Admission {
                    replayed: !first,
                    fresh: first && again,
                })
            }
        }
    }

    /// Record a dedupe key with no signature around it (a Socket Mode envelope): `true` the
    /// first time, on any replica.
    pub async fn first(&self, dedupe: &str) -> Result<bool, Unavailable> {
        match self {
            Gate::Embedded { seen, .. } => Ok(slipway_infra::sync::lock(seen).insert(dedupe)),
            Gate::Redis(r) => {
                let key = r.key(&format!("seen:{dedupe}"));
                let set: Option<String> = r
                    .run(|mut c| async move {
                        redis::cmd("SET")
                            .arg(&key)
                            .arg(1)
                            .arg("NX")
                            .arg("EX")
                            .arg(DEDUPE_TTL_SECS)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                Ok(set.is_some())
            }
        }
    }
}

fn set_nx(pipe: &mut redis::Pipeline, key: &str, ttl: u64) {
    pipe.cmd("SET").arg(key).arg(1).arg("NX").arg("EX").arg(ttl);
}
