//! Google Workspace's Admin SDK Directory API and the OAuth 2.0 token endpoint, as a service
//! account with domain-wide delegation sees them. Stateful, at the HTTP level:
//!
//! - `POST /token` (`oauth`): the JWT bearer grant, the assertion verified against the
//!   registered service account's public key (`aud`, `iat`/`exp`, `scope` granted to the client
//!   id in "domain-wide delegation", `sub` a live user), with Google's error bodies;
//! - `admin/directory/v1` (`directory`): `users.list` (`customer=my_customer` or `domain`,
//!   `maxResults`, `pageToken`/`nextPageToken`, projections), `users.get`, `groups.list`,
//!   `members.list` (paginated, derived membership), `users.watch` and `channels.stop`. Every
//!   call needs a bearer token with one of the method's scopes, issued for an admin;
//! - push (`push`): a test's change to a user is POSTed to every watching channel with Google's
//!   `X-Goog-*` headers.
//!
//! The methods' verbs, paths, parameters and scopes are in [`directory::METHODS`], which the
//! tests check against the `admin:directory_v1` discovery document `google-api-python-client`
//! ships, and which the real Python client drives.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::google::GoogleEmulator;
//! let google = GoogleEmulator::start("example.com").await;
//! google.add_admin("admin@example.com", "Ada", "Admin");
//! let key = google.add_service_account("slipway-sync");
//! google.grant_delegation(&key.client_id, &["https://www.googleapis.com/auth/admin.directory.user.readonly"]);
//! // give key.json to the client, and point it at google.base_url() and google.token_url()
//! # }
//! ```

pub mod directory;
pub(crate) mod oauth;
mod push;
pub(crate) mod state;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use directory::{METHODS, MethodSpec};
pub use oauth::{AUDIENCES, JWT_BEARER};
pub use state::{Channel, Delivery, GGroup, GMember, GUser, MemberKind};

use crate::server::Server;
pub(crate) use state::Account;
use state::{Shared, State, lock, random_hex};

/// A service account's key file, as the Cloud console's "Create key → JSON" downloads it.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// The whole JSON file.
    pub json: String,
    pub client_email: String,
    /// The OAuth client id the Admin console's domain-wide delegation is granted to.
    pub client_id: String,
    pub private_key_pem: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
}

/// A running emulator. Cheap to clone; stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct GoogleEmulator {
    inner: Arc<Inner>,
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/token", post(oauth::token))
        .route("/admin/directory/v1/users", get(directory::users_list))
        .route(
            "/admin/directory/v1/users/watch",
            post(directory::users_watch),
        )
        .route("/admin/directory/v1/users/{key}", get(directory::users_get))
        .route("/admin/directory/v1/groups", get(directory::groups_list))
        .route(
            "/admin/directory/v1/groups/{key}/members",
            get(directory::members_list),
        )
        .route(
            "/admin/directory_v1/channels/stop",
            post(directory::channels_stop),
        )
        .fallback(|| async {
            oauth::api_error(StatusCode::NOT_FOUND, "notFound", "Not Found").into_response()
        })
        .with_state(state)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A fresh RSA key for the service account `name@project.iam.gserviceaccount.com`: its JSON
/// key file (as the Cloud console's "Create key → JSON" downloads it, `token_uri` set) and what
/// a token endpoint keeps to verify its assertions. The GCP emulator makes its keys here too.
///
/// # Panics
/// If no RSA key can be generated.
pub(crate) fn new_key(
    name: &str,
    project: &str,
    client_id: &str,
    token_uri: &str,
) -> (ServiceAccountKey, Account) {
    let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .unwrap_or_else(|e| panic!("google emulator: RSA key generation: {e}"));
    let der = pair
        .as_der()
        .unwrap_or_else(|e| panic!("google emulator: PKCS#8 encoding: {e}"));
    let private_key_pem = pem("PRIVATE KEY", der.as_ref());
    let key_id = random_hex(20);
    let client_email = format!("{name}@{project}.iam.gserviceaccount.com");
    let json = json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": private_key_pem,
        "client_email": client_email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": format!("https://www.googleapis.com/robot/v1/metadata/x509/{name}%40{project}.iam.gserviceaccount.com"),
        "universe_domain": "googleapis.com",
    })
    .to_string();
    let account = Account {
        client_id: client_id.to_string(),
        key_id,
        public_key: pair.public_key().as_ref().to_vec(),
    };
    let key = ServiceAccountKey {
        json,
        client_email,
        client_id: client_id.to_string(),
        private_key_pem,
    };
    (key, account)
}

