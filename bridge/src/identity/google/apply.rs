//! Writing one sync's [`Snapshot`] into the directory: Google's users and groups are created,
//! replaced (each replacement the successor of the version read) or deleted when Google no
//! longer lists them. Only records the sync wrote (`Source::Google`) are ever replaced or
//! deleted: a SCIM record with the same id or name is left alone, and the Google entry that
//! collides with it is skipped and reported.
//!
//! Groups whose name two of Google's groups share (Google doesn't keep names unique) are
//! skipped too: an ambiguous name binds nobody.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::model::Snapshot;
use crate::identity::{DirectoryError, DirectoryGroup, DirectoryStore, DirectoryUser, Source};

/// What happened to one kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub skipped: usize,
}

/// One sync's effect.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub users: Counts,
    pub groups: Counts,
    /// Users the sync turned inactive (suspended or archived in Google).
    pub deactivated: Vec<DirectoryUser>,
    /// Users the sync removed (deleted in Google).
    pub deleted: Vec<DirectoryUser>,
    /// Why entries were skipped, one line each.
    pub skipped: Vec<String>,
}

/// A user or a group, as the sync writes them.
trait Synced: Clone {
    fn id(&self) -> &str;
    fn source(&self) -> Source;
    fn resource(&self) -> &Value;
    fn first(id: &str, resource: Value, now: i64) -> Self;
    fn next(&self, resource: Value, now: i64) -> Self;
    fn create(store: &dyn DirectoryStore, record: &Self) -> Result<(), DirectoryError>;
    fn replace(store: &dyn DirectoryStore, record: &Self) -> Result<(), DirectoryError>;
}

macro_rules! synced {
    ($t:ty, $create:ident, $replace:ident) => {
        impl Synced for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn source(&self) -> Source {
                self.source
            }
            fn resource(&self) -> &Value {
                &self.resource
            }
            fn first(id: &str, resource: Value, now: i64) -> Self {
                <$t>::from_resource(id.to_string(), Source::Google, resource, now)
            }
            fn next(&self, resource: Value, now: i64) -> Self {
                self.successor(resource, now)
            }
            fn create(store: &dyn DirectoryStore, record: &Self) -> Result<(), DirectoryError> {
                store.$create(record)
            }
            fn replace(store: &dyn DirectoryStore, record: &Self) -> Result<(), DirectoryError> {
                store.$replace(record)
            }
        }
    };
}
synced!(DirectoryUser, create_user, replace_user);
synced!(DirectoryGroup, create_group, replace_group);

/// Records by id.
fn by_id<T: Synced>(records: Vec<T>) -> HashMap<String, T> {
    records
        .into_iter()
        .map(|r| (r.id().to_string(), r))
        .collect()
}

/// One pass's writes.
struct Writer<'a> {
    store: &'a dyn DirectoryStore,
    now: i64,
    skipped: &'a mut Vec<String>,
}

