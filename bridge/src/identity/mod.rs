//! People: who a Slack user is. The policy's static list (small teams, bots, break-glass) always
//! applies and wins for its own Slack IDs; beside it, an identity provider's directory (SCIM
//! push from Okta or Entra ID, or a Google Workspace sync) is the source of truth, and a Slack
//! user becomes one of its people only through a checked link (see [`links`]).
//!
//! The directory ([`DirectoryStore`]) holds what the IdP pushed or a sync read; [`Directory`] is
//! the read side people resolution needs. This module sits below the domain services: it reads
//! the directory, the links and Slack, and knows nothing of HTTP ingress, changes or reads.

pub mod directory;
mod directory_redis;
pub mod google;
pub mod links;
pub mod links_redis;
pub mod listing;
mod memory;
mod redb_store;
pub mod resolve;
pub mod sso;

use std::fmt;
use std::sync::Arc;

use slipway_core::policy::Identity;
use slipway_core::policy::model::ProviderKind;

use crate::store::StoreError;

pub use directory::{
    DirectoryError, DirectoryGroup, DirectoryStore, DirectoryUser, Email, Source, SyncState,
};
pub use directory_redis::RedisDirectory;
pub use memory::MemoryDirectory;
pub use redb_store::RedbDirectory;
pub use resolve::{Known, Origin, People, Resolved};

/// A person as the identity provider describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The directory's own id (SCIM `id`, Google user id).
    pub id: String,
    /// The stable name audit records use: the SCIM `userName` or the Google primary email.
    pub subject: String,
    /// The primary email, which a Slack profile email must equal to link by email.
    pub email: Option<String>,
    pub name: Option<String>,
    pub github: Option<String>,
    /// `false` once the IdP deactivated or suspended them.
    pub active: bool,
    /// The display names of the groups they belong to (what `bindings` name).
    pub groups: Vec<String>,
    pub source: ProviderKind,
    /// When the directory last heard about this person (unix seconds).
    pub synced_at: i64,
}

impl Person {
    /// The identity policy judges.
    pub fn identity(&self) -> Identity {
        Identity {
            subject: self.subject.clone(),
            email: self.email.clone(),
            name: self.name.clone(),
            github: self.github.clone(),
            groups: self.groups.clone(),
            default_cluster: None,
        }
    }
}

/// The read side of the directory. Every person carries the provider they came from, and
/// resolution only takes people from the one the policy names.
pub trait Directory: Send + Sync + fmt::Debug {
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError>;
    /// By primary email, without case.
    fn person_by_email(&self, email: &str) -> Result<Option<Person>, StoreError>;
    /// By GitHub login, without case (a SCIM extension attribute or a `/slipway link github`).
    fn person_by_github(&self, login: &str) -> Result<Option<Person>, StoreError>;
    /// By the IdP's own id for them (SCIM `externalId`; an SSO login's `sub` for Okta).
    fn person_by_external_id(&self, _external_id: &str) -> Result<Option<Person>, StoreError> {
        Ok(None)
    }
}

/// [`Directory`] over a [`DirectoryStore`]: a user and the display names of their groups (of
/// the same source).
#[derive(Debug)]
pub struct StoreDirectory(pub Arc<dyn DirectoryStore>);

impl StoreDirectory {
    fn person_of(&self, user: Option<DirectoryUser>) -> Result<Option<Person>, StoreError> {
        let Some(u) = user else { return Ok(None) };
        // Only groups of the person's own source: a SCIM group can't hand a Google person a
        // role, nor the other way round.
        let groups = self
            .0
            .groups_of(&u.id)
            .map_err(|e| StoreError(e.to_string()))?
            .into_iter()
            .filter(|g| g.source == u.source)
            .map(|g| g.display_name)
            .collect();
        // A pulled directory vouches for everyone at each sync, changed or not.
        let synced_at = match u.source {
            Source::Google => self
                .0
                .sync_state(Source::Google)
                .map_err(|e| StoreError(e.to_string()))?
                .last_sync
                .map_or(u.updated, |t| t.max(u.updated)),
            Source::Scim => u.updated,
        };
        Ok(Some(Person {
            subject: u.user_name.clone(),
            email: u.primary_email().map(str::to_string),
            name: u.display_name.clone(),
            github: u.github_login.clone(),
            active: u.active,
            groups,
            source: match u.source {
                Source::Scim => ProviderKind::Scim,
                Source::Google => ProviderKind::Google,
            },
            synced_at,
            id: u.id,
        }))
    }
}

fn store_err(e: &DirectoryError) -> StoreError {
    StoreError(e.to_string())
}

impl Directory for StoreDirectory {
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        self.person_of(self.0.user(id).map_err(|e| store_err(&e))?)
    }
    fn person_by_email(&self, email: &str) -> Result<Option<Person>, StoreError> {
        self.person_of(self.0.user_by_email(email).map_err(|e| store_err(&e))?)
    }
    fn person_by_github(&self, login: &str) -> Result<Option<Person>, StoreError> {
        self.person_of(self.0.user_by_github(login).map_err(|e| store_err(&e))?)
    }
    /// A scan: SSO logins are rare, and the store keeps no index on `externalId`.
    fn person_by_external_id(&self, external_id: &str) -> Result<Option<Person>, StoreError> {
        let users = self.0.users().map_err(|e| store_err(&e))?;
        let mut found = users
            .into_iter()
            .filter(|u| u.external_id.as_deref() == Some(external_id));
        match (found.next(), found.next()) {
            (Some(u), None) => self.person_of(Some(u)),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;
