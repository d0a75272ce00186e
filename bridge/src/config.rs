//! Bridge configuration: a YAML file (`slipway serve --config PATH`) with environment overrides.
//! Every field has a default, so the bridge also starts from environment variables alone.
//!
//! Secrets are given as a value, `{ env: NAME }`, `{ file: PATH }` or a secret store reference
//! (see `secret`), and held in [`Secret`], which never prints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod audit;
mod clusters;
mod gcp;
mod gcp_identity;
mod github;
pub mod gitops;
mod google;
pub mod keys;
mod live;
mod loki;
mod sandbox;
mod scim;
mod secret;
mod secrets;
mod servicenow;
mod sso;
mod state;
mod tools;
pub use audit::{AuditConfig, JiraConfig};
pub use clusters::{ClusterConfig, ClusterTarget, GkeCluster, ServiceAccountRef};
pub use gcp::GcpProjectConfig;
pub use gcp_identity::GcpConfig;
pub use google::{GoogleConfig, GooglePush, ServiceAccount};
pub use live::Live;
pub use scim::ScimConfig;
pub use secret::{Exposed, Secret};
use secret::{SecretSource, de_secret, secret};
pub use secrets::{BookEntry, EnvelopeConfig, SecretBook, SecretTiming, Wrapping};
pub use sso::SsoConfig;
pub use state::{RedisConfig, RedisTarget, from_env as redis_from_env};
pub use tools::{AwsConfig, GitopsConfig, TerraformConfig};

