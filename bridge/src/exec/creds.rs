//! Short-lived read credentials, minted for each run just before its process starts: an AWS
//! role session (`AssumeRole`, see [`super::aws_role::AwsRole`]) or a Kubernetes ServiceAccount
//! token (TokenRequest, see [`super::kube_token`]). The bridge's own long-lived credentials only
//! ever sign the minting call; the process gets the minted ones (in its environment, or in a
//! per-run private directory removed after the run), and the execution record names the role
//! or ServiceAccount it ran as. Where none is configured, the static files stay the fallback
//! and the record says so.

use std::time::Instant;

use slipway_infra::exec::{ExecResult, ExecSpec, Progress};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use super::minted::{
    AWS_DETAIL, AWS_SESSION, KUBE_DETAIL, KUBE_TOKEN_LIFETIME, Minted, Requester, private_dir,
};
use super::outcome::{Finished, Shape, failed_result};
use super::sandbox::Access;
use crate::base::Base;

/// How a run gets its credentials.
#[derive(Debug, Clone)]
pub enum RunCreds {
    /// The static files configured for the target (the documented fallback): `(detail key,
    /// what the record says)`.
    Static(&'static str, String),
    /// A role session, minted per run.
    AwsRole(super::aws_role::AwsRole),
    /// A ServiceAccount token and a per-run kubeconfig, minted per run.
    Kube(super::kube_token::KubeToken),
}

impl RunCreds {
    /// The execution record's `(key, value)` before anything is minted.
    pub fn detail(&self) -> (&'static str, String) {
        match self {
            RunCreds::Static(k, v) => (k, v.clone()),
            RunCreds::AwsRole(r) => (AWS_DETAIL, r.role_arn.clone()),
            RunCreds::Kube(k) => (KUBE_DETAIL, k.account.to_string()),
        }
    }

