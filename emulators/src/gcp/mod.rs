//! Google Cloud's APIs as gcloud 528 reads them, and the token services Workload Identity
//! Federation runs on: stateful, at the HTTP level, on one loopback port. The real `gcloud`
//! talks to it through `CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>` ([`GcpEmulator::endpoint_overrides`]).
//!
//! Each handler follows the discovery document `google-api-python-client` ships for its API
//! (the tests check every response against it, and [`METHODS`] names the methods served):
//!
//! - `compute` (`compute.v1`): instances, disks (aggregated and per zone), zones, networks,
//!   firewalls, the project (`commonInstanceMetadata`);
//! - `container` (`container.v1`): clusters and node pools;
//! - `crm` (`cloudresourcemanager.v1`): projects and their IAM policy;
//! - `iam` (`iam.v1`): service accounts (and their IAM policy), predefined and custom roles;
//! - `storage` (`storage.v1`): buckets;
//! - `logging` (`logging.v2`): sinks and `entries:list`;
//! - `run` (`run.v1`): services and revisions, global and regional (Knative) forms;
//! - `sts` (`sts.v1`): the token exchange for OIDC tokens, verified against a provider's JWKS,
//!   audiences and attribute condition;
//! - `iamcredentials` (`iamcredentials.v1`): `generateAccessToken` for callers granted
//!   `roles/iam.serviceAccountTokenCreator` on the account;
//! - `auth`: the OAuth token endpoint for service account keys (the JWT bearer grant of
//!   [`crate::google`]), bearer and read checks, Google's error bodies, request recording.
//!
//! Every read needs a bearer token issued here and unexpired (else `401 UNAUTHENTICATED`) whose
//! principal a project read role (`roles/viewer`, `editor`, `owner`) names, directly or as a
//! federated `principalSet://` (else `403 PERMISSION_DENIED`). Tokens live as long as they say.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::gcp::GcpEmulator;
//! let gcp = GcpEmulator::start().await;
//! gcp.add_project("acme-prod", 123_456_789_012);
//! gcp.add_instance("acme-prod", "us-central1-a", "web-1", &[("startup-script", "echo hi")]);
//! let reader = gcp.add_service_account("acme-prod", "slipway-reader");
//! gcp.grant_reader("acme-prod", &format!("serviceAccount:{}", reader.client_email));
//! let token = gcp.token_for(&format!("serviceAccount:{}", reader.client_email));
//! // gcloud: gcp.endpoint_overrides() + CLOUDSDK_AUTH_ACCESS_TOKEN_FILE holding `token`
//! # }
//! ```

mod auth;
mod compute;
mod container;
mod crm;
mod example;
mod iam;
mod iamcredentials;
mod logging;
mod methods;
mod run;
mod secretmanager;
mod seed;
mod state;
mod storage;
mod sts;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use example::Example;
pub use methods::{METHODS, MethodSpec};
pub use seed::{READER_ROLE, TOKEN_CREATOR_ROLE};
pub use state::{IssuedToken, RecordedRequest};
pub use sts::{ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE, WifProvider};

use crate::server::Server;
use state::{Shared, State, lock};

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
}

/// A running emulator. Cheap to clone; stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct GcpEmulator {
    inner: Arc<Inner>,
}

