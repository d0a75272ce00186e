//! Everything `slipway demo` starts: the emulators (Slack, GitHub backed by real bare git repos,
//! the Kubernetes API, the Actions OIDC issuer, the Jira, ServiceNow and Loki sinks), moto for S3 with Object Lock when it can be
//! started, and the real bridge (`slipway serve`, a child process configured exactly as in
//! production, only with emulator URLs). All of it lives under one directory and one process
//! group, so Ctrl-C stops everything.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator};
use slipway_emulators::github::GitHubEmulator;
use slipway_emulators::kube::{KubeEmulator, RolloutFailure};
use slipway_emulators::slack::SlackEmulator;
use tokio::process::{Child, Command};

use super::http;
use super::sinks::Sinks;

mod bridge;
pub mod gcp;
use bridge::{Secrets, bridge_env, start_bridge, write_bridge_files};

pub const OWNER: &str = "acme";
pub const REPO: &str = "gitops";
pub const CHANNEL: &str = "C0OPS";
pub const TEAM: &str = "T0DEMO";
pub const BUCKET: &str = "slipway-audit";
const APP_ID: u64 = 4242;
const CLIENT_ID: &str = "Iv1.slipwaydemo0001";
const KUBE_TOKEN: &str = "demo-kube-token";
const BOT_TOKEN: &str = "xoxb-demo-bot-token";
/// moto accepts any credentials; these only keep the AWS SDK from looking further.
const AWS_KEY: &str = "demo";

/// The example policy, embedded so the demo runs from any directory.
pub const POLICY: &str = include_str!("../../../policy/slipway.yaml");
/// The example runner workflow, committed to the demo's GitOps repo as a real repo would have it.
const WORKFLOW: &str = include_str!("../../../.github/gitops-runner/slipway-runner.yml");

/// An example user of the policy, as the demo shows and links them.
#[derive(Debug, Clone)]
pub struct Person {
    pub slack: &'static str,
    pub name: &'static str,
    pub role: &'static str,
    pub github: &'static str,
}

/// The example policy's people (`policy/slipway.yaml`, `identities.users`).
pub const PEOPLE: &[Person] = &[
    Person {
        slack: "U0VIEWER",
        name: "Vera Viewer",
        role: "viewer",
        github: "vera-viewer",
    },
    Person {
        slack: "U0OPERATOR",
        name: "Omar Operator",
        role: "operator",
        github: "omar-operator",
    },
    Person {
        slack: "U0PRODDEPLOY",
        name: "Pat Proddeploy",
        role: "operator, may deploy to production",
        github: "pat-proddeploy",
    },
    Person {
        slack: "U0APPROVER1",
        name: "Ada Approver",
        role: "viewer + approver",
        github: "ada-approver",
    },
    Person {
        slack: "U0APPROVER2",
        name: "Bo Approver",
        role: "viewer + approver",
        github: "bo-approver",
    },
    Person {
        slack: "U0OWNER",
        name: "Olga Owner",
        role: "owner",
        github: "olga-owner",
    },
];

pub fn person(slack: &str) -> Option<&'static Person> {
    PEOPLE.iter().find(|p| p.slack.eq_ignore_ascii_case(slack))
}

const BASE_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: api\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n    spec:\n      containers:\n      - name: api\n        image: registry.example/api:v1.0.0\n";

fn kustomization(env: &str) -> String {
    format!(
        "# Managed by Slipway: /deploy api {env} sets the image below.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example/api\n    newName: registry.example/api\n    newTag: \"v1.0.0\"\n"
    )
}

/// A failure to set the demo up, with what to do about it.
pub type SetupError = String;

/// A helper process the demo started; killed when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// The last lines of its log, to explain a failure.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// moto's S3 (with the audit bucket under Object Lock) and STS.
#[derive(Debug)]
pub struct Moto {
    pub url: String,
    _daemon: Daemon,
}

/// The running demo.
#[derive(Debug)]
pub struct World {
    pub dir: PathBuf,
    pub slack: SlackEmulator,
    pub github: GitHubEmulator,
    pub kube: KubeEmulator,
    pub oidc: ActionsOidcEmulator,
    pub moto: Option<Moto>,
    /// Jira, ServiceNow and Loki, which the bridge delivers the audit trail to.
    pub sinks: Sinks,
    pub bridge: Daemon,
    pub bridge_url: String,
    pub signing_secret: String,
    pub installation: u64,
    pub verifying_key_hex: String,
    pub kubeconfig: PathBuf,
    /// Why S3 is off, when it is.
    pub s3_warning: Option<String>,
    /// The GCP emulator behind `/gcloud gcp-staging`, or why it isn't there.
    pub gcp: Result<gcp::GcpDemo, String>,
}

fn random_hex(n: usize) -> Result<String, SetupError> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no system randomness".to_string())?;
    Ok(hex::encode(bytes))
}

fn write(path: &Path, text: &str) -> Result<(), SetupError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Whether `tool` is on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

