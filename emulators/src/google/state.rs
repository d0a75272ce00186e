//! What the Google emulator holds: one Workspace customer (its users, groups and members), the
//! service accounts and their domain-wide delegation grants, the access tokens it issued, and
//! the push channels `users.watch` opened. Resources render the way the Directory API serves
//! them (`admin#directory#…` kinds, `emails[].address`, int64 as strings).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value, json};

/// One Workspace user.
#[derive(Debug, Clone, PartialEq)]
pub struct GUser {
    pub id: String,
    pub primary_email: String,
    pub given_name: String,
    pub family_name: String,
    pub suspended: bool,
    pub archived: bool,
    pub is_admin: bool,
    /// `customSchemas`: schema name → field → value.
    pub custom: BTreeMap<String, Map<String, Value>>,
    pub created: String,
    /// Bumped on every change: the etag.
    pub version: u64,
}

/// What a group member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    User,
    Group,
    /// Everyone in the customer ("all users in the organisation").
    Customer,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "USER",
            MemberKind::Group => "GROUP",
            MemberKind::Customer => "CUSTOMER",
        }
    }
}

/// One membership of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GMember {
    /// The user's, group's or customer's id.
    pub id: String,
    pub email: Option<String>,
    /// `OWNER`, `MANAGER` or `MEMBER`.
    pub role: String,
    pub kind: MemberKind,
}

/// One group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GGroup {
    pub id: String,
    pub email: String,
    /// The display name; Google does not keep it unique.
    pub name: String,
    pub description: String,
    /// `false` for a group a user made in Google Groups.
    pub admin_created: bool,
    pub members: Vec<GMember>,
    pub version: u64,
}

/// A service account registered in the project (its public key, for verifying assertions).
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub client_id: String,
    pub key_id: String,
    /// PKCS#1 DER of the RSA public key.
    pub public_key: Vec<u8>,
}

/// An issued OAuth access token.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub scopes: Vec<String>,
    /// The user the service account acts as (domain-wide delegation), if any.
    pub subject: Option<String>,
    /// Unix seconds.
    pub expires: i64,
}

/// A push channel opened by `users.watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub resource_id: String,
    pub resource_uri: String,
    pub token: Option<String>,
    pub address: String,
    /// Unix milliseconds.
    pub expiration_ms: i64,
    /// `add`, `delete`, `makeAdmin`, `undelete`, `update`; `None` watches them all.
    pub event: Option<String>,
    /// The last `X-Goog-Message-Number` sent.
    pub message_number: u64,
}

/// One notification the emulator POSTed to a channel's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel_id: String,
    /// `X-Goog-Resource-State`: `sync`, `add`, `update`, `delete`…
    pub state: String,
    pub user_id: Option<String>,
    /// The receiver's answer (`None`: unreachable).
    pub status: Option<u16>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub base_url: String,
    pub domain: String,
    pub customer_id: String,
    pub users: Vec<GUser>,
    pub groups: Vec<GGroup>,
    /// By `client_email`.
    pub accounts: BTreeMap<String, Account>,
    /// Domain-wide delegation: client id → the scopes the admin granted it.
    pub grants: BTreeMap<String, Vec<String>>,
    pub tokens: BTreeMap<String, AccessToken>,
    pub token_ttl: i64,
    pub channels: Vec<Channel>,
    /// The longest a channel may live, in milliseconds (the discovery document: two days; a
    /// channel that asks for no expiration gets two hours).
    pub channel_ttl_ms: i64,
    pub deliveries: Vec<Delivery>,
    /// `METHOD path?query` of every request, in order.
    pub requests: Vec<String>,
    pub next_id: u64,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn etag(kind: &str, id: &str, version: u64) -> String {
    format!("\"{kind}-{id}-v{version}\"")
}

impl State {
    pub fn new(domain: &str) -> State {
        State {
            base_url: String::new(),
            domain: domain.to_string(),
            customer_id: "C03az79cb".to_string(),
            users: Vec::new(),
            groups: Vec::new(),
            accounts: BTreeMap::new(),
            grants: BTreeMap::new(),
            tokens: BTreeMap::new(),
            token_ttl: 3599,
            channels: Vec::new(),
            channel_ttl_ms: 2 * 24 * 3600 * 1000,
            deliveries: Vec::new(),
            requests: Vec::new(),
            next_id: 100_000_000_000_000_000,
        }
    }

    /// A fresh numeric id, the way Google's user and group ids look.
    pub fn new_id(&mut self) -> String {
        self.next_id += 7919;
        self.next_id.to_string()
    }

    pub fn user(&self, key: &str) -> Option<&GUser> {
        self.users
            .iter()
            .find(|u| u.id == key || u.primary_email.eq_ignore_ascii_case(key))
    }

    pub fn user_mut(&mut self, key: &str) -> Option<&mut GUser> {
        self.users
            .iter_mut()
            .find(|u| u.id == key || u.primary_email.eq_ignore_ascii_case(key))
    }