fn router(state: Shared) -> Router {
    const CLUSTERS: &str = "/container/v1/projects/{project}/locations/{location}/clusters";
    const KNATIVE: &str = "/run/apis/serving.knative.dev/v1/namespaces/{ns}/{collection}";
    Router::new()
        .route("/token", post(auth::token))
        .route("/sts/v1/token", post(sts::token))
        .route(
            "/iamcredentials/v1/projects/{project}/serviceAccounts/{name}",
            post(iamcredentials::generate_access_token),
        )
        .merge(compute_routes())
        .route(CLUSTERS, get(container::clusters_list))
        .route(
            &format!("{CLUSTERS}/{{cluster}}"),
            get(container::cluster_get),
        )
        .route(
            &format!("{CLUSTERS}/{{cluster}}/nodePools"),
            get(container::node_pools_list),
        )
        .route(
            &format!("{CLUSTERS}/{{cluster}}/nodePools/{{pool}}"),
            get(container::node_pool_get),
        )
        .route("/cloudresourcemanager/v1/projects", get(crm::projects_list))
        .route(
            "/cloudresourcemanager/v1/projects/{project}",
            get(crm::project_get).post(crm::project_post),
        )
        .merge(iam_routes())
        .route("/storage/v1/b", get(storage::buckets_list))
        .route("/storage/v1/b/{bucket}", get(storage::bucket_get))
        .route(
            "/logging/v2/projects/{project}/sinks",
            get(logging::sinks_list),
        )
        .route(
            "/logging/v2/projects/{project}/sinks/{sink}",
            get(logging::sink_get),
        )
        .route("/logging/v2/{verb}", post(logging::entries_list))
        .route(
            "/run/v1/projects/{project}/locations/{region}/{collection}",
            get(run::global_list),
        )
        .route(
            "/run/v1/projects/{project}/locations/{region}/{collection}/{name}",
            get(run::global_get),
        )
        .route(
            "/secretmanager/v1/projects/{project}/secrets/{secret}/versions/{version}",
            get(secretmanager::access),
        )
        .route(KNATIVE, get(run::namespaced_list))
        .route(&format!("{KNATIVE}/{{name}}"), get(run::namespaced_get))
        .fallback(|| async { auth::not_found("Not Found").into_response() })
        .layer(from_fn_with_state(state.clone(), auth::record))
        .with_state(state)
}

fn compute_routes() -> Router<Shared> {
    const P: &str = "/compute/v1/projects/{project}";
    Router::new()
        .route(P, get(compute::project_get))
        .route(&format!("{P}/zones"), get(compute::zones_list))
        .route(&format!("{P}/zones/{{zone}}"), get(compute::zone_get))
        .route(
            &format!("{P}/aggregated/{{collection}}"),
            get(compute::aggregated),
        )
        .route(
            &format!("{P}/zones/{{zone}}/{{collection}}"),
            get(compute::zonal_list),
        )
        .route(
            &format!("{P}/zones/{{zone}}/{{collection}}/{{name}}"),
            get(compute::zonal_get),
        )
        .route(
            &format!("{P}/global/{{collection}}"),
            get(compute::global_list),
        )
        .route(
            &format!("{P}/global/{{collection}}/{{name}}"),
            get(compute::global_get),
        )
}

fn iam_routes() -> Router<Shared> {
    const P: &str = "/iam/v1/projects/{project}";
    Router::new()
        .route(&format!("{P}/serviceAccounts"), get(iam::accounts_list))
        .route(
            &format!("{P}/serviceAccounts/{{account}}"),
            get(iam::account_get).post(iam::account_post),
        )
        .route("/iam/v1/roles", get(iam::roles_list))
        .route("/iam/v1/roles/{role}", get(iam::role_get))
        .route(&format!("{P}/roles"), get(iam::custom_roles_list))
        .route(&format!("{P}/roles/{{role}}"), get(iam::custom_role_get))
}

