//! A Kubernetes API server emulator good enough for the real `kubectl` (1.32): discovery,
//! list/get with server-side `Table` printing, label and field selectors, pod logs, `Status`
//! errors, bearer-token auth, PATCH/server-side apply and DELETE on stored objects (with
//! `dryRun=All`), and ServiceAccount tokens (TokenRequest) with what each account may do
//! (`tokens`).
//!
//! One port on `127.0.0.1` serves both plain HTTP ([`KubeEmulator::url`]) and HTTPS
//! ([`KubeEmulator::https_url`], a self-signed certificate made at start-up). kubectl (client-go)
//! never sends credentials to a plain-HTTP server, so [`KubeEmulator::write_kubeconfig`] points
//! each context at `https://127.0.0.1:PORT/clusters/<context>` with the certificate as its
//! certificate authority; the `/clusters/<context>` prefix lets [`RecordedRequest`] show which
//! context a request came through. Every endpoint but `/version` and the health checks needs a
//! bearer token, on either scheme.

mod handler;
mod patch;
mod resources;
mod rollout;
mod selector;
mod table;
mod tls;
mod tokens;

pub use rollout::RolloutFailure;
pub use tokens::{AccountRole, DEFAULT_AUDIENCE, DRY_RUN_POLICY, IssuedToken};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// One request the emulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, without the `/clusters/<context>` prefix.
    pub path: String,
    pub had_bearer: bool,
    /// The context the request came through (from the `/clusters/<context>` prefix), if any.
    pub context: Option<String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// The ServiceAccount (`system:serviceaccount:NS:NAME`) an issued token authenticated.
    pub user: Option<String>,
}

/// `(resource, namespace or "", name)`
pub(crate) type Key = (String, String, String);

/// A bearer check beyond the fixed tokens: how a GKE cluster asks Google whose token it is.
#[derive(Clone)]
pub(crate) struct TokenCheck(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck")
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) objects: BTreeMap<Key, Value>,
    pub(crate) tokens: HashSet<String>,
    pub(crate) accounts: tokens::Tokens,
    pub(crate) token_check: Option<TokenCheck>,
    pub(crate) slow: HashMap<String, Duration>,
    pub(crate) logs: HashMap<(String, String), String>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) counter: u64,
    pub(crate) rollouts: rollout::Rollouts,
}

impl State {
    pub(crate) fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Stores `obj` under `resource`, filling uid, resourceVersion and creationTimestamp.
    pub(crate) fn put(&mut self, resource: &str, mut obj: Value) -> Value {
        if !obj.is_object() {
            return obj;
        }
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let n = self.next();
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let key = (resource.to_string(), ns, name);
        let meta = &mut obj["metadata"];
        let existing = self.objects.get(&key).map(|o| o["metadata"].clone());
        for field in ["uid", "creationTimestamp"] {
            if meta.get(field).is_none() {
                let value = match (&existing, field) {
                    (Some(e), _) if e.get(field).is_some() => e[field].clone(),
                    (_, "uid") => json!(format!("00000000-0000-4000-8000-{n:012}")),
                    _ => json!(creation_timestamp()),
                };
                meta[field] = value;
            }
        }
        meta["resourceVersion"] = json!(n.to_string());
        self.objects.insert(key, obj.clone());
        obj
    }
}

/// Objects look ten minutes old, so AGE columns read like a live cluster's.
fn creation_timestamp() -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
    ca_pem: String,
}

/// A running Kubernetes API emulator. Cheap to clone; stops when the last clone is dropped.
///
/// Starts with namespaces `default` and `kube-system` and nodes `node-1` (control-plane) and
/// `node-2` (worker).
#[derive(Debug, Clone)]
pub struct KubeEmulator {
    inner: Arc<Inner>,
}

