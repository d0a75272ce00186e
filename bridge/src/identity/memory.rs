//! The directory in memory (lost on restart): for unit tests. Lookups scan; the redb store
//! keeps indexes instead.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::directory::{
    DirectoryError, DirectoryGroup, DirectoryStore, DirectoryUser, Entry, Result, Source,
    SyncState, check_write, key,
};

#[derive(Debug, Default)]
pub struct MemoryDirectory(Mutex<Memory>);

#[derive(Debug, Default)]
struct Memory {
    users: BTreeMap<String, DirectoryUser>,
    groups: BTreeMap<String, DirectoryGroup>,
    sync: BTreeMap<Source, SyncState>,
}

impl Memory {
    fn count(&mut self, source: Source, at: i64) {
        let s = self.sync.entry(source).or_default();
        s.changes += 1;
        s.last_change = Some(at);
    }
}

/// Create or replace `item` in `map`, keeping its name unique.
fn put<T: Entry>(map: &mut BTreeMap<String, T>, item: &T, create: bool) -> Result<()> {
    check_write(
        map.get(item.id()).map(Entry::version),
        item.version(),
        create,
    )?;
    let name = key(item.unique_name());
    if map
        .values()
        .any(|other| other.id() != item.id() && key(other.unique_name()) == name)
    {
        return Err(DirectoryError::Taken {
            attribute: T::UNIQUE,
        });
    }
    map.insert(item.id().to_string(), item.clone());
    Ok(())
}

impl MemoryDirectory {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut slipway_infra::sync::lock(&self.0))
    }

    fn write<T: Entry>(
        &self,
        map: impl FnOnce(&mut Memory) -> &mut BTreeMap<String, T>,
        item: &T,
        create: bool,
    ) -> Result<()> {
        self.with(|m| {
            put(map(m), item, create)?;
            m.count(item.source(), item.updated());
            Ok(())
        })
    }

    /// The one user `matches` picks, if exactly one.
    fn unique_user(&self, matches: impl Fn(&DirectoryUser) -> bool) -> Option<DirectoryUser> {
        self.with(|m| {
            let mut found = m.users.values().filter(|u| matches(u));
            match (found.next(), found.next()) {
                (Some(u), None) => Some(u.clone()),
                _ => None,
            }
        })
    }
}

impl DirectoryStore for MemoryDirectory {
    fn user(&self, id: &str) -> Result<Option<DirectoryUser>> {
        Ok(self.with(|m| m.users.get(id).cloned()))
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
        Ok(self.with(|m| {
            m.groups
                .values()
                .filter(|g| g.members.iter().any(|x| x == user_id))
                .cloned()
                .collect()
        }))
    }

    fn users(&self) -> Result<Vec<DirectoryUser>> {
        Ok(self.with(|m| m.users.values().cloned().collect()))
    }

    fn group(&self, id: &str) -> Result<Option<DirectoryGroup>> {
        Ok(self.with(|m| m.groups.get(id).cloned()))
    }

    fn groups(&self) -> Result<Vec<DirectoryGroup>> {
        Ok(self.with(|m| m.groups.values().cloned().collect()))
    }

    fn sync_state(&self, source: Source) -> Result<SyncState> {
        Ok(self.with(|m| m.sync.get(&source).copied().unwrap_or_default()))
    }

    fn record_sync(&self, source: Source, at: i64) -> Result<()> {
        self.with(|m| m.sync.entry(source).or_default().last_sync = Some(at));
        Ok(())
    }

    fn create_user(&self, user: &DirectoryUser) -> Result<()> {
        self.write(|m| &mut m.users, user, true)
    }

    fn replace_user(&self, user: &DirectoryUser) -> Result<()> {
        self.write(|m| &mut m.users, user, false)
    }

    fn delete_user(&self, id: &str, at: i64) -> Result<bool> {
        Ok(self.with(|m| {
            let Some(user) = m.users.remove(id) else {
                return false;
            };
            let changed: Vec<DirectoryGroup> = m
                .groups
                .values()
                .filter_map(|g| g.without_member(id, at))
                .collect();
            for g in changed {
                m.groups.insert(g.id.clone(), g);
            }
            m.count(user.source, at);
            true
        }))
    }

    fn create_group(&self, group: &DirectoryGroup) -> Result<()> {
        self.write(|m| &mut m.groups, group, true)
    }

    fn replace_group(&self, group: &DirectoryGroup) -> Result<()> {
        self.write(|m| &mut m.groups, group, false)
    }

    fn delete_group(&self, id: &str, at: i64) -> Result<bool> {
        Ok(self.with(|m| match m.groups.remove(id) {
            Some(g) => {
                m.count(g.source, at);
                true
            }
            None => false,
        }))
    }
}