impl GcpEmulator {
    /// Starts on `127.0.0.1:0` with no projects, accounts or providers.
    pub async fn start() -> GcpEmulator {
        let state: Shared = Arc::new(Mutex::new(State::new()));
        let server = Server::start(router(state.clone()), CancellationToken::new(), None).await;
        lock(&state).base_url = format!("http://{}", server.addr());
        GcpEmulator {
            inner: Arc::new(Inner { server, state }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// `http://127.0.0.1:PORT`: each API is under `/<api>/` (`/compute/v1/…`, `/sts/v1/token`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// The OAuth token endpoint for service account keys (Google's
    /// `https://oauth2.googleapis.com/token`); the keys [`GcpEmulator::add_service_account`]
    /// returns name it as their `token_uri`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// STS's exchange (`https://sts.googleapis.com/v1/token`), a credential file's `token_url`.
    pub fn sts_token_url(&self) -> String {
        format!("{}/sts/v1/token", self.base_url())
    }

    /// `generateAccessToken` for `email` (a credential file's
    /// `service_account_impersonation_url`).
    pub fn generate_access_token_url(&self, email: &str) -> String {
        format!(
            "{}/iamcredentials/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
            self.base_url()
        )
    }

    /// The environment that points gcloud at this emulator: one
    /// `CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>` per API (compute and storage with their
    /// `v1/` service path, the others with the API's name only: gcloud appends their version),
    /// `CLOUDSDK_AUTH_TOKEN_HOST` (gcloud sends a service account key's assertion there, not to
    /// the key's `token_uri`), and `http_proxy` with `no_proxy=127.0.0.1`. The proxy is for Cloud Run's `--region`:
    /// gcloud then calls `http://<region>-localhost:PORT`, which resolves nowhere; through the
    /// proxy the request reaches the emulator, which reads the region off the `Host` header.
    /// Everything on 127.0.0.1 (the other APIs, a token service) goes direct.
    pub fn endpoint_overrides(&self) -> Vec<(String, String)> {
        let base = self.base_url();
        let port = self.inner.server.addr().port();
        let api =
            |name: &str, path: String| (format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{name}"), path);
        vec![
            api("COMPUTE", format!("{base}/compute/v1/")),
            api("CONTAINER", format!("{base}/container/")),
            api(
                "CLOUDRESOURCEMANAGER",
                format!("{base}/cloudresourcemanager/"),
            ),
            api("IAM", format!("{base}/iam/")),
            api("IAMCREDENTIALS", format!("{base}/iamcredentials/")),
            api("STORAGE", format!("{base}/storage/v1/")),
            api("LOGGING", format!("{base}/logging/")),
            api("RUN", format!("http://localhost:{port}/run/")),
            ("CLOUDSDK_AUTH_TOKEN_HOST".into(), self.token_url()),
            ("http_proxy".into(), base.clone()),
            ("no_proxy".into(), "127.0.0.1".into()),
        ]
    }

    /// A token acting as `principal` (`serviceAccount:…`, `user:…`) with the cloud-platform
    /// scope, living as long as the token endpoint's do (3599 s unless
    /// [`GcpEmulator::set_token_ttl`]).
    /// Whose live token this is (`serviceAccount:…`, …), as Google's tokeninfo would say:
    /// `None` for an unknown or expired one.
    pub fn principal_of(&self, token: &str) -> Option<String> {
        let st = self.state();
        st.tokens
            .get(token)
            .filter(|t| t.expires > auth::now())
            .map(|t| t.principal.clone())
    }

    pub fn token_for(&self, principal: &str) -> String {
        let ttl = self.state().token_ttl;
        self.token_for_lifetime(principal, Duration::from_secs(ttl.unsigned_abs()))
    }

    /// A token acting as `principal` that expires after `lifetime` (zero: already expired).
    pub fn token_for_lifetime(&self, principal: &str, lifetime: Duration) -> String {
        let token = auth::principal_token(principal, vec![auth::CLOUD_PLATFORM.to_string()]);
        let secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        auth::issue(&mut self.state(), token, secs).0
    }

    /// How long tokens from `/token` and STS (and [`GcpEmulator::token_for`]) live from now on.
    pub fn set_token_ttl(&self, seconds: i64) {
        self.state().token_ttl = seconds;
    }

    /// Every token issued so far (by `/token`, STS, `generateAccessToken` or
    /// [`GcpEmulator::token_for`]), soonest to expire first: what a test checks a client was
    /// handed, or looks for where no token may be.
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        let st = self.state();
        let mut all: Vec<IssuedToken> = st
            .tokens
            .iter()
            .map(|(token, t)| IssuedToken {
                token: token.clone(),
                principal: t.principal.clone(),
                expires_at: t.expires,
            })
            .collect();
        all.sort_by_key(|t| t.expires_at);
        all
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Forget the requests received so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}