impl KubeEmulator {
    /// Starts the emulator on `127.0.0.1:0` (plain HTTP).
    pub async fn start() -> KubeEmulator {
        let state: Shared = Arc::new(Mutex::new(State::default()));
        {
            let mut st = lock(&state);
            for ns in ["default", "kube-system"] {
                st.put("namespaces", resources::namespace(ns));
            }
            st.put("nodes", resources::node("node-1", "control-plane"));
            st.put("nodes", resources::node("node-2", "worker"));
        }
        let router = Router::new()
            .fallback(any(handler::handle))
            .with_state(state.clone());
        let tls = tls::self_signed();
        let server = Server::start(router, CancellationToken::new(), Some(tls.config)).await;
        KubeEmulator {
            inner: Arc::new(Inner {
                server,
                state,
                ca_pem: tls.ca_pem,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// `http://127.0.0.1:PORT` (plain HTTP; clients must send `Authorization: Bearer …`).
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// `https://127.0.0.1:PORT` (same port, TLS; trust [`KubeEmulator::ca_pem`]).
    pub fn https_url(&self) -> String {
        format!("https://{}", self.inner.server.addr())
    }

    /// The PEM of the server's self-signed certificate (valid for `127.0.0.1` and `localhost`).
    pub fn ca_pem(&self) -> String {
        self.inner.ca_pem.clone()
    }

    /// Accepts `token` as a bearer token. Until a token is set (here or by
    /// [`KubeEmulator::write_kubeconfig`]) or a check is ([`KubeEmulator::check_tokens`]), any
    /// bearer token is accepted; requests without one always get `401`.
    pub fn add_token(&self, token: &str) {
        self.state().tokens.insert(token.to_string());
    }

    /// Accepts exactly the bearer tokens `check` accepts, besides those added: a GKE cluster
    /// takes a Google access token and asks Google whose it is (e.g. a check against
    /// [`crate::gcp::GcpEmulator::issued_tokens`]). `check` runs on the server's threads.
    pub fn check_tokens(&self, check: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.state().token_check = Some(TokenCheck(Arc::new(check)));
    }

    /// Writes a kubeconfig with one cluster, user and context per name, all pointing at this
    /// server (`<https_url>/clusters/<name>`, trusting [`KubeEmulator::ca_pem`]) with bearer
    /// `token`; current-context is the first name. Also registers `token` as accepted.
    pub fn write_kubeconfig(&self, path: &Path, contexts: &[&str], token: &str) {
        use base64::Engine as _;
        self.add_token(token);
        let q = |s: &str| Value::String(s.to_string()).to_string();
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.inner.ca_pem);
        let mut out = String::from("apiVersion: v1\nkind: Config\npreferences: {}\nclusters:\n");
        for name in contexts {
            let server = format!("{}/clusters/{name}", self.https_url());
            let _ = write!(
                out,
                "- name: {}\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n",
                q(name),
                q(&server)
            );
        }
        out.push_str("users:\n");
        for name in contexts {
            let _ = write!(
                out,
                "- name: {}\n  user:\n    token: {}\n",
                q(name),
                q(token)
            );
        }
        out.push_str("contexts:\n");
        for name in contexts {
            let _ = write!(
                out,
                "- name: {}\n  context:\n    cluster: {}\n    user: {}\n",
                q(name),
                q(name),
                q(name)
            );
        }
        let current = contexts.first().copied().unwrap_or_default();
        let _ = writeln!(out, "current-context: {}", q(current));
        std::fs::write(path, out).expect("writing kubeconfig");
    }

    /// A ServiceAccount whose tokens TokenRequest mints, with what it may do. Fixed tokens
    /// (the bridge's own identity) may mint them; a ServiceAccount's token may not.
    pub fn add_service_account(&self, ns: &str, name: &str, role: AccountRole) {
        self.state()
            .accounts
            .accounts
            .insert((ns.to_string(), name.to_string()), role);
    }

    /// The audiences the server accepts in ServiceAccount tokens (default
    /// [`DEFAULT_AUDIENCE`]): a token for none of them is refused with 401.
    pub fn set_api_audiences(&self, audiences: &[&str]) {
        self.state().accounts.api_audiences = audiences.iter().map(|a| (*a).to_string()).collect();
    }

    /// Every token TokenRequest issued.
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        self.state().accounts.issued.values().cloned().collect()
    }

    /// Every issued token expires now, as if its lifetime had passed.
    pub fn expire_issued_tokens(&self) {
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        for t in self.state().accounts.issued.values_mut() {
            t.expires_at = past;
        }
    }

    pub fn add_namespace(&self, name: &str) {
        self.state().put("namespaces", resources::namespace(name));
    }

    /// A pod with one container (named after the part of `name` before the first `-`) and label
    /// `app=<that part>`: `api-1` gets container `api` and `app=api`. `phase` is a pod phase
    /// (`Running`, `Pending`, `Succeeded`, `Failed`) or a container reason (`CrashLoopBackOff`,
    /// `ImagePullBackOff`, `OOMKilled`, …), which shows in the STATUS column as kubectl would.
    pub fn add_pod(&self, ns: &str, name: &str, phase: &str) {
        let app = resources::app_of(name).to_string();
        self.add_pod_with_labels(ns, name, phase, &[("app", &app)]);
    }

    /// Like [`KubeEmulator::add_pod`] with exactly these labels.
    pub fn add_pod_with_labels(&self, ns: &str, name: &str, phase: &str, labels: &[(&str, &str)]) {
        let mut st = self.state();
        let n = st.next();
        st.put(
            "pods",
            resources::pod(ns, name, phase, &resources::labels(labels), n),
        );
    }

    /// A deployment with selector and label `app=<name>`, whose status shows the rollout done.
    pub fn add_deployment(&self, ns: &str, name: &str, replicas: u32, image: &str) {
        self.state().put(
            "deployments",
            resources::deployment(ns, name, replicas, image),
        );
    }

    /// How long a Deployment's rollout takes after a spec change (default zero: it settles at
    /// once). `kubectl rollout status` watches it progress.
    pub fn set_rollout_delay(&self, delay: Duration) {
        self.state().rollouts.delay = delay;
    }

    /// The switch that makes every later rollout of deployment `ns/name` fail: it exceeds its
    /// progress deadline and its new pods fail as `how` says.
    pub fn fail_rollouts(&self, ns: &str, name: &str, how: RolloutFailure) {
        self.switch_rollouts(ns, name, how, false);
    }

    /// As [`Self::fail_rollouts`], for the next rollout only: the one after it succeeds (a roll
    /// back after a failed deploy).
    pub fn fail_next_rollout(&self, ns: &str, name: &str, how: RolloutFailure) {
        self.switch_rollouts(ns, name, how, true);
    }

    fn switch_rollouts(&self, ns: &str, name: &str, how: RolloutFailure, once: bool) {
        self.state()
            .rollouts
            .failing
            .insert((ns.to_string(), name.to_string()), (how, once));
    }

    /// A ClusterIP service selecting `app=<name>`, port 80 → 8080.
    pub fn add_service(&self, ns: &str, name: &str) {
        let mut st = self.state();
        let n = st.next();
        st.put("services", resources::service(ns, name, n));
    }

    /// An `Opaque` secret; values are stored base64-encoded in `data`, as the API serves them.
    pub fn add_secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        self.state()
            .put("secrets", resources::secret(ns, name, data));
    }

    pub fn add_configmap(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        self.state()
            .put("configmaps", resources::configmap(ns, name, data));
    }

    /// Stores any object of a served kind (Pod, Service, Secret, ConfigMap, Event, Namespace,
    /// Node, Deployment, ReplicaSet), as is. Returns false for other kinds.
    pub fn put_object(&self, obj: Value) -> bool {
        let Some(r) = obj
            .get("kind")
            .and_then(Value::as_str)
            .and_then(resources::Resource::by_kind)
        else {
            return false;
        };
        self.state().put(r.name, obj);
        true
    }

    /// Requests for namespace `ns` wait `delay` before being answered.
    pub fn set_slow_namespace(&self, ns: &str, delay: Duration) {
        self.state().slow.insert(ns.to_string(), delay);
    }

    /// `GET …/pods/{pod}/log` returns `text`.
    pub fn set_pod_log(&self, ns: &str, pod: &str, text: &str) {
        self.state()
            .logs
            .insert((ns.to_string(), pod.to_string()), text.to_string());
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The stored object, if any (`resource` is the plural: `pods`, `deployments`, …; `ns` is
    /// `""` for cluster-scoped resources).
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.state()
            .objects
            .get(&(resource.to_string(), ns.to_string(), name.to_string()))
            .cloned()
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Option<Value> {
        self.object("deployments", ns, name)
    }
}
