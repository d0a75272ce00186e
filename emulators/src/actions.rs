//! The GitHub Actions OIDC token service, as a job sees it through `ACTIONS_ID_TOKEN_REQUEST_URL`
//! and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`:
//!
//! - `GET <request url>&audience=<aud>` with `Authorization: bearer <request token>` answers
//!   `{"value": "<JWT>"}`; without `audience` the token's `aud` is `https://github.com/<owner>`,
//!   as on GitHub; a missing or wrong request token is `401`.
//! - The JWT is RS256-signed by a key made at start-up, with the documented claims: `iss`
//!   (`https://token.actions.githubusercontent.com`), `sub` (`repo:O/R:ref:<ref>`, or
//!   `repo:O/R:environment:<name>` for a job with an environment, or the repository's customized
//!   subject, e.g. `repo:O/R:ref:<ref>:job_workflow_ref:<ref>`), `aud`, `ref`, `sha`,
//!   `repository`, `repository_owner`, `repository_id`, `actor`, `run_id`, `run_attempt`,
//!   `event_name`, `workflow_ref`, `job_workflow_ref`, `runner_environment`, `jti`, `iat`, `nbf`,
//!   `exp` (`iat` + 5 minutes).
//! - `GET /.well-known/openid-configuration` and `GET /.well-known/jwks` publish the issuer and
//!   the public key (`kty` RSA, `n`, `e`, `kid`), so a test can verify the signature.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator};
//! let oidc = ActionsOidcEmulator::start(ActionsJob::push("acme/gitops", "main", "abc123")).await;
//! // job env: ACTIONS_ID_TOKEN_REQUEST_URL={oidc.request_url()} ACTIONS_ID_TOKEN_REQUEST_TOKEN={oidc.request_token()}
//! # }
//! ```

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::server::Server;

/// The issuer GitHub's tokens carry.
pub const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// How long a token is valid.
const TOKEN_TTL_SECS: i64 = 300;

/// The job a token is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsJob {
    /// `owner/name`.
    pub repository: String,
    pub repository_id: u64,
    pub repository_owner_id: u64,
    /// `refs/heads/main`.
    pub git_ref: String,
    pub sha: String,
    /// The calling workflow: `owner/name/.github/workflows/x.yml@refs/heads/main`.
    pub workflow_ref: String,
    /// The workflow that defines the job (differs for reusable workflows).
    pub job_workflow_ref: String,
    pub actor: String,
    pub event_name: String,
    pub run_id: u64,
    pub run_attempt: u32,
    /// `github-hosted` or `self-hosted`.
    pub runner_environment: String,
    /// A deployment environment: `sub` then names it instead of the ref.
    pub environment: Option<String>,
    /// The repository's customized OIDC subject (`include_claim_keys` of
    /// `PUT /repos/{o}/{r}/actions/oidc/customization/sub`); empty: the default subject.
    pub subject_claims: Vec<String>,
}

impl ActionsJob {
    /// A push to `branch` of `repository` running `.github/workflows/slipway-runner.yml`.
    pub fn push(repository: &str, branch: &str, sha: &str) -> ActionsJob {
        let workflow =
            format!("{repository}/.github/workflows/slipway-runner.yml@refs/heads/{branch}");
        ActionsJob {
            repository: repository.to_string(),
            repository_id: 700_001,
            repository_owner_id: 600_001,
            git_ref: format!("refs/heads/{branch}"),
            sha: sha.to_string(),
            workflow_ref: workflow.clone(),
            job_workflow_ref: workflow,
            actor: "ada-approver".to_string(),
            event_name: "push".to_string(),
            run_id: 9_000_001,
            run_attempt: 1,
            runner_environment: "github-hosted".to_string(),
            environment: None,
            subject_claims: Vec::new(),
        }
    }

    /// The job is defined by a reusable workflow the caller calls: `job_workflow_ref` names it
    /// (`owner/repo/.github/workflows/x.yml@<ref or sha>`), `workflow_ref` stays the caller's.
    #[must_use]
    pub fn calling(mut self, job_workflow_ref: &str) -> ActionsJob {
        self.job_workflow_ref = job_workflow_ref.to_string();
        self
    }

