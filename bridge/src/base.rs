//! What every layer below the ingress may use: configuration, policy, the Slack client, the
//! clock and ids, metrics and the work directory. The execution backends take only this, so they
//! can't reach the audit spool, the queue or the change service.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use slipway_core::policy::Policy;

use crate::clock::{Clock, Ids};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::slack::client::Slack;

/// Cheap to clone: one shared allocation.
#[derive(Clone, Debug)]
pub struct Base(Arc<BaseInner>);

#[derive(Debug)]
pub struct BaseInner {
    pub config: Config,
    /// The policy in force (see [`BaseInner::policy`]).
    pub policies: PolicyCell,
    pub slack: Slack,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// Directory commands run in: owned by the bridge, never chosen by a user.
    pub work_dir: PathBuf,
    /// The shared Redis when replicas share state (`SLIPWAY_REDIS_URL`); `None`: embedded.
    pub redis: Option<crate::shared::Redis>,
    /// Replays and Slack retries, caught across replicas when Redis is shared.
    pub gate: crate::shared::Gate,
    /// Mints the short-lived tokens of the GCP read accounts, when `gcp:` is configured.
    pub gcp: Option<crate::config::Live<slipway_infra::gcp::Minter>>,
    /// Who runs the once-per-deployment work (sweeps, pollers): always this process when
    /// embedded, the holder of the Redis lease when shared.
    pub leader: crate::shared::Leader,
    /// This replica's name among its peers (audit writer and a per-process id): its queue
    /// consumer, its lease token, the owner of the runs it holds.
    pub replica: String,
}

impl Base {
    pub fn new(inner: BaseInner) -> Base {
        Base(Arc::new(inner))
    }
}

impl BaseInner {
    /// The policy in force now. Take it once per request: a reload swaps it whole, and the
    /// request keeps judging by the one it started with.
    pub fn policy(&self) -> Arc<Policy> {
        self.policies.current()
    }
}

/// The policy, swappable by a reload (SIGHUP, or a change on the GitOps default branch).
#[derive(Debug)]
pub struct PolicyCell(RwLock<Arc<Policy>>);

impl PolicyCell {
    pub fn new(policy: Policy) -> Self {
        Self(RwLock::new(Arc::new(policy)))
    }

    pub fn current(&self) -> Arc<Policy> {
        slipway_infra::sync::read(&self.0).clone()
    }

    /// Put `policy` in force; returns the one it replaced.
    pub fn replace(&self, policy: Policy) -> Arc<Policy> {
        std::mem::replace(&mut *slipway_infra::sync::write(&self.0), Arc::new(policy))
    }
}

impl std::ops::Deref for Base {
    type Target = BaseInner;
    fn deref(&self) -> &BaseInner {
        &self.0
    }
}
