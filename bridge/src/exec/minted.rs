//! What minting hands a run (the environment, arguments and private directory of its
//! credentials) and who the run is for; shared by every kind of minted credential.

use std::time::Duration;

use crate::base::Base;

/// The execution record's key for the AWS identity a run used.
pub const AWS_DETAIL: &str = "aws_role";
/// The execution record's key for the Kubernetes identity a run used.
pub const KUBE_DETAIL: &str = "kubernetes_service_account";

/// Who a run is for: what session tags, session names and request reasons carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requester {
    /// The resolved identity (an email or login), when known.
    pub subject: String,
    pub slack_user: String,
    /// The audit id of the decision that allowed the run.
    pub decision: String,
}

impl Requester {
    /// The name a session is known by: the resolved identity, else the Slack user.
    pub fn name(&self) -> &str {
        if self.subject.is_empty() {
            &self.slack_user
        } else {
            &self.subject
        }
    }
}

/// What minting handed the process, kept until the run ends.
pub struct Minted {
    /// Added to the process environment.
    pub env: Vec<(String, String)>,
    /// Replaces the argument that starts with the same `--flag=` (kubectl's `--kubeconfig=`).
    pub args: Vec<String>,
    /// The per-run private directory, removed when this is dropped.
    pub dir: Option<tempfile::TempDir>,
    /// `(key, value)` for the execution record.
    pub detail: (&'static str, String),
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

/// A private directory for one run's credential files, under the bridge's work directory (so
/// a sandbox can bind it read-only); removed when dropped.
pub fn private_dir(state: &Base, prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&state.work_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// How long minted credentials last: STS's and TokenRequest's minimums, so nothing outlives a
/// run by much. Runs are bounded by the policy's timeout; a longer run fails its calls at the end.
pub const AWS_SESSION: Duration = Duration::from_secs(900);
/// See [`AWS_SESSION`].
pub const KUBE_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
