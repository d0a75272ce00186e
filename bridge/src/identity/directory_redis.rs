//! The directory in the shared Redis (issue 19): what SCIM pushed to one replica, or the Google
//! sync one replica ran, every replica resolves people from.
//!
//! Identity resolution runs on the Slack ack, which may make only one Redis round trip (the
//! replay gate's), so lookups (by id, email, GitHub login, groups of a user) are answered from a
//! replica-local copy, kept fresh by the change feed and a periodic reload (see
//! [`crate::shared::replicated`]). Writes are rare (provisioning) and go to Redis first, in one
//! optimistic transaction (`WATCH` the records and the unique-name index, check, then `MULTI`
//! the record, its index, the source's write count and the announcements), retried if another
//! replica wrote in between; then the local copy is updated.
//!
//! Keys, under the prefix: `dir:users`, `dir:groups` (hashes: id → record JSON), `dir:sync`
//! (hash: source → counts), `dir:user_names`, `dir:group_names` (hashes: lower-cased unique name
//! → id, Redis only: uniqueness is decided there, not in a copy that may lag).

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::Connection;
use serde::{Deserialize, Serialize};

use super::directory::{
    DirectoryError, DirectoryGroup, DirectoryStore, DirectoryUser, Entry, Result, Source,
    SyncState, check_write, key,
};
use crate::shared::blocking::{CHANGED, Pool};
use crate::shared::replicated::Replicated;

/// A source's counts as stored.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SyncRecord {
    changes: u64,
    last_change: Option<i64>,
    last_sync: Option<i64>,
}

/// The shared directory.
#[derive(Debug)]
pub struct RedisDirectory {
    pool: Pool,
    users: Arc<Replicated<DirectoryUser>>,
    groups: Arc<Replicated<DirectoryGroup>>,
    sync: Arc<Replicated<SyncRecord>>,
}

fn unavailable(e: &crate::shared::Unavailable) -> DirectoryError {
    DirectoryError::Store(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> redis::RedisResult<String> {
    serde_json::to_string(v)
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::Client, "encoding", e.to_string())))
}

fn decode<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str(&r).ok())
}

fn hget(c: &mut Connection, key: &str, field: &str) -> redis::RedisResult<Option<String>> {
    redis::cmd("HGET").arg(key).arg(field).query(c)
}

/// What a committed write changed, for the local copy.
struct Written<T> {
    items: Vec<(String, Option<T>)>,
    groups: Vec<DirectoryGroup>,
    sync: (Source, SyncRecord),
}

impl RedisDirectory {
    /// Load the directory and start following other replicas' writes.
    pub fn open(pool: &Pool) -> RedisDirectory {
        RedisDirectory {
            pool: pool.clone(),
            users: Replicated::open(pool, "dir:users"),
            groups: Replicated::open(pool, "dir:groups"),
            sync: Replicated::open(pool, "dir:sync"),
        }
    }

    fn names_key<T: Entry>(&self) -> String {
        self.pool.key(if T::UNIQUE == "userName" {
            "dir:user_names"
        } else {
            "dir:group_names"
        })
    }

    /// A source's counts after one more write at `at`, read inside the transaction.
    fn counted(
        &self,
        c: &mut Connection,
        source: Source,
        at: i64,
    ) -> redis::RedisResult<SyncRecord> {
        let mut s: SyncRecord =
            decode(hget(c, &self.sync.key(), source.as_str())?).unwrap_or_default();
        s.changes += 1;
        s.last_change = Some(at);
        Ok(s)
    }

    /// Queue the source's counts and the announcements of `topics` into `pipe`.
    fn finish(
        &self,
        pipe: &mut redis::Pipeline,
        sync: (Source, SyncRecord),
        topics: &[String],
    ) -> redis::RedisResult<()> {
        pipe.hset(self.sync.key(), sync.0.as_str(), encode(&sync.1)?)
            .ignore();
        let channel = self.pool.key(CHANGED);
        for t in topics {
            pipe.publish(&channel, t).ignore();
        }
        pipe.publish(&channel, self.sync.topic(sync.0.as_str()))
            .ignore();
        Ok(())
    }

