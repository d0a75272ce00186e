//! People: who a Slack user is. The policy's static list (small teams, bots, break-glass) always
//! applies and wins for its own Slack IDs; beside it, an identity provider's directory (SCIM
//! push from Okta or Entra ID, or a Google Workspace sync) is the source of truth, and a Slack
//! user becomes one of its people only through a checked link (see [`links`]).
//!
//! This module sits below the domain services: it reads the directory, the links and Slack,
//! and never reaches up into changes, reads or ingress.

pub mod links;
pub mod resolve;
pub mod sso;

use std::fmt;

use slipway_core::policy::Identity;
use slipway_core::policy::model::ProviderKind;

use crate::store::StoreError;

pub use resolve::{Known, People, Resolved, Source};

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

/// The read side of whichever directory the policy names.
pub trait Directory: Send + Sync + fmt::Debug {
    fn kind(&self) -> ProviderKind;
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError>;
    /// By primary email, without case.
    fn person_by_email(&self, email: &str) -> Result<Option<Person>, StoreError>;
    /// By GitHub login, without case (a SCIM extension attribute or a `/slipway link github`).
    fn person_by_github(&self, login: &str) -> Result<Option<Person>, StoreError>;
    /// By the identity provider's own id for them (SCIM `externalId`), exactly: with Okta, the
    /// `sub` of its ID tokens, which is how an SSO login finds its person. A directory that
    /// keeps no such id finds nobody, and the login's verified email is tried instead.
    fn person_by_external_id(&self, external_id: &str) -> Result<Option<Person>, StoreError> {
        let _ = external_id;
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
