//! A user or a group, whichever an endpoint serves: the one place that knows which store call
//! and which rendering each kind takes, so the handlers are written once.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::error::ScimError;
use super::render;
use super::schema::Kind;
use crate::identity::{DirectoryError, DirectoryGroup, DirectoryStore, DirectoryUser, Source};

#[derive(Debug, Clone)]
pub enum Record {
    User(DirectoryUser),
    Group(DirectoryGroup),
}

impl Record {
    /// A new record pushed over SCIM.
    pub fn new(kind: Kind, id: String, resource: Value, now: i64) -> Record {
        match kind {
            Kind::User => Record::User(DirectoryUser::from_resource(
                id,
                Source::Scim,
                resource,
                now,
            )),
            Kind::Group => Record::Group(DirectoryGroup::from_resource(
                id,
                Source::Scim,
                resource,
                now,
            )),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Record::User(_) => Kind::User,
            Record::Group(_) => Kind::Group,
        }
    }

    pub fn resource(&self) -> &Value {
        match self {
            Record::User(u) => &u.resource,
            Record::Group(g) => &g.resource,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Record::User(u) => u.version,
            Record::Group(g) => g.version,
        }
    }

    fn order(&self) -> (i64, &str) {
        match self {
            Record::User(u) => (u.created, &u.id),
            Record::Group(g) => (g.created, &g.id),
        }
    }

    pub fn successor(&self, resource: Value, at: i64) -> Record {
        match self {
            Record::User(u) => Record::User(u.successor(resource, at)),
            Record::Group(g) => Record::Group(g.successor(resource, at)),
        }
    }

    /// What the audit record says about it: names and flags, never emails.
    pub fn summary(&self) -> Value {
        match self {
            Record::User(u) => json!({
                "id": u.id, "user_name": u.user_name, "external_id": u.external_id,
                "active": u.active, "github_login": u.github_login,
            }),
            Record::Group(g) => json!({
                "id": g.id, "display_name": g.display_name, "external_id": g.external_id,
                "members": g.members.len(),
            }),
        }
    }
}

fn failed(e: DirectoryError) -> ScimError {
    ScimError::from_store(e)
}

/// A record SCIM wrote. Another source's (the Google sync's) is not SCIM's to serve or change.
pub fn load(store: &dyn DirectoryStore, kind: Kind, id: &str) -> Result<Option<Record>, ScimError> {
    Ok(match kind {
        Kind::User => store
            .user(id)
            .map_err(failed)?
            .filter(|u| u.source == Source::Scim)
            .map(Record::User),
        Kind::Group => store
            .group(id)
            .map_err(failed)?
            .filter(|g| g.source == Source::Scim)
            .map(Record::Group),
    })
}

/// Every record of a kind SCIM wrote, oldest first (a stable order for paging).
pub fn all(store: &dyn DirectoryStore, kind: Kind) -> Result<Vec<Record>, ScimError> {
    let mut out: Vec<Record> = match kind {
        Kind::User => store
            .users()
            .map_err(failed)?
            .into_iter()
            .filter(|u| u.source == Source::Scim)
            .map(Record::User)
            .collect(),
        Kind::Group => store
            .groups()
            .map_err(failed)?
            .into_iter()
            .filter(|g| g.source == Source::Scim)
            .map(Record::Group)
            .collect(),
    };
    out.sort_by(|a, b| a.order().cmp(&b.order()));
    Ok(out)
}

pub fn create(store: &dyn DirectoryStore, record: &Record) -> Result<(), ScimError> {
    match record {
        Record::User(u) => store.create_user(u),
        Record::Group(g) => store.create_group(g),
    }
    .map_err(failed)
}

/// The store's own error, so the caller can retry a [`DirectoryError::Stale`].
pub fn replace(store: &dyn DirectoryStore, record: &Record) -> Result<(), DirectoryError> {
    match record {
        Record::User(u) => store.replace_user(u),
        Record::Group(g) => store.replace_group(g),
    }
}

pub fn delete(
    store: &dyn DirectoryStore,
    kind: Kind,
    id: &str,
    at: i64,
) -> Result<bool, ScimError> {
    match kind {
        Kind::User => store.delete_user(id, at),
        Kind::Group => store.delete_group(id, at),
    }
    .map_err(failed)
}

/// One record as served.
pub fn served(store: &dyn DirectoryStore, record: &Record, base: &str) -> Result<Value, ScimError> {
    Ok(match record {
        Record::User(u) => {
            let mut groups = store.groups_of(&u.id).map_err(failed)?;
            groups.retain(|g| g.source == Source::Scim);
            render::user(u, &groups, base)
        }
        Record::Group(g) => render::group(g, base),
    })
}

/// Every record of a kind as served, oldest first; memberships read once for all users.
pub fn served_all(
    store: &dyn DirectoryStore,
    kind: Kind,
    base: &str,
) -> Result<Vec<Value>, ScimError> {
    let records = all(store, kind)?;
    if kind == Kind::Group {
        return Ok(records
            .iter()
            .filter_map(|r| match r {
                Record::Group(g) => Some(render::group(g, base)),
                Record::User(_) => None,
            })
            .collect());
    }
    let mut groups = store.groups().map_err(failed)?;
    groups.retain(|g| g.source == Source::Scim);
    let mut of: HashMap<&str, Vec<DirectoryGroup>> = HashMap::new();
    for g in &groups {
        for m in &g.members {
            of.entry(m.as_str()).or_default().push(g.clone());
        }
    }
    Ok(records
        .iter()
        .filter_map(|r| match r {
            Record::User(u) => Some(render::user(
                u,
                of.get(u.id.as_str()).map_or(&[][..], Vec::as_slice),
                base,
            )),
            Record::Group(_) => None,
        })
        .collect())
}
