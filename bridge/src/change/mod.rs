//! Change requests: `change`/`destructive` commands become signed files in the GitOps repo and
//! reviewed pull requests. Dry-run by default; `--apply` (or the Confirm button) opens the PR;
//! destructive ones need the resource name typed in a modal first.
//!
//! The ack path only registers a pending change and spawns the work; rendering, git and GitHub
//! calls all happen afterwards, off the ack.

mod approvals;
mod artifact;
mod compose;
mod expiry;
mod flow;
pub mod freeze;
pub use flow::Submitted;
mod link;
mod manifests;
mod notify;
mod open;
mod pending;
mod pending_store;
pub mod people;
mod requests;
pub(crate) mod rollback;
pub use requests::OpenRequest;
mod signer;
mod stack_source;
mod tf_apply;
mod tokens;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use slipway_core::change::ChangeRequest;
use slipway_infra::git_relay::GitRelay;
use slipway_infra::github::GitHub;
use slipway_infra::gitops::{Credentials, Mirror};

pub use crate::config::gitops::{DEFAULT_RUNNER_LOGIN, GitOpsConfig, ServiceConfig, oauth_url_for};
pub use approvals::{
    ApprovalView, ApproveSummary, ReviewContext, ReviewSeen, Stage, approval_message,
    approve_modal, approve_value, parse_review_value, reject_modal,
};
pub use link::{DeviceCode, Poll};
pub use pending::Pending;
pub use stack_source::MirrorSource;
pub use tokens::{LinkedAccount, TokenKey, TokenStore};

use crate::config::Live;
use crate::store::{SlackThread, StateStore};

/// The rendered content of a change.
#[derive(Debug, Default)]
pub(crate) struct Render {
    pub title: String,
    pub files: Vec<slipway_infra::gitops::FileChange>,
    pub rendered: slipway_core::change::Rendered,
    /// Markdown for the PR body's "What changes" section.
    pub details: String,
    /// A plain diff or dry-run text for Slack.
    pub preview: String,
    /// A stricter approval requirement found while rendering (the objects of a manifest), which
    /// replaces the one decided at the ack.
    pub approval: Option<slipway_core::change::ApprovalRequirement>,
    /// The image a deploy resolved, pinned into the pending change at the dry run.
    pub pinned_image: Option<artifact::PinnedImage>,
    /// The resources a manifest's objects are authorised as, beside the request's own.
    pub object_resources: Vec<String>,
}

/// The change-request side of the bridge.
pub struct ChangeService {
    pub cfg: GitOpsConfig,
    /// The App on the GitOps repository (a token scoped to it), rebuilt when the App's key
    /// rotates.
    github: Live<GitHub>,
    /// The App on the service repositories, read-only (their CI runs, for `/deploy`).
    github_ci: Live<GitHub>,
    pub(crate) mirror: Arc<Mutex<Mirror>>,
    /// The change-request signing key and its id, rebuilt when either rotates.
    pub(crate) signer: Live<signer::Signer>,
    pub(crate) pending: pending_store::PendingChanges,
    /// PR number → the Slack message (channel, ts) that mirrors it: a cache in front of `store`,
    /// written through by [`ChangeService::remember_thread`].
    pub threads: Mutex<HashMap<u64, (String, String)>>,
    /// People's linked GitHub tokens (sealed in `store`), for reviews made as them.
    pub tokens: TokenStore,
    /// GitHub deliveries seen recently: a cache in front of `store`.
    pub(crate) deliveries: Mutex<crate::fifo::FifoSet>,
    /// The restart-safe state: threads, sealed tokens, Slack review ids, deliveries, deadlines.
    pub store: Arc<dyn StateStore>,
    /// Slack users with a device flow under way.
    pub(crate) linking: Mutex<HashSet<String>>,
    /// Each PR head's verification, so webhooks that don't move the head don't redo it.
    pub(crate) verified:
        Mutex<HashMap<(u64, String), Result<verify::Verified, verify::Unverified>>>,
    /// The stage each PR's approver DMs were last drawn at: they are redrawn when it moves,
    /// not on every event (`chat.update` is Tier 3, and a request may have 25 of them).
    pub(crate) notice_stages: Mutex<HashMap<u64, Stage>>,
    /// `audit.servicenow.cab_gate`: merges wait for the ServiceNow change's CAB approval.
    pub cab: Option<slipway_infra::sinks::servicenow_cab::CabGate>,
    default_branch: String,
    /// Keeps the HTTPS relay for the mirror alive (when the remote is HTTPS).
    _relay: Option<GitRelay>,
}

