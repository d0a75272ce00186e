//! The GitHub emulator's shared state. Everything sits behind one mutex; handlers hold it only for
//! short, synchronous sections (git plumbing included), never across an await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Call, Delivery};

/// The login installation tokens act as.
pub(crate) const BOT_LOGIN: &str = "slipway[bot]";
/// The login a workflow job's `GITHUB_TOKEN` acts as.
pub(crate) const ACTIONS_LOGIN: &str = "github-actions[bot]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountKind {
    User,
    Bot,
    Organization,
}

impl AccountKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "User",
            AccountKind::Bot => "Bot",
            AccountKind::Organization => "Organization",
        }
    }
}

/// A user, bot or organization.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) login: String,
    pub(crate) id: u64,
    pub(crate) kind: AccountKind,
}

impl Account {
    pub(crate) fn email(&self) -> String {
        format!("{}+{}@users.noreply.github.com", self.id, self.login)
    }
}

/// Who a request (or a git push) is authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// A GitHub App, by a JWT (only `/app/…` endpoints accept it).
    App(u64),
    /// An installation token: acts as the app's bot user.
    Installation {
        app_id: u64,
        installation_id: u64,
        /// The repositories the token was limited to (`repo_key` form), if it was.
        only: Option<Vec<String>>,
    },
    /// A workflow job's `GITHUB_TOKEN`: acts as `github-actions[bot]`, on its own repository
    /// only (`repo_key` form).
    ActionsJob { repo: String },
    /// A user's token.
    User(String),
}

