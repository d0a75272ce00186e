//! The ack's one Redis round trip (issue 19): a single script that checks the gate (replay and
//! dedupe keys), takes a slot under both limits, takes a pending change if asked, and queues
//! the read or records the change step. Either all of it happens or none of the work does, so
//! a replay or a retry that reaches another replica queues nothing, and a crash after the ack
//! loses nothing (the work is in Redis before Slack hears "running").

use std::time::Duration;

use super::changes::ChangeRecord;
use super::shared::{Shared, WireJob, ms};
use crate::shared::gate::{DEDUPE_TTL_SECS, REPLAY_TTL_SECS};
use crate::shared::{Ticket, Unavailable};

/// How long a queued job's slot lasts before a worker takes it (then heartbeats extend it).
const QUEUED_SLOT: Duration = Duration::from_secs(3600);

/// KEYS: 1 user slots, 2 all slots, 3 stream, 4 replay, 5 dedupe, 6 change steps, 7 this
/// replica's liveness, 8 pending change. ARGV: 1 flags (`r` replay, `d` dedupe, `x` queue a
/// read, `c` record a change step, `p` take the pending change), 2 id, 3 per-user limit,
/// 4 bound, 5 slot ms, 6 payload, 7 replay ttl, 8 dedupe ttl, 9 liveness ms.
/// Returns `{code, taken}`: 0 admitted, n > 0 the user holds n, -1 full, -2 replayed,
/// -3 a retry, -4 the pending change is gone.
const ACK: &str = r"
local flags = ARGV[1]
if string.find(flags, 'r', 1, true) then
  if not redis.call('SET', KEYS[4], 1, 'NX', 'EX', ARGV[7]) then return {-2, false} end
end
if string.find(flags, 'd', 1, true) then
  if not redis.call('SET', KEYS[5], 1, 'NX', 'EX', ARGV[8]) then return {-3, false} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local mine = redis.call('ZCARD', KEYS[1])
if mine >= tonumber(ARGV[3]) then return {mine, false} end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {-1, false} end
local taken = false
if string.find(flags, 'p', 1, true) then
  taken = redis.call('GETDEL', KEYS[8])
  if not taken then return {-4, false} end
end
local deadline = now + tonumber(ARGV[5])
redis.call('ZADD', KEYS[1], deadline, ARGV[2])
redis.call('ZADD', KEYS[2], deadline, ARGV[2])
if string.find(flags, 'x', 1, true) then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'job', ARGV[6])
end
if string.find(flags, 'c', 1, true) then
  redis.call('HSET', KEYS[6], ARGV[2], ARGV[6])
  redis.call('SET', KEYS[7], 1, 'PX', ARGV[9])
end
return {0, taken}";

/// What the admitted slot is for.
#[derive(Debug)]
pub enum Work<'a> {
    /// Only a slot (tests, tools).
    Slot,
    /// A read, queued in the stream for any replica's worker.
    Read(&'a WireJob),
    /// A change step that runs on this replica, recorded so another can report it if this
    /// one dies.
    Change(&'a ChangeRecord),
}

/// One ack's admission.
#[derive(Debug)]
pub struct Admission<'a> {
    pub id: &'a str,
    pub user: &'a str,
    /// The gate's deferred check, if the ack has not settled it yet.
    pub gate: Option<&'a Ticket>,
    pub work: Work<'a>,
    /// A pending change to take (its full key), only if everything else admits the work.
    pub take: Option<&'a str>,
}

/// How an admission went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Admitted; with the pending change's stored value when one was taken.
    Ok(Option<String>),
    UserBusy(usize),
    Full,
    /// The signed request was already accepted (by any replica): refuse it.
    Replayed,
    /// The event or trigger was already handled: a retry.
    Duplicate,
    /// The pending change to take has expired or was taken by another click.
    Gone,
}

impl Shared {
    /// The ack's one round trip; see [`ACK`].
    pub async fn admit_ack(&self, a: Admission<'_>) -> Result<Admitted, Unavailable> {
        let (flags, payload) = flags_and_payload(&a)?;
        let none = self.redis.key("none");
        let keys = [
            self.user_slots(a.user),
            self.all_slots(),
            self.stream(),
            a.gate
                .and_then(|t| t.replay.clone())
                .unwrap_or(none.clone()),
            a.gate
                .and_then(|t| t.dedupe.clone())
                .unwrap_or(none.clone()),
            self.changes_key(),
            self.replica_key(&self.replica),
            a.take.map_or(none, str::to_string),
        ];
        let args = (
            a.id.to_string(),
            self.per_user,
            self.bound,
            ms(QUEUED_SLOT),
            ms(self.claim_timeout * 2),
        );
        let (code, taken): (i64, Option<String>) = self
            .redis
            .run(|mut c| async move {
                redis::Script::new(ACK)
                    .key(&keys[..])
                    .arg(flags)
                    .arg(args.0)
                    .arg(args.1)
                    .arg(args.2)
                    .arg(args.3)
                    .arg(payload)
                    .arg(REPLAY_TTL_SECS)
                    .arg(DEDUPE_TTL_SECS)
                    .arg(args.4)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(match code {
            0 => Admitted::Ok(taken),
            n if n > 0 => Admitted::UserBusy(usize::try_from(n).unwrap_or(usize::MAX)),
            -2 => Admitted::Replayed,
            -3 => Admitted::Duplicate,
            -4 => Admitted::Gone,
            _ => Admitted::Full,
        })
    }

    /// Take a slot for `id` and, with a `payload`, queue the read, in one step.
    pub async fn admit(
        &self,
        id: &str,
        user: &str,
        payload: Option<&WireJob>,
    ) -> Result<Admitted, Unavailable> {
        self.admit_ack(Admission {
            id,
            user,
            gate: None,
            work: payload.map_or(Work::Slot, Work::Read),
            take: None,
        })
        .await
    }
}

fn flags_and_payload(a: &Admission<'_>) -> Result<(String, String), Unavailable> {
    let mut flags = String::new();
    if let Some(t) = a.gate {
        if t.replay.is_some() {
            flags.push('r');
        }
        if t.dedupe.is_some() {
            flags.push('d');
        }
    }
    if a.take.is_some() {
        flags.push('p');
    }
    let payload = match &a.work {
        Work::Slot => String::new(),
        Work::Read(j) => {
            flags.push('x');
            serde_json::to_string(j).map_err(|e| Unavailable(e.to_string()))?
        }
        Work::Change(r) => {
            flags.push('c');
            serde_json::to_string(r).map_err(|e| Unavailable(e.to_string()))?
        }
    };
    Ok((flags, payload))
}

#[cfg(test)]
mod tests;
