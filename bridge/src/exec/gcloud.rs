//! `/gcloud`: the real gcloud CLI as argv. Each run gets a fresh configuration directory
//! (`CLOUDSDK_CONFIG`, mode 0700, removed after) holding only a token file: a short-lived token
//! for the project alias's read-only service account, minted by impersonation just before the
//! run (never in argv, the environment or a log). Prompts and the metadata-server probe are
//! off, and the request reason names the requester and the audited decision, so Cloud Audit
//! Logs, which see the read account, can be tied back to the person.
//!
//! Commands whose output carries secrets (instance metadata, environment variables) run with
//! `--format=json` and have those fields removed structurally before anything is shown; their
//! live progress shows no output at all, and output too large to parse whole is withheld.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use slipway_infra::exec::{ExecResult, ExecSpec, Progress};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use slipway_core::command::gcloud::Gcloud;

use super::outcome::{Finished, Shape, failed_result};
use crate::base::Base;

/// The run for an allowed `/gcloud` read on `alias`: its project and read account from the
/// configuration (never from the user), the configured gcloud binary, and the endpoint
/// overrides only the configuration can set.
pub fn work(
    state: &Base,
    gcloud: &Gcloud,
    alias: &str,
    timeout: Duration,
    output_cap: usize,
) -> Result<GcloudWork, String> {
    let support = state.policy().support().to_string();
    let Some(project) = state.config.gcp_project(alias) else {
        return Err(format!(
            "GCP project `{alias}` has no project or service account configured in this bridge \
             (`gcp_projects.{alias}`), so nothing was run; ask {support}."
        ));
    };
    let Some(gcp) = &state.config.gcp else {
        return Err(format!(
            "This bridge has no Google identity to read `{alias}` with (`gcp.credentials`), so \
             nothing was run; ask {support}."
        ));
    };
    let mut argv = gcloud.argv_in(&project.project)?;
    if let Some(first) = argv.first_mut() {
        first.clone_from(&gcp.cli);
    }
    let mut env = super::env::base_env(state);
    env.extend(gcp.api_endpoint_overrides.iter().map(|(api, url)| {
        (
            format!(
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_{}",
                api.to_ascii_uppercase()
            ),
            url.clone(),
        )
    }));
    Ok(GcloudWork {
        argv,
        env,
        service_account: project.service_account.clone(),
        alias: alias.to_string(),
        reason: String::new(),
        strip: gcloud.strip.iter().map(|s| (*s).to_string()).collect(),
        work_dir: state.work_dir.clone(),
        timeout,
        output_cap,
        kill_grace: state.config.execution.kill_grace,
    })
}

/// The request reason Cloud Audit Logs keep: who asked and the decision's audit id.
pub fn reason(subject: &str, slack_user: &str, decision_audit_id: &str) -> String {
    let clean =
        |s: &str| -> String { s.chars().filter(char::is_ascii_graphic).take(120).collect() };
    format!(
        "slipway requester={} slack={} decision={}",
        clean(subject),
        clean(slack_user),
        clean(decision_audit_id)
    )
}

/// A `/gcloud` read, ready to run once its token is minted.
#[derive(Debug, Clone)]
pub struct GcloudWork {
    /// The full argv (gcloud, the command, `--project=<id>`, the user's flags).
    pub argv: Vec<String>,
    /// The base environment and the configured endpoint overrides; no credential.
    pub env: Vec<(String, String)>,
    /// The read-only account impersonated for this run.
    pub service_account: String,
    /// The project alias, for messages.
    pub alias: String,
    /// `X-Goog-Request-Reason`: who asked, and the decision's audit id.
    pub reason: String,
    /// JSON fields removed from the output before it is shown (dotted paths).
    pub strip: Vec<String>,
    pub work_dir: PathBuf,
    pub timeout: Duration,
    pub output_cap: usize,
    pub kill_grace: Duration,
}