fn free_port() -> Result<u16, SetupError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Start `cmd` with its output in `log`, in this process group (so Ctrl-C reaches it).
fn spawn(mut cmd: Command, log: PathBuf) -> Result<Daemon, SetupError> {
    let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {cmd:?}: {e}"))?;
    Ok(Daemon { child, log })
}

/// Wait until `url` answers below 500, or the daemon exits, or 30 s pass.
async fn ready(daemon: &mut Daemon, name: &str, url: &str) -> Result<(), SetupError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((status, _)) = http::request("GET", url, Vec::new(), &[]).await
            && status < 500
        {
            return Ok(());
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return Err(format!(
                "{name} exited ({status}) while starting; its log ({}):\n{}",
                daemon.log.display(),
                daemon.log_tail()
            ));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{name} did not answer on {url} within 30 s; its log ({}):\n{}",
                daemon.log.display(),
                daemon.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tools Slipway runs for real in the demo, with how to install each.
const TOOLS: [(&str, &str); 2] = [
    ("git", "install git (apt install git)"),
    (
        "kubectl",
        "install kubectl (https://kubernetes.io/docs/tasks/tools/); this machine image ships it at /usr/bin/kubectl",
    ),
];

/// Fail early, with the install hint, when a tool the bridge runs for real is missing.
fn require_tools() -> Result<(), SetupError> {
    for (tool, hint) in TOOLS {
        if !on_path(tool) {
            return Err(format!(
                "the demo needs `{tool}` on PATH, because Slipway runs the real one: {hint}"
            ));
        }
    }
    Ok(())
}

/// The Slack emulator, with the example people as workspace members (so user look-ups work).
async fn start_slack() -> SlackEmulator {
    let slack = SlackEmulator::start(BOT_TOKEN).await;
    for p in PEOPLE {
        let email = format!("{}@example.com", p.name.to_lowercase().replace(' ', "."));
        slack.add_user(p.slack, p.name, Some(&email));
    }
    slack
}

/// moto when wanted and startable; otherwise why S3 is off, for the banner.
async fn start_s3(dir: &Path, want_s3: bool) -> (Option<Moto>, Option<String>) {
    if !want_s3 {
        return (None, Some("S3 is off (--no-s3)".to_string()));
    }
    match start_moto(dir).await {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    }
}

/// The emulators the bridge talks to, started and seeded before the bridge itself.
struct Upstreams {
    slack: SlackEmulator,
    github: GitHubEmulator,
    kube: KubeEmulator,
    oidc: ActionsOidcEmulator,
    moto: Option<Moto>,
    s3_warning: Option<String>,
    sinks: Sinks,
    gcp: Result<gcp::GcpDemo, String>,
    installation: u64,
    kubeconfig: PathBuf,
}

impl Upstreams {
    async fn start(dir: &Path, want_s3: bool, app_key: &str) -> Upstreams {
        let slack = start_slack().await;
        let kube = start_kube().await;
        let kubeconfig = dir.join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, &["staging", "production"], KUBE_TOKEN);
        let (moto, s3_warning) = start_s3(dir, want_s3).await;
        let github = GitHubEmulator::start_in(&dir.join("github")).await;
        let installation = seed_github(&github, app_key);
        let oidc = ActionsOidcEmulator::start(ActionsJob::push(
            &format!("{OWNER}/{REPO}"),
            "main",
            "0000000000000000000000000000000000000000",
        ))
        .await;
        Upstreams {
            slack,
            github,
            kube,
            oidc,
            moto,
            s3_warning,
            sinks: Sinks::start().await,
            gcp: gcp::GcpDemo::start().await,
            installation,
            kubeconfig,
        }
    }
}

impl World {
    /// Start everything under `dir`. `want_s3`: try to start moto. The upstreams come first,
    /// so the bridge starts against a world that is already there.
    pub async fn start(dir: &Path, want_s3: bool) -> Result<World, SetupError> {
        require_tools()?;
        let secrets = Secrets::generate()?;
        let up = Upstreams::start(dir, want_s3, &secrets.app_key).await;
        let files = write_bridge_files(dir, &up)?;
        let port = free_port()?;
        let vars = bridge_env(dir, port, &up, &secrets, &files);
        let (bridge, bridge_url) = start_bridge(dir, &files.config, vars, port).await?;
        up.github.set_webhook(
            &format!("{bridge_url}/github/webhook"),
            &secrets.webhook_secret,
        );
        Ok(World {
            dir: dir.to_path_buf(),
            slack: up.slack,
            github: up.github,
            kube: up.kube,
            oidc: up.oidc,
            moto: up.moto,
            sinks: up.sinks,
            bridge,
            bridge_url,
            signing_secret: secrets.signing_secret,
            installation: up.installation,
            verifying_key_hex: secrets.verifying_key_hex,
            kubeconfig: up.kubeconfig,
            s3_warning: up.s3_warning,
            gcp: up.gcp,
        })
    }

    /// The bare repository behind `acme/gitops` (what an auditor would clone).
    pub fn gitops_dir(&self) -> Option<PathBuf> {
        self.github.repo_dir(OWNER, REPO)
    }