    /// The repository customized its subject to these claims, in this order (GitHub's
    /// `include_claim_keys`, e.g. `["repo", "context", "job_workflow_ref"]`).
    #[must_use]
    pub fn with_subject_claims(mut self, keys: &[&str]) -> ActionsJob {
        self.subject_claims = keys.iter().map(|k| (*k).to_string()).collect();
        self
    }

    /// The `sub` claim: `repo:O/R:ref:<ref>` (or `:environment:<name>`), or with a customized
    /// subject each included claim as `key:value`, `context` standing for the ref or
    /// environment part.
    pub fn subject(&self) -> String {
        let context = match &self.environment {
            Some(env) => format!("environment:{env}"),
            None => format!("ref:{}", self.git_ref),
        };
        if self.subject_claims.is_empty() {
            return format!("repo:{}:{context}", self.repository);
        }
        self.subject_claims
            .iter()
            .map(|key| match key.as_str() {
                "repo" => format!("repo:{}", self.repository),
                "context" => context.clone(),
                other => format!("{other}:{}", self.claim(other)),
            })
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A string claim by name, for the customized subject (empty when unknown).
    fn claim(&self, key: &str) -> String {
        match key {
            "job_workflow_ref" => self.job_workflow_ref.clone(),
            "workflow_ref" => self.workflow_ref.clone(),
            "actor" => self.actor.clone(),
            "event_name" => self.event_name.clone(),
            "ref" => self.git_ref.clone(),
            "repository_id" => self.repository_id.to_string(),
            "repository_owner_id" => self.repository_owner_id.to_string(),
            "runner_environment" => self.runner_environment.clone(),
            "repository_owner" => self
                .repository
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    }
}

struct OidcState {
    key: RsaKeyPair,
    kid: String,
    request_token: String,
    job: ActionsJob,
    issued: Vec<Value>,
    base_url: String,
}

type Shared = Arc<Mutex<OidcState>>;

fn lock(s: &Shared) -> MutexGuard<'_, OidcState> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
}

impl std::fmt::Debug for OidcState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcState")
            .field("kid", &self.kid)
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

/// A running token service. Cheap to clone; stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct ActionsOidcEmulator {
    inner: Arc<Inner>,
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

impl ActionsOidcEmulator {
    /// Starts the service on `127.0.0.1:0` with a fresh 2048-bit signing key.
    ///
    /// # Panics
    /// If no RSA key can be generated or the port cannot be bound.
    pub async fn start(job: ActionsJob) -> ActionsOidcEmulator {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("actions oidc emulator: RSA key generation: {e}"));
        let state: Shared = Arc::new(Mutex::new(OidcState {
            key,
            kid: random_hex(8),
            request_token: format!("actions-request-{}", random_hex(16)),
            job,
            issued: Vec::new(),
            base_url: String::new(),
        }));
        let router = Router::new()
            .route("/_apis/idtoken", get(token))
            .route("/.well-known/openid-configuration", get(configuration))
            .route("/.well-known/jwks", get(jwks))
            .with_state(state.clone());
        let server = Server::start(router, CancellationToken::new(), None).await;
        lock(&state).base_url = format!("http://{}", server.addr());
        ActionsOidcEmulator {
            inner: Arc::new(Inner { server, state }),
        }
    }

