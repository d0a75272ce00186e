//! The directory stores keep one contract, in memory and in redb.

use serde_json::json;

use super::*;

fn user(id: &str, name: &str, email: &str, github: Option<&str>) -> DirectoryUser {
    let mut resource = json!({
        "userName": name,
        "emails": [{"value": email, "type": "work", "primary": true}],
    });
    if let Some(login) = github {
        resource[directory::SLIPWAY_SCHEMA] = json!({ "githubLogin": login });
    }
    DirectoryUser::from_resource(id.into(), Source::Scim, resource, 100)
}

fn group(id: &str, name: &str, members: &[&str]) -> DirectoryGroup {
    let members: Vec<_> = members.iter().map(|m| json!({ "value": m })).collect();
    DirectoryGroup::from_resource(
        id.into(),
        Source::Scim,
        json!({"displayName": name, "members": members}),
        100,
    )
}

/// The contract every store keeps.
#[allow(clippy::too_many_lines)] // one contract, exercised step by step
fn exercise(store: &dyn DirectoryStore) {
    let ada = user("u1", "ada@example.com", "Ada@Example.com", Some("Ada-L"));
    store.create_user(&ada).unwrap();
    let taken = user("u2", "ADA@example.com", "x@example.com", None);
    assert_eq!(
        store.create_user(&taken),
        Err(DirectoryError::Taken {
            attribute: "userName"
        })
    );
    assert_eq!(
        store.create_user(&ada),
        Err(DirectoryError::Taken { attribute: "id" })
    );
    let bob = user("u2", "bob@example.com", "bob@example.com", Some("bob"));
    store.create_user(&bob).unwrap();
    assert_eq!(
        store.user_by_email("ada@EXAMPLE.com").unwrap().unwrap().id,
        "u1"
    );
    assert_eq!(store.user_by_github("ada-l").unwrap().unwrap().id, "u1");
    assert_eq!(store.user_by_github("nobody").unwrap(), None);

    // A replacement must follow what it read; the indexes follow it.
    let moved = ada.successor(
        json!({"userName": "ada@example.com", "active": false,
               "emails": [{"value": "bob@example.com"}]}),
        200,
    );
    store.replace_user(&moved).unwrap();
    assert_eq!(store.replace_user(&moved), Err(DirectoryError::Stale));
    assert_eq!(store.user_by_email("ada@example.com").unwrap(), None);
    assert_eq!(store.user_by_github("ada-l").unwrap(), None);
    assert_eq!(
        store.user_by_email("bob@example.com").unwrap(),
        None,
        "two users with one primary email: ambiguous, nobody"
    );
    assert!(!store.user("u1").unwrap().unwrap().active);
    let rename = bob.successor(json!({"userName": "Ada@example.com"}), 200);
    assert_eq!(
        store.replace_user(&rename),
        Err(DirectoryError::Taken {
            attribute: "userName"
        })
    );

    store
        .create_group(&group("g1", "Ops", &["u1", "u2"]))
        .unwrap();
    store.create_group(&group("g2", "devs", &["u2"])).unwrap();
    assert_eq!(
        store.create_group(&group("g3", "OPS", &[])),
        Err(DirectoryError::Taken {
            attribute: "displayName"
        })
    );
    let mut of_u2: Vec<String> = store
        .groups_of("u2")
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    of_u2.sort();
    assert_eq!(of_u2, ["g1", "g2"]);

    // Deleting a user takes them out of every group.
    assert!(store.delete_user("u2", 300).unwrap());
    assert!(!store.delete_user("u2", 300).unwrap());
    assert!(store.groups_of("u2").unwrap().is_empty());
    let ops = store.group("g1").unwrap().unwrap();
    assert_eq!(ops.members, ["u1"]);
    assert_eq!(ops.resource["members"], json!([{"value": "u1"}]));
    assert_eq!((ops.version, ops.updated), (2, 300));
    assert_eq!(store.groups_of("u1").unwrap()[0].id, "g1");

    let renamed = ops.successor(json!({"displayName": "ops-team", "members": []}), 400);
    store.replace_group(&renamed).unwrap();
    assert!(store.groups_of("u1").unwrap().is_empty());
    store.create_group(&group("g3", "Ops", &[])).unwrap();
    assert!(store.delete_group("g3", 500).unwrap());
    assert_eq!(store.groups().unwrap().len(), 2);
    assert_eq!(store.users().unwrap().len(), 1);
    let sync = store.sync_state(Source::Scim).unwrap();
    assert_eq!((sync.changes, sync.last_change), (9, Some(500)));
    assert_eq!(
        store.sync_state(Source::Google).unwrap(),
        SyncState::default()
    );
    store.record_sync(Source::Google, 600).unwrap();
    let google = store.sync_state(Source::Google).unwrap();
    assert_eq!(
        (google.changes, google.last_sync),
        (0, Some(600)),
        "a sync that changed nothing is still a sync"
    );
    assert_eq!(store.sync_state(Source::Scim).unwrap().last_sync, None);
}

#[test]
fn memory_directory_keeps_the_contract() {
    exercise(&MemoryDirectory::default());
}

#[test]
fn redb_directory_keeps_the_contract_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbDirectory::open(dir.path()).unwrap();
        exercise(&store);
        let again = RedbDirectory::open(dir.path()).unwrap_err();
        assert!(again.to_string().contains("in use"), "{again}");
    }
    let store = RedbDirectory::open(dir.path()).unwrap();
    let ada = store.user("u1").unwrap().unwrap();
    assert_eq!(ada.user_name, "ada@example.com");
    assert_eq!(store.groups_of("u1").unwrap(), vec![]);
    assert_eq!(store.sync_state(Source::Scim).unwrap().changes, 9);
    assert_eq!(
        store.sync_state(Source::Google).unwrap().last_sync,
        Some(600)
    );
}

fn redis_pool(server: &crate::shared::test_server::TestRedis) -> crate::shared::blocking::Pool {
    crate::shared::blocking::Pool::new(server.config("slipway:"))
}

/// Poll until `f` holds (another replica's write arrives over the change feed).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn redis_directory_keeps_the_contract() {
    let server = crate::shared::test_server::TestRedis::start();
    exercise(&super::RedisDirectory::open(&redis_pool(&server)));
}

#[test]
fn a_person_provisioned_through_one_replica_is_resolved_by_another() {
    let server = crate::shared::test_server::TestRedis::start();
    let a = super::RedisDirectory::open(&redis_pool(&server));
    let b = super::RedisDirectory::open(&redis_pool(&server));
    a.create_user(&user("u1", "ada", "ada@example.com", Some("ada-gh")))
        .unwrap();
    a.create_group(&group("g1", "ops", &["u1"])).unwrap();
    eventually("b sees ada by email", || {
        b.user_by_email("ADA@example.com").unwrap().is_some()
    });
    eventually("b sees ada's group", || {
        b.groups_of("u1").unwrap().len() == 1
    });
    // Uniqueness is decided in Redis, not in a copy that may lag.
    assert_eq!(
        b.create_user(&user("u2", "ADA", "x@example.com", None)),
        Err(DirectoryError::Taken {
            attribute: "userName"
        })
    );
    assert!(b.delete_user("u1", 50).unwrap());
    eventually("a sees the deletion and the membership go", || {
        a.user("u1").unwrap().is_none()
            && a.group("g1").unwrap().is_some_and(|g| g.members.is_empty())
    });
    // The change count is replicated like everything else: it may lag by one announcement.
    eventually("a counts all three changes", || {
        a.sync_state(Source::Scim).unwrap().changes == 3
    });
}
