//! The bridge's side of the demo: its secrets, its files and its environment, then the
//! `slipway serve` child itself, configured exactly as in production but for the URLs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use slipway_emulators::github::generate_app_key_pem;
use tokio::process::Command;

use super::{
    APP_ID, BOT_TOKEN, BUCKET, CLIENT_ID, Daemon, OWNER, POLICY, REPO, SetupError, Upstreams,
    aws_env, inherited_basics, random_hex, ready, spawn, write,
};

/// The secrets a production bridge would get from its secret store, fresh for every demo.
pub(super) struct Secrets {
    pub(super) app_key: String,
    signing_key: String,
    pub(super) verifying_key_hex: String,
    pub(super) signing_secret: String,
    pub(super) webhook_secret: String,
    token_key: String,
}

impl Secrets {
    pub(super) fn generate() -> Result<Secrets, SetupError> {
        let app_key = generate_app_key_pem()?;
        let signing_key = random_hex(32)?;
        let verifying_key_hex = hex::encode(
            slipway_core::change::parse_signing_key(&signing_key)?
                .verifying_key()
                .to_bytes(),
        );
        Ok(Secrets {
            app_key,
            signing_key,
            verifying_key_hex,
            signing_secret: random_hex(16)?,
            webhook_secret: random_hex(16)?,
            token_key: random_hex(32)?,
        })
    }
}

/// The files the bridge reads, written under `dir`.
pub(super) struct BridgeFiles {
    policy: PathBuf,
    pub(super) config: PathBuf,
    audit_key: PathBuf,
}

/// The policy, both audit signing keys with their writers file, and the bridge's config
/// (which lists the writers too, and the Jira, ServiceNow and Loki sinks).
pub(super) fn write_bridge_files(dir: &Path, up: &Upstreams) -> Result<BridgeFiles, SetupError> {
    let policy = dir.join("policy.yaml");
    write(&policy, POLICY)?;
    // The bridge and the runner sign their audit checkpoints with keys of their own, kept
    // beside the state directory, never in it.
    let audit_key = dir.join("audit-bridge.key");
    let runner_key = dir.join("audit-runner.key");
    let mut writers = Vec::new();
    for (pattern, path) in [("bridge:*", &audit_key), ("runner:*", &runner_key)] {
        let public = slipway_infra::audit_signer::generate_key_file(path)?;
        writers.push(format!(
            "\"{pattern}\": \"{}\"",
            hex::encode(public.as_bytes())
        ));
    }
    write(
        &dir.join("audit-writers.yaml"),
        &(writers.join("\n") + "\n"),
    )?;
    let mut config_text = "# The demo bridge's config (everything else comes from SLIPWAY_* variables).\ngitops:\n  services:\n    api:\n      repo: acme/api\n      image: registry.example/api\n      workflow: ci.yml\naudit:\n  writers:\n".to_string();
    for w in &writers {
        let _ = writeln!(config_text, "    {w}");
    }
    config_text.push_str(&up.sinks.config_yaml());
    if let Ok(g) = &up.gcp {
        config_text.push_str(&g.config_yaml());
    }
    let config = dir.join("slipway.yaml");
    write(&config, &config_text)?;
    Ok(BridgeFiles {
        policy,
        config,
        audit_key,
    })
}

/// The bridge's environment: what a production deployment sets, pointed at the emulators.
pub(super) fn bridge_env(
    dir: &Path,
    port: u16,
    up: &Upstreams,
    secrets: &Secrets,
    files: &BridgeFiles,
) -> Vec<(&'static str, String)> {
    let mut vars: Vec<(&str, String)> = vec![
        ("SLIPWAY_LISTEN", format!("127.0.0.1:{port}")),
        (
            "SLIPWAY_SLACK_SIGNING_SECRET",
            secrets.signing_secret.clone(),
        ),
        ("SLIPWAY_SLACK_BOT_TOKEN", BOT_TOKEN.into()),
        ("SLIPWAY_SLACK_API_URL", up.slack.api_url()),
        ("SLIPWAY_POLICY", files.policy.display().to_string()),
        ("SLIPWAY_STATE_DIR", dir.join("state").display().to_string()),
        ("SLIPWAY_KUBECONFIG", up.kubeconfig.display().to_string()),
        ("SLIPWAY_GITOPS_REPO", format!("{OWNER}/{REPO}")),
        ("SLIPWAY_GITOPS_GIT_URL", up.github.git_url(OWNER, REPO)),
        ("SLIPWAY_GITHUB_API_URL", up.github.api_url()),
        ("SLIPWAY_GITHUB_APP_ID", APP_ID.to_string()),
        (
            "SLIPWAY_GITHUB_INSTALLATION_ID",
            up.installation.to_string(),
        ),
        ("SLIPWAY_GITHUB_PRIVATE_KEY", secrets.app_key.clone()),
        ("SLIPWAY_GITHUB_CLIENT_ID", CLIENT_ID.into()),
        (
            "SLIPWAY_GITHUB_WEBHOOK_SECRET",
            secrets.webhook_secret.clone(),
        ),
        ("SLIPWAY_SIGNING_KEY", secrets.signing_key.clone()),
        ("SLIPWAY_SIGNING_KEY_ID", "demo".into()),
        ("SLIPWAY_TOKEN_KEY", secrets.token_key.clone()),
        (
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            files.audit_key.display().to_string(),
        ),
        ("RUST_LOG", "info".into()),
    ];
    if let Ok(g) = &up.gcp {
        vars.push(("SLIPWAY_GCP_CREDENTIALS", g.bridge_key.clone()));
    }
    if let Some(m) = &up.moto {
        vars.extend([
            ("SLIPWAY_AUDIT_S3_BUCKET", BUCKET.to_string()),
            ("SLIPWAY_AUDIT_S3_ENDPOINT", m.url.clone()),
            ("SLIPWAY_AUDIT_RETENTION_DAYS", "1".into()),
        ]);
        vars.extend(aws_env());
    }
    vars
}

/// `slipway serve` (this very executable) with `vars` and nothing else, started and answering.
pub(super) async fn start_bridge(
    dir: &Path,
    config: &Path,
    vars: Vec<(&str, String)>,
    port: u16,
) -> Result<(Daemon, String), SetupError> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve").arg("--config").arg(config);
    // Only the demo's own settings: a caller's production variables (an audit bucket, AWS
    // keys) must never reach the demo's bridge.
    cmd.env_clear();
    cmd.envs(inherited_basics());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut bridge = spawn(cmd, dir.join("bridge.log"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let bridge_url = format!("http://{addr}");
    ready(&mut bridge, "the bridge", &format!("{bridge_url}/healthz")).await?;
    Ok((bridge, bridge_url))
}