impl Identity {
    /// The login the identity acts as on repositories.
    pub(crate) fn login(&self) -> Option<&str> {
        match self {
            Identity::App(_) => None,
            Identity::Installation { .. } => Some(BOT_LOGIN),
            Identity::ActionsJob { .. } => Some(ACTIONS_LOGIN),
            Identity::User(login) => Some(login),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) identity: Identity,
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub(crate) struct App {
    /// DER (PKCS#1 RSAPublicKey) of the app's public key.
    pub(crate) public_key: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Installation {
    pub(crate) app_id: u64,
    /// `(owner, repo)` pairs.
    pub(crate) repos: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Review {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) body: String,
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`, `DISMISSED` or `PENDING`, as REST spells it.
    pub(crate) state: String,
    pub(crate) commit_id: String,
    pub(crate) submitted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pull {
    pub(crate) number: u64,
    pub(crate) id: u64,
    pub(crate) title: String,
    pub(crate) body: Option<String>,
    pub(crate) user: String,
    pub(crate) open: bool,
    pub(crate) draft: bool,
    pub(crate) merged: bool,
    pub(crate) merged_by: Option<String>,
    pub(crate) merged_at: Option<DateTime<Utc>>,
    pub(crate) merge_commit_sha: Option<String>,
    pub(crate) head_ref: String,
    pub(crate) head_sha: String,
    pub(crate) base_ref: String,
    pub(crate) base_sha: String,
    /// The PR's own commits (not on the base when last computed), newest first.
    pub(crate) commit_shas: Vec<String>,
    pub(crate) additions: u64,
    pub(crate) deletions: u64,
    pub(crate) changed_files: u64,
    pub(crate) labels: Vec<String>,
    pub(crate) reviews: Vec<Review>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Comment {
    pub(crate) id: u64,
    pub(crate) issue: u64,
    pub(crate) user: String,
    pub(crate) body: String,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct CommitStatus {
    pub(crate) id: u64,
    pub(crate) sha: String,
    pub(crate) state: String,
    pub(crate) context: String,
    pub(crate) description: Option<String>,
    pub(crate) target_url: Option<String>,
    pub(crate) creator: String,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct WorkflowRun {
    pub(crate) id: u64,
    pub(crate) name: String,
    /// The workflow file, `.github/workflows/ci.yml`.
    pub(crate) path: String,
    pub(crate) branch: String,
    pub(crate) head_sha: String,
    pub(crate) event: String,
    pub(crate) conclusion: String,
    /// Who pushed (the `actor` filter and field).
    pub(crate) actor: String,
    /// The repository the head commit came from, `repo_key` form, when it is not this one (a
    /// fork's pull request).
    pub(crate) head_repo: Option<String>,
    pub(crate) run_number: u64,
    pub(crate) created_at: DateTime<Utc>,
}

impl WorkflowRun {
    /// The workflow's id, derived from its file (stable for one file, as on GitHub).
    pub(crate) fn workflow_id(&self) -> u64 {
        1000 + self.path.bytes().map(u64::from).sum::<u64>()
    }

    /// `ci.yml` for `.github/workflows/ci.yml`.
    pub(crate) fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Label {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) color: String,
}

#[derive(Debug)]
pub(crate) struct Repo {
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) dir: PathBuf,
    pub(crate) default_branch: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) pushed_at: DateTime<Utc>,
    /// Pull requests by number (issues and pulls share the numbering).
    pub(crate) pulls: BTreeMap<u64, Pull>,
    pub(crate) next_number: u64,
    pub(crate) comments: Vec<Comment>,
    pub(crate) statuses: Vec<CommitStatus>,
    pub(crate) runs: Vec<WorkflowRun>,
    pub(crate) labels: Vec<Label>,
    pub(crate) reject_globs: Vec<String>,
    pub(crate) dismiss_stale_reviews: bool,
    /// Branch protection: status contexts that must be `success` on a PR's head to merge.
    pub(crate) required_statuses: Vec<String>,
}

impl Repo {
    pub(crate) fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// A webhook delivery waiting for the delivery worker.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) index: usize,
    pub(crate) url: String,
    pub(crate) secret: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) base_url: String,
    pub(crate) repos_root: PathBuf,
    pub(crate) counter: u64,
    pub(crate) accounts: HashMap<String, Account>,
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) apps: HashMap<u64, App>,
    pub(crate) installations: BTreeMap<u64, Installation>,
    /// Keyed by lowercased `owner/repo`.
    pub(crate) repos: BTreeMap<String, Repo>,
    pub(crate) calls: Vec<Call>,
    /// Write calls still to refuse with a secondary rate limit, and their Retry-After.
    pub(crate) rate_limit: Option<(u32, u64)>,
    /// The next calls whose path ends with this answer 502 (how many are left).
    pub(crate) fail_next: Option<(String, u32)>,
    /// Added before every REST answer (a slow GitHub).
    pub(crate) latency: std::time::Duration,
    pub(crate) webhook: Option<(String, String)>,
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) outbox: Option<mpsc::UnboundedSender<Outgoing>>,
    /// OAuth client ids of registered Apps, and those with the device flow enabled.
    pub(crate) oauth_clients: HashSet<String>,
    pub(crate) device_clients: HashSet<String>,
    pub(crate) device_grants: Vec<super::device::DeviceGrant>,
    /// The device flow's polling interval (default 5 s, as on GitHub).
    pub(crate) device_interval: Option<u64>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn repo_key(owner: &str, repo: &str) -> String {
    format!(
        "{}/{}",
        owner.to_ascii_lowercase(),
        repo.to_ascii_lowercase()
    )
}

/// A GitHub-style global node id, e.g. `MDQ6VXNlcjE=` for `04:User1`.
pub(crate) fn node_id(kind: &str, id: u64) -> String {
    let raw = format!("{kind}{id}");
    base64::engine::general_purpose::STANDARD.encode(format!("{:02}:{raw}", kind.len()))
}

/// A node id for things named by a string (refs).
pub(crate) fn node_id_of(kind: &str, name: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{kind}:{name}"))
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `2026-01-02T03:04:05Z`
pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Random bytes from the system generator (never fails in practice; zeros if it does).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let _ = aws_lc_rs::rand::fill(&mut out);
    out
}

/// A random version-4 GUID, as `X-GitHub-Delivery` carries.
pub(crate) fn guid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl State {
    pub(crate) fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// The account for `login`, created as a user if unknown.
    pub(crate) fn account(&mut self, login: &str) -> Account {
        if let Some(a) = self.accounts.get(login) {
            return a.clone();
        }
        let kind = if login.ends_with("[bot]") {
            AccountKind::Bot
        } else {
            AccountKind::User
        };
        self.add_account(login, kind)
    }

    pub(crate) fn add_account(&mut self, login: &str, kind: AccountKind) -> Account {
        let id = 1000 + self.next();
        let account = Account {
            login: login.to_string(),
            id,
            kind,
        };
        self.accounts.insert(login.to_string(), account.clone());
        account
    }

    pub(crate) fn repo(&self, owner: &str, repo: &str) -> Option<&Repo> {
        self.repos.get(&repo_key(owner, repo))
    }

    pub(crate) fn repo_mut(&mut self, owner: &str, repo: &str) -> Option<&mut Repo> {
        self.repos.get_mut(&repo_key(owner, repo))
    }

    /// The installation covering `owner/repo`, if any (its id).
    pub(crate) fn installation_for(&self, owner: &str, repo: &str) -> Option<u64> {
        self.installations
            .iter()
            .find(|(_, i)| {
                i.repos
                    .iter()
                    .any(|(o, r)| repo_key(o, r) == repo_key(owner, repo))
            })
            .map(|(id, _)| *id)
    }

    /// Whether `identity` may see and write `owner/repo`.
    pub(crate) fn can_access(&self, identity: &Identity, owner: &str, repo: &str) -> bool {
        match identity {
            Identity::App(_) => false,
            Identity::User(_) => true,
            Identity::ActionsJob { repo: job_repo } => *job_repo == repo_key(owner, repo),
            Identity::Installation {
                installation_id,
                only,
                ..
            } => {
                only.as_ref()
                    .is_none_or(|keys| keys.contains(&repo_key(owner, repo)))
                    && self.installations.get(installation_id).is_some_and(|i| {
                        i.repos
                            .iter()
                            .any(|(o, r)| repo_key(o, r) == repo_key(owner, repo))
                    })
            }
        }
    }

    /// Records a webhook delivery and hands it to the delivery worker (when a webhook is set).
    pub(crate) fn emit(&mut self, event: &str, payload: Value) {
        let Some((url, secret)) = self.webhook.clone() else {
            return;
        };
        let action = payload
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_string);
        let body = payload.to_string();
        self.deliveries.push(Delivery {
            id: guid(),
            event: event.to_string(),
            action,
            status: None,
            error: None,
            redelivery: false,
            payload,
            body,
        });
        let index = self.deliveries.len() - 1;
        if let Some(tx) = &self.outbox {
            let _ = tx.send(Outgoing { index, url, secret });
        }
    }
}