/// The audit chain's signed head as a git trailer, for the commits and merges the bridge makes:
/// an anchor outside the host, so a tail cut from the spool before it was mirrored still shows
/// in `slipway audit verify --git`.
pub(crate) fn audit_trailer(state: &crate::ctx::Ctx) -> Option<String> {
    state.audit.latest_checkpoint().map(|c| c.to_trailer())
}

use slipway_infra::sync::lock;

impl std::fmt::Debug for ChangeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeService")
            .field("repo", &self.cfg.repo)
            .finish_non_exhaustive()
    }
}

impl ChangeService {
    /// Validate the configuration, open the local mirror (nothing is fetched yet) and the state
    /// store `<state_dir>/state.redb`.
    pub fn new(cfg: GitOpsConfig, state_dir: &std::path::Path) -> Result<ChangeService, String> {
        let store = crate::store::RedbStore::open(state_dir).map_err(|e| e.to_string())?;
        Self::with_store(cfg, state_dir, Arc::new(store))
    }

    /// As [`ChangeService::new`], or with its state and pending changes in the shared Redis
    /// when one is configured (issue 19).
    pub fn open(
        cfg: GitOpsConfig,
        state_dir: &std::path::Path,
        redis: Option<&crate::config::RedisConfig>,
    ) -> Result<ChangeService, String> {
        let Some(redis) = redis else {
            return Self::new(cfg, state_dir);
        };
        let pool = crate::shared::blocking::Pool::new(redis.clone());
        let store = crate::store::RedisStore::new(pool.clone());
        let mut svc = Self::with_store(cfg, state_dir, Arc::new(store))?;
        svc.pending = pending_store::PendingChanges::redis(
            pool,
            pending_store::mac_key(&svc.signer.get().key),
        );
        Ok(svc)
    }

    /// As [`ChangeService::new`], with another state store.
    pub fn with_store(
        cfg: GitOpsConfig,
        state_dir: &std::path::Path,
        store: Arc<dyn StateStore>,
    ) -> Result<ChangeService, String> {
        let key = if cfg.token_key.is_empty() {
            None
        } else {
            Some(Live::new(
                "github.token_key",
                vec![cfg.token_key.clone()],
                |v| TokenKey::parse(&v[0]),
            )?)
        };
        let envelope = crate::store::envelope::Envelope::new(key, &cfg.envelope)?;
        let signer = signer::live(&cfg)?;
        let (github, github_ci) = Self::github_clients(&cfg)?;
        let default_branch = cfg.default_branch.clone();
        let (relay, mirror) = Self::open_mirror(&cfg, state_dir)?;
        Ok(ChangeService {
            cfg,
            github,
            github_ci,
            mirror: Arc::new(Mutex::new(mirror)),
            signer,
            pending: pending_store::PendingChanges::default(),
            threads: Mutex::new(HashMap::new()),
            tokens: TokenStore::new(store.clone(), Some(envelope)),
            deliveries: Mutex::new(crate::fifo::FifoSet::new(10_000)),
            store,
            linking: Mutex::new(HashSet::new()),
            verified: Mutex::new(HashMap::new()),
            notice_stages: Mutex::new(HashMap::new()),
            cab: None,
            default_branch,
            _relay: relay,
        })
    }

