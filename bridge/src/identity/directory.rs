//! The identity provider's people and groups, whatever pushed or synced them (SCIM from Okta or
//! Entra ID, or the Google Workspace sync). The SCIM core schema is the directory's shape: each record keeps the
//! resource as the provider sent it, so a read returns what was written, plus the typed fields
//! the bridge decides with (user name, emails, active, GitHub login, members).
//!
//! [`DirectoryStore`] is the seam: [`super::RedbDirectory`] keeps it in
//! `<state_dir>/directory.redb`, [`super::MemoryDirectory`] in memory for unit tests, and a shared
//! store (for several bridge replicas) can replace both.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The SCIM core User schema, whose attributes sit at the top of a user's resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The SCIM core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise extension (RFC 7643 §4.3): employee number, department, manager…
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Slipway's own User extension. Its one attribute, `githubLogin`, carries the person's GitHub
/// login when the identity provider knows it (`docs/identity.md`).
pub const SLIPWAY_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:slipway:2.0:User";

/// Who wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Pushed by an identity provider over SCIM (`/scim/v2`).
    Scim,
    /// Synced from Google Workspace's Directory API.
    Google,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scim => "scim",
            Source::Google => "google",
        }
    }
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub value: String,
    /// `work`, `home`, `other`, or whatever the provider sent.
    pub kind: Option<String>,
    pub primary: bool,
}

/// A person in the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: String,
    /// Unique among users, case-insensitively.
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub emails: Vec<Email>,
    /// `false` once the provider deactivates them. A resource without `active` is active: the
    /// providers send `active: false` to deprovision, never a missing attribute.
    pub active: bool,
    /// From the Slipway extension's `githubLogin`.
    pub github_login: Option<String>,
    pub source: Source,
    /// Unix seconds.
    pub created: i64,
    pub updated: i64,
    /// 1 when created, one more on every write: the ETag, and what a replacement must follow.
    pub version: u64,
    /// The resource's attributes as written (no `id`, `meta` or `groups`: those are the store's).
    pub resource: Value,
}

/// A group in the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryGroup {
    pub id: String,
    /// Unique among groups, case-insensitively: policy bindings name groups by it.
    pub display_name: String,
    pub external_id: Option<String>,
    /// The `value` of each member: user ids (or nested group ids, as the provider sent them).
    pub members: Vec<String>,
    pub source: Source,
    pub created: i64,
    pub updated: i64,
    pub version: u64,
    pub resource: Value,
}

/// How much one source has written, and when it last synced, for "last synced" in
/// explanations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Writes (creates, replacements, deletions) so far.
    pub changes: u64,
    /// Unix seconds of the latest write.
    pub last_change: Option<i64>,
    /// Unix seconds of the latest complete sync (a pulling source, such as Google, marks each
    /// one, whether or not it changed anything).
    pub last_sync: Option<i64>,
}

/// Why a store refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Another record already has this `userName`, group `displayName` or `id`.
    #[error("another resource already has this {attribute}")]
    Taken { attribute: &'static str },
    /// Replaced a record that isn't there.
    #[error("no such resource")]
    Missing,
    /// Someone wrote the record after the caller read it (its version moved on).
    #[error("the resource changed since it was read")]
    Stale,
    /// I/O or corruption: logged, never shown to a client.
    #[error("directory store: {0}")]
    Store(String),
}

pub type Result<T> = std::result::Result<T, DirectoryError>;