    /// Create or replace `item` in `rep`: checks against Redis, then one `MULTI`.
    fn put<T>(&self, rep: &Replicated<T>, item: &T, create: bool) -> Result<()>
    where
        T: Entry + Send + Sync + 'static,
    {
        let (records, names) = (rep.key(), self.names_key::<T>());
        let watched = [records.clone(), names.clone(), self.sync.key()];
        let name = key(item.unique_name());
        let outcome = self
            .pool
            .run(|c| {
                redis::transaction(c, &watched, |c, pipe| {
                    let old: Option<T> = decode(hget(c, &records, item.id())?);
                    if let Err(e) =
                        check_write(old.as_ref().map(Entry::version), item.version(), create)
                    {
                        return Ok(Some(Err(e)));
                    }
                    let owner = hget(c, &names, &name)?;
                    if owner.is_some_and(|o| o != item.id()) {
                        return Ok(Some(Err(DirectoryError::Taken {
                            attribute: T::UNIQUE,
                        })));
                    }
                    let sync = (
                        item.source(),
                        self.counted(c, item.source(), item.updated())?,
                    );
                    if let Some(old) = &old {
                        pipe.hdel(&names, key(old.unique_name())).ignore();
                    }
                    pipe.hset(&records, item.id(), encode(item)?).ignore();
                    pipe.hset(&names, &name, item.id()).ignore();
                    self.finish(pipe, sync, &[rep.topic(item.id())])?;
                    let done: Option<(i64,)> = pipe.hlen(&records).query(c)?;
                    Ok(done.map(|_| Ok(sync)))
                })
            })
            .map_err(|e| unavailable(&e))?;
        let sync = outcome?;
        rep.note(item.id(), Some(item.clone()));
        self.sync.note(sync.0.as_str(), Some(sync.1));
        Ok(())
    }

    /// Remove a user and take them out of every group, in one transaction.
    fn remove_user(&self, id: &str, at: i64) -> Result<Option<Written<DirectoryUser>>> {
        let (users, groups, names) = (
            self.users.key(),
            self.groups.key(),
            self.names_key::<DirectoryUser>(),
        );
        let watched = [
            users.clone(),
            groups.clone(),
            names.clone(),
            self.sync.key(),
        ];
        self.pool
            .run(|c| {
                redis::transaction(c, &watched, |c, pipe| {
                    let Some(user) = decode::<DirectoryUser>(hget(c, &users, id)?) else {
                        return Ok(Some(None));
                    };
                    let all: BTreeMap<String, String> =
                        redis::cmd("HGETALL").arg(&groups).query(c)?;
                    let changed: Vec<DirectoryGroup> = all
                        .values()
                        .filter_map(|g| serde_json::from_str::<DirectoryGroup>(g).ok())
                        .filter_map(|g| g.without_member(id, at))
                        .collect();
                    let sync = (user.source, self.counted(c, user.source, at)?);
                    pipe.hdel(&users, id).ignore();
                    pipe.hdel(&names, key(&user.user_name)).ignore();
                    let mut topics = vec![self.users.topic(id)];
                    for g in &changed {
                        pipe.hset(&groups, &g.id, encode(g)?).ignore();
                        topics.push(self.groups.topic(&g.id));
                    }
                    self.finish(pipe, sync, &topics)?;
                    let done: Option<(i64,)> = pipe.hlen(&users).query(c)?;
                    Ok(done.map(|_| {
                        Some(Written {
                            items: vec![(id.to_string(), None)],
                            groups: changed.clone(),
                            sync,
                        })
                    }))
                })
            })
            .map_err(|e| unavailable(&e))
    }

    /// Remove a group, in one transaction.
    fn remove_group(&self, id: &str, at: i64) -> Result<Option<Written<DirectoryGroup>>> {
        let (groups, names) = (self.groups.key(), self.names_key::<DirectoryGroup>());
        let watched = [groups.clone(), names.clone(), self.sync.key()];
        self.pool
            .run(|c| {
                redis::transaction(c, &watched, |c, pipe| {
                    let Some(group) = decode::<DirectoryGroup>(hget(c, &groups, id)?) else {
                        return Ok(Some(None));
                    };
                    let sync = (group.source, self.counted(c, group.source, at)?);
                    pipe.hdel(&groups, id).ignore();
                    pipe.hdel(&names, key(&group.display_name)).ignore();
                    self.finish(pipe, sync, &[self.groups.topic(id)])?;
                    let done: Option<(i64,)> = pipe.hlen(&groups).query(c)?;
                    Ok(done.map(|_| {
                        Some(Written {
                            items: vec![(id.to_string(), None)],
                            groups: Vec::new(),
                            sync,
                        })
                    }))
                })
            })
            .map_err(|e| unavailable(&e))
    }

    /// The one user `matches` picks in the local copy, if exactly one.
    fn unique_user(&self, matches: impl Fn(&DirectoryUser) -> bool) -> Option<DirectoryUser> {
        let users = self.users.read();
        let mut found = users.values().filter(|u| matches(u));
        match (found.next(), found.next()) {
            (Some(u), None) => Some(u.clone()),
            _ => None,
        }
    }

