//! The directory in `<state_dir>/directory.redb`: one file, ACID, each write one fsync'd
//! transaction. It is a file of its own rather than a table in `state.redb`, because redb locks
//! a file per process and the change service holds that one; the directory must open whether
//! or not change requests are configured.
//!
//! Records are JSON; indexes keep lookups off a scan: user names and group names (unique,
//! lower-cased), primary emails and GitHub logins (lower-cased, several users allowed so an
//! ambiguous one can be told apart), and memberships (member id → group id).

use std::fmt;
use std::path::{Path, PathBuf};

use redb::{
    MultimapTableDefinition, ReadableDatabase, ReadableMultimapTable, ReadableTable,
    TableDefinition, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::directory::{
    DirectoryError, DirectoryGroup, DirectoryStore, DirectoryUser, Entry, Result, Source,
    SyncState, check_write, key,
};

const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups");
const USER_NAMES: TableDefinition<&str, &str> = TableDefinition::new("user_names");
const GROUP_NAMES: TableDefinition<&str, &str> = TableDefinition::new("group_names");
const EMAILS: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("primary_emails");
const GITHUB: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("github_logins");
const MEMBERSHIPS: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("memberships");
/// Per source: (writes so far, unix seconds of the latest).
const SYNC: TableDefinition<&str, (u64, i64)> = TableDefinition::new("sync");
/// Per source: unix seconds of the latest complete sync.
const SYNCED: TableDefinition<&str, i64> = TableDefinition::new("synced");

macro_rules! store_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for DirectoryError {
            fn from(e: $t) -> Self {
                DirectoryError::Store(redb::Error::from(e).to_string())
            }
        }
    )*};
}
store_errors!(
    redb::Error,
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError
);

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| DirectoryError::Store(format!("encoding a record: {e}")))
}

fn load<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<T>> {
    let Some(bytes) = table.get(id)? else {
        return Ok(None);
    };
    serde_json::from_slice(bytes.value())
        .map(Some)
        .map_err(|e| DirectoryError::Store(format!("record {id} does not decode: {e}")))
}

fn load_all<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.push(serde_json::from_slice(v.value()).map_err(|e| {
            DirectoryError::Store(format!("record {} does not decode: {e}", k.value()))
        })?);
    }
    Ok(out)
}

/// The embedded, file-backed directory.
pub struct RedbDirectory {
    db: redb::Database,
    path: PathBuf,
}

impl fmt::Debug for RedbDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbDirectory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbDirectory {
    /// The file's name inside the state directory.
    pub const FILE: &'static str = "directory.redb";

    /// Open (creating if needed) `<state_dir>/directory.redb`.
    pub fn open(state_dir: &Path) -> Result<RedbDirectory> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| DirectoryError::Store(format!("creating {}: {e}", state_dir.display())))?;
        let path = state_dir.join(Self::FILE);
        let db = redb::Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => DirectoryError::Store(format!(
                "{} is in use by another bridge process",
                path.display()
            )),
            other => DirectoryError::Store(format!("opening {}: {other}", path.display())),
        })?;
        let store = RedbDirectory { db, path };
        // Create every table once, so read transactions never meet a missing one.
        store.write(|tx| {
            tx.open_table(USERS)?;
            tx.open_table(GROUPS)?;
            tx.open_table(USER_NAMES)?;
            tx.open_table(GROUP_NAMES)?;
            tx.open_multimap_table(EMAILS)?;
            tx.open_multimap_table(GITHUB)?;
            tx.open_multimap_table(MEMBERSHIPS)?;
            tx.open_table(SYNC)?;
            tx.open_table(SYNCED)?;
            Ok(())
        })?;
        Ok(store)
    }

    /// One transaction, committed only when `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let tx = self.db.begin_write()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        f(&self.db.begin_read()?)
    }

    /// The one user an index maps `value` to, if exactly one.
    fn unique_user(
        &self,
        index: MultimapTableDefinition<&str, &str>,
        value: &str,
    ) -> Result<Option<DirectoryUser>> {
        self.read(|tx| {
            let mut found = None;
            for id in tx.open_multimap_table(index)?.get(key(value).as_str())? {
                if found.replace(id?.value().to_string()).is_some() {
                    return Ok(None);
                }
            }
            match found {
                Some(id) => load(&tx.open_table(USERS)?, &id),
                None => Ok(None),
            }
        })
    }
}