    pub fn group(&self, key: &str) -> Option<&GGroup> {
        self.groups
            .iter()
            .find(|g| g.id == key || g.email.eq_ignore_ascii_case(key))
    }

    pub fn group_mut(&mut self, key: &str) -> Option<&mut GGroup> {
        self.groups
            .iter_mut()
            .find(|g| g.id == key || g.email.eq_ignore_ascii_case(key))
    }

    /// `customer=my_customer` or the customer id.
    pub fn is_customer(&self, customer: &str) -> bool {
        customer == "my_customer" || customer == self.customer_id
    }

    /// The user as `users.get`/`users.list` serve it; `custom` holds the schemas to include
    /// (`projection=full`: all; `custom`: the mask's; `basic`: none).
    pub fn user_json(&self, u: &GUser, custom: &dyn Fn(&str) -> bool) -> Value {
        let mut v = json!({
            "kind": "admin#directory#user",
            "id": u.id,
            "etag": etag("user", &u.id, u.version),
            "primaryEmail": u.primary_email,
            "name": {
                "givenName": u.given_name,
                "familyName": u.family_name,
                "fullName": format!("{} {}", u.given_name, u.family_name),
                "displayName": format!("{} {}", u.given_name, u.family_name),
            },
            "isAdmin": u.is_admin,
            "isDelegatedAdmin": false,
            "lastLoginTime": "1970-01-01T00:00:00.000Z",
            "creationTime": u.created,
            "agreedToTerms": true,
            "suspended": u.suspended,
            "archived": u.archived,
            "changePasswordAtNextLogin": false,
            "ipWhitelisted": false,
            "emails": [{"address": u.primary_email, "primary": true}],
            "languages": [{"languageCode": "en", "preference": "preferred"}],
            "nonEditableAliases": [format!("{}.test-google-a.com", u.primary_email.split('@').next().unwrap_or_default())],
            "customerId": self.customer_id,
            "orgUnitPath": "/",
            "isMailboxSetup": true,
            "isEnrolledIn2Sv": false,
            "isEnforcedIn2Sv": false,
            "includeInGlobalAddressList": true,
            "thumbnailPhotoEtag": etag("photo", &u.id, 1),
        });
        if u.suspended {
            v["suspensionReason"] = json!("ADMIN");
        }
        let schemas: Map<String, Value> = u
            .custom
            .iter()
            .filter(|(name, _)| custom(name))
            .map(|(name, fields)| (name.clone(), Value::Object(fields.clone())))
            .collect();
        if !schemas.is_empty() {
            v["customSchemas"] = Value::Object(schemas);
        }
        v
    }

    pub fn group_json(g: &GGroup) -> Value {
        json!({
            "kind": "admin#directory#group",
            "id": g.id,
            "etag": etag("group", &g.id, g.version),
            "email": g.email,
            "name": g.name,
            "directMembersCount": g.members.len().to_string(),
            "description": g.description,
            "adminCreated": g.admin_created,
            "nonEditableAliases": [g.email.replace('@', "@test-google-a.")],
        })
    }

    pub fn member_json(g: &GGroup, m: &GMember) -> Value {
        let mut v = json!({
            "kind": "admin#directory#member",
            "etag": etag("member", &format!("{}-{}", g.id, m.id), g.version),
            "id": m.id,
            "role": m.role,
            "type": m.kind.as_str(),
        });
        if let Some(email) = &m.email {
            v["email"] = json!(email);
        }
        if m.kind == MemberKind::User {
            v["status"] = json!("ACTIVE");
        }
        v
    }

    /// The users of `g`, directly, or with `derived` through nested groups and the customer
    /// too, each once, as `members.list` with `includeDerivedMembership=true` lists them.
    pub fn members_of(&self, g: &GGroup, derived: bool) -> Vec<GMember> {
        let mut out: Vec<GMember> = Vec::new();
        let mut seen_groups = vec![g.id.clone()];
        let mut queue: Vec<GMember> = g.members.clone();
        while let Some(m) = queue.pop() {
            if out.iter().any(|o| o.id == m.id) {
                continue;
            }
            if derived && m.kind == MemberKind::Group && !seen_groups.contains(&m.id) {
                seen_groups.push(m.id.clone());
                if let Some(nested) = self.groups.iter().find(|x| x.id == m.id) {
                    queue.extend(nested.members.iter().cloned());
                }
            }
            if derived && m.kind == MemberKind::Customer {
                queue.extend(self.users.iter().map(|u| GMember {
                    id: u.id.clone(),
                    email: Some(u.primary_email.clone()),
                    role: "MEMBER".into(),
                    kind: MemberKind::User,
                }));
            }
            out.push(m);
        }
        let direct: Vec<&str> = g.members.iter().map(|m| m.id.as_str()).collect();
        out.sort_by_key(|m| (!direct.contains(&m.id.as_str()), m.email.clone()));
        out
    }
}