    /// Write records as they are (versions kept), for a migration: each one an upsert, so
    /// importing twice leaves the same directory.
    pub fn import(
        &self,
        users: &[DirectoryUser],
        groups: &[DirectoryGroup],
        sync: &[(Source, SyncState)],
    ) -> Result<()> {
        for u in users {
            self.upsert(&self.users, u)?;
        }
        for g in groups {
            self.upsert(&self.groups, g)?;
        }
        for (source, s) in sync {
            let record = SyncRecord {
                changes: s.changes,
                last_change: s.last_change,
                last_sync: s.last_sync,
            };
            self.sync
                .set(source.as_str(), Some(&record))
                .map_err(|e| unavailable(&e))?;
        }
        Ok(())
    }

    fn upsert<T: Entry + Send + Sync + 'static>(
        &self,
        rep: &Replicated<T>,
        item: &T,
    ) -> Result<()> {
        let names = self.names_key::<T>();
        let name = key(item.unique_name());
        self.pool
            .run(|c| {
                redis::pipe()
                    .atomic()
                    .hset(&names, &name, item.id())
                    .ignore()
                    .exec(c)
            })
            .map_err(|e| unavailable(&e))?;
        rep.set(item.id(), Some(item)).map_err(|e| unavailable(&e))
    }
}

impl DirectoryStore for RedisDirectory {
    fn user(&self, id: &str) -> Result<Option<DirectoryUser>> {
        Ok(self.users.get(id))
    }

    fn user_by_email(&self, email: &str) -> Result<Option<DirectoryUser>> {
        let email = key(email);
        Ok(self.unique_user(|u| u.primary_email().is_some_and(|e| key(e) == email)))
    }

    fn user_by_github(&self, login: &str) -> Result<Option<DirectoryUser>> {
        let login = key(login);
        Ok(self.unique_user(|u| u.github_login.as_deref().is_some_and(|l| key(l) == login)))
    }

    fn groups_of(&self, user_id: &str) -> Result<Vec<DirectoryGroup>> {
        Ok(self
            .groups
            .read()
            .values()
            .filter(|g| g.members.iter().any(|m| m == user_id))
            .cloned()
            .collect())
    }

    fn users(&self) -> Result<Vec<DirectoryUser>> {
        Ok(self.users.read().values().cloned().collect())
    }

    fn group(&self, id: &str) -> Result<Option<DirectoryGroup>> {
        Ok(self.groups.get(id))
    }

    fn groups(&self) -> Result<Vec<DirectoryGroup>> {
        Ok(self.groups.read().values().cloned().collect())
    }

    fn sync_state(&self, source: Source) -> Result<SyncState> {
        let s = self.sync.get(source.as_str()).unwrap_or_default();
        Ok(SyncState {
            changes: s.changes,
            last_change: s.last_change,
            last_sync: s.last_sync,
        })
    }

    fn record_sync(&self, source: Source, at: i64) -> Result<()> {
        let (key, field, topic) = (
            self.sync.key(),
            source.as_str(),
            self.sync.topic(source.as_str()),
        );
        let channel = self.pool.key(CHANGED);
        let record = self
            .pool
            .run(|c| {
                redis::transaction(c, &[&key], |c, pipe| {
                    let mut s: SyncRecord = decode(hget(c, &key, field)?).unwrap_or_default();
                    s.last_sync = Some(at);
                    pipe.hset(&key, field, encode(&s)?).ignore();
                    let done: Option<(i64,)> = pipe.publish(&channel, &topic).query(c)?;
                    Ok(done.map(|_| s))
                })
            })
            .map_err(|e| unavailable(&e))?;
        self.sync.note(field, Some(record));
        Ok(())
    }

    fn create_user(&self, user: &DirectoryUser) -> Result<()> {
        self.put(&self.users, user, true)
    }

    fn replace_user(&self, user: &DirectoryUser) -> Result<()> {
        self.put(&self.users, user, false)
    }

    fn delete_user(&self, id: &str, at: i64) -> Result<bool> {
        let Some(w) = self.remove_user(id, at)? else {
            return Ok(false);
        };
        self.apply(&self.users, w);
        Ok(true)
    }

    fn create_group(&self, group: &DirectoryGroup) -> Result<()> {
        self.put(&self.groups, group, true)
    }

    fn replace_group(&self, group: &DirectoryGroup) -> Result<()> {
        self.put(&self.groups, group, false)
    }

    fn delete_group(&self, id: &str, at: i64) -> Result<bool> {
        let Some(w) = self.remove_group(id, at)? else {
            return Ok(false);
        };
        self.apply(&self.groups, w);
        Ok(true)
    }
}

impl RedisDirectory {
    /// Bring the local copy up to a committed write.
    fn apply<T: Entry + Send + Sync + 'static>(&self, rep: &Replicated<T>, w: Written<T>) {
        for (id, v) in w.items {
            rep.note(&id, v);
        }
        for g in w.groups {
            self.groups.note(&g.id.clone(), Some(g));
        }
        self.sync.note(w.sync.0.as_str(), Some(w.sync.1));
    }
}
