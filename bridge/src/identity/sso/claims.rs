//! What the last SSO login of each Slack user proved: the ID token's `sub`, its verified email
//! and name, and its group claim, keyed on the Slack user ID. Without a directory these are the
//! person; with one, the directory is, and the login only says which of its people this is.
//!
//! [`RedbClaims`] keeps them in `<state_dir>/sso.redb`; [`MemoryClaims`] is for unit tests.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::{Result, StoreError};

/// One login's verified facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoClaims {
    /// The ID token's `sub`: the provider's stable id for the person.
    pub sub: String,
    /// The `email` claim, kept only when the token said `email_verified: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The group claim's names, as the provider sent them.
    #[serde(default)]
    pub groups: Vec<String>,
    /// When the login happened (unix seconds).
    pub at: i64,
}

/// Claims by Slack user ID.
pub trait ClaimStore: Send + Sync + fmt::Debug {
    fn claims(&self, slack_user: &str) -> Result<Option<SsoClaims>>;
    fn set_claims(&self, slack_user: &str, claims: &SsoClaims) -> Result<()>;
    fn remove_claims(&self, slack_user: &str) -> Result<()>;
}

const CLAIMS: TableDefinition<&str, &str> = TableDefinition::new("sso_claims");

fn err(e: impl Into<redb::Error>) -> StoreError {
    StoreError(e.into().to_string())
}

fn json_err(e: &serde_json::Error) -> StoreError {
    StoreError(format!("stored SSO claims are unreadable: {e}"))
}

/// The embedded, file-backed claim store.
pub struct RedbClaims {
    db: redb::Database,
    path: PathBuf,
}

impl fmt::Debug for RedbClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbClaims")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbClaims {
    pub const FILE: &'static str = "sso.redb";

    /// Open (creating if needed) `<state_dir>/sso.redb`.
    pub fn open(state_dir: &Path) -> Result<RedbClaims> {
        let (db, path) = crate::store::open_redb(state_dir, Self::FILE)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(CLAIMS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(RedbClaims { db, path })
    }
}

impl RedbClaims {
    /// Every user's claims (for a migration).
    pub fn all(&self) -> Result<Vec<(String, SsoClaims)>> {
        use redb::ReadableTable as _;
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(CLAIMS).map_err(err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let claims = serde_json::from_str(v.value()).map_err(|e| json_err(&e))?;
            out.push((k.value().to_string(), claims));
        }
        Ok(out)
    }
}

impl ClaimStore for RedbClaims {
    fn claims(&self, slack_user: &str) -> Result<Option<SsoClaims>> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(CLAIMS).map_err(err)?;
        let Some(v) = table.get(slack_user).map_err(err)? else {
            return Ok(None);
        };
        serde_json::from_str(v.value())
            .map(Some)
            .map_err(|e| json_err(&e))
    }

    fn set_claims(&self, slack_user: &str, claims: &SsoClaims) -> Result<()> {
        let json = serde_json::to_string(claims).map_err(|e| json_err(&e))?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(CLAIMS)
            .map_err(err)?
            .insert(slack_user, json.as_str())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn remove_claims(&self, slack_user: &str) -> Result<()> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(CLAIMS)
            .map_err(err)?
            .remove(slack_user)
            .map_err(err)?;
        tx.commit().map_err(err)
    }
}

/// The same, in memory.
#[derive(Debug, Default)]
pub struct MemoryClaims(Mutex<HashMap<String, SsoClaims>>);

impl ClaimStore for MemoryClaims {
    fn claims(&self, slack_user: &str) -> Result<Option<SsoClaims>> {
        Ok(slipway_infra::sync::lock(&self.0).get(slack_user).cloned())
    }
    fn set_claims(&self, slack_user: &str, claims: &SsoClaims) -> Result<()> {
        slipway_infra::sync::lock(&self.0).insert(slack_user.to_string(), claims.clone());
        Ok(())
    }
    fn remove_claims(&self, slack_user: &str) -> Result<()> {
        slipway_infra::sync::lock(&self.0).remove(slack_user);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(s: &dyn ClaimStore) {
        assert_eq!(s.claims("U1").unwrap(), None);
        let c = SsoClaims {
            sub: "00u-ada".into(),
            email: Some("ada@example.com".into()),
            name: None,
            groups: vec!["sre".into()],
            at: 5,
        };
        s.set_claims("U1", &c).unwrap();
        assert_eq!(s.claims("U1").unwrap(), Some(c));
        s.remove_claims("U1").unwrap();
        assert_eq!(s.claims("U1").unwrap(), None);
    }

    #[test]
    fn memory_and_redb_agree_and_redb_survives_a_reopen() {
        exercise(&MemoryClaims::default());
        let dir = tempfile::tempdir().unwrap();
        exercise(&RedbClaims::open(dir.path()).unwrap());
        let c = SsoClaims {
            sub: "s".into(),
            email: None,
            name: Some("Sam".into()),
            groups: vec![],
            at: 9,
        };
        RedbClaims::open(dir.path())
            .unwrap()
            .set_claims("U2", &c)
            .unwrap();
        assert_eq!(
            RedbClaims::open(dir.path()).unwrap().claims("U2").unwrap(),
            Some(c)
        );
    }
}
