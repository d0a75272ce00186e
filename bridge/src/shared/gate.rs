//! The ack path's one shared check: has this signed request been accepted before (a replay),
//! and has this event or trigger been handled before (a retry)? Embedded, both live in this
//! process. On Redis, both are `SET NX EX`, and the ack makes at most one round trip in all:
//! where the ack also queues work (a read, a change step, a confirmed change) the check is
//! deferred as a [`Ticket`] and runs inside that work's admission script; elsewhere it is one
//! pipelined call ([`Gate::settle`]). So a captured request replayed to another replica, or a
//! Slack retry that lands on another replica, is caught, and a replay queues nothing.

use std::sync::Mutex;

use super::redis::{Redis, Unavailable};
use crate::fifo::FifoSet;
use crate::slack::signature::{ReplayCache, Verified, WINDOW_SECS};

/// How long a dedupe key (an event id, a trigger id) is remembered: Slack retries an event
/// three times within the hour.
pub const DEDUPE_TTL_SECS: u64 = 3600;

/// A replay key lives until no request with its timestamp can be valid any more (the signing
/// window either side of now), with a minute of clock skew between replicas.
pub const REPLAY_TTL_SECS: u64 = (2 * WINDOW_SECS + 60).unsigned_abs();

/// What the gate found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The same signed request was accepted before: refuse it.
    pub replayed: bool,
    /// The dedupe key (if any) is new: handle the request. `false`: a retry, already handled.
    pub fresh: bool,
}

/// The gate's keys for one request, checked later in the one round trip its ack makes. A
/// ticket must be settled (alone, or inside an admission script) before anything is done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a deferred gate check must be settled before the request is acted on"]
pub struct Ticket {
    /// `<prefix>replay:<mac>`: absent for a Socket Mode envelope (no signature).
    pub replay: Option<String>,
    /// `<prefix>seen:<event or trigger key>`.
    pub dedupe: Option<String>,
}

/// Why a deferred gate check refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A replay of a signed request already accepted (by any replica): 401.
    Replayed,
    /// A retry of an event or trigger already handled: acknowledged, nothing done.
    Duplicate,
    /// The shared state can't be reached: nothing done.
    Unavailable,
}

/// The gate's verdict now, or its check deferred.
#[derive(Debug)]
pub enum Pass {
    Settled(Admission),
    Deferred(Ticket),
}

/// Where the keys live.
#[derive(Debug)]
pub enum Gate {
    Embedded {
        replay: ReplayCache,
        seen: Mutex<FifoSet>,
    },
    Redis {
        redis: Redis,
        /// Replays to this same replica are refused before anything is decided or audited, so
        /// a captured request replayed across N replicas is recorded at most N times.
        local: ReplayCache,
    },
}

impl Gate {
    /// The single-process gate.
    pub fn embedded() -> Gate {
        Gate::Embedded {
            replay: ReplayCache::default(),
            seen: Mutex::new(FifoSet::new(10_000)),
        }
    }

    /// The gate shared by replicas.
    pub fn redis(redis: Redis) -> Gate {
        Gate::Redis {
            redis,
            local: ReplayCache::default(),
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
        match self.defer(seen, dedupe, now) {
            Pass::Settled(a) => Ok(a),
            Pass::Deferred(t) => self.settle(&t).await,
        }
    }

    /// Embedded: the verdict now. On Redis: a local replay check now, the shared check as a
    /// ticket for the ack's one round trip.
    pub fn defer(&self, seen: &Verified, dedupe: Option<&str>, now: i64) -> Pass {
        const REPLAYED: Admission = Admission {
            replayed: true,
            fresh: false,
        };
        match self {
            Gate::Embedded { replay, seen: ids } => {
                if !replay.first_time(seen, now) {
                    return Pass::Settled(REPLAYED);
                }
                let fresh = dedupe.is_none_or(|k| slipway_infra::sync::lock(ids).insert(k));
                Pass::Settled(Admission {
                    replayed: false,
                    fresh,
                })
            }
            Gate::Redis { redis, local } => {
                if !local.first_time(seen, now) {
                    return Pass::Settled(REPLAYED);
                }
                Pass::Deferred(Ticket {
                    replay: Some(redis.key(&format!("replay:{}", hex::encode(seen.mac)))),
                    dedupe: dedupe.map(|k| redis.key(&format!("seen:{k}"))),
                })
            }
        }
    }

    /// A dedupe key with no signature around it (a Socket Mode envelope): embedded, settled
    /// now; on Redis, a ticket.
    pub fn defer_unsigned(&self, dedupe: &str) -> Pass {
        match self {
            Gate::Embedded { seen, .. } => Pass::Settled(Admission {
                replayed: false,
                fresh: slipway_infra::sync::lock(seen).insert(dedupe),
            }),
            Gate::Redis { redis, .. } => Pass::Deferred(Ticket {
                replay: None,
                dedupe: Some(redis.key(&format!("seen:{dedupe}"))),
            }),
        }
    }

    /// Check a ticket on its own: one pipelined round trip.
    pub async fn settle(&self, ticket: &Ticket) -> Result<Admission, Unavailable> {
        let Gate::Redis { redis, .. } = self else {
            // Embedded gates issue no tickets; a stray one is treated as new.
            return Ok(Admission {
                replayed: false,
                fresh: true,
            });
        };
        let t = ticket.clone();
        let replies: Vec<Option<String>> = redis
            .run(|mut c| async move {
                let mut pipe = redis::pipe();
                for (key, ttl) in [(&t.replay, REPLAY_TTL_SECS), (&t.dedupe, DEDUPE_TTL_SECS)] {
                    if let Some(k) = key {
                        pipe.cmd("SET").arg(k).arg(1).arg("NX").arg("EX").arg(ttl);
                    }
                }
                pipe.query_async(&mut c).await
            })
            .await?;
        let mut replies = replies.into_iter();
        let first = ticket.replay.is_none() || replies.next().is_some_and(|r| r.is_some());
        let again = ticket.dedupe.is_none() || replies.next().is_some_and(|r| r.is_some());
        // A replayed request is refused whatever its dedupe key says.
        Ok(Admission {
            replayed: !first,
            fresh: first && again,
        })
    }

    /// Settle a deferred check, if there is one: `Ok` to go on.
    pub async fn check(&self, ticket: Option<&Ticket>) -> Result<(), Refused> {
        let Some(t) = ticket else { return Ok(()) };
        match self.settle(t).await {
            Ok(a) if a.replayed => Err(Refused::Replayed),
            Ok(a) if !a.fresh => Err(Refused::Duplicate),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "request refused: shared state unreachable");
                Err(Refused::Unavailable)
            }
        }
    }

    /// Record a dedupe key with no signature around it: `true` the first time, on any replica.
    pub async fn first(&self, dedupe: &str) -> Result<bool, Unavailable> {
        match self.defer_unsigned(dedupe) {
            Pass::Settled(a) => Ok(a.fresh),
            Pass::Deferred(t) => Ok(self.settle(&t).await?.fresh),
        }
    }
}