    /// The GitOps-repository client and the CI-reading client. Tokens reach the GitOps
    /// repository only, with what the bridge needs there; the service repositories' CI runs are
    /// read with another token, read-only. Both follow the App key's rotations.
    fn github_clients(cfg: &GitOpsConfig) -> Result<(Live<GitHub>, Live<GitHub>), String> {
        let (api, app, installation) = (cfg.api_url.clone(), cfg.app_id, cfg.installation_id);
        let gitops_repo = cfg.repo.name.clone();
        let gh = Live::new(
            "github.private_key",
            vec![cfg.app_private_key.clone()],
            move |key| {
                GitHub::app_scoped(
                    &api,
                    app,
                    &key[0],
                    installation,
                    &[gitops_repo.as_str()],
                    &serde_json::json!({
                        "contents": "write", "pull_requests": "write", "issues": "write",
                        "statuses": "write", "metadata": "read",
                    }),
                )
                .map_err(|e| e.to_string())
            },
        )?;
        let service_repos: Vec<String> = cfg
            .services
            .values()
            .filter_map(|s| s.repo.split_once('/').map(|(_, name)| name.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let api = cfg.api_url.clone();
        let gh_ci = Live::new(
            "github.private_key",
            vec![cfg.app_private_key.clone()],
            move |key| {
                let repos: Vec<&str> = service_repos.iter().map(String::as_str).collect();
                GitHub::app_scoped(
                    &api,
                    app,
                    &key[0],
                    installation,
                    &repos,
                    &serde_json::json!({ "actions": "read", "metadata": "read" }),
                )
                .map_err(|e| e.to_string())
            },
        )?;
        Ok((gh, gh_ci))
    }

    /// The App client on the GitOps repository.
    pub fn gh(&self) -> Arc<GitHub> {
        self.github.get()
    }

    /// The App client on the service repositories (CI runs, read-only).
    pub(crate) fn gh_ci(&self) -> Arc<GitHub> {
        self.github_ci.get()
    }

    /// The local mirror of the GitOps repository. libgit2 has no TLS of its own here: HTTPS
    /// remotes go through a loopback relay, which must live as long as the mirror.
    fn open_mirror(
        cfg: &GitOpsConfig,
        state_dir: &std::path::Path,
    ) -> Result<(Option<GitRelay>, Mirror), String> {
        let (relay, git_url) = if cfg.git_url.starts_with("https://") {
            let origin = cfg
                .git_url
                .splitn(4, '/')
                .take(3)
                .collect::<Vec<_>>()
                .join("/");
            let relay = GitRelay::start(&origin, None)?;
            let local = relay.local_url(&cfg.git_url)?;
            (Some(relay), local)
        } else {
            (None, cfg.git_url.clone())
        };
        let mirror = Mirror::open(&state_dir.join("gitops.git"), &git_url, &cfg.default_branch)
            .map_err(|e| e.to_string())?
            .showing_url(&cfg.git_url);
        Ok((relay, mirror))
    }

    /// How many changes wait for their Confirm (or their PR).
    pub fn pending_count(&self) -> usize {
        self.pending.count()
    }

    pub fn default_branch(&self) -> &str {
        &self.default_branch
    }

    /// Remember which Slack message mirrors PR `number` (in memory and in the store).
    pub fn remember_thread(&self, number: u64, channel: &str, ts: &str) {
        lock(&self.threads).insert(number, (channel.to_string(), ts.to_string()));
        if let Err(e) = self.store.set_thread(
            number,
            &SlackThread {
                channel: channel.to_string(),
                ts: ts.to_string(),
            },
        ) {
            tracing::error!(error = %e, pr = number, "couldn't persist the Slack message of a PR");
        }
    }

    /// The Slack message (channel, ts) that mirrors PR `number`, if any.
    pub fn thread_of(&self, number: u64) -> Option<(String, String)> {
        if let Some(t) = lock(&self.threads).get(&number).cloned() {
            return Some(t);
        }
        match self.store.thread(number) {
            Ok(t) => {
                let t = t.map(|t| (t.channel, t.ts))?;
                lock(&self.threads).insert(number, t.clone());
                Some(t)
            }
            Err(e) => {
                tracing::error!(error = %e, pr = number, "reading the Slack message of a PR");
                None
            }
        }
    }

    /// `true` the first time a GitHub delivery is seen (across restarts). A redelivery (the same
    /// `X-GitHub-Delivery`) is `false`, and so is a replay of a signed body already handled
    /// under another delivery id: the id is only a header, outside the signature, so a captured
    /// delivery sent again with a fresh id is recognised by the SHA-256 of its body. Both keys
    /// are kept like delivery ids. If the store fails the delivery is handled (handling is
    /// idempotent).
    pub fn first_delivery(
        &self,
        id: &str,
        body: &[u8],
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        use sha2::Digest as _;
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)));
        let new_id = id.is_empty() || self.first_seen(id, now);
        let new_body = self.first_seen(&digest, now);
        new_id && new_body
    }

    /// Record a delivery key (an id or a body digest): `true` the first time.
    fn first_seen(&self, key: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
        if !lock(&self.deliveries).insert(key) {
            return false;
        }
        self.store
            .first_delivery(key, now.timestamp())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "recording a webhook delivery");
                true
            })
    }

    /// Git credentials from a fresh installation token.
    pub(crate) async fn git_credentials(&self) -> Result<Credentials, String> {
        let token = self
            .gh()
            .installation_token()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Credentials {
            username: "x-access-token".into(),
            password: token,
        })
    }

    /// The branch and PR lock ref for a change request.
    pub(crate) fn lock_ref(resource: &str) -> String {
        format!(
            "refs/slipway/locks/{}",
            slipway_core::change::lock_slug(resource)
        )
    }

    /// Sign a change request with the bridge's key.
    pub(crate) fn sign(&self, cr: ChangeRequest) -> ChangeRequest {
        let signer = self.signer.get();
        slipway_core::change::sign(cr, &signer.key, &signer.id)
    }
}