/// Count one write of `source` at `at`.
fn count(tx: &WriteTransaction, source: Source, at: i64) -> Result<()> {
    let mut t = tx.open_table(SYNC)?;
    let changes = t.get(source.as_str())?.map_or(0, |v| v.value().0);
    t.insert(source.as_str(), (changes + 1, at))?;
    Ok(())
}

/// `Taken` when a unique index maps `name` to another record than `id`.
fn check_unique(
    tx: &WriteTransaction,
    index: TableDefinition<&str, &str>,
    name: &str,
    id: &str,
    attribute: &'static str,
) -> Result<()> {
    let t = tx.open_table(index)?;
    match t.get(key(name).as_str())? {
        Some(owner) if owner.value() != id => Err(DirectoryError::Taken { attribute }),
        _ => Ok(()),
    }
}

fn index_user(tx: &WriteTransaction, u: &DirectoryUser, add: bool) -> Result<()> {
    let (id, name) = (u.id.as_str(), key(&u.user_name));
    let mut names = tx.open_table(USER_NAMES)?;
    let mut emails = tx.open_multimap_table(EMAILS)?;
    let mut github = tx.open_multimap_table(GITHUB)?;
    let email = u.primary_email().map(key);
    let login = u.github_login.as_deref().map(key);
    if add {
        names.insert(name.as_str(), id)?;
        if let Some(e) = &email {
            emails.insert(e.as_str(), id)?;
        }
        if let Some(l) = &login {
            github.insert(l.as_str(), id)?;
        }
    } else {
        names.remove(name.as_str())?;
        if let Some(e) = &email {
            emails.remove(e.as_str(), id)?;
        }
        if let Some(l) = &login {
            github.remove(l.as_str(), id)?;
        }
    }
    Ok(())
}

fn index_group(tx: &WriteTransaction, g: &DirectoryGroup, add: bool) -> Result<()> {
    let id = g.id.as_str();
    let mut names = tx.open_table(GROUP_NAMES)?;
    let mut members = tx.open_multimap_table(MEMBERSHIPS)?;
    if add {
        names.insert(key(&g.display_name).as_str(), id)?;
        for m in &g.members {
            members.insert(m.as_str(), id)?;
        }
    } else {
        names.remove(key(&g.display_name).as_str())?;
        for m in &g.members {
            members.remove(m.as_str(), id)?;
        }
    }
    Ok(())
}

fn put_group(tx: &WriteTransaction, g: &DirectoryGroup) -> Result<()> {
    tx.open_table(GROUPS)?
        .insert(g.id.as_str(), encode(g)?.as_slice())?;
    Ok(())
}

/// Where one kind of entry lives: its records, its unique names, and how it is indexed.
struct Tables<T> {
    records: TableDefinition<'static, &'static str, &'static [u8]>,
    names: TableDefinition<'static, &'static str, &'static str>,
    index: fn(&WriteTransaction, &T, bool) -> Result<()>,
}

const USER_TABLES: Tables<DirectoryUser> = Tables {
    records: USERS,
    names: USER_NAMES,
    index: index_user,
};
const GROUP_TABLES: Tables<DirectoryGroup> = Tables {
    records: GROUPS,
    names: GROUP_NAMES,
    index: index_group,
};

/// Create or replace `item`: checks, then the record and its index entries, then the count.
fn put<T: Entry>(tx: &WriteTransaction, t: &Tables<T>, item: &T, create: bool) -> Result<()> {
    let old: Option<T> = load(&tx.open_table(t.records)?, item.id())?;
    check_write(old.as_ref().map(Entry::version), item.version(), create)?;
    check_unique(tx, t.names, item.unique_name(), item.id(), T::UNIQUE)?;
    if let Some(old) = &old {
        (t.index)(tx, old, false)?;
    }
    tx.open_table(t.records)?
        .insert(item.id(), encode(item)?.as_slice())?;
    (t.index)(tx, item, true)?;
    count(tx, item.source(), item.updated())
}

