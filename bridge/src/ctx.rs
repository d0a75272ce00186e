//! What the domain services (reads and change requests) share: [`Base`] plus the audit spool,
//! the work queue, the discovery cache, the private outputs, the directory and who people are. No ingress state (replay cache,
//! event dedupe, rejection tallies) is reachable from here.

use std::sync::Arc;

use slipway_core::audit::{Actor, AuditRecord, EventKind};
use slipway_core::policy::{Identity, SlackUser};
use slipway_infra::audit_writer::AuditWriter;

use crate::base::Base;
use crate::exec::discovery::Discovery;
use crate::exec::queue::Runs;
use crate::identity::DirectoryStore;
use crate::identity::links::Link;
use crate::identity::{People, Resolved};
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
    /// Each person's last runs, and the App Homes out of date.
    pub recent: crate::recent::Recent,
    /// Slack user → identity: the static list, the directory and the links between them.
    pub people: People,
    /// The identity provider's people and groups, when SCIM or the Google sync is configured
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

    /// Who a Slack user is right now. Every command and click asks again, so a person the IdP
    /// or Slack switched off is refused at once; a link made on the way is audited.
    pub async fn who(&self, user: &SlackUser) -> Resolved {
        let resolved = self.people.resolve(&self.policy(), user).await;
        if let Resolved::Known(k) = &resolved
            && let Some(link) = &k.new_link
        {
            let _ = self
                .record_link(user, k.source.as_str(), link, Some(&k.identity))
                .await;
        }
        resolved
    }

    /// [`Ctx::who`] for a click or a step that needs someone known: the identity, or the
    /// sentence that says why not (deactivated, unknown and how to become known).
    pub async fn person(&self, user: &SlackUser) -> Result<Identity, String> {
        match self.who(user).await {
            Resolved::Known(k) => Ok(k.identity),
            Resolved::Refused(why) => Err(format!("{why}.")),
            Resolved::Unknown(hint) => Err(format!(
                "Slipway doesn't know you; ask {} to add you{}.",
                self.policy().support(),
                hint.map(|h| format!(", or {h}")).unwrap_or_default()
            )),
        }
    }

    /// An `Identity` record for a new Slack → directory link; `Err` when it couldn't be written
    /// (already counted and logged).
    pub async fn record_link(
        &self,
        user: &SlackUser,
        source: &str,
        link: &Link,
        identity: Option<&Identity>,
    ) -> Result<(), String> {
        let record = AuditRecord::new(EventKind::Identity, self.ids.next(), self.clock.now())
            .with_actor(Actor::slack(user, identity, None))
            .with_details(serde_json::json!({
                "action": "linked",
                "directory": source,
                "person": link.person,
                "how": link.how,
            }));
        self.record(record, "an identity link").await.map(drop)
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
