//! What a job does once it holds a worker: one process (kubectl, aws), a terraform plan (copy the
//! stack, init when needed, plan), or an Alertmanager API call. Every kind reports progress the
//! same way, stops on the same Cancel token, and ends in a [`Finished`] whose text is redacted.

use std::time::Duration;

use slipway_infra::exec::{self, ExecSpec, Progress};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use super::outcome::{
    Context, Finished, Posted, Shape, bounded, failed_result, follow, text_result,
};
use super::silence::SilenceWork;
use super::terraform::PlanWork;
use crate::base::Base;

/// The work of a job.
#[derive(Debug, Clone)]
pub enum Work {
    /// One process, its output rendered as `shape` says, sandboxed with `access` when it
    /// starts (the audit record keeps the tool's argv, not the sandbox's).
    Process {
        spec: ExecSpec,
        shape: Shape,
        access: super::sandbox::Access,
    },
    /// `/tf plan`.
    TfPlan(Box<PlanWork>),
    /// `/silence`.
    Silence(SilenceWork),
    /// `/gcloud`: a process that needs a freshly minted token first.
    Gcloud(Box<super::gcloud::GcloudWork>),
    /// A process that needs its read credentials minted first (an AWS role session, a
    /// Kubernetes ServiceAccount token), or that names the static ones it uses.
    Minted(Box<super::creds::MintedWork>),
}

impl Work {
    /// The whole run's time limit.
    pub fn timeout(&self) -> Duration {
        match self {
            Work::Process { spec, .. } => spec.timeout,
            Work::TfPlan(p) => p.timeout,
            Work::Silence(s) => s.timeout,
            Work::Gcloud(g) => g.timeout,
            Work::Minted(m) => m.spec.timeout,
        }
    }

    /// Tell the work who it runs for (session tags, request reasons).
    pub fn set_requester(&mut self, requester: &super::creds::Requester) {
        match self {
            Work::Gcloud(g) => {
                g.reason = super::gcloud::reason(
                    &requester.subject,
                    &requester.slack_user,
                    &requester.decision,
                );
            }
            Work::Minted(m) => m.requester = requester.clone(),
            Work::TfPlan(p) => p.requester = requester.clone(),
            Work::Process { .. } | Work::Silence(_) => {}
        }
    }
}

/// Start the work. Returns at once: progress on the watch channel, the outcome on the handle.
/// Cancelling `cancel` stops whatever is running (a process group, or an API call).
pub fn start(
    state: &Base,
    work: Work,
    ctx: Context,
    cancel: CancellationToken,
) -> (watch::Receiver<Progress>, tokio::task::JoinHandle<Finished>) {
    match work {
        Work::Process {
            spec,
            shape,
            access,
        } => {
            let argv = spec.argv.clone();
            let running = exec::start(super::sandbox::wrap(&state.config, spec, &access));
            let progress = running.progress.clone();
            let done = tokio::spawn(async move {
                let result = follow(running, &cancel).await;
                Finished::process(result, argv, shape)
            });
            (progress, done)
        }
        Work::TfPlan(plan) => {
            let (tx, rx) = watch::channel(Progress::default());
            let done = tokio::spawn((*plan).run(ctx, tx, cancel));
            (rx, done)
        }
        Work::Gcloud(gcloud) => {
            let (tx, rx) = watch::channel(Progress::default());
            let state = state.clone();
            let done = tokio::spawn(async move { gcloud.run(state, tx, cancel).await });
            (rx, done)
        }
        Work::Minted(m) => {
            let (tx, rx) = watch::channel(Progress::default());
            let state = state.clone();
            let done = tokio::spawn(async move { m.run(state, tx, cancel).await });
            (rx, done)
        }
        Work::Silence(silence) => {
            let (_tx, rx) = watch::channel(Progress::default());
            let state = state.clone();
            let done = tokio::spawn(async move { silence.run(&state, ctx, cancel).await });
            (rx, done)
        }
    }
}
