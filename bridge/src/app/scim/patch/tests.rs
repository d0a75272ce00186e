//! PATCH as Okta and Entra ID send it (their documented request bodies), and what they may not do.

use serde_json::{Value, json};

use super::*;

fn patch(kind: Kind, mut resource: Value, ops: Value) -> Result<Value, ScimError> {
    let mut body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]});
    body["Operations"] = ops;
    apply(kind, &mut resource, &body).map(|()| resource)
}

fn ada() -> Value {
    json!({
        "userName": "ada@example.com",
        "active": true,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
    })
}

#[test]
fn okta_replace_with_a_value_object_deactivates() {
    let out = patch(
        Kind::User,
        ada(),
        json!([{"op": "replace", "value": {"id": "ignored", "active": false}}]),
    )
    .unwrap();
    assert_eq!(out["active"], false);
    assert!(
        out.get("id").is_none(),
        "read-only keys in the value are ignored"
    );
    let out = patch(
        Kind::Group,
        json!({"displayName": "ops"}),
        json!([{"op": "replace", "value": {"id": "g1", "displayName": "ops-team"}}]),
    )
    .unwrap();
    assert_eq!(out, json!({"displayName": "ops-team"}));
}

#[test]
fn entra_capitalised_ops_with_string_booleans_and_paths() {
    let out = patch(
        Kind::User,
        ada(),
        json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "name.givenName", "value": "Augusta"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "ada@home.example"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "al@example.com"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:slipway:2.0:User:githubLogin", "value": "ada-l"},
        ]),
    )
    .unwrap();
    assert_eq!(out["active"], false);
    assert_eq!(
        out["name"],
        json!({"givenName": "Augusta", "familyName": "Lovelace"})
    );
    assert_eq!(
        out["emails"],
        json!([
            {"value": "al@example.com", "type": "work", "primary": true},
            {"value": "ada@home.example", "type": "home"},
        ])
    );
    assert_eq!(
        out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "R&D"
    );
    assert_eq!(
        out["urn:ietf:params:scim:schemas:extension:slipway:2.0:User"]["githubLogin"],
        "ada-l"
    );
    let back = patch(
        Kind::User,
        out,
        json!([{"op": "Replace", "path": "active", "value": "True"}]),
    )
    .unwrap();
    assert_eq!(back["active"], true);
}

#[test]
fn entra_adds_and_removes_members() {
    let group = json!({"displayName": "ops", "members": [{"value": "u1"}]});
    let out = patch(
        Kind::Group,
        group,
        json!([{"op": "Add", "path": "members", "value": [{"value": "u2"}, {"value": "u1"}]}]),
    )
    .unwrap();
    assert_eq!(out["members"], json!([{"value": "u1"}, {"value": "u2"}]));
    let out = patch(
        Kind::Group,
        out,
        json!([{"op": "Remove", "path": "members[value eq \"u1\"]"}]),
    )
    .unwrap();
    assert_eq!(out["members"], json!([{"value": "u2"}]));
    // Entra's other form: the members to drop as the value; and removing an absent one is fine.
    let out = patch(
        Kind::Group,
        out,
        json!([
            {"op": "Remove", "path": "members", "value": [{"value": "u2"}]},
            {"op": "Remove", "path": "members[value eq \"nobody\"]"},
        ]),
    )
    .unwrap();
    assert_eq!(out, json!({"displayName": "ops"}));
}

#[test]
fn whole_attributes_and_extensions_are_added_replaced_and_removed() {
    let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let out = patch(
        Kind::User,
        ada(),
        json!([
            {"op": "add", "path": ext, "value": {"employeeNumber": "7", "manager": {"value": "m1"}}},
            {"op": "replace", "path": "emails", "value": [{"value": "new@example.com", "primary": true}]},
            {"op": "remove", "path": "name"},
            {"op": "add", "value": {"title": "Countess", "name.givenName": "Ada"}},
        ]),
    )
    .unwrap();
    assert_eq!(
        out[ext],
        json!({"employeeNumber": "7", "manager": {"value": "m1"}})
    );
    assert_eq!(
        out["emails"],
        json!([{"value": "new@example.com", "primary": true}])
    );
    assert_eq!(out["name"], json!({"givenName": "Ada"}));
    assert_eq!(out["title"], "Countess");
    let out = patch(Kind::User, out, json!([{"op": "remove", "path": ext}])).unwrap();
    assert!(out.get(ext).is_none());
    // A new primary demotes the old one.
    let out = patch(
        Kind::User,
        ada(),
        json!([{"op": "add", "path": "emails", "value": [{"value": "b@x", "primary": true}]}]),
    )
    .unwrap();
    assert_eq!(out["emails"][0]["primary"], false);
    assert_eq!(out["emails"][1]["primary"], true);
}