/// The file format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    policy: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    slack: FileSlack,
    #[serde(default)]
    execution: FileExecution,
    #[serde(default)]
    clusters: BTreeMap<String, ClusterConfig>,
    #[serde(default)]
    aws_profiles: BTreeMap<String, AwsProfileConfig>,
    #[serde(default)]
    aws: tools::FileAws,
    #[serde(default)]
    gcp_projects: BTreeMap<String, GcpProjectConfig>,
    /// How the bridge itself reaches Google Cloud (its key, token lifetime, gcloud).
    #[serde(default)]
    gcp: gcp_identity::FileGcp,
    #[serde(default)]
    gitops: FileGitops,
    #[serde(default)]
    github: FileGitHub,
    #[serde(default)]
    signing: FileSigning,
    #[serde(default)]
    terraform: tools::FileTerraform,
    /// Alertmanager base URL per environment.
    #[serde(default)]
    alertmanager: BTreeMap<String, String>,
    #[serde(default)]
    audit: audit::FileAudit,
    #[serde(default)]
    scim: scim::FileScim,
    /// The bridge's base URL as browsers reach it (the SSO callback is under it).
    public_url: Option<String>,
    #[serde(default)]
    sso: sso::FileSso,
    #[serde(default)]
    google: google::FileGoogle,
    /// Shared state for several replicas (Redis); unset: embedded.
    #[serde(default)]
    state: state::FileState,
    /// The secret stores references point into, and the refresh timing.
    #[serde(default)]
    secrets: secrets::FileSecrets,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGitops {
    checkout: Option<PathBuf>,
    /// `owner/name` of the GitOps repository on GitHub.
    repo: Option<String>,
    /// The repository's default branch (default `main`).
    default_branch: Option<String>,
    /// Git URL to fetch and push (defaults to `https://github.com/<repo>.git`).
    git_url: Option<String>,
    #[serde(default)]
    services: BTreeMap<String, gitops::ServiceConfig>,
    /// How often open change requests are checked for expiry (default 60s).
    expiry_interval: Option<String>,
    /// How long before expiry approvers who haven't approved are reminded (default 1h; `0s`
    /// turns reminders off).
    approval_reminder: Option<String>,
    /// The policy file in the repository (default `policy/slipway.yaml`); a change to it on the
    /// default branch reloads the bridge's policy. `""` turns that off.
    policy_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGitHub {
    api_url: Option<String>,
    app_id: Option<u64>,
    /// The App's slug (its URL name): PRs it opens are authored by `<slug>[bot]`.
    app_slug: Option<String>,
    installation_id: Option<u64>,
    #[serde(default, deserialize_with = "de_secret")]
    private_key: Option<SecretSource>,
    #[serde(default, deserialize_with = "de_secret")]
    webhook_secret: Option<SecretSource>,
    /// The GitHub App's client id, for people linking their accounts (device flow).
    client_id: Option<String>,
    /// Where `/login/device/code` and `/login/oauth/access_token` live; derived from `api_url`.
    oauth_url: Option<String>,
    /// 32 bytes (hex or base64) that encrypt linked user tokens at rest.
    #[serde(default, deserialize_with = "de_secret")]
    token_key: Option<SecretSource>,
    /// The login the runner comments as; only its reports are mirrored into Slack.
    runner_login: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSigning {
    #[serde(default, deserialize_with = "de_secret")]
    key: Option<SecretSource>,
    /// A value, or a store reference kept beside the key so the two rotate together.
    #[serde(default, deserialize_with = "de_secret")]
    key_id: Option<SecretSource>,
    /// Earlier key ids → their public keys: still verify what they signed after a rotation.
    #[serde(default)]
    trusted: BTreeMap<String, String>,
    /// Key ids refused whatever a file's expiry (`SLIPWAY_SIGNING_REVOKED_KEYS`, comma-separated).
    #[serde(default)]
    revoked: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSlack {
    #[serde(default, deserialize_with = "de_secret")]
    signing_secret: Option<SecretSource>,
    #[serde(default, deserialize_with = "de_secret")]
    bot_token: Option<SecretSource>,
    #[serde(default, deserialize_with = "de_secret")]
    app_token: Option<SecretSource>,
    api_url: Option<String>,
    socket_mode: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExecution {
    workers: Option<usize>,
    queue: Option<usize>,
    per_user: Option<usize>,
    path: Option<String>,
    kill_grace: Option<String>,
    progress_interval: Option<String>,
    /// How long a dry run waits for its Confirm (default 15m).
    pending_ttl: Option<String>,
    /// How long a shared-queue job may go without its owner's heartbeat (default 30s).
    claim_timeout: Option<String>,
    /// How long the leader's lease lasts without renewal (default 15s).
    leader_lease: Option<String>,
    /// `bwrap` (the default) or `none`: see `config/sandbox`.
    sandbox: Option<String>,
    /// More read-only paths inside the sandbox (tools installed outside `/usr`, files a
    /// kubeconfig names).
    #[serde(default)]
    sandbox_read_only: Vec<PathBuf>,
}

/// Read-only AWS credentials for one profile alias.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AwsProfileConfig {
    /// The profile name inside the config/credentials files.
    pub profile: String,
    pub config_file: Option<PathBuf>,
    pub credentials_file: Option<PathBuf>,
    pub region: Option<String>,
    /// Only for tests and emulators: an endpoint the bridge (never the user) sets.
    pub endpoint_url: Option<String>,
    /// A read role assumed for each run (15-minute session, tagged with the requester); the
    /// profile's own credentials then only sign `AssumeRole` and never reach a process.
    #[serde(default)]
    pub read_role_arn: Option<String>,
    /// The `ExternalId` the read role's trust policy asks for, if any.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// Slack settings.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub signing_secret: Secret,
    pub bot_token: Secret,
    pub app_token: Secret,
    /// Web API base URL, without a trailing slash.
    pub api_url: String,
    pub socket_mode: bool,
}

/// Worker pool and process settings.
#[derive(Debug, Clone)]
pub struct ExecutionConfig {
    pub workers: usize,
    pub queue: usize,
    pub per_user: usize,
    pub path: String,
    pub kill_grace: Duration,
    pub progress_interval: Duration,
    /// How long a change waits between its dry run and its Confirm.
    pub pending_ttl: Duration,
    /// Shared queue (Redis): a job whose owner sent no heartbeat for this long is taken by
    /// another replica; heartbeats go out every third of it.
    pub claim_timeout: Duration,
    /// Leader election (Redis): the lease's life without renewal, renewed every third of it.
    pub leader_lease: Duration,
    /// The bubblewrap sandbox every process runs in; `None` with `execution.sandbox: none`.
    pub sandbox: Option<slipway_infra::sandbox::Bwrap>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Every secret store reference, its live value and when it was last read.
    pub secrets: std::sync::Arc<SecretBook>,
    pub policy: PathBuf,
    /// Where the bridge keeps its state: audit spool, work dirs, caches.
    pub state_dir: PathBuf,
    pub slack: SlackConfig,
    pub execution: ExecutionConfig,
    pub clusters: BTreeMap<String, ClusterConfig>,
    pub aws_profiles: BTreeMap<String, AwsProfileConfig>,
    pub aws: AwsConfig,
    /// `/gcloud` project aliases: the project id and read-only service account of each.
    pub gcp_projects: BTreeMap<String, GcpProjectConfig>,
    /// The bridge's own Google identity, when `/gcloud` or GKE is used.
    pub gcp: Option<GcpConfig>,
    pub gitops: GitopsConfig,
    /// The GitOps repository on GitHub, for change requests; `None` when not configured.
    pub gitops_repo: Option<gitops::GitOpsConfig>,
    /// GitHub webhook secret (`SLIPWAY_GITHUB_WEBHOOK_SECRET`).
    pub github_webhook_secret: Secret,
    pub terraform: TerraformConfig,
    /// Alertmanager base URL per environment (no trailing slash).
    pub alertmanager: BTreeMap<String, String>,
    /// The Alertmanager URL for environments without their own entry (`SLIPWAY_ALERTMANAGER_URL`).
    pub default_alertmanager: Option<String>,
    /// Kubeconfig for clusters without their own entry (context = alias), from `SLIPWAY_KUBECONFIG`.
    pub default_kubeconfig: Option<PathBuf>,
    /// The S3 mirror and the audit sinks.
    pub audit: AuditConfig,
    /// The SCIM service provider (`/scim/v2`), on when its token is set.
    pub scim: ScimConfig,
    /// The bridge's base URL as browsers reach it (`SLIPWAY_PUBLIC_URL`), without a trailing
    /// slash.
    pub public_url: Option<String>,
    /// `/slipway link sso`, when an issuer and a client id are configured.
    pub sso: Option<SsoConfig>,
    /// The Google Workspace directory sync, on when its service account key is set.
    pub google: Option<GoogleConfig>,
    /// Redis, when replicas share state (`SLIPWAY_REDIS_URL`); `None`: embedded.
    pub redis: Option<RedisConfig>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
pub const DEFAULT_SLACK_API: &str = "https://slack.com/api";

/// The environment, as a lookup function so tests can pass their own.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn duration(what: &str, s: Option<&str>, default: Duration) -> Result<Duration, String> {
    match s {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s)
            .map_err(|e| format!("{what}: `{s}` is not a duration ({e})")),
    }
}

impl Config {
    /// Load from an optional file plus the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, String> {
        Self::load_with(path, &|k| std::env::var(k).ok())
    }

    /// Load with an explicit environment. Every problem is reported with what to change.
    pub fn load_with(path: Option<&Path>, env: Env<'_>) -> Result<Config, String> {
        secret::take_found();
        let mut file = match path {
            None => FileConfig::default(),
            Some(p) => read_file(p)?,
        };
        let refs = secret::take_found();
        let now = chrono::Utc::now().timestamp();
        let gcp = || gcp_identity::load(&file.gcp, env);
        let (cells, mut book) = secrets::resolve(&file.secrets, gcp, refs, env, now)?;
        let file_secrets = std::mem::take(&mut file.secrets);
        let mut config = secret::with_resolved(cells, || Self::from_file(file, path, env))?;
        book.note_fields(secret::take_used());
        if let Some(g) = config.gitops_repo.as_mut() {
            g.envelope = secrets::envelope(&file_secrets, &book.settings, env)?;
        }
        config.secrets = std::sync::Arc::new(book);
        Ok(config)
    }

    fn from_file(file: FileConfig, path: Option<&Path>, env: Env<'_>) -> Result<Config, String> {
        let listen = listen(file.listen, env)?;
        let (policy, state_dir) = paths(file.policy.clone(), file.state_dir.clone(), env);
        let slack = slack(&file.slack, env)?;
        let execution = execution(file.execution, (&state_dir, path), env)?;
        clusters::check_clusters(&file.clusters)?;
        gcp::check(&file.gcp_projects)?;
        let gcp = gcp_identity::load(&file.gcp, env)?;
        let audit = audit::load(file.audit, env)?;
        let tools = tools::load(
            tools::FileTools {
                aws: file.aws,
                checkout: file.gitops.checkout.clone(),
                terraform: file.terraform,
                alertmanager: file.alertmanager,
            },
            &file.aws_profiles,
            env,
        )?;
        let github_webhook_secret = webhook_secret(&file.github, env)?;
        let gitops_repo = github::load(&file.gitops, &file.github, &file.signing, env)?;
        let scim = scim::load(&file.scim, env)?;
        let public_url = sso::public_url(file.public_url.clone(), env)?;
        let sso = sso::load(&file.sso, public_url.as_deref(), env)?;
        let google = google::load(&file.google, env)?;
        let redis = state::load(&file.state, env)?;
        Ok(Config {
            listen,
            secrets: std::sync::Arc::default(),
            policy,
            state_dir,
            slack,
            execution,
            clusters: file.clusters,
            aws_profiles: file.aws_profiles,
            aws: tools.aws,
            gcp_projects: file.gcp_projects,
            gcp,
            gitops: tools.gitops,
            gitops_repo,
            github_webhook_secret,
            terraform: tools.terraform,
            alertmanager: tools.alertmanager,
            default_alertmanager: tools.default_alertmanager,
            default_kubeconfig: env("SLIPWAY_KUBECONFIG").map(PathBuf::from),
            audit,
            scim,
            public_url,
            sso,
            google,
            redis,
        })
    }
}

/// The listen address (`SLIPWAY_LISTEN` over the file's `listen:`), loopback by default.
fn listen(file: Option<String>, env: Env<'_>) -> Result<SocketAddr, String> {
    let listen_s = env("SLIPWAY_LISTEN")
        .or(file)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    listen_s.parse().map_err(|_| {
        format!("listen address `{listen_s}` is not host:port (SLIPWAY_LISTEN or `listen:`)")
    })
}

/// Remote URLs must be https; plain http only for loopback (emulators, local tests).
fn check_url(url: &str, what: &str) -> Result<(), String> {
    if slipway_infra::https_or_loopback(url) {
        return Ok(());
    }
    Err(format!(
        "{what} must be an https:// URL (plain http is allowed only for loopback): {url}"
    ))
}

/// The config file, or where and why it doesn't parse (`path:line:col: message`).
fn read_file(p: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("{}:{}:", l.line(), l.column()))
            .unwrap_or_default();
        format!(
            "{}:{loc} {}",
            p.display(),
            e.without_snippet().to_string().lines().next().unwrap_or("")
        )
    })
}