    fn state(&self) -> MutexGuard<'_, OidcState> {
        lock(&self.inner.state)
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_URL` (it already carries a query, like GitHub's).
    pub fn request_url(&self) -> String {
        format!(
            "http://{}/_apis/idtoken?api-version=2.0",
            self.inner.server.addr()
        )
    }

    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub fn request_token(&self) -> String {
        self.state().request_token.clone()
    }

    /// The JWKS document (`{"keys": [...]}`) tokens verify against.
    pub fn jwks(&self) -> Value {
        jwks_of(&self.state())
    }

    /// Replace the job later tokens are issued for (another ref, an environment…).
    pub fn set_job(&self, job: ActionsJob) {
        self.state().job = job;
    }

    /// The variables Actions sets for a step of `job` that `slipway-runner` reads, with this
    /// issuer's token request URL and token: the job `token` (`GITHUB_TOKEN`), the GitHub the
    /// job talks to, the checkout (`GITHUB_WORKSPACE`) and `RUNNER_TEMP`.
    pub fn job_env(
        &self,
        job: &ActionsJob,
        github: &crate::github::GitHubEmulator,
        token: &str,
        workspace: &std::path::Path,
        runner_temp: &std::path::Path,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_REPOSITORY", job.repository.clone()),
            ("GITHUB_SHA", job.sha.clone()),
            ("GITHUB_REF", job.git_ref.clone()),
            ("GITHUB_RUN_ID", job.run_id.to_string()),
            ("GITHUB_RUN_ATTEMPT", job.run_attempt.to_string()),
            ("GITHUB_API_URL", github.api_url()),
            ("GITHUB_SERVER_URL", github.base_url()),
            ("GITHUB_WORKSPACE", workspace.display().to_string()),
            ("GITHUB_WORKFLOW_REF", job.workflow_ref.clone()),
            ("GITHUB_TOKEN", token.to_string()),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", self.request_url()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", self.request_token()),
            ("RUNNER_TEMP", runner_temp.display().to_string()),
        ]
    }

    /// The claims of every token issued so far, in order.
    pub fn issued(&self) -> Vec<Value> {
        self.state().issued.clone()
    }
}

fn jwks_of(st: &OidcState) -> Value {
    let public = st.key.public_key();
    json!({"keys": [{
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": st.kid,
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    }]})
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn configuration(State(state): State<Shared>) -> Response {
    let st = lock(&state);
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{}/.well-known/jwks", st.base_url),
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "repository_id", "repository_owner", "repository_owner_id", "run_id", "run_attempt", "actor", "workflow_ref", "job_workflow_ref", "event_name", "runner_environment", "sha"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid"],
        }),
    )
}

async fn jwks(State(state): State<Shared>) -> Response {
    json_response(StatusCode::OK, &jwks_of(&lock(&state)))
}

async fn token(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut st = lock(&state);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    if presented.as_deref() != Some(st.request_token.as_str()) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Unauthorized: the request token is missing or invalid"}),
        );
    }
    let owner = st
        .job
        .repository
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let audience = query
        .get("audience")
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("https://github.com/{owner}"));
    let now = chrono::Utc::now().timestamp();
    let job = st.job.clone();
    let claims = json!({
        "jti": random_hex(16),
        "sub": job.subject(),
        "aud": audience,
        "ref": job.git_ref,
        "ref_type": "branch",
        "sha": job.sha,
        "repository": job.repository,
        "repository_owner": owner,
        "repository_id": job.repository_id.to_string(),
        "repository_owner_id": job.repository_owner_id.to_string(),
        "repository_visibility": "private",
        "actor": job.actor,
        "actor_id": "1000001",
        "run_id": job.run_id.to_string(),
        "run_number": "1",
        "run_attempt": job.run_attempt.to_string(),
        "event_name": job.event_name,
        "workflow": "slipway-runner",
        "workflow_ref": job.workflow_ref,
        "job_workflow_ref": job.job_workflow_ref,
        "runner_environment": job.runner_environment,
        "environment": job.environment,
        "iss": ISSUER,
        "iat": now,
        "nbf": now - 5,
        "exp": now + TOKEN_TTL_SECS,
    });
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": st.kid, "x5t": st.kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; st.key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    if st
        .key
        .sign(
            &RSA_PKCS1_SHA256,
            &rng,
            signing_input.as_bytes(),
            &mut signature,
        )
        .is_err()
    {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"message": "signing failed"}),
        );
    }
    st.issued.push(claims);
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    json_response(StatusCode::OK, &json!({"value": jwt}))
}
