//! What the GCP emulator holds: projects with their IAM policies, service accounts (keys and
//! their own IAM policies), Workload Identity Federation providers, the access tokens it issued
//! (whose principal, until when), the resources the read APIs serve (stored as the JSON each API
//! returns, so a handler only selects and wraps), and every request it received.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::sts::Provider;
use crate::google::Account;

/// When seeded resources say they were created: fixed, so outputs are stable across runs.
pub(crate) const CREATED: &str = "2026-01-05T09:00:00.000-08:00";
/// The same instant in UTC, for the APIs that write timestamps that way.
pub(crate) const CREATED_UTC: &str = "2026-01-05T17:00:00Z";
/// Compute's resource URLs, as Google writes them whatever endpoint served them.
pub(crate) const COMPUTE: &str = "https://www.googleapis.com/compute/v1";

/// An IAM policy: role → members (`user:…`, `serviceAccount:…`, `principal://…`,
/// `principalSet://…`).
pub(crate) type Bindings = BTreeMap<String, BTreeSet<String>>;

/// One project.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub id: String,
    pub number: u64,
    pub bindings: Bindings,
    /// compute's `commonInstanceMetadata.items`.
    pub metadata: Vec<(String, String)>,
    pub zones: BTreeSet<String>,
}

/// One service account.
#[derive(Debug, Clone)]
pub(crate) struct ServiceAccount {
    pub email: String,
    pub project: String,
    pub unique_id: String,
    pub display_name: String,
    /// Its one key, if it has one (assertions signed with it get tokens at `/token`).
    pub key: Option<Account>,
    /// Who may act as it (`roles/iam.serviceAccountTokenCreator`, …).
    pub bindings: Bindings,
}

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// `serviceAccount:<email>`, `user:<email>`, or a federated
    /// `principal://iam.googleapis.com/<pool>/subject/<sub>`.
    pub principal: String,
    /// A federated token's pool (`projects/N/locations/global/workloadIdentityPools/P`) and
    /// mapped attributes (`repository`, `ref`, …), for `principalSet://` members.
    pub pool: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub expires: i64,
}

/// A token the emulator issued, as a test sees it ([`super::GcpEmulator::issued_tokens`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The access token itself (`ya29.c.…`).
    pub token: String,
    /// Whom it acts as: `serviceAccount:<email>`, `user:<email>`, or a federated
    /// `principal://iam.googleapis.com/<pool>/subject/<sub>`.
    pub principal: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Which API collection a stored resource belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Instance,
    Disk,
    Network,
    Firewall,
    Cluster,
    Bucket,
    Sink,
    RunService,
    RunRevision,
    Role,
    /// A Secret Manager secret: its versions' payloads, base64, oldest first.
    Secret,
}

/// `(kind, project id, scope (zone, location, region or ""), name)`.
pub(crate) type Key = (Kind, String, String, String);

/// One request the emulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The `Host` header: `REGION-127.0.0.1:PORT` for a Cloud Run regional call.
    pub host: Option<String>,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// `X-Goog-Request-Reason`, which gcloud sends from its `core/request_reason` property.
    pub request_reason: Option<String>,
    /// The principal of a valid bearer token (`serviceAccount:…`), if the request had one.
    pub principal: Option<String>,
    pub status: u16,
}

#[derive(Debug)]
pub(crate) struct State {
    pub base_url: String,
    pub projects: BTreeMap<String, Project>,
    pub accounts: BTreeMap<String, ServiceAccount>,
    pub providers: Vec<Provider>,
    pub tokens: HashMap<String, Token>,
    /// Seconds the OAuth and STS endpoints' tokens live.
    pub token_ttl: i64,
    pub resources: BTreeMap<Key, Value>,
    /// Log entries per project, oldest first.
    pub entries: Vec<(String, Value)>,
    pub requests: Vec<RecordedRequest>,
    next_id: u64,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub fn new() -> State {
        State {
            base_url: String::new(),
            projects: BTreeMap::new(),
            accounts: BTreeMap::new(),
            providers: Vec::new(),
            tokens: HashMap::new(),
            token_ttl: 3599,
            resources: BTreeMap::new(),
            entries: Vec::new(),
            requests: Vec::new(),
            next_id: 4_180_000_000_000_000_000,
        }
    }

    /// A fresh uint64 id, as compute's and GKE's look (deterministic, for stable outputs).
    pub fn new_id(&mut self) -> String {
        self.next_id += 1_000_003;
        self.next_id.to_string()
    }

    /// A project by id or number.
    pub fn project(&self, key: &str) -> Option<&Project> {
        self.projects
            .get(key)
            .or_else(|| self.projects.values().find(|p| p.number.to_string() == key))
    }

    /// The stored resources of `kind` in `project` (by id), with `scope` (`None`: any).
    pub fn list(&self, kind: Kind, project: &str, scope: Option<&str>) -> Vec<&Value> {
        self.resources
            .iter()
            .filter(|((k, p, s, _), _)| {
                *k == kind && p == project && scope.is_none_or(|want| want == s)
            })
            .map(|(_, v)| v)
            .collect()
    }

    pub fn get(&self, kind: Kind, project: &str, scope: &str, name: &str) -> Option<&Value> {
        self.resources.get(&(
            kind,
            project.to_string(),
            scope.to_string(),
            name.to_string(),
        ))
    }

    pub fn put(&mut self, kind: Kind, project: &str, scope: &str, name: &str, value: Value) {
        self.resources.insert(
            (
                kind,
                project.to_string(),
                scope.to_string(),
                name.to_string(),
            ),
            value,
        );
    }

    /// The service account by email or unique id.
    pub fn account(&self, key: &str) -> Option<&ServiceAccount> {
        self.accounts
            .get(key)
            .or_else(|| self.accounts.values().find(|a| a.unique_id == key))
    }
}
