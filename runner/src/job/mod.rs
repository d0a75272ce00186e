//! One job's shared context (`Job`): the Actions environment, the config, the checkout of the
//! merge, the GitHub clients, the policy before the merge and the audit spool, opened once
//! before any change is handled, and the change files the merge added (`Change`).

mod files;
mod open;
mod subject;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use git2::Oid;
use slipway_core::change::ChangeRequest;
use slipway_core::policy::Policy;
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::github::{GitHub, Repo};
use slipway_infra::gitops::Mirror;
use slipway_infra::sync::lock;

use crate::USAGE;
use crate::config::RunnerConfig;
use crate::credentials::AwsSource;
use crate::env::ActionsEnv;
pub use files::{id_from_path, targets};
pub use open::open;
pub use subject::{Subject, newest_per_pr};

/// What `execute` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub aws_from_env: bool,
    pub target: Option<String>,
}

/// Everything one job shares.
pub struct Job {
    pub env: ActionsEnv,
    pub cfg: RunnerConfig,
    /// The config file's path inside the checkout, if it is inside.
    pub config_in_repo: Option<String>,
    pub gh: GitHub,
    /// The client that deletes lock refs (`SLIPWAY_LOCK_TOKEN`, else `gh`).
    pub lock_gh: GitHub,
    pub default_branch: String,
    pub mirror: Arc<Mutex<Mirror>>,
    pub merge: Oid,
    /// The bridge's keys and the revoked ids.
    pub keys: slipway_core::change::Keyring,
    /// The policy of the merge's first parent, or why it can't be read.
    pub policy: Result<Policy, String>,
    pub aws: AwsSource,
    pub region: String,
    pub audit: AuditWriter,
    /// The spool's directory, named when nothing mirrors it.
    pub spool: PathBuf,
    /// Every path the merge changed.
    pub changed: Vec<String>,
    /// What the merge may change: every change file it adds and the files they render.
    pub declared: BTreeSet<String>,
    pub scratch: tempfile::TempDir,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("env", &self.env)
            .field("merge", &self.merge)
            .field("default_branch", &self.default_branch)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A file of the merged commit (`None` if absent or unreadable).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        lock(&self.mirror)
            .read_file(self.merge, path)
            .ok()
            .flatten()
    }

    /// Every file under `dir` in the merged commit.
    pub fn list(&self, dir: &str) -> Vec<String> {
        lock(&self.mirror)
            .list_files(self.merge, dir)
            .unwrap_or_default()
    }

    pub fn repo(&self) -> &Repo {
        &self.env.repository
    }
}

/// One change file, as far as it could be read.
#[derive(Debug)]
pub struct Change {
    pub path: String,
    pub parsed: Result<ChangeRequest, String>,
}

/// Why a job ends before it handles any change, with its exit code.
#[derive(Debug)]
pub enum Early {
    /// A usage or configuration error (exit 2).
    Usage(String),
    /// The merge adds no change request (for the target): exit 0.
    NothingToDo(String),
    /// An upstream failure before anything was handled (exit 1).
    Failed(String),
}

impl Early {
    /// Say why, and give the exit code.
    pub fn exit(self) -> u8 {
        match self {
            Early::Usage(msg) => usage(&msg),
            Early::NothingToDo(msg) => {
                println!("slipway-runner: {msg}");
                0
            }
            Early::Failed(msg) => {
                eprintln!("slipway-runner: {msg}");
                1
            }
        }
    }
}

fn lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn usage(msg: &str) -> u8 {
    eprintln!("slipway-runner: {msg}");
    USAGE
}
