//! The Google Workspace directory sync. Google doesn't push SCIM to custom apps, so the bridge
//! pulls: through the Admin SDK Directory API, as a service account acting for an admin
//! (domain-wide delegation, read-only scopes), it reads every user, every admin-created group
//! and each group's members, and writes them into the directory as `Source::Google` records.
//! People then resolve through the directory as they do for SCIM (`identities.provider: google`
//! takes people only from these records).
//!
//! - `token`: the service account's assertion and the cached access token;
//! - `http`: one capped, time-limited exchange over the bridge's hyper/rustls client;
//! - `api`: the Directory API calls (paged lists, `users.watch`, `channels.stop`);
//! - `model`: Google's resources as read, and the directory records they become;
//! - `apply`: a complete read written into the store (only Google's own records change);
//! - `sync`: one run (fetch all, then apply, mark, audit, count);
//! - `service`: the schedule (start, interval, pushes, channel renewal).
//!
//! The push endpoint itself (`POST /google/notify`) is ingress, in `app::google`: it checks the
//! channel token and calls [`GoogleSync::trigger`]. This module knows no HTTP ingress.

mod api;
mod apply;
mod error;
mod http;
pub mod model;
mod service;
mod sync;
pub mod token;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use slipway_infra::audit_writer::AuditWriter;

pub use apply::{Counts, Report, apply};
pub use error::GoogleError;
pub use model::Snapshot;
pub use service::GoogleSync;

use crate::clock::{Clock, Ids};
use crate::config::GoogleConfig;
use crate::identity::DirectoryStore;
use crate::metrics::GoogleMetrics;

/// What the sync writes with and reports to.
#[derive(Debug, Clone)]
pub struct Sinks {
    pub audit: AuditWriter,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn Ids>,
    pub metrics: GoogleMetrics,
    /// The bridge's count of audit writes that failed.
    pub audit_failures: Counter,
    /// What to wake when who people are changed (`People::changes`).
    pub changed: Arc<tokio::sync::Notify>,
    /// Only the leader syncs (one replica reads Google for all of them).
    pub leader: crate::shared::Leader,
    /// The shared Redis, through which a push received by any replica reaches the leader.
    pub redis: Option<crate::shared::Redis>,
}

/// Start the sync task (it runs at once, then on its schedule) and return its handle.
pub fn start(
    config: &GoogleConfig,
    store: Arc<dyn DirectoryStore>,
    sinks: Sinks,
) -> Result<GoogleSync, String> {
    let tokens = token::Tokens::new(config, sinks.clock.clone()).map_err(|e| e.to_string())?;
    let api = Arc::new(api::DirectoryApi::new(
        &config.api_url,
        &config.customer,
        tokens,
    ));
    let channels = config.push.as_ref().map(|push| {
        service::Channels::new(
            api.clone(),
            push.url.clone(),
            push.channel_token.clone(),
            sinks.ids.clone(),
            sinks.clock.clone(),
            sinks.metrics.clone(),
        )
    });
    let (leader, redis) = (sinks.leader.clone(), sinks.redis.clone());
    let syncer = sync::Syncer {
        api,
        store,
        audit: sinks.audit,
        clock: sinks.clock,
        ids: sinks.ids,
        metrics: sinks.metrics,
        audit_failures: sinks.audit_failures,
        changed: sinks.changed,
    };
    let service = service::Service::new(syncer, config.sync_interval, channels, leader);
    let handle = service.handle(redis);
    tokio::spawn(service.run());
    Ok(handle)
}