/// The directory: what SCIM writes, and what identity resolution reads.
pub trait DirectoryStore: Send + Sync + fmt::Debug {
    fn user(&self, id: &str) -> Result<Option<DirectoryUser>>;
    /// The one user whose primary email (or only email) this is, case-insensitively. `None`
    /// when nobody has it, or when several users do: an ambiguous email links nobody.
    fn user_by_email(&self, email: &str) -> Result<Option<DirectoryUser>>;
    /// The one user with this GitHub login, case-insensitively (`None` if none or several).
    fn user_by_github(&self, login: &str) -> Result<Option<DirectoryUser>>;
    /// The groups that list the user among their members.
    fn groups_of(&self, user_id: &str) -> Result<Vec<DirectoryGroup>>;
    fn users(&self) -> Result<Vec<DirectoryUser>>;
    fn group(&self, id: &str) -> Result<Option<DirectoryGroup>>;
    fn groups(&self) -> Result<Vec<DirectoryGroup>>;
    /// How many writes one source made, when the latest was, and when it last synced.
    fn sync_state(&self, source: Source) -> Result<SyncState>;
    /// Mark a complete sync of `source` at `at` (unix seconds).
    fn record_sync(&self, source: Source, at: i64) -> Result<()>;

    /// Add a user (`version` 1). [`DirectoryError::Taken`] if the id or user name is in use.
    fn create_user(&self, user: &DirectoryUser) -> Result<()>;
    /// Replace a user read at `user.version - 1` ([`DirectoryError::Stale`] otherwise).
    fn replace_user(&self, user: &DirectoryUser) -> Result<()>;
    /// Remove a user and take them out of every group (at `at`, unix seconds). `false` if absent.
    fn delete_user(&self, id: &str, at: i64) -> Result<bool>;
    /// Add a group. [`DirectoryError::Taken`] if the id or display name is in use.
    fn create_group(&self, group: &DirectoryGroup) -> Result<()>;
    fn replace_group(&self, group: &DirectoryGroup) -> Result<()>;
    fn delete_group(&self, id: &str, at: i64) -> Result<bool>;
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

impl DirectoryUser {
    /// A user with the typed fields read from its SCIM resource.
    pub fn from_resource(id: String, source: Source, resource: Value, created: i64) -> Self {
        let emails = resource
            .get("emails")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| {
                        Some(Email {
                            value: text(e.get("value"))?,
                            kind: text(e.get("type")),
                            primary: e.get("primary").and_then(Value::as_bool) == Some(true),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        DirectoryUser {
            id,
            user_name: text(resource.get("userName")).unwrap_or_default(),
            external_id: text(resource.get("externalId")),
            display_name: text(resource.get("displayName")),
            emails,
            active: resource.get("active").and_then(Value::as_bool) != Some(false),
            github_login: text(
                resource
                    .get(SLIPWAY_SCHEMA)
                    .and_then(|ext| ext.get("githubLogin")),
            ),
            source,
            created,
            updated: created,
            version: 1,
            resource,
        }
    }

    /// The same user with a new resource, written at `at`: the successor a replacement takes.
    #[must_use]
    pub fn successor(&self, resource: Value, at: i64) -> Self {
        Self {
            updated: at,
            version: self.version + 1,
            ..Self::from_resource(self.id.clone(), self.source, resource, self.created)
        }
    }

    /// The address that identifies them: the one marked primary, else the only one.
    pub fn primary_email(&self) -> Option<&str> {
        match self.emails.iter().find(|e| e.primary) {
            Some(e) => Some(&e.value),
            None if self.emails.len() == 1 => Some(&self.emails[0].value),
            None => None,
        }
    }
}

impl DirectoryGroup {
    /// A group with the typed fields read from its SCIM resource.
    pub fn from_resource(id: String, source: Source, resource: Value, created: i64) -> Self {
        let members = resource
            .get("members")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|m| text(m.get("value"))).collect())
            .unwrap_or_default();
        DirectoryGroup {
            id,
            display_name: text(resource.get("displayName")).unwrap_or_default(),
            external_id: text(resource.get("externalId")),
            members,
            source,
            created,
            updated: created,
            version: 1,
            resource,
        }
    }

    /// The same group with a new resource, written at `at`.
    #[must_use]
    pub fn successor(&self, resource: Value, at: i64) -> Self {
        Self {
            updated: at,
            version: self.version + 1,
            ..Self::from_resource(self.id.clone(), self.source, resource, self.created)
        }
    }

    /// The group without `member`, if it listed them: what deleting a user does to each group.
    pub fn without_member(&self, member: &str, at: i64) -> Option<Self> {
        if !self.members.iter().any(|m| m == member) {
            return None;
        }
        let mut resource = self.resource.clone();
        if let Some(list) = resource.get_mut("members").and_then(Value::as_array_mut) {
            list.retain(|m| m.get("value").and_then(Value::as_str) != Some(member));
        }
        Some(self.successor(resource, at))
    }
}

/// What both stores need of a user or a group: its id, its unique name and its stamps.
pub(super) trait Entry: Clone + Serialize + serde::de::DeserializeOwned {
    /// The attribute that must be unique, for [`DirectoryError::Taken`].
    const UNIQUE: &'static str;
    fn id(&self) -> &str;
    fn unique_name(&self) -> &str;
    fn version(&self) -> u64;
    fn source(&self) -> Source;
    fn updated(&self) -> i64;
}

macro_rules! entry {
    ($t:ty, $unique:literal, $name:ident) => {
        impl Entry for $t {
            const UNIQUE: &'static str = $unique;
            fn id(&self) -> &str {
                &self.id
            }
            fn unique_name(&self) -> &str {
                &self.$name
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn source(&self) -> Source {
                self.source
            }
            fn updated(&self) -> i64 {
                self.updated
            }
        }
    };
}
entry!(DirectoryUser, "userName", user_name);
entry!(DirectoryGroup, "displayName", display_name);

/// A write may go ahead: a creation takes a free id, a replacement follows the version it read.
pub(super) fn check_write(stored: Option<u64>, new: u64, create: bool) -> Result<()> {
    match (create, stored) {
        (true, Some(_)) => Err(DirectoryError::Taken { attribute: "id" }),
        (true, None) => Ok(()),
        (false, stored) => check_successor(stored, new),
    }
}

/// A replacement must follow the version it read.
fn check_successor(stored: Option<u64>, new: u64) -> Result<()> {
    match stored {
        None => Err(DirectoryError::Missing),
        Some(v) if v.checked_add(1) == Some(new) => Ok(()),
        Some(_) => Err(DirectoryError::Stale),
    }
}

/// Case-insensitive keys for the unique and looked-up attributes.
pub(super) fn key(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typed_fields_come_from_the_resource() {
        let u = DirectoryUser::from_resource(
            "u1".into(),
            Source::Scim,
            json!({
                "userName": "Ada@Example.com",
                "emails": [{"value": "ada@home.example", "type": "home"},
                           {"value": "ada@example.com", "type": "work", "primary": true}],
                "active": false,
                SLIPWAY_SCHEMA: {"githubLogin": "ada-l"},
            }),
            10,
        );
        assert_eq!(u.user_name, "Ada@Example.com");
        assert_eq!(u.primary_email(), Some("ada@example.com"));
        assert!(!u.active);
        assert_eq!(u.github_login.as_deref(), Some("ada-l"));
        let active = u.successor(
            json!({"userName": "x", "emails": [{"value": "only@x"}]}),
            20,
        );
        assert!(active.active, "no `active` is active");
        assert_eq!(
            (active.version, active.created, active.updated),
            (2, 10, 20)
        );
        assert_eq!(active.primary_email(), Some("only@x"));
        let two = u.successor(json!({"emails": [{"value": "a@x"}, {"value": "b@x"}]}), 30);
        assert_eq!(
            two.primary_email(),
            None,
            "two addresses and no primary: none"
        );
    }

    #[test]
    fn removing_a_member_edits_the_resource_too() {
        let g = DirectoryGroup::from_resource(
            "g1".into(),
            Source::Scim,
            json!({"displayName": "ops", "members": [{"value": "u1"}, {"value": "u2", "display": "B"}]}),
            1,
        );
        assert!(g.without_member("u3", 2).is_none());
        let g2 = g.without_member("u1", 2).unwrap();
        assert_eq!(g2.members, ["u2"]);
        assert_eq!(
            g2.resource["members"],
            json!([{"value": "u2", "display": "B"}])
        );
        assert_eq!(g2.version, 2);
    }
}
