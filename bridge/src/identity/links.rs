//! Which directory person each Slack user is, once Slipway has checked it, and which Slack
//! accounts an admin deactivated. Keyed on Slack's immutable user ID, never on a name or email
//! (both change; an email can be reused after someone leaves).
//!
//! [`RedbLinks`] keeps them in `<state_dir>/identity.redb` (one fsync'd transaction per write);
//! [`MemoryLinks`] is the same in memory, for unit tests.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::{Result, StoreError};

/// How a link was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkHow {
    /// The Slack profile email is the directory person's primary email.
    Email,
    /// An OIDC login at the organisation's IdP (`/slipway link sso`).
    Sso,
}

/// A Slack user tied to a directory person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The directory's id for the person (the SCIM `id`, the Google user id, the OIDC `sub`).
    pub person: String,
    pub how: LinkHow,
    /// The email both sides agreed on (for `how: email`), so a changed Slack email is noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Unix seconds.
    pub at: i64,
    /// The GitHub login they proved with `/slipway link github`, when the directory has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<String>,
}

/// Links and Slack deactivations, behind one trait so a shared store can replace the file.
pub trait LinkStore: Send + Sync + fmt::Debug {
    fn link(&self, slack_user: &str) -> Result<Option<Link>>;
    fn set_link(&self, slack_user: &str, link: &Link) -> Result<()>;
    fn remove_link(&self, slack_user: &str) -> Result<()>;
    /// Every link, by Slack user id (for operators' listings).
    fn links(&self) -> Result<Vec<(String, Link)>>;
    /// Record that Slack says this account is deactivated (or active again).
    fn set_slack_deactivated(&self, slack_user: &str, deactivated: bool) -> Result<()>;
    fn slack_deactivated(&self, slack_user: &str) -> Result<bool>;
}

const LINKS: TableDefinition<&str, &str> = TableDefinition::new("slack_links");
const DEACTIVATED: TableDefinition<&str, ()> = TableDefinition::new("slack_deactivated");

fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError(e.into().to_string())
}

fn json_err(e: &serde_json::Error) -> StoreError {
    StoreError(format!("a stored identity link is unreadable: {e}"))
}

/// The embedded, file-backed link store.
pub struct RedbLinks {
    db: redb::Database,
    path: PathBuf,
}

impl fmt::Debug for RedbLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbLinks")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbLinks {
    pub const FILE: &'static str = "identity.redb";

    /// Open (creating if needed) `<state_dir>/identity.redb`.
    pub fn open(state_dir: &Path) -> Result<RedbLinks> {
        let (db, path) = crate::store::open_redb(state_dir, Self::FILE)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(LINKS).map_err(err)?;
        tx.open_table(DEACTIVATED).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbLinks { db, path })
    }

    /// Every Slack user marked deactivated (for a migration).
    pub fn deactivated(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(DEACTIVATED).map_err(err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            out.push(row.map_err(err)?.0.value().to_string());
        }
        Ok(out)
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<(), redb::Error>,
    ) -> Result<()> {
        let tx = self.db.begin_write().map_err(err)?;
        f(&tx).map_err(err)?;
        tx.commit().map_err(err)
    }
}

impl LinkStore for RedbLinks {
    fn link(&self, slack_user: &str) -> Result<Option<Link>> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(LINKS).map_err(err)?;
        let Some(v) = table.get(slack_user).map_err(err)? else {
            return Ok(None);
        };
        serde_json::from_str(v.value())
            .map(Some)
            .map_err(|e| json_err(&e))
    }

    fn set_link(&self, slack_user: &str, link: &Link) -> Result<()> {
        let json = serde_json::to_string(link).map_err(|e| json_err(&e))?;
        self.write(|tx| {
            tx.open_table(LINKS)?.insert(slack_user, json.as_str())?;
            Ok(())
        })
    }

    fn remove_link(&self, slack_user: &str) -> Result<()> {
        self.write(|tx| {
            tx.open_table(LINKS)?.remove(slack_user)?;
            Ok(())
        })
    }

    fn links(&self) -> Result<Vec<(String, Link)>> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(LINKS).map_err(err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let link = serde_json::from_str(v.value()).map_err(|e| json_err(&e))?;
            out.push((k.value().to_string(), link));
        }
        Ok(out)
    }

    fn set_slack_deactivated(&self, slack_user: &str, deactivated: bool) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(DEACTIVATED)?;
            if deactivated {
                t.insert(slack_user, ())?;
            } else {
                t.remove(slack_user)?;
            }
            Ok(())
        })
    }

    fn slack_deactivated(&self, slack_user: &str) -> Result<bool> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(DEACTIVATED).map_err(err)?;
        Ok(table.get(slack_user).map_err(err)?.is_some())
    }
}

