//! The Directory API's resources as the sync reads them, and the directory's records they
//! become. Only the fields the sync decides with are read; an entry missing one of those (a
//! user without `id` or `primaryEmail`) fails the whole page, so a sync never applies half an
//! answer.
//!
//! A Google user becomes a SCIM-shaped user: `userName` and the one primary email are the
//! `primaryEmail`, `active` is false when the user is suspended or archived, the name is the
//! user's full name, and the GitHub login comes from the custom schema field
//! `Slipway.githubLogin` ([`GITHUB_SCHEMA`], [`GITHUB_FIELD`]) when the admin added it. A group
//! becomes a group named by its `name` (what policy bindings name), whose members are the users
//! it holds directly, through nested groups (`includeDerivedMembership`), or as "everyone in the
//! organisation".

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::identity::directory::SLIPWAY_SCHEMA;

/// The custom schema (Admin console → Directory → Users → Manage custom attributes) that holds
/// a person's GitHub login, and its field.
pub const GITHUB_SCHEMA: &str = "Slipway";
pub const GITHUB_FIELD: &str = "githubLogin";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoogleUser {
    pub id: String,
    pub primary_email: String,
    #[serde(default)]
    pub name: Option<UserName>,
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub custom_schemas: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserName {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoogleGroup {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    /// `false` (or absent) for a group a user made in Google Groups: never synced, so nobody can
    /// make themselves a group a policy binds.
    #[serde(default)]
    pub admin_created: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoogleMember {
    pub id: Option<String>,
    /// `USER`, `GROUP` or `CUSTOMER`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// Everything one sync read, before any of it is applied.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub users: Vec<GoogleUser>,
    /// Admin-created groups, each with its members.
    pub groups: Vec<(GoogleGroup, Vec<GoogleMember>)>,
    /// Why groups were left out (user-created ones).
    pub left_out: Vec<String>,
}

impl GoogleUser {
    pub fn active(&self) -> bool {
        !self.suspended && !self.archived
    }

    /// `customSchemas.Slipway.githubLogin`, if set to a non-empty string.
    pub fn github_login(&self) -> Option<String> {
        self.custom_schemas
            .as_ref()?
            .get(GITHUB_SCHEMA)?
            .get(GITHUB_FIELD)?
            .as_str()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
    }

    /// The stored resource (SCIM-shaped, so the directory reads it like any other).
    pub fn resource(&self) -> Value {
        let name = self.name.clone().unwrap_or_default();
        let mut v = json!({
            "userName": self.primary_email,
            "externalId": self.id,
            "emails": [{"value": self.primary_email, "type": "work", "primary": true}],
            "active": self.active(),
        });
        if let Some(full) = name.full_name.filter(|n| !n.is_empty()) {
            v["displayName"] = json!(full);
        }
        let parts: Map<String, Value> = [
            ("givenName", name.given_name),
            ("familyName", name.family_name),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), Value::String(v?))))
        .collect();
        if !parts.is_empty() {
            v["name"] = Value::Object(parts);
        }
        if let Some(login) = self.github_login() {
            v[SLIPWAY_SCHEMA] = json!({ "githubLogin": login });
        }
        v
    }
}

impl GoogleGroup {
    /// The stored resource: the name, the group's address, and its user members (sorted, each
    /// once). `everyone` is every user id, for a `CUSTOMER` member.
    pub fn resource(&self, members: &[GoogleMember], everyone: &[String]) -> Value {
        let mut ids: Vec<&str> = Vec::new();
        for m in members {
            match (m.kind.as_str(), &m.id) {
                ("USER", Some(id)) => ids.push(id),
                ("CUSTOMER", _) => ids.extend(everyone.iter().map(String::as_str)),
                _ => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        json!({
            "displayName": self.name,
            "externalId": self.email,
            "members": ids.iter().map(|id| json!({"value": id})).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{DirectoryGroup, DirectoryUser, Source};

    #[test]
    fn a_google_user_becomes_a_directory_user() {
        let u: GoogleUser = serde_json::from_value(json!({
            "kind": "admin#directory#user", "id": "1001", "primaryEmail": "dana@example.com",
            "name": {"givenName": "Dana", "familyName": "Ng", "fullName": "Dana Ng"},
            "suspended": false, "archived": false, "isAdmin": false,
            "customSchemas": {"Slipway": {"githubLogin": " dana-ng "}},
        }))
        .unwrap();
        let d = DirectoryUser::from_resource(u.id.clone(), Source::Google, u.resource(), 10);
        assert_eq!(d.user_name, "dana@example.com");
        assert_eq!(d.primary_email(), Some("dana@example.com"));
        assert_eq!(d.github_login.as_deref(), Some("dana-ng"));
        assert_eq!(d.display_name.as_deref(), Some("Dana Ng"));
        assert!(d.active);
        for flag in ["suspended", "archived"] {
            let mut v =
                serde_json::to_value(json!({"id": "1", "primaryEmail": "x@example.com"})).unwrap();
            v[flag] = json!(true);
            let off: GoogleUser = serde_json::from_value(v).unwrap();
            let d = DirectoryUser::from_resource("1".into(), Source::Google, off.resource(), 1);
            assert!(!d.active, "{flag}");
            assert_eq!(d.github_login, None);
        }
        assert!(
            serde_json::from_value::<GoogleUser>(json!({"id": "1"})).is_err(),
            "no primaryEmail: the page is refused"
        );
    }

    #[test]
    fn a_group_holds_its_users_directly_derived_or_as_everyone() {
        let g: GoogleGroup = serde_json::from_value(json!({
            "id": "g1", "email": "eng@example.com", "name": "engineering", "adminCreated": true,
        }))
        .unwrap();
        let members: Vec<GoogleMember> = serde_json::from_value(json!([
            {"id": "u2", "type": "USER"}, {"id": "g9", "type": "GROUP"},
            {"id": "u1", "type": "USER"}, {"id": "u2", "type": "USER"},
        ]))
        .unwrap();
        let d = DirectoryGroup::from_resource(
            "g1".into(),
            Source::Google,
            g.resource(&members, &[]),
            1,
        );
        assert_eq!(d.display_name, "engineering");
        assert_eq!(d.members, ["u1", "u2"]);
        let everyone: Vec<GoogleMember> =
            serde_json::from_value(json!([{"id": "C01", "type": "CUSTOMER"}])).unwrap();
        let all = ["u7".to_string(), "u8".to_string()];
        let d = DirectoryGroup::from_resource(
            "g1".into(),
            Source::Google,
            g.resource(&everyone, &all),
            1,
        );
        assert_eq!(d.members, ["u7", "u8"]);
        let user_made: GoogleGroup =
            serde_json::from_value(json!({"id": "g2", "email": "x@example.com"})).unwrap();
        assert!(!user_made.admin_created);
    }
}