/// The policy file and the state directory (environment first, then the file, then defaults).
fn paths(policy: Option<PathBuf>, state_dir: Option<PathBuf>, env: Env<'_>) -> (PathBuf, PathBuf) {
    let policy = env("SLIPWAY_POLICY")
        .map(PathBuf::from)
        .or(policy)
        .unwrap_or_else(|| PathBuf::from("policy/slipway.yaml"));
    let state_dir = env("SLIPWAY_STATE_DIR")
        .map(PathBuf::from)
        .or(state_dir)
        .unwrap_or_else(|| PathBuf::from(".slipway"));
    (policy, state_dir)
}

/// The GitHub webhook secret, refused when set but short.
fn webhook_secret(github: &FileGitHub, env: Env<'_>) -> Result<Secret, String> {
    let s = secret(
        env,
        "SLIPWAY_GITHUB_WEBHOOK_SECRET",
        github.webhook_secret.as_ref(),
        "github.webhook_secret",
    )?;
    keys::check(&s, &keys::GITHUB_WEBHOOK_SECRET)?;
    Ok(s)
}

/// The Slack section. In Socket Mode the HTTP endpoints exist only when a signing secret is
/// set; elsewhere one is required, and a short one is refused.
fn slack(file: &FileSlack, env: Env<'_>) -> Result<SlackConfig, String> {
    let signing_secret = secret(
        env,
        "SLIPWAY_SLACK_SIGNING_SECRET",
        file.signing_secret.as_ref(),
        "slack.signing_secret",
    )?;
    let bot_token = secret(
        env,
        "SLIPWAY_SLACK_BOT_TOKEN",
        file.bot_token.as_ref(),
        "slack.bot_token",
    )?;
    let app_token = secret(
        env,
        "SLIPWAY_SLACK_APP_TOKEN",
        file.app_token.as_ref(),
        "slack.app_token",
    )?;
    let mut api_url = env("SLIPWAY_SLACK_API_URL")
        .or(file.api_url.clone())
        .unwrap_or_else(|| DEFAULT_SLACK_API.into());
    // slack-morphism joins `{base}/{method}`, so the base carries no trailing slash.
    while api_url.ends_with('/') {
        api_url.pop();
    }
    check_url(&api_url, "Slack API URL (SLIPWAY_SLACK_API_URL)")?;
    let socket_mode = match env("SLIPWAY_SOCKET_MODE") {
        Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
        None => file.socket_mode.unwrap_or(false),
    };
    if signing_secret.is_empty() && !socket_mode {
        return Err("the Slack signing secret is missing: set SLIPWAY_SLACK_SIGNING_SECRET or `slack.signing_secret`".into());
    }
    keys::check(&signing_secret, &keys::SLACK_SIGNING_SECRET)?;
    if socket_mode && app_token.is_empty() {
        return Err("Socket Mode needs an app-level token (xapp-…): set SLIPWAY_SLACK_APP_TOKEN or `slack.app_token`".into());
    }
    Ok(SlackConfig {
        signing_secret,
        bot_token,
        app_token,
        api_url,
        socket_mode,
    })
}