impl Writer<'_> {
    /// Write one record as Google lists it: created, or the successor of the stored one, unless
    /// it is unchanged or not Google's. The record written, if any.
    fn write<T: Synced>(
        &mut self,
        counts: &mut Counts,
        existing: Option<&T>,
        id: &str,
        resource: Value,
        what: &str,
    ) -> Result<Option<T>, DirectoryError> {
        let (next, create) = match existing {
            None => (T::first(id, resource, self.now), true),
            Some(e) if e.source() != Source::Google => {
                counts.skipped += 1;
                self.skipped
                    .push(format!("{what}: its id is another source's record"));
                return Ok(None);
            }
            Some(e) if *e.resource() == resource => {
                counts.unchanged += 1;
                return Ok(None);
            }
            Some(e) => (e.next(resource, self.now), false),
        };
        let result = if create {
            T::create(self.store, &next)
        } else {
            T::replace(self.store, &next)
        };
        match result {
            Ok(()) if create => counts.created += 1,
            Ok(()) => counts.updated += 1,
            Err(DirectoryError::Taken { attribute }) => {
                counts.skipped += 1;
                self.skipped.push(format!(
                    "{what}: another directory record has its {attribute}"
                ));
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        Ok(Some(next))
    }
}

/// Apply `snapshot` at `now` (unix seconds).
pub fn apply(
    store: &dyn DirectoryStore,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Report, DirectoryError> {
    let mut report = Report {
        skipped: snapshot.left_out.clone(),
        ..Report::default()
    };
    report.groups.skipped = snapshot.left_out.len();
    apply_users(store, snapshot, now, &mut report)?;
    apply_groups(store, snapshot, now, &mut report)?;
    let listed: BTreeSet<&str> = snapshot.users.iter().map(|u| u.id.as_str()).collect();
    for user in store.users()? {
        if user.source == Source::Google
            && !listed.contains(user.id.as_str())
            && store.delete_user(&user.id, now)?
        {
            report.users.deleted += 1;
            report.deleted.push(user);
        }
    }
    Ok(report)
}

fn apply_users(
    store: &dyn DirectoryStore,
    snapshot: &Snapshot,
    now: i64,
    report: &mut Report,
) -> Result<(), DirectoryError> {
    let existing = by_id(store.users()?);
    let mut writer = Writer {
        store,
        now,
        skipped: &mut report.skipped,
    };
    for g in &snapshot.users {
        let before = existing.get(&g.id);
        let what = format!("user {}", g.primary_email);
        let written = writer.write(&mut report.users, before, &g.id, g.resource(), &what)?;
        if let (Some(next), Some(before)) = (written, before)
            && before.active
            && !next.active
        {
            report.deactivated.push(next);
        }
    }
    Ok(())
}

fn apply_groups(
    store: &dyn DirectoryStore,
    snapshot: &Snapshot,
    now: i64,
    report: &mut Report,
) -> Result<(), DirectoryError> {
    let existing = by_id(store.groups()?);
    let everyone: Vec<String> = snapshot.users.iter().map(|u| u.id.clone()).collect();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    for (g, _) in &snapshot.groups {
        *by_name.entry(g.name.to_lowercase()).or_default() += 1;
    }
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    let mut writer = Writer {
        store,
        now,
        skipped: &mut report.skipped,
    };
    for (g, members) in &snapshot.groups {
        let what = format!("group {} ({})", g.name, g.email);
        if g.name.trim().is_empty() || by_name[&g.name.to_lowercase()] > 1 {
            report.groups.skipped += 1;
            writer
                .skipped
                .push(format!("{what}: another Google group has the same name"));
            continue;
        }
        kept.insert(&g.id);
        let resource = g.resource(members, &everyone);
        writer.write(
            &mut report.groups,
            existing.get(&g.id),
            &g.id,
            resource,
            &what,
        )?;
    }
    for (id, g) in &existing {
        if g.source == Source::Google
            && !kept.contains(id.as_str())
            && store.delete_group(id, now)?
        {
            report.groups.deleted += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::MemoryDirectory;
    use crate::identity::google::model::{GoogleGroup, GoogleMember, GoogleUser};

    fn user(id: &str, email: &str, suspended: bool) -> GoogleUser {
        serde_json::from_value(json!({"id": id, "primaryEmail": email, "suspended": suspended}))
            .unwrap()
    }

    fn group(id: &str, name: &str, members: &[&str]) -> (GoogleGroup, Vec<GoogleMember>) {
        let g = serde_json::from_value(
            json!({"id": id, "email": format!("{id}@example.com"), "name": name, "adminCreated": true}),
        )
        .unwrap();
        let m: Vec<Value> = members
            .iter()
            .map(|m| json!({"id": m, "type": "USER"}))
            .collect();
        (g, serde_json::from_value(Value::Array(m)).unwrap())
    }

    fn scim_user(id: &str, name: &str) -> DirectoryUser {
        DirectoryUser::from_resource(
            id.into(),
            Source::Scim,
            json!({"userName": name, "emails": [{"value": name, "primary": true}]}),
            1,
        )
    }

    #[test]
    fn a_sync_creates_replaces_deactivates_and_deletes_only_googles_records() {
        let store = MemoryDirectory::default();
        store
            .create_user(&scim_user("s1", "sam@example.com"))
            .unwrap();
        let mut snap = Snapshot {
            users: vec![
                user("1", "ada@example.com", false),
                user("2", "bo@example.com", false),
            ],
            groups: vec![group("g1", "engineering", &["1", "2"])],
            left_out: vec![],
        };
        let r = apply(&store, &snap, 10).unwrap();
        assert_eq!((r.users.created, r.groups.created), (2, 1));
        let again = apply(&store, &snap, 11).unwrap();
        assert_eq!((again.users.unchanged, again.groups.unchanged), (2, 1));
        assert_eq!(store.user("1").unwrap().unwrap().version, 1, "no churn");

        snap.users[0].suspended = true;
        snap.users.remove(1);
        snap.groups = vec![group("g1", "engineering", &["1"])];
        let r = apply(&store, &snap, 20).unwrap();
        assert_eq!(r.deactivated.len(), 1);
        assert_eq!(r.deactivated[0].id, "1");
        assert_eq!(r.deleted.len(), 1);
        assert_eq!(r.deleted[0].id, "2");
        assert_eq!((r.users.updated, r.users.deleted), (1, 1));
        let ada = store.user("1").unwrap().unwrap();
        assert!(!ada.active);
        assert_eq!((ada.version, ada.updated), (2, 20));
        assert!(store.user("2").unwrap().is_none());
        assert_eq!(store.group("g1").unwrap().unwrap().members, ["1"]);
        assert!(store.user("s1").unwrap().is_some(), "SCIM's user stays");

        snap.groups.clear();
        let r = apply(&store, &snap, 30).unwrap();
        assert_eq!(r.groups.deleted, 1);
        assert!(store.groups().unwrap().is_empty());
    }

    #[test]
    fn scim_records_and_ambiguous_group_names_are_skipped_never_overwritten() {
        let store = MemoryDirectory::default();
        store
            .create_user(&scim_user("7", "seven@example.com"))
            .unwrap();
        store
            .create_user(&scim_user("s2", "taken@example.com"))
            .unwrap();
        let scim_group = DirectoryGroup::from_resource(
            "sg".into(),
            Source::Scim,
            json!({"displayName": "ops", "members": [{"value": "s2"}]}),
            1,
        );
        store.create_group(&scim_group).unwrap();
        let snap = Snapshot {
            users: vec![
                user("7", "someone-else@example.com", false),
                user("8", "taken@example.com", false),
                user("9", "ok@example.com", false),
            ],
            groups: vec![
                group("g1", "admins", &["9"]),
                group("g2", "Admins", &["9"]),
                group("g3", "ops", &["9"]),
            ],
            left_out: vec!["group made by a user".into()],
        };
        let r = apply(&store, &snap, 10).unwrap();
        assert_eq!(
            (r.users.created, r.users.skipped),
            (1, 2),
            "{:?}",
            r.skipped
        );
        assert_eq!(
            r.groups.skipped, 4,
            "two ambiguous, one taken, one user-made"
        );
        let seven = store.user("7").unwrap().unwrap();
        assert_eq!(
            (seven.source, seven.user_name.as_str()),
            (Source::Scim, "seven@example.com")
        );
        assert_eq!(store.group("sg").unwrap().unwrap().members, ["s2"]);
        assert!(store.group("g1").unwrap().is_none() && store.group("g2").unwrap().is_none());
        // Google stops listing everyone: only its own record goes.
        let empty = Snapshot {
            users: vec![user("1", "admin@example.com", false)],
            ..Snapshot::default()
        };
        let r = apply(&store, &empty, 20).unwrap();
        assert_eq!(r.users.deleted, 1);
        let ids: Vec<String> = store.users().unwrap().into_iter().map(|u| u.id).collect();
        assert_eq!(ids, ["1", "7", "s2"]);
        assert!(store.group("sg").unwrap().is_some());
    }
}