impl GcloudWork {
    /// Mint, run, strip; `progress` gets the live tail unless the output needs stripping.
    pub async fn run(
        self,
        state: Base,
        progress: watch::Sender<Progress>,
        cancel: CancellationToken,
    ) -> Finished {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let argv = self.argv.clone();
        let token = match self.token(&state, &cancel, deadline).await {
            Ok(t) => t,
            Err(result) => return Finished::process(result, argv, Shape::Text),
        };
        let dir = match self.config_dir(&token) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "preparing gcloud's configuration directory");
                let why = "couldn't prepare gcloud's configuration directory";
                return Finished::process(failed_result(why, started), argv, Shape::Text);
            }
        };
        // gcloud writes its caches and logs into its configuration directory.
        let access = super::sandbox::Access {
            read_write: vec![dir.path().to_path_buf()],
            network: true,
            cwd: Some(dir.path().to_path_buf()),
            ..super::sandbox::Access::default()
        };
        let spec = super::sandbox::wrap(&state.config, self.spec(dir.path(), deadline), &access);
        // Output that needs stripping shows no live tail: its progress goes nowhere.
        let quiet = watch::channel(Progress::default()).0;
        let tx = if self.strip.is_empty() {
            &progress
        } else {
            &quiet
        };
        let mut result = super::outcome::run_process(spec, tx, &cancel).await;
        drop(dir);
        if !self.strip.is_empty() {
            strip_output(&mut result, &self.strip);
        }
        // The execution record names the identity the read ran as.
        Finished::process(result, argv, Shape::Json)
            .with_detail("service_account", self.service_account.clone())
    }

    /// The impersonated token, within the run's deadline and Cancel.
    async fn token(
        &self,
        state: &Base,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> Result<String, ExecResult> {
        let started = Instant::now();
        let Some(minter) = state.gcp.as_ref().map(crate::config::Live::get) else {
            let why = "GCP isn't configured on this bridge (gcp.credentials)";
            return Err(failed_result(why, started));
        };
        let now = state.clock.unix();
        let minting = minter.token_for(&self.service_account, now);
        match super::outcome::bounded(cancel, deadline, minting).await {
            Ok(Ok(t)) => Ok(t.token),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, alias = %self.alias, "minting a GCP read token");
                let why = format!(
                    "couldn't get a token for {}'s read-only account ({e})",
                    self.alias
                );
                Err(failed_result(&why, started))
            }
            Err(end) => Err(super::outcome::text_result(end, "", started)),
        }
    }

    /// A private directory with the token file and the metadata-probe switch.
    fn config_dir(&self, token: &str) -> std::io::Result<tempfile::TempDir> {
        let dir = tempfile::Builder::new()
            .prefix("gcloud-")
            .tempdir_in(&self.work_dir)?;
        std::fs::write(dir.path().join("gce"), "False")?;
        super::env::write_private(&dir.path().join("token"), token.as_bytes())?;
        Ok(dir)
    }

    fn spec(&self, config: &std::path::Path, deadline: tokio::time::Instant) -> ExecSpec {
        let mut env = self.env.clone();
        let path = |p: &str| config.join(p).display().to_string();
        env.extend([
            ("CLOUDSDK_CONFIG".to_string(), config.display().to_string()),
            ("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE".into(), path("token")),
            ("CLOUDSDK_CORE_DISABLE_PROMPTS".into(), "1".into()),
            ("CLOUDSDK_CORE_REQUEST_REASON".into(), self.reason.clone()),
            (
                "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING".into(),
                "true".into(),
            ),
            (
                "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK".into(),
                "true".into(),
            ),
        ]);
        ExecSpec {
            argv: self.argv.clone(),
            env,
            cwd: config.to_path_buf(),
            timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
            output_cap: self.output_cap,
            kill_grace: self.kill_grace,
        }
    }
}

/// Remove the secret-bearing fields from a JSON output; if the output can't be parsed whole
/// (cut at the output cap, or not JSON), show none of it.
fn strip_output(result: &mut ExecResult, paths: &[String]) {
    if !result.end.success() {
        // gcloud's errors are text on stderr; they carry no resource bodies.
        return;
    }
    let parsed = (!result.truncated)
        .then(|| serde_json::from_str::<serde_json::Value>(result.output.trim()).ok())
        .flatten();
    result.output = match parsed {
        Some(mut v) => {
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            slipway_core::command::gcloud::strip_fields(&mut v, &paths);
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        None => "(output withheld: it holds fields Slipway removes before showing, and it \
                 was too large or not JSON, so they couldn't be removed; narrow the command)"
            .into(),
    };
}

#[cfg(test)]
mod tests;