impl GoogleEmulator {
    /// Starts on `127.0.0.1:0` with one customer owning `domain`, and no users yet.
    pub async fn start(domain: &str) -> GoogleEmulator {
        let state: Shared = Arc::new(Mutex::new(State::new(domain)));
        let server = Server::start(router(state.clone()), CancellationToken::new(), None).await;
        lock(&state).base_url = format!("http://{}", server.addr());
        GoogleEmulator {
            inner: Arc::new(Inner { server, state }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// The API root (`https://admin.googleapis.com` on Google): the Directory API is under
    /// `/admin/directory/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// The token endpoint (`https://oauth2.googleapis.com/token` on Google). Assertions posted
    /// here name Google's URL as their `aud`, as Google's client libraries do.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The customer's immutable id (what `my_customer` stands for).
    pub fn customer_id(&self) -> String {
        self.state().customer_id.clone()
    }

    /// Create a service account with a fresh RSA key, and return its JSON key file (with
    /// `token_uri` this emulator's). It has no domain-wide delegation until
    /// [`GoogleEmulator::grant_delegation`].
    ///
    /// # Panics
    /// If no RSA key can be generated.
    pub fn add_service_account(&self, name: &str) -> ServiceAccountKey {
        let mut st = self.state();
        let client_id = format!("1{}", &st.new_id()[1..]);
        let token_uri = format!("{}/token", st.base_url);
        let (key, account) = new_key(name, "slipway-test", &client_id, &token_uri);
        st.accounts.insert(key.client_email.clone(), account);
        key
    }

    /// Admin console → Security → API controls → Domain-wide delegation: allow `client_id`
    /// these scopes (replacing what it had).
    pub fn grant_delegation(&self, client_id: &str, scopes: &[&str]) {
        self.state().grants.insert(
            client_id.to_string(),
            scopes.iter().map(|s| (*s).to_string()).collect(),
        );
    }

    /// Delete the service account's key (Cloud console → Keys → Delete): assertions it signs
    /// are refused from now on, as `invalid_grant`.
    pub fn delete_key(&self, client_email: &str) {
        if let Some(a) = self.state().accounts.get_mut(client_email) {
            a.public_key.clear();
        }
    }

    /// How long access tokens issued from now on live (Google: 3599 s).
    pub fn set_token_ttl(&self, seconds: i64) {
        self.state().token_ttl = seconds;
    }

    /// The longest a push channel may live from now on (the discovery document says two days).
    pub fn set_channel_ttl(&self, ttl: Duration) {
        self.state().channel_ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    }

    /// How many access tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.state().tokens.len()
    }

    fn insert_user(&self, email: &str, given: &str, family: &str, admin: bool) -> String {
        let user = {
            let mut st = self.state();
            let id = st.new_id();
            st.users.push(GUser {
                id: id.clone(),
                primary_email: email.to_string(),
                given_name: given.to_string(),
                family_name: family.to_string(),
                suspended: false,
                archived: false,
                is_admin: admin,
                custom: std::collections::BTreeMap::new(),
                created: chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S.000Z")
                    .to_string(),
                version: 1,
            });
            id
        };
        self.changed(&user, "add");
        user
    }

    /// Add a user (`add` is pushed to watching channels); returns their id.
    pub fn add_user(&self, email: &str, given: &str, family: &str) -> String {
        self.insert_user(email, given, family, false)
    }

    /// Add a super admin, whom a service account may impersonate to read the directory.
    pub fn add_admin(&self, email: &str, given: &str, family: &str) -> String {
        self.insert_user(email, given, family, true)
    }

    /// Change a user (by email or id) and push `event` about them.
    fn update_user(&self, key: &str, event: &str, f: impl FnOnce(&mut GUser)) {
        let id = {
            let mut st = self.state();
            let Some(u) = st.user_mut(key) else { return };
            f(u);
            u.version += 1;
            u.id.clone()
        };
        self.changed(&id, event);
    }

    fn changed(&self, id: &str, event: &str) {
        let user = {
            let st = self.state();
            st.user(id).map(|u| st.user_json(u, &|_| false))
        };
        if let Some(u) = user {
            push::notify(&self.inner.state, event, &u);
        }
    }

    /// Suspend (or restore) a user, as an admin does for a leaver.
    pub fn suspend_user(&self, key: &str, suspended: bool) {
        self.update_user(key, "update", |u| u.suspended = suspended);
    }

    /// Archive (or unarchive) a user.
    pub fn archive_user(&self, key: &str, archived: bool) {
        self.update_user(key, "update", |u| u.archived = archived);
    }

    /// Set a custom schema field (`customSchemas.<schema>.<field>`); `None` removes it.
    pub fn set_custom_field(&self, key: &str, schema: &str, field: &str, value: Option<&str>) {
        self.update_user(key, "update", |u| {
            let fields = u.custom.entry(schema.to_string()).or_default();
            match value {
                Some(v) => {
                    fields.insert(field.to_string(), Value::String(v.to_string()));
                }
                None => {
                    fields.remove(field);
                }
            }
        });
    }

    /// Delete a user: gone from every list and group (`delete` is pushed).
    pub fn delete_user(&self, key: &str) {
        let user = {
            let mut st = self.state();
            let Some(u) = st.user(key).cloned() else {
                return;
            };
            st.users.retain(|x| x.id != u.id);
            for g in &mut st.groups {
                g.members.retain(|m| m.id != u.id);
            }
            st.user_json(&u, &|_| false)
        };
        push::notify(&self.inner.state, "delete", &user);
    }

    fn insert_group(&self, email: &str, name: &str, admin_created: bool) -> String {
        let mut st = self.state();
        let id = format!("0{}", &random_hex(7)[..14]);
        st.groups.push(GGroup {
            id: id.clone(),
            email: email.to_string(),
            name: name.to_string(),
            description: String::new(),
            admin_created,
            members: Vec::new(),
            version: 1,
        });
        id
    }

    /// Add a group an admin created; returns its id.
    pub fn add_group(&self, email: &str, name: &str) -> String {
        self.insert_group(email, name, true)
    }

    /// Add a group a user created in Google Groups (`adminCreated: false`).
    pub fn add_user_created_group(&self, email: &str, name: &str) -> String {
        self.insert_group(email, name, false)
    }

    /// Put a user or group (by email) into `group` as a `MEMBER`.
    pub fn add_member(&self, group: &str, member: &str) {
        let mut st = self.state();
        let found = match (st.user(member), st.group(member)) {
            (Some(u), _) => Some((u.id.clone(), u.primary_email.clone(), MemberKind::User)),
            (None, Some(g)) => Some((g.id.clone(), g.email.clone(), MemberKind::Group)),
            (None, None) => None,
        };
        let Some((id, email, kind)) = found else {
            return;
        };
        if let Some(g) = st.group_mut(group)
            && !g.members.iter().any(|m| m.id == id)
        {
            g.members.push(GMember {
                id,
                email: Some(email),
                role: "MEMBER".into(),
                kind,
            });
            g.version += 1;
        }
    }

    /// Make everyone in the organisation a member of `group` (a `CUSTOMER` member).
    pub fn add_everyone(&self, group: &str) {
        let mut st = self.state();
        let id = st.customer_id.clone();
        if let Some(g) = st.group_mut(group) {
            g.members.push(GMember {
                id,
                email: None,
                role: "MEMBER".into(),
                kind: MemberKind::Customer,
            });
            g.version += 1;
        }
    }

    /// Take a user or group (by email or id) out of `group`.
    pub fn remove_member(&self, group: &str, member: &str) {
        let mut st = self.state();
        if let Some(g) = st.group_mut(group) {
            g.members.retain(|m| {
                m.id != member
                    && !m
                        .email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(member))
            });
            g.version += 1;
        }
    }

    /// Delete a group (by email or id).
    pub fn delete_group(&self, group: &str) {
        let mut st = self.state();
        let Some(id) = st.group(group).map(|g| g.id.clone()) else {
            return;
        };
        st.groups.retain(|g| g.id != id);
        for g in &mut st.groups {
            g.members.retain(|m| m.id != id);
        }
    }

    /// The live push channels.
    pub fn channels(&self) -> Vec<Channel> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.state()
            .channels
            .iter()
            .filter(|c| c.expiration_ms > now_ms)
            .cloned()
            .collect()
    }

    /// Every notification delivered (or attempted) so far, in the order they finished.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state().deliveries.clone()
    }

    /// `METHOD /path?query` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// Wait until `f` holds (polling every 20 ms), or `timeout` passes; whether it held.
    pub async fn wait_until<F: Fn(&GoogleEmulator) -> bool>(
        &self,
        timeout: Duration,
        f: F,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if f(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