/// The same, in memory.
#[derive(Debug, Default)]
pub struct MemoryLinks(Mutex<(HashMap<String, Link>, HashSet<String>)>);

impl LinkStore for MemoryLinks {
    fn link(&self, slack_user: &str) -> Result<Option<Link>> {
        Ok(slipway_infra::sync::lock(&self.0)
            .0
            .get(slack_user)
            .cloned())
    }
    fn set_link(&self, slack_user: &str, link: &Link) -> Result<()> {
        slipway_infra::sync::lock(&self.0)
            .0
            .insert(slack_user.to_string(), link.clone());
        Ok(())
    }
    fn remove_link(&self, slack_user: &str) -> Result<()> {
        slipway_infra::sync::lock(&self.0).0.remove(slack_user);
        Ok(())
    }
    fn links(&self) -> Result<Vec<(String, Link)>> {
        let m = slipway_infra::sync::lock(&self.0);
        Ok(m.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    fn set_slack_deactivated(&self, slack_user: &str, deactivated: bool) -> Result<()> {
        let mut m = slipway_infra::sync::lock(&self.0);
        if deactivated {
            m.1.insert(slack_user.to_string());
        } else {
            m.1.remove(slack_user);
        }
        Ok(())
    }
    fn slack_deactivated(&self, slack_user: &str) -> Result<bool> {
        Ok(slipway_infra::sync::lock(&self.0).1.contains(slack_user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &dyn LinkStore) {
        assert_eq!(s.link("U1").unwrap(), None);
        let link = Link {
            person: "p-1".into(),
            how: LinkHow::Email,
            email: Some("ada@example.com".into()),
            at: 7,
            github: None,
        };
        s.set_link("U1", &link).unwrap();
        assert_eq!(s.link("U1").unwrap(), Some(link.clone()));
        assert_eq!(s.links().unwrap(), vec![("U1".to_string(), link)]);
        s.remove_link("U1").unwrap();
        assert_eq!(s.link("U1").unwrap(), None);
        assert!(!s.slack_deactivated("U1").unwrap());
        s.set_slack_deactivated("U1", true).unwrap();
        assert!(s.slack_deactivated("U1").unwrap());
        s.set_slack_deactivated("U1", false).unwrap();
        assert!(!s.slack_deactivated("U1").unwrap());
    }

    #[test]
    fn memory_and_redb_agree_and_redb_survives_a_reopen() {
        exercise(&MemoryLinks::default());
        let dir = tempfile::tempdir().unwrap();
        exercise(&RedbLinks::open(dir.path()).unwrap());
        let s = RedbLinks::open(dir.path()).unwrap();
        let link = Link {
            person: "p-2".into(),
            how: LinkHow::Sso,
            email: None,
            at: 9,
            github: Some("ada-gh".into()),
        };
        s.set_link("U2", &link).unwrap();
        drop(s);
        assert_eq!(
            RedbLinks::open(dir.path()).unwrap().link("U2").unwrap(),
            Some(link)
        );
    }

    #[test]
    fn redis_links_keep_the_contract_and_reach_the_other_replica() {
        let server = crate::shared::test_server::TestRedis::start();
        let pool = || crate::shared::blocking::Pool::new(server.config("slipway:"));
        exercise(&super::super::links_redis::RedisLinks::open(&pool()));
        let a = super::super::links_redis::RedisLinks::open(&pool());
        let b = super::super::links_redis::RedisLinks::open(&pool());
        let link = Link {
            person: "p-3".into(),
            how: LinkHow::Email,
            email: Some("bo@example.com".into()),
            at: 3,
            github: None,
        };
        a.set_link("U3", &link).unwrap();
        a.set_slack_deactivated("U4", true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while b.link("U3").unwrap().is_none() || !b.slack_deactivated("U4").unwrap() {
            assert!(std::time::Instant::now() < deadline, "b never saw the link");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(b.link("U3").unwrap(), Some(link));
    }
}
