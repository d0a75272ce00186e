//! What the domain services (reads and change requests) share: [`Base`] plus the audit spool,
//! the work queue, the discovery cache, the private outputs and the directory. No ingress state (replay cache,
//! event dedupe, rejection tallies) is reachable from here.

use std::sync::Arc;

use slipway_core::audit::AuditRecord;
use slipway_infra::audit_writer::AuditWriter;

use crate::base::Base;
use crate::exec::discovery::Discovery;
use crate::exec::queue::Runs;
use crate::identity::DirectoryStore;
use crate::shares::Shares;

/// Cheap to clone: one shared allocation.
#[derive(Clone, Debug)]
pub struct Ctx(Arc<CtxInner>);

#[derive(Debug)]
pub struct CtxInner {
    pub base: Base,
    pub audit: AuditWriter,
    pub runs: Runs,
    /// Which custom kinds each cluster declares namespaced (refreshed in the background).
    pub discovery: Arc<Discovery>,
    /// Private outputs their requesters may still share.
    pub shares: Shares,
    /// The identity provider's people and groups, when SCIM is configured
    /// (`<state_dir>/directory.redb`).
    pub directory: Option<Arc<dyn DirectoryStore>>,
}

impl Ctx {
    pub fn new(inner: CtxInner) -> Ctx {
        Ctx(Arc::new(inner))
    }

    /// A handle that doesn't keep the context alive (for timers that should end with it).
    pub fn downgrade(&self) -> std::sync::Weak<CtxInner> {
        Arc::downgrade(&self.0)
    }

    pub fn upgrade(weak: &std::sync::Weak<CtxInner>) -> Option<Ctx> {
        weak.upgrade().map(Ctx)
    }

    /// Append `record` to the audit spool. A failure is counted and logged as `could not record
    /// {what}`, and returned for the callers that must fail closed.
    pub async fn record(&self, record: AuditRecord, what: &str) -> Result<AuditRecord, String> {
        self.audit.record(record).await.inspect_err(|e| {
            self.metrics.audit_failures.inc();
            tracing::error!(error = %e, "could not record {what}");
        })
    }
}

impl std::ops::Deref for Ctx {
    type Target = CtxInner;
    fn deref(&self) -> &CtxInner {
        &self.0
    }
}

impl std::ops::Deref for CtxInner {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}
