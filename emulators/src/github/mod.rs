//! A stateful GitHub emulator at the HTTP level, backed by real bare git repositories: the real
//! octocrab client talks REST to it (App JWT → installation tokens, pulls, reviews, statuses,
//! refs, contents, Actions runs) and real git clients (the `git` CLI, libgit2) clone and push
//! over smart HTTP. Every change fires the webhooks GitHub would send, signed with
//! `X-Hub-Signature-256`.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::github::GitHubEmulator;
//! let gh = GitHubEmulator::start().await;
//! gh.create_repo("acme", "gitops", "main", &[("README.md", "hi\n")]);
//! gh.add_user("alice", "alice-token");
//! // octocrab: Octocrab::builder().base_uri(gh.api_url())?.personal_token("alice-token")
//! // git:      git clone {gh.git_url("acme", "gitops")}
//! # }
//! ```
//!
//! Response bodies follow GitHub's OpenAPI response schemas and webhook payloads follow
//! `@octokit/webhooks-schemas`; `emulators/tests/github_schema.rs` checks both against the
//! extracted schemas in `tests/fixtures/github/`.

mod auth;
mod device;
mod git;
mod json;
mod ops;
mod pulls;
mod routes;
mod smart_http;
mod state;
mod webhooks;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::any;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use auth::generate_app_key_pem;
pub use webhooks::signature_256;

use crate::server::Server;
use state::{AccountKind, App as AppRecord, Identity, Installation, Shared, State, Token, lock};

/// One webhook delivery (a redelivery is a new entry with the same `id`).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The `X-GitHub-Delivery` GUID.
    pub id: String,
    /// `X-GitHub-Event`: `pull_request`, `pull_request_review`, `push`, `issue_comment`, `status`.
    pub event: String,
    /// The payload's `action`, if it has one.
    pub action: Option<String>,
    /// The receiver's HTTP status; `None` while pending or when no response came (see `error`).
    pub status: Option<u16>,
    /// Why no response came (connection refused, timeout…).
    pub error: Option<String>,
    pub redelivery: bool,
    pub payload: Value,
    /// The raw body, exactly as sent and signed.
    pub body: String,
}

impl Delivery {
    /// Still queued or in flight.
    pub fn pending(&self) -> bool {
        self.status.is_none() && self.error.is_none()
    }
}

/// A completed Actions workflow run, for [`GitHubEmulator::add_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The workflow's `name:`.
    pub name: String,
    /// Its file under `.github/workflows/`, e.g. `ci.yml` (also its `workflow_id` in URLs).
    pub workflow_file: String,
    /// `head_branch`: the pushed branch, or a pull request's head branch.
    pub branch: String,
    pub head_sha: String,
    /// `push`, `pull_request`, `workflow_dispatch`…
    pub event: String,
    /// `success`, `failure`, `cancelled`…
    pub conclusion: String,
    /// Who triggered it; default the repository's owner.
    pub actor: Option<String>,
    /// `owner/name` the head commit came from when it is not the repository itself (a fork's
    /// pull request); it must exist in the emulator.
    pub head_repository: Option<String>,
}

impl RunSpec {
    /// A `push` run of `workflow_file` on `branch` at `head_sha`, concluded `conclusion`.
    pub fn push(workflow_file: &str, branch: &str, head_sha: &str, conclusion: &str) -> RunSpec {
        RunSpec {
            name: workflow_file
                .trim_end_matches(".yml")
                .trim_end_matches(".yaml")
                .to_string(),
            workflow_file: workflow_file.to_string(),
            branch: branch.to_string(),
            head_sha: head_sha.to_string(),
            event: "push".to_string(),
            conclusion: conclusion.to_string(),
            actor: None,
            head_repository: None,
        }
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticatedAs {
    None,
    /// A GitHub App's JWT.
    App(u64),
    /// An installation token (acting as `slipway[bot]`).
    Installation {
        app_id: u64,
        installation_id: u64,
    },
    /// A workflow job's `GITHUB_TOKEN` (acting as `github-actions[bot]`) for `owner/repo`.
    ActionsJob {
        repository: String,
    },
    /// A user's token.
    User(String),
}

/// One HTTP request (REST or git smart HTTP), as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    /// Path and query, e.g. `/repos/acme/gitops/pulls?state=open`.
    pub path: String,
    pub status: u16,
    pub authenticated_as: AuthenticatedAs,
}

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
    /// The temporary directory the repositories live in, unless the caller chose one.
    _dir: Option<tempfile::TempDir>,
}

