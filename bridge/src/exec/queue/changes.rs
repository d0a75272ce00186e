//! What the shared queue keeps beside the stream: the change steps in flight, this replica's
//! liveness, and the Cancel channel.
//!
//! A change step (a dry run, opening a PR) is a future on the replica that accepted it: it
//! can't travel and must never run twice (a second PR, a second dry run racing the first). So
//! it is only recorded, with the replica running it; every replica refreshes a short-lived
//! `replica:<id>` key, and when a recorded step's replica key is gone, the first replica to
//! notice (an `HDEL` only one caller wins) frees its slot and tells the requester it was
//! interrupted and should be run again. Nothing is re-executed.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::shared::Shared;
use super::{Handle, cancel_here};
use crate::shared::Unavailable;

/// A change step as recorded in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub id: String,
    pub replica: String,
    pub user: String,
    /// Where to tell the requester it was interrupted.
    pub report_to: String,
}

impl Shared {
    pub(super) fn changes_key(&self) -> String {
        self.redis.key("changes")
    }

    pub(super) fn replica_key(&self, replica: &str) -> String {
        self.redis.key(&format!("replica:{replica}"))
    }

    /// Fill in where to report a recorded step (taken before the change it opens was known),
    /// unless the step has already ended.
    pub async fn report_change_to(&self, record: &ChangeRecord) -> Result<(), Unavailable> {
        const UPDATE: &str = "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then \
                              redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0";
        let json = serde_json::to_string(record).map_err(|e| Unavailable(e.to_string()))?;
        let (key, id) = (self.changes_key(), record.id.clone());
        self.redis
            .run(|mut c| async move {
                redis::Script::new(UPDATE)
                    .key(key)
                    .arg(id)
                    .arg(json)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }

    /// A change step ended here: forget it and free its slot.
    pub async fn change_done(&self, id: &str, user: &str) -> Result<(), Unavailable> {
        let (key, field) = (self.changes_key(), id.to_string());
        self.redis
            .run(|mut c| async move {
                redis::cmd("HDEL")
                    .arg(key)
                    .arg(field)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        self.release(id, user).await
    }

    /// Say this replica is alive for two more claim timeouts (beaten every third of one, so
    /// a slow Redis doesn't make a live replica's steps look interrupted).
    pub async fn alive(&self) -> Result<(), Unavailable> {
        let key = self.replica_key(&self.replica);
        let ttl = u64::try_from((self.claim_timeout * 2).as_millis()).unwrap_or(u64::MAX);
        self.redis
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// The change steps whose replica died, each returned to exactly one caller (who must
    /// report it); their slots are freed.
    pub async fn orphaned_changes(&self) -> Result<Vec<ChangeRecord>, Unavailable> {
        let key = self.changes_key();
        let all: HashMap<String, String> = self
            .redis
            .run(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
            .await?;
        let mut orphaned = Vec::new();
        for (field, json) in all {
            let record: Option<ChangeRecord> = serde_json::from_str(&json).ok();
            if let Some(r) = &record
                && self.replica_alive(&r.replica).await?
            {
                continue;
            }
            let (key, f) = (self.changes_key(), field.clone());
            let won: i64 =
                self.redis
                    .run(|mut c| async move {
                        redis::cmd("HDEL").arg(key).arg(f).query_async(&mut c).await
                    })
                    .await?;
            if let (1, Some(r)) = (won, record) {
                self.release(&r.id, &r.user).await?;
                orphaned.push(r);
            }
        }
        Ok(orphaned)
    }

    async fn replica_alive(&self, replica: &str) -> Result<bool, Unavailable> {
        let key = self.replica_key(replica);
        self.redis
            .run(|mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await })
            .await
    }
}

/// A Cancel click relayed from the replica that received it (which checked who may).
#[derive(Debug, Deserialize)]
struct CancelMsg {
    run_id: String,
    by: String,
}

/// Listen on the Cancel channel and stop what runs here.
pub(super) fn listen_for_cancels(
    shared: &Shared,
    running: std::sync::Arc<Mutex<HashMap<String, Handle>>>,
) {
    shared
        .redis
        .subscribe_forever(
            shared.cancel_channel(),
            move |payload| match serde_json::from_slice::<CancelMsg>(payload) {
                Ok(m) => cancel_here(&running, &m.run_id, &m.by),
                Err(e) => tracing::warn!(error = %e, "malformed cancel message"),
            },
        );
}
