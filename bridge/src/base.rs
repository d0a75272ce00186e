//! What every layer below the ingress may use: configuration, policy, the Slack client, the
//! clock and ids, metrics and the work directory. The execution backends take only this, so they
//! can't reach the audit spool, the queue or the change service.

use std::path::PathBuf;
use std::sync::Arc;

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
    pub policy: Arc<Policy>,
    pub slack: Slack,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    /// Directory commands run in: owned by the bridge, never chosen by a user.
    pub work_dir: PathBuf,
}

impl Base {
    pub fn new(inner: BaseInner) -> Base {
        Base(Arc::new(inner))
    }
}

impl std::ops::Deref for Base {
    type Target = BaseInner;
    fn deref(&self) -> &BaseInner {
        &self.0
    }
}