/// A running GitHub emulator. Cheap to clone; the server stops and its repositories are removed
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct GitHubEmulator {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) state: Shared,
}

impl GitHubEmulator {
    /// Starts the emulator on `127.0.0.1:0` (plain HTTP). Needs `git` on `PATH`.
    ///
    /// # Panics
    /// If no temporary directory can be made or the port cannot be bound.
    pub async fn start() -> GitHubEmulator {
        let dir = tempfile::Builder::new()
            .prefix("slipway-github-")
            .tempdir()
            .unwrap_or_else(|e| panic!("github emulator: temporary directory: {e}"));
        let repos = dir.path().join("repos");
        Self::start_with(repos, Some(dir)).await
    }

    /// [`GitHubEmulator::start`], keeping the bare repositories under `dir` (as
    /// `<dir>/<owner>/<repo>.git`); they stay there after the emulator stops.
    pub async fn start_in(dir: &std::path::Path) -> GitHubEmulator {
        Self::start_with(dir.to_path_buf(), None).await
    }

    async fn start_with(repos_root: PathBuf, temp: Option<tempfile::TempDir>) -> GitHubEmulator {
        let state: Shared = Arc::new(Mutex::new(State {
            repos_root,
            ..State::default()
        }));
        lock(&state).add_account(state::BOT_LOGIN, AccountKind::Bot);
        lock(&state).add_account(state::ACTIONS_LOGIN, AccountKind::Bot);
        let shutdown = CancellationToken::new();
        let outbox = webhooks::start_worker(state.clone(), shutdown.clone());
        lock(&state).outbox = Some(outbox);
        let router = Router::new().fallback(any(routes::handle)).with_state(App {
            state: state.clone(),
        });
        let server = Server::start(router, shutdown, None).await;
        lock(&state).base_url = format!("http://{}", server.addr());
        GitHubEmulator {
            inner: Arc::new(Inner {
                server,
                state,
                _dir: temp,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// `http://127.0.0.1:PORT/`: octocrab's `base_uri` (REST at `/repos/…`, `/app/…`).
    pub fn api_url(&self) -> String {
        format!("{}/", self.base_url())
    }

    /// The smart-HTTP clone/push URL: `http://127.0.0.1:PORT/git/{owner}/{repo}.git`.
    pub fn git_url(&self, owner: &str, repo: &str) -> String {
        format!("{}/git/{owner}/{repo}.git", self.base_url())
    }

    /// Creates a repository whose `default_branch` holds one commit of `files` (path → content);
    /// returns the bare repository's directory.
    ///
    /// # Panics
    /// If the repository exists already or git fails.
    pub fn create_repo(
        &self,
        owner: &str,
        repo: &str,
        default_branch: &str,
        files: &[(&str, &str)],
    ) -> PathBuf {
        ops::create_repo(&mut self.state(), owner, repo, default_branch, files)
            .unwrap_or_else(|e| panic!("github emulator: create_repo {owner}/{repo}: {e}"))
    }

    /// Serves a copy of the existing bare repository `bare_path` as `owner/repo`: every branch
    /// and tag, with `bare_path`'s `HEAD` as the default branch. Objects are hard-linked where the
    /// filesystem allows, so even a large repository imports in moments; `bare_path` itself is
    /// never written. Returns the emulator's bare repository directory.
    ///
    /// # Panics
    /// If the repository exists already or git fails (for example `bare_path` is no repository).
    pub fn import_repo(&self, owner: &str, repo: &str, bare_path: &std::path::Path) -> PathBuf {
        ops::import_repo(&mut self.state(), owner, repo, bare_path)
            .unwrap_or_else(|e| panic!("github emulator: import_repo {owner}/{repo}: {e}"))
    }

    /// A direct push (no PR, no hooks) of a commit writing `files` to `branch` (created if
    /// missing) by `login`; fires `push` (and `synchronize` for an open PR on that branch).
    /// Returns the new commit's sha.
    ///
    /// # Panics
    /// If the repository does not exist or git fails.
    pub fn push_direct(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
        files: &[(&str, &str)],
        message: &str,
        login: &str,
    ) -> String {
        ops::push_direct(
            &mut self.state(),
            owner,
            repo,
            branch,
            files,
            message,
            login,
        )
        .unwrap_or_else(|e| panic!("github emulator: push_direct {owner}/{repo}: {e}"))
    }

    /// Replaces App `app_id`'s key (a new key generated, the old one deleted): JWTs signed with
    /// the old key are refused from now on; installation tokens already issued stay valid.
    ///
    /// # Panics
    /// If the key is not an RSA private key.
    pub fn set_app_key(&self, app_id: u64, private_key_pem: &str) {
        let public_key = auth::public_key_of(private_key_pem)
            .unwrap_or_else(|e| panic!("github emulator: set_app_key {app_id}: {e}"));
        self.state().apps.insert(app_id, AppRecord { public_key });
    }

    /// Registers GitHub App `app_id` with its RSA private key (PEM, PKCS#1 or PKCS#8) and
    /// installs it on `installation_repos` (`(owner, repo)`); returns the installation id.
    ///
    /// # Panics
    /// If the key is not an RSA private key.
    pub fn add_app(
        &self,
        app_id: u64,
        private_key_pem: &str,
        installation_repos: &[(&str, &str)],
    ) -> u64 {
        let public_key = auth::public_key_of(private_key_pem)
            .unwrap_or_else(|e| panic!("github emulator: add_app {app_id}: {e}"));
        let mut st = self.state();
        st.apps.insert(app_id, AppRecord { public_key });
        let id = 40_000_000 + st.next();
        st.installations.insert(
            id,
            Installation {
                app_id,
                repos: installation_repos
                    .iter()
                    .map(|(o, r)| ((*o).to_string(), (*r).to_string()))
                    .collect(),
            },
        );
        id
    }

    /// An installation token for `installation_id` without the JWT exchange (for `git push` in
    /// tests). Valid one hour.
    ///
    /// # Panics
    /// If there is no such installation.
    pub fn installation_token(&self, installation_id: u64) -> String {
        let mut st = self.state();
        let Some(app_id) = st.installations.get(&installation_id).map(|i| i.app_id) else {
            panic!("github emulator: no installation {installation_id}");
        };
        auth::issue_installation_token(&mut st, app_id, installation_id, None).0
    }

    /// A workflow job's `GITHUB_TOKEN` for `owner/repo`: it acts as `github-actions[bot]` (the
    /// login its comments and statuses carry on GitHub) and reaches that repository only. Valid
    /// 24 hours, the longest a job may run.
    pub fn actions_token(&self, owner: &str, repo: &str) -> String {
        let token = format!("ghs_job{}", state::hex(&state::random_bytes::<16>()));
        self.state().tokens.insert(
            token.clone(),
            Token {
                identity: Identity::ActionsJob {
                    repo: state::repo_key(owner, repo),
                },
                expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(24)),
            },
        );
        token
    }

    /// A human user whose `token` (as the App's user authorization would yield) acts as `login`.
    pub fn add_user(&self, login: &str, token: &str) {
        let mut st = self.state();
        match st.accounts.get(login).map(|a| a.kind) {
            Some(AccountKind::User) => {}
            _ => {
                st.add_account(login, AccountKind::User);
            }
        }
        st.tokens.insert(
            token.to_string(),
            Token {
                identity: Identity::User(login.to_string()),
                expires_at: None,
            },
        );
    }

    /// Registers an OAuth client id (a GitHub App's `client_id`) for the user authorization,
    /// with or without the device flow enabled.
    pub fn register_oauth_client(&self, client_id: &str, device_flow: bool) {
        let mut st = self.state();
        st.oauth_clients.insert(client_id.to_string());
        if device_flow {
            st.device_clients.insert(client_id.to_string());
        } else {
            st.device_clients.remove(client_id);
        }
    }

    /// The device flow's polling interval from now on (GitHub's is 5 s).
    pub fn set_device_flow_interval(&self, secs: u64) {
        self.state().device_interval = Some(secs);
    }

    /// The person at `/login/device` entered `user_code` and approved it, signed in as `login`:
    /// the next poll gets a user token acting as `login`. `false` if no such code is pending.
    pub fn authorize_device(&self, user_code: &str, login: &str) -> bool {
        device::decide(&mut self.state(), user_code, Some(login))
    }

    /// The person declined `user_code`: the next poll gets `access_denied`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        device::decide(&mut self.state(), user_code, None)
    }

    /// The user codes still waiting for someone at `/login/device`.
    pub fn pending_device_codes(&self) -> Vec<String> {
        self.state()
            .device_grants
            .iter()
            .filter(|g| g.status == device::DeviceStatus::Pending)
            .map(|g| g.user_code.clone())
            .collect()
    }

    /// Records a completed Actions workflow run of workflow `name` (file
    /// `.github/workflows/<name, lower case, spaces as dashes>.yml`, `event: push`); returns its
    /// id.
    ///
    /// # Panics
    /// If the repository does not exist.
    pub fn add_workflow_run(
        &self,
        owner: &str,
        repo: &str,
        branch: &str,
        head_sha: &str,
        name: &str,
        conclusion: &str,
    ) -> u64 {
        let file = format!("{}.yml", name.to_ascii_lowercase().replace(' ', "-"));
        self.add_run(
            owner,
            repo,
            &RunSpec {
                name: name.to_string(),
                ..RunSpec::push(&file, branch, head_sha, conclusion)
            },
        )
    }

    /// Records a completed Actions workflow run as `run` describes it; returns its id. The
    /// runs are listed by `GET /repos/{o}/{r}/actions/runs` and, per workflow (its id or file
    /// name), `GET /repos/{o}/{r}/actions/workflows/{workflow_id}/runs`.
    ///
    /// # Panics
    /// If the repository (or the head repository) does not exist.
    pub fn add_run(&self, owner: &str, repo: &str, run: &RunSpec) -> u64 {
        ops::add_workflow_run(&mut self.state(), owner, repo, run)
            .unwrap_or_else(|e| panic!("github emulator: add_run: {e}"))
    }

    /// Refuses git pushes to refs matching `ref_glob` (a pre-receive rule): matched against the
    /// full ref (`refs/heads/main`) and the branch name (`main`); `*` crosses `/`. The push
    /// reports the ref as `ng … hook declined`; the push's other refs still go through. REST ref
    /// updates are not affected.
    pub fn reject_pushes(&self, owner: &str, repo: &str, ref_glob: &str) {
        if let Some(r) = self.state().repo_mut(owner, repo) {
            r.reject_globs.push(ref_glob.to_string());
        }
    }

    /// Branch-protection "dismiss stale pull request approvals when new commits are pushed".
    pub fn set_dismiss_stale_reviews(&self, owner: &str, repo: &str, on: bool) {
        if let Some(r) = self.state().repo_mut(owner, repo) {
            r.dismiss_stale_reviews = on;
        }
    }

    /// Branch-protection "require status checks to pass before merging": a merge is refused
    /// (405, as GitHub words it) unless the newest status of `context` on the head is `success`.
    pub fn require_status(&self, owner: &str, repo: &str, context: &str) {
        if let Some(r) = self.state().repo_mut(owner, repo) {
            r.required_statuses.push(context.to_string());
        }
    }

    /// Delivers every later event to `url`, signed with `secret`.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        self.state().webhook = Some((url.to_string(), secret.to_string()));
    }

    /// Every delivery so far, in order (redeliveries included).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state().deliveries.clone()
    }