/// The worker pool and process settings.
/// `files` is the state directory and the configuration file, which the sandbox hides.
fn execution(
    e: FileExecution,
    files: (&Path, Option<&Path>),
    env: Env<'_>,
) -> Result<ExecutionConfig, String> {
    let num = |var: &str, v: Option<usize>, d: usize| -> Result<usize, String> {
        match env(var) {
            Some(s) => s
                .parse()
                .map_err(|_| format!("{var}=`{s}` is not a number")),
            None => Ok(v.unwrap_or(d)),
        }
    };
    let path = e
        .path
        .unwrap_or_else(|| slipway_infra::exec::DEFAULT_PATH.into());
    let sandbox = sandbox::FileSandbox {
        mode: e.sandbox,
        read_only: e.sandbox_read_only,
        config_file: files.1.map(Path::to_path_buf),
    };
    Ok(ExecutionConfig {
        workers: num("SLIPWAY_WORKERS", e.workers, 8)?.max(1),
        queue: num("SLIPWAY_QUEUE", e.queue, 64)?.max(1),
        per_user: num("SLIPWAY_PER_USER", e.per_user, 2)?.max(1),
        sandbox: sandbox::load(sandbox, &path, files.0, env)?,
        path,
        kill_grace: duration(
            "execution.kill_grace",
            e.kill_grace.as_deref(),
            Duration::from_secs(3),
        )?,
        progress_interval: duration(
            "execution.progress_interval",
            e.progress_interval.as_deref(),
            Duration::from_secs(2),
        )?,
        pending_ttl: duration(
            "SLIPWAY_PENDING_TTL / execution.pending_ttl",
            env("SLIPWAY_PENDING_TTL").or(e.pending_ttl).as_deref(),
            Duration::from_secs(15 * 60),
        )?,
        claim_timeout: duration(
            "SLIPWAY_CLAIM_TIMEOUT / execution.claim_timeout",
            env("SLIPWAY_CLAIM_TIMEOUT").or(e.claim_timeout).as_deref(),
            Duration::from_secs(30),
        )?
        .max(Duration::from_millis(300)),
        leader_lease: duration(
            "SLIPWAY_LEADER_LEASE / execution.leader_lease",
            env("SLIPWAY_LEADER_LEASE").or(e.leader_lease).as_deref(),
            Duration::from_secs(15),
        )?
        .max(Duration::from_millis(300)),
    })
}

/// Read and compile a policy, or describe why not in `PATH:LINE:COL: message` form.
pub fn load_policy(path: &Path) -> Result<slipway_core::policy::Policy, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}:1:1: can't read the policy file: {e}", path.display()))?;
    slipway_core::policy::Policy::from_yaml(&text)
        .map_err(|e| e.display_with_path(&path.display().to_string()))
}

#[cfg(test)]
mod tests;