impl DirectoryStore for RedbDirectory {
    fn user(&self, id: &str) -> Result<Option<DirectoryUser>> {
        self.read(|tx| load(&tx.open_table(USERS)?, id))
    }

    fn user_by_email(&self, email: &str) -> Result<Option<DirectoryUser>> {
        self.unique_user(EMAILS, email)
    }

    fn user_by_github(&self, login: &str) -> Result<Option<DirectoryUser>> {
        self.unique_user(GITHUB, login)
    }

    fn groups_of(&self, user_id: &str) -> Result<Vec<DirectoryGroup>> {
        self.read(|tx| {
            let groups = tx.open_table(GROUPS)?;
            let mut out = Vec::new();
            for gid in tx.open_multimap_table(MEMBERSHIPS)?.get(user_id)? {
                out.extend(load(&groups, gid?.value())?);
            }
            Ok(out)
        })
    }

    fn users(&self) -> Result<Vec<DirectoryUser>> {
        self.read(|tx| load_all(&tx.open_table(USERS)?))
    }

    fn group(&self, id: &str) -> Result<Option<DirectoryGroup>> {
        self.read(|tx| load(&tx.open_table(GROUPS)?, id))
    }

    fn groups(&self) -> Result<Vec<DirectoryGroup>> {
        self.read(|tx| load_all(&tx.open_table(GROUPS)?))
    }

    fn sync_state(&self, source: Source) -> Result<SyncState> {
        self.read(|tx| {
            let last_sync = tx
                .open_table(SYNCED)?
                .get(source.as_str())?
                .map(|v| v.value());
            let (changes, last_change) = match tx.open_table(SYNC)?.get(source.as_str())? {
                Some(v) => {
                    let (changes, at) = v.value();
                    (changes, Some(at))
                }
                None => (0, None),
            };
            Ok(SyncState {
                changes,
                last_change,
                last_sync,
            })
        })
    }

    fn record_sync(&self, source: Source, at: i64) -> Result<()> {
        self.write(|tx| {
            tx.open_table(SYNCED)?.insert(source.as_str(), at)?;
            Ok(())
        })
    }

    fn create_user(&self, user: &DirectoryUser) -> Result<()> {
        self.write(|tx| put(tx, &USER_TABLES, user, true))
    }

    fn replace_user(&self, user: &DirectoryUser) -> Result<()> {
        self.write(|tx| put(tx, &USER_TABLES, user, false))
    }

    fn delete_user(&self, id: &str, at: i64) -> Result<bool> {
        self.write(|tx| {
            let mut users = tx.open_table(USERS)?;
            let Some(user) = load::<DirectoryUser>(&users, id)? else {
                return Ok(false);
            };
            index_user(tx, &user, false)?;
            users.remove(id)?;
            let mut group_ids = Vec::new();
            for gid in tx.open_multimap_table(MEMBERSHIPS)?.get(id)? {
                group_ids.push(gid?.value().to_string());
            }
            for gid in group_ids {
                let group: Option<DirectoryGroup> = load(&tx.open_table(GROUPS)?, &gid)?;
                if let Some(next) = group.and_then(|g| g.without_member(id, at)) {
                    put_group(tx, &next)?;
                }
            }
            tx.open_multimap_table(MEMBERSHIPS)?.remove_all(id)?;
            count(tx, user.source, at)?;
            Ok(true)
        })
    }

    fn create_group(&self, group: &DirectoryGroup) -> Result<()> {
        self.write(|tx| put(tx, &GROUP_TABLES, group, true))
    }

    fn replace_group(&self, group: &DirectoryGroup) -> Result<()> {
        self.write(|tx| put(tx, &GROUP_TABLES, group, false))
    }

    fn delete_group(&self, id: &str, at: i64) -> Result<bool> {
        self.write(|tx| {
            let Some(group) = load::<DirectoryGroup>(&tx.open_table(GROUPS)?, id)? else {
                return Ok(false);
            };
            index_group(tx, &group, false)?;
            tx.open_table(GROUPS)?.remove(id)?;
            count(tx, group.source, at)?;
            Ok(true)
        })
    }
}
