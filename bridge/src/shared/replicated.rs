//! A Redis hash with a copy in every replica's memory, for state the Slack ack reads (identity
//! links, SSO claims, the directory): the ack may make one Redis round trip, the replay gate's,
//! so these reads must not touch Redis at all.
//!
//! - Reads are served from the local copy only.
//! - Writes go to Redis first, with the announcement `<name>:<field>` published on
//!   `<prefix>changed` in the same `MULTI` (or the caller's own transaction), then update the
//!   local copy, so this replica reads its own write at once.
//! - Every replica's watcher ([`super::blocking::watch`]) reads the field named by each
//!   announcement again, and reloads the whole hash when it (re)subscribes and every
//!   [`super::blocking::RELOAD_EVERY`], so an announcement missed while the link was down is
//!   healed within that period.
//!
//! Another replica's write is thus seen after one pub/sub hop (milliseconds), and at worst after
//! the periodic reload.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Unavailable;
use super::blocking::{Pool, Watched, watch};

/// One replicated hash of JSON values.
pub struct Replicated<T> {
    pool: Pool,
    name: String,
    local: RwLock<BTreeMap<String, T>>,
}

impl<T> std::fmt::Debug for Replicated<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicated")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(name: &str, field: &str, raw: &str) -> Option<T> {
    match serde_json::from_str(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, hash = name, field, "a shared record is unreadable; skipped");
            None
        }
    }
}

impl<T> Replicated<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The hash `<prefix><name>`, loaded now (empty if Redis is down: the watcher loads it as
    /// soon as it subscribes) and kept fresh until dropped.
    pub fn open(pool: &Pool, name: &str) -> Arc<Replicated<T>> {
        let r = Arc::new(Replicated {
            pool: pool.clone(),
            name: name.to_string(),
            local: RwLock::new(BTreeMap::new()),
        });
        if let Err(e) = r.load() {
            tracing::warn!(error = %e, hash = name, "loading shared state; retrying in the background");
        }
        let weak: Weak<dyn Watched> = Arc::downgrade(&r) as Weak<dyn Watched>;
        watch(pool, weak);
        r
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The hash's key in Redis.
    pub fn key(&self) -> String {
        self.pool.key(&self.name)
    }

    /// What a write of `field` announces.
    pub fn topic(&self, field: &str) -> String {
        format!("{}:{field}", self.name)
    }

    pub fn get(&self, field: &str) -> Option<T> {
        self.read().get(field).cloned()
    }

    /// Read the local copy.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, T>> {
        self.local
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_local(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, T>> {
        self.local
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Set (or with `None`, remove) `field` in Redis and announce it, atomically; then here.
    pub fn set(&self, field: &str, value: Option<&T>) -> Result<(), Unavailable> {
        let (key, topic, channel) = (
            self.key(),
            self.topic(field),
            self.pool.key(super::blocking::CHANGED),
        );
        let json = value
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Unavailable(format!("encoding: {e}")))?;
        self.pool.run(|c| {
            let mut p = redis::pipe();
            p.atomic();
            match &json {
                Some(j) => p.hset(&key, field, j).ignore(),
                None => p.hdel(&key, field).ignore(),
            };
            p.publish(&channel, &topic).ignore().exec(c)
        })?;
        self.note(field, value.cloned());
        Ok(())
    }

    /// Record in the local copy what the caller's own transaction wrote to Redis.
    pub fn note(&self, field: &str, value: Option<T>) {
        let mut local = self.write_local();
        match value {
            Some(v) => local.insert(field.to_string(), v),
            None => local.remove(field),
        };
    }

    /// Read one field from Redis into the local copy.
    fn refresh(&self, field: &str) -> Result<(), Unavailable> {
        let key = self.key();
        let raw: Option<String> = self
            .pool
            .run(|c| redis::cmd("HGET").arg(&key).arg(field).query(c))?;
        let value = raw.and_then(|r| decode(&self.name, field, &r));
        self.note(field, value);
        Ok(())
    }

    /// Replace the local copy with the whole hash.
    pub fn load(&self) -> Result<(), Unavailable> {
        let key = self.key();
        let all: BTreeMap<String, String> = self
            .pool
            .run(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        let fresh: BTreeMap<String, T> = all
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), decode(&self.name, k, v)?)))
            .collect();
        *self.write_local() = fresh;
        Ok(())
    }
}

impl<T> Watched for Replicated<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn changed(&self, what: &str) {
        let Some(field) = what
            .strip_prefix(self.name.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            return;
        };
        if let Err(e) = self.refresh(field) {
            tracing::warn!(error = %e, hash = %self.name, "refreshing shared state");
        }
    }

    fn reload(&self) {
        if let Err(e) = self.load() {
            tracing::warn!(error = %e, hash = %self.name, "reloading shared state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::test_server::TestRedis;

    #[test]
    fn a_write_is_read_here_at_once_and_elsewhere_after_the_feed() {
        let server = TestRedis::start();
        let pool = Pool::new(server.config("slipway:"));
        let a = Replicated::<String>::open(&pool, "things");
        let b = Replicated::<String>::open(&Pool::new(server.config("slipway:")), "things");
        a.set("k", Some(&"v".to_string())).unwrap();
        assert_eq!(a.get("k").as_deref(), Some("v"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while b.get("k").is_none() {
            assert!(std::time::Instant::now() < deadline, "b never saw it");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        a.set("k", None).unwrap();
        while b.get("k").is_some() {
            assert!(std::time::Instant::now() < deadline, "b never saw it go");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_missed_announcement_heals_on_reload_and_garbage_is_skipped() {
        let server = TestRedis::start();
        let pool = Pool::new(server.config("slipway:"));
        let b = Replicated::<u32>::open(&pool, "nums");
        // Written behind the feed's back: no announcement, and one unreadable record.
        pool.run(|c| {
            redis::cmd("HSET")
                .arg(pool.key("nums"))
                .arg("one")
                .arg("1")
                .arg("bad")
                .arg("{not json")
                .exec(c)
        })
        .unwrap();
        assert_eq!(b.get("one"), None);
        b.reload();
        assert_eq!(b.get("one"), Some(1));
        assert_eq!(b.get("bad"), None);
    }
}