    /// Mint this run's credentials.
    pub async fn mint(&self, state: &Base, requester: &Requester) -> Result<Minted, String> {
        match self {
            RunCreds::Static(k, v) => Ok(Minted {
                env: Vec::new(),
                args: Vec::new(),
                dir: None,
                detail: (k, v.clone()),
            }),
            RunCreds::AwsRole(r) => r.mint(requester).await,
            RunCreds::Kube(k) => k.mint(state).await,
        }
    }
}

/// A process that needs credentials minted first.
#[derive(Debug, Clone)]
pub struct MintedWork {
    /// The process, without the credentials.
    pub spec: ExecSpec,
    pub shape: Shape,
    pub creds: RunCreds,
    pub requester: Requester,
    /// What the sandbox shows it with the static credentials (see [`sandboxed`]).
    pub access: Access,
}

impl MintedWork {
    /// Mint, run, and name the identity in the record.
    pub async fn run(
        self,
        state: Base,
        progress: watch::Sender<Progress>,
        cancel: CancellationToken,
    ) -> Finished {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.spec.timeout;
        let argv = self.spec.argv.clone();
        let minting = self.creds.mint(&state, &self.requester);
        let minted = match super::outcome::bounded(&cancel, deadline, minting).await {
            Ok(Ok(m)) => m,
            Ok(Err(why)) => {
                tracing::warn!(error = %why, "minting a run's read credentials");
                let why = format!("couldn't get this run's read credentials ({why})");
                let (k, v) = self.creds.detail();
                return Finished::process(failed_result(&why, started), argv, self.shape)
                    .with_detail(k, v);
            }
            Err(end) => {
                let r = super::outcome::text_result(end, "", started);
                return Finished::process(r, argv, self.shape);
            }
        };
        let spec = with_minted(self.spec, &minted, deadline);
        let argv = spec.argv.clone();
        let spec = sandboxed(&state, &self.creds, &self.access, spec, &minted);
        let result: ExecResult = super::outcome::run_process(spec, &progress, &cancel).await;
        let (k, v) = minted.detail.clone();
        drop(minted);
        Finished::process(result, argv, self.shape).with_detail(k, v)
    }
}

/// `spec` in the sandbox with `access`. With minted credentials the static credential files are
/// taken out of it and the run's private directory put in: the process never sees the
/// bridge's own kubeconfig or AWS files, whose identity may mint.
pub fn sandboxed(
    state: &Base,
    creds: &RunCreds,
    access: &Access,
    spec: ExecSpec,
    minted: &Minted,
) -> ExecSpec {
    let own = match creds {
        RunCreds::Static(..) => return super::sandbox::wrap(&state.config, spec, access),
        RunCreds::AwsRole(r) => super::sandbox::aws(&state.config, &r.alias).read_only,
        RunCreds::Kube(k) => super::sandbox::kubectl(&state.config, &k.alias).read_only,
    };
    let mut access = access.clone();
    access.read_only.retain(|p| !own.contains(p));
    access
        .read_only
        .extend(minted.dir.iter().map(|d| d.path().to_path_buf()));
    super::sandbox::wrap(&state.config, spec, &access)
}

/// `spec` with the minted environment and arguments, and what is left of the deadline.
pub fn with_minted(mut spec: ExecSpec, m: &Minted, deadline: tokio::time::Instant) -> ExecSpec {
    // The minted values win over any the spec had (the static fallback's file variables).
    spec.env
        .retain(|(k, _)| !m.env.iter().any(|(mk, _)| mk == k));
    spec.env.extend(m.env.iter().cloned());
    for arg in &m.args {
        let flag = arg.split_once('=').map_or(arg.as_str(), |(f, _)| f);
        match spec
            .argv
            .iter_mut()
            .find(|a| a.split_once('=').is_some_and(|(f, _)| f == flag))
        {
            Some(a) => a.clone_from(arg),
            None => spec.argv.insert(1.min(spec.argv.len()), arg.clone()),
        }
    }
    spec.timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
    spec
}

/// How kubectl on `alias` gets its credentials for `purpose`: a minted ServiceAccount token
/// when one is configured, else the configured kubeconfig as is (the static fallback).
pub fn kube_creds(state: &Base, alias: &str, purpose: super::kube_token::Purpose) -> RunCreds {
    use super::kube_token::{KubeToken, Purpose};
    let configured = state.config.clusters.get(alias);
    let account = configured.and_then(|c| match purpose {
        Purpose::Read => c.read_service_account.clone(),
        Purpose::DryRun => c.dry_run_service_account.clone(),
    });
    match (configured, account) {
        (Some(c), Some(account)) if c.kubeconfig.is_some() => RunCreds::Kube(KubeToken {
            alias: alias.to_string(),
            kubeconfig: c.kubeconfig.clone().unwrap_or_default(),
            context: c.context.clone().unwrap_or_else(|| alias.to_string()),
            account,
            audience: c.audience.clone().unwrap_or_default(),
        }),
        _ => {
            let what = state.config.cluster(alias).map_or_else(
                || "none".to_string(),
                |t| {
                    let context = t.context.as_deref().unwrap_or(alias);
                    format!("static kubeconfig, context {context}")
                },
            );
            RunCreds::Static(KUBE_DETAIL, what)
        }
    }
}

/// Mint `creds` and run `spec` to its end with them, sandboxed with `access` (background work
/// with no job: discovery, a change's dry run). The per-run directory is removed when it ends.
pub async fn run_to_end(
    state: &Base,
    creds: &RunCreds,
    access: &Access,
    spec: ExecSpec,
) -> ExecResult {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + spec.timeout;
    match tokio::time::timeout(spec.timeout, creds.mint(state, &Requester::default())).await {
        Ok(Ok(m)) => {
            let spec = with_minted(spec, &m, deadline);
            let spec = sandboxed(state, creds, access, spec, &m);
            let r = slipway_infra::exec::run_to_end(spec).await;
            drop(m);
            r
        }
        Ok(Err(why)) => {
            let why = format!("couldn't get read credentials ({why})");
            let end = slipway_infra::exec::ExecEnd::SpawnFailed(why.clone());
            super::outcome::text_result(end, &why, started)
        }
        Err(_) => failed_result("getting read credentials timed out", started),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn minted_values_replace_the_static_ones_and_the_kubeconfig_flag() {
        let spec = ExecSpec {
            argv: [
                "kubectl",
                "--kubeconfig=/static",
                "--context=prod",
                "get",
                "pods",
            ]
            .map(String::from)
            .to_vec(),
            env: vec![("AWS_SHARED_CREDENTIALS_FILE".into(), "/static/creds".into())],
            cwd: ".".into(),
            timeout: Duration::from_secs(10),
            output_cap: 10,
            kill_grace: Duration::from_secs(1),
        };
        let m = Minted {
            env: vec![("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into())],
            args: vec![
                "--kubeconfig=/run/kubeconfig".into(),
                "--context=run".into(),
            ],
            dir: None,
            detail: (KUBE_DETAIL, "ns/sa".into()),
        };
        let out = with_minted(
            spec,
            &m,
            tokio::time::Instant::now() + Duration::from_secs(5),
        );
        assert_eq!(
            out.argv,
            [
                "kubectl",
                "--kubeconfig=/run/kubeconfig",
                "--context=run",
                "get",
                "pods"
            ]
        );
        assert_eq!(
            out.env,
            [(
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                "/dev/null".to_string()
            )]
        );
        assert!(out.timeout <= Duration::from_secs(5));
        assert!(!format!("{m:?}").contains("kubeconfig"));
    }
}
