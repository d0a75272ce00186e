//! The secret refresher: every `secrets.refresh_interval` it reads each store reference again
//! and writes changed values into their live cells, so a rotation in the store reaches the
//! bridge without a restart. A value that can't be read keeps the last good one, with a log
//! line and `slipway_secret_staleness_seconds`; past `secrets.max_staleness` the ingress fails
//! closed (see `app::secrets_fresh`) until a read succeeds again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use secrecy::ExposeSecret;
use slipway_infra::secret_store::Stores;

use crate::clock::Clock;
use crate::config::SecretBook;
use crate::metrics::SecretMetrics;

/// Starts the refresher when the configuration has store references. It stops when the book
/// (the configuration holding it) is dropped.
pub fn start(book: &Arc<SecretBook>, clock: Arc<dyn Clock>, metrics: SecretMetrics) {
    let Some(timing) = book.timing else {
        return;
    };
    if book.entries.is_empty() {
        return;
    }
    let weak = Arc::downgrade(book);
    let stores = Stores::new(book.settings.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(timing.refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(book) = Weak::upgrade(&weak) else {
                return;
            };
            refresh(&stores, &book, clock.unix(), &metrics).await;
        }
    });
}

/// One round over every reference.
pub async fn refresh(stores: &Stores, book: &SecretBook, now: i64, metrics: &SecretMetrics) {
    let Some(timing) = book.timing else {
        return;
    };
    let grace = i64::try_from(timing.rotation_grace.as_secs()).unwrap_or(i64::MAX);
    let max = i64::try_from(timing.max_staleness.as_secs()).unwrap_or(i64::MAX);
    let refs: Vec<_> = book.entries.iter().map(|e| e.reference.clone()).collect();
    let results = stores.fetch_each(&refs).await;
    for (entry, (_, result)) in book.entries.iter().zip(results) {
        let label = entry.reference.to_string();
        match result {
            Ok(value) => {
                entry.read_at.store(now, Ordering::Relaxed);
                metrics.refresh(entry.reference.store(), "ok");
                if entry
                    .secret
                    .rotate(value.expose_secret(), now.saturating_add(grace))
                {
                    metrics.rotated(&label);
                    rotated(entry, &label, grace);
                }
            }
            Err(e) => {
                metrics.refresh(entry.reference.store(), "failed");
                let age = now.saturating_sub(entry.read_at.load(Ordering::Relaxed));
                if age > max {
                    tracing::error!(
                        secret = %label, error = %e, stale_s = age, max_staleness_s = max,
                        "secret store unreachable beyond secrets.max_staleness: the bridge \
                         refuses requests until it can read this secret again"
                    );
                } else {
                    tracing::warn!(
                        secret = %label, error = %e, stale_s = age, max_staleness_s = max,
                        "secret refresh failed; the last good value stays in use"
                    );
                }
            }
        }
        let age = now.saturating_sub(entry.read_at.load(Ordering::Relaxed));
        metrics.staleness(&label, age);
    }
}

/// Settings read per use take the new value at once; those built into a client or a signer
/// (the GitHub App key, the signing key, the sealing key, the Google keys, the sinks'
/// credentials) are rebuilt from it at their next use ([`crate::config::Live`]).
fn rotated(entry: &crate::config::BookEntry, label: &str, grace: i64) {
    tracing::info!(
        secret = %label, settings = %entry.fields.join(", "), grace_s = grace,
        "secret rotated in its store: the new value is in force, and the old one is still \
         accepted from peers that sign with it for the grace window"
    );
}