    /// The bridge's audit spool (the runner shares it: see `runner.rs`).
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.join("state").join("audit")
    }

    /// The audit writers and their public keys, for `slipway audit verify --writers`.
    pub fn audit_writers(&self) -> PathBuf {
        self.dir.join("audit-writers.yaml")
    }

    /// The runner's audit signing key.
    pub fn runner_audit_key(&self) -> PathBuf {
        self.dir.join("audit-runner.key")
    }
}

/// The AWS variables for the children that talk to moto (bridge, runner, `audit verify`).
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", AWS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", AWS_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

async fn start_kube() -> KubeEmulator {
    let kube = KubeEmulator::start().await;
    for ns in ["default", "web", "api", "prod"] {
        kube.add_namespace(ns);
    }
    kube.add_pod("default", "hello-5c7d9-x2x8k", "Running");
    kube.add_pod("web", "web-7d9f-abcde", "Running");
    kube.add_pod("web", "web-7d9f-fghij", "Running");
    kube.add_pod("api", "api-6b8c-k2m4p", "Running");
    kube.add_pod("api", "api-6b8c-q9r7s", "Running");
    kube.add_deployment("web", "web", 2, "registry.example/web:1.4.2");
    kube.add_deployment("api", "api", 2, "registry.example/api:v1.0.0");
    // The first deploy's pods crash-loop, so the walkthrough can show its roll back.
    kube.fail_next_rollout("api", "api", RolloutFailure::CrashLoop);
    kube.add_secret(
        "web",
        "db-credentials",
        &[("password", "hunter2-super-secret")],
    );
    kube
}

/// `acme/gitops` (policy, apps, a stack, the runner workflow) and `acme/api` with a green CI
/// run; the App installed on both; the example people as GitHub users; the device flow on;
/// branch protection on `main` requiring `slipway/approval`. Returns the installation id.
fn seed_github(github: &GitHubEmulator, app_key: &str) -> u64 {
    let staging = kustomization("staging");
    let production = kustomization("production");
    github.create_repo(
        OWNER,
        REPO,
        "main",
        &[
            ("README.md", "# GitOps\n\nManaged with Slipway.\n"),
            ("policy/slipway.yaml", POLICY),
            (".github/workflows/slipway-runner.yml", WORKFLOW),
            ("apps/api/base/deployment.yaml", BASE_DEPLOYMENT),
            (
                "apps/api/base/kustomization.yaml",
                "resources:\n  - deployment.yaml\n",
            ),
            ("apps/api/staging/kustomization.yaml", &staging),
            ("apps/api/production/kustomization.yaml", &production),
            (
                "stacks/network/main.tf",
                "resource \"terraform_data\" \"net\" {\n  input = \"v1\"\n}\n",
            ),
        ],
    );
    github.create_repo(OWNER, "api", "main", &[("README.md", "# api\n")]);
    if let Some(sha) = github.branch_sha(OWNER, "api", "main") {
        github.add_workflow_run(OWNER, "api", "main", &sha, "ci", "success");
    }
    let installation = github.add_app(APP_ID, app_key, &[(OWNER, REPO), (OWNER, "api")]);
    for p in PEOPLE {
        github.add_user(p.github, &format!("demo-token-{}", p.github));
    }
    github.register_oauth_client(CLIENT_ID, true);
    github.set_device_flow_interval(1);
    github.require_status(OWNER, REPO, "slipway/approval");
    installation
}

/// moto on a free loopback port, with the audit bucket created under Object Lock.
async fn start_moto(dir: &Path) -> Result<Moto, SetupError> {
    if !on_path("moto_server") {
        return Err(
            "moto_server is not installed (`pip install 'moto[server]'`, or run scripts/install-deps)"
                .into(),
        );
    }
    let port = free_port()?;
    let mut cmd = Command::new("moto_server");
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut daemon = spawn(cmd, dir.join("moto.log"))?;
    let url = format!("http://127.0.0.1:{port}");
    ready(&mut daemon, "moto_server", &format!("{url}/moto-api/")).await?;
    let mut settings = slipway_infra::s3::S3Settings::new(BUCKET, "slipway", 1);
    settings.endpoint_url = Some(url.clone());
    settings.credentials = Some(slipway_infra::s3::StaticCredentials {
        access_key_id: AWS_KEY.into(),
        secret_access_key: AWS_KEY.into(),
    });
    let client = slipway_infra::s3::client(&settings).await;
    client
        .create_bucket()
        .bucket(BUCKET)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .map_err(|e| format!("creating the Object Lock bucket in moto: {e}"))?;
    Ok(Moto {
        url,
        _daemon: daemon,
    })
}

/// What a child of the demo may take from the caller's environment: where programs are, the
/// home directory and the locale. Nothing else (no `SLIPWAY_*`, no `AWS_*`).
pub fn inherited_basics() -> Vec<(String, String)> {
    ["PATH", "HOME", "LANG", "TMPDIR"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}