#[test]
#[allow(clippy::too_many_lines)] // one table of refusals, read top to bottom
fn refused_patches_say_why_with_the_right_scim_type() {
    let cases = [
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
            "mutability",
        ),
        (json!([{"op": "remove", "path": "userName"}]), "mutability"),
        (
            json!([{"op": "replace", "path": "nosuch", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "emails[", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "name[givenName eq \"A\"]", "value": {}}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq \"fax\"]", "value": {"value": "x"}}]),
            "noTarget",
        ),
        (
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": ""}]),
            "invalidValue",
        ),
        (json!([{"op": "delete", "path": "title"}]), "invalidSyntax"),
        (json!([{"op": "add", "path": "title"}]), "invalidSyntax"),
        (
            json!([{"op": "add", "value": "not an object"}]),
            "invalidValue",
        ),
    ];
    for (ops, scim_type) in cases {
        let e = patch(Kind::User, ada(), ops.clone()).unwrap_err();
        assert_eq!(e.scim_type(), Some(scim_type), "{ops}: {e:?}");
    }
    let mut resource = ada();
    let e = apply(Kind::User, &mut resource, &json!({"ops": []})).unwrap_err();
    assert_eq!(e.scim_type(), Some("invalidSyntax"));
    let many: Vec<Value> = (0..=MAX_OPERATIONS)
        .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
        .collect();
    let e = patch(Kind::User, ada(), Value::Array(many)).unwrap_err();
    assert_eq!(e.scim_type(), Some("tooMany"));
    // All or nothing: a failing operation leaves the resource as it was.
    let mut resource = ada();
    let body = json!({"Operations": [
        {"op": "replace", "path": "title", "value": "x"},
        {"op": "replace", "path": "nosuch", "value": 1},
    ]});
    assert!(apply(Kind::User, &mut resource, &body).is_err());
    assert_eq!(resource, ada());
}

/// Any operation on any path with any value succeeds or is refused with a `scimType`, never a
/// panic.
#[test]
fn no_operation_panics() {
    let paths = [
        json!(null),
        json!(""),
        json!(5),
        json!("emails"),
        json!("emails.value"),
        json!("emails[type eq \"work\"]"),
        json!("emails[type eq \"work\"].value"),
        json!("emails[value pr].display"),
        json!("name"),
        json!("name.givenName"),
        json!("members[value eq \"u1\"]"),
        json!("active"),
        json!("groups[value eq \"g\"]"),
        json!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
        json!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        json!("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"m\"]"),
        json!("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
        json!("urn:x:y"),
    ];
    let values = [
        None,
        Some(json!(null)),
        Some(json!("x")),
        Some(json!(1)),
        Some(json!(true)),
        Some(json!([])),
        Some(json!([{"value": "v", "primary": true}, "s", 2])),
        Some(json!({"value": "v", "givenName": "g", "emails": [{"value": "e"}]})),
    ];
    for kind in [Kind::User, Kind::Group] {
        for op in ["add", "Replace", "remove"] {
            for path in &paths {
                for value in &values {
                    let mut o = json!({"op": op, "path": path});
                    if let Some(v) = value {
                        o["value"] = v.clone();
                    }
                    let before = match kind {
                        Kind::User => ada(),
                        Kind::Group => json!({"displayName": "g", "members": [{"value": "u1"}]}),
                    };
                    if let Err(e) = patch(kind, before, json!([o])) {
                        assert!(e.scim_type().is_some(), "{o}: {e:?}");
                    }
                }
            }
        }
    }
}