    /// Waits until no delivery is pending (→ `true`) or `timeout` passes (→ `false`).
    pub async fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |gh| gh.deliveries().iter().all(|d| !d.pending()))
            .await
    }

    /// Redelivers `delivery_id` to the current webhook URL: same GUID, same body, re-signed with
    /// the current secret. Returns the receiver's status, or 0 when there was no response (or no
    /// such delivery, or no webhook).
    pub async fn redeliver(&self, delivery_id: &str) -> u16 {
        let (original, hook) = {
            let st = self.state();
            let original = st.deliveries.iter().find(|d| d.id == delivery_id).cloned();
            (original, st.webhook.clone())
        };
        let (Some(original), Some((url, secret))) = (original, hook) else {
            return 0;
        };
        let result =
            webhooks::post(&url, &secret, &original.event, &original.id, &original.body).await;
        let (status, error) = match result {
            Ok(code) => (Some(code), None),
            Err(e) => (None, Some(e)),
        };
        self.state().deliveries.push(Delivery {
            status,
            error,
            redelivery: true,
            ..original
        });
        status.unwrap_or(0)
    }

    /// Every request so far (REST and git), in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every REST call from now on answers `latency` late (a slow GitHub).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The next `n` REST calls whose path ends with `path_suffix` answer 502 (GitHub having a
    /// bad minute).
    pub fn fail_next(&self, path_suffix: &str, n: u32) {
        self.state().fail_next = (n > 0).then(|| (path_suffix.to_string(), n));
    }

    /// The next `n` REST write calls (POST, PATCH, PUT, DELETE; not the App token exchange) are
    /// answered 403 with `retry-after: retry_after_secs` and GitHub's secondary-rate-limit message.
    pub fn rate_limit_next(&self, n: u32, retry_after_secs: u64) {
        self.state().rate_limit = (n > 0).then_some((n, retry_after_secs));
    }

    /// The sha a full ref (`refs/slipway/locks/x`, `refs/heads/main`) points at, if it exists.
    pub fn ref_sha(&self, owner: &str, repo: &str, full_ref: &str) -> Option<String> {
        let st = self.state();
        ops::git_of(&st, owner, repo).ok()?.ref_value(full_ref)
    }

    /// The sha `branch` points at.
    pub fn branch_sha(&self, owner: &str, repo: &str, branch: &str) -> Option<String> {
        let st = self.state();
        let g = ops::git_of(&st, owner, repo).ok()?;
        g.ref_value(&format!("refs/heads/{branch}"))
    }

    /// The content of `path` at `git_ref` (branch, tag or sha), as UTF-8 (lossy).
    pub fn file_at(&self, owner: &str, repo: &str, git_ref: &str, path: &str) -> Option<String> {
        let st = self.state();
        let g = ops::git_of(&st, owner, repo).ok()?;
        g.file(git_ref, path)
            .map(|(_, data)| String::from_utf8_lossy(&data).into_owned())
    }

    /// The bare repository's directory.
    pub fn repo_dir(&self, owner: &str, repo: &str) -> Option<PathBuf> {
        self.state().repo(owner, repo).map(|r| r.dir.clone())
    }

    /// Polls `f` every 20 ms until it returns true (→ `true`) or `timeout` passes (→ `false`).
    pub async fn wait_until<F: Fn(&GitHubEmulator) -> bool>(
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
