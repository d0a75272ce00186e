//! The sync's schedule, in one task: a run at start, then one every interval (sooner after a
//! failure), and one shortly after Google pushes a change ([`GoogleSync::trigger`], debounced so
//! a burst of notifications is one run). With push configured, the same task keeps a
//! `users.watch` channel open for each event that matters (`add`, `update`, `delete`), renewing
//! each well before it expires and stopping the one it replaces. Runs never overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::api::{DirectoryApi, Watch};
use super::sync::Syncer;
use crate::clock::{Clock, Ids};
use crate::config::Secret;
use crate::metrics::{GoogleMetrics, OutcomeLabels};

/// How long a push waits for more before the run starts.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// After a failed run, the next comes at most this much later.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// The user events a channel is opened for.
const EVENTS: [&str; 3] = ["add", "update", "delete"];
/// The lifetime a channel asks for (Google may grant less).
const CHANNEL_LIFETIME_MS: i64 = 6 * 3600 * 1000;
/// A channel is renewed at least this long before it expires.
const RENEW_MARGIN_MS: i64 = 15 * 60 * 1000;
/// A failed registration is retried after this long.
const CHANNEL_RETRY_MS: i64 = 60 * 1000;

#[derive(Debug, Default)]
struct Wake {
    pending: AtomicBool,
    notify: Notify,
}

impl Wake {
    fn wake(&self) {
        self.pending.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// The running sync, as the ingress sees it: something to poke.
#[derive(Debug, Clone)]
pub struct GoogleSync {
    wake: Arc<Wake>,
    /// With replicas, a push may reach any of them but only the leader syncs: the poke goes
    /// through `<prefix>google-push` to every replica.
    shared: Option<crate::shared::Redis>,
}

impl GoogleSync {
    /// Google says something changed: sync soon. Returns at once.
    pub fn trigger(&self) {
        let Some(redis) = self.shared.clone() else {
            self.wake.wake();
            return;
        };
        let wake = self.wake.clone();
        tokio::spawn(async move {
            let channel = redis.key("google-push");
            let sent = redis
                .run(|mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(1)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            if let Err(e) = sent {
                // The interval sync catches up; wake here in case this replica leads.
                tracing::warn!(error = %e, "could not pass a Google push on to the leader");
                wake.wake();
            }
        });
    }

    /// Every replica hears the pokes; the one that leads acts on them.
    fn listen(&self) {
        if let Some(redis) = &self.shared {
            let wake = self.wake.clone();
            redis.subscribe_forever(redis.key("google-push"), move |_| wake.wake());
        }
    }
}

/// One event's channel.
#[derive(Debug)]
struct Slot {
    event: &'static str,
    current: Option<Watch>,
    /// Unix milliseconds when it is to be (re)registered.
    due_ms: i64,
}

/// The push channels, when push is configured.
#[derive(Debug)]
pub(super) struct Channels {
    pub api: Arc<DirectoryApi>,
    pub address: String,
    pub token: Secret,
    pub ids: Arc<dyn Ids>,
    pub clock: Arc<dyn Clock>,
    pub metrics: GoogleMetrics,
    slots: Vec<Slot>,
}

/// When to renew a channel registered at `now` that expires at `expires` (both ms): halfway,
/// or the margin before it expires, whichever is later.
fn renew_at(now: i64, expires: i64) -> i64 {
    (now + (expires - now) / 2).max(expires - RENEW_MARGIN_MS)
}

impl Channels {
    pub fn new(
        api: Arc<DirectoryApi>,
        address: String,
        token: Secret,
        ids: Arc<dyn Ids>,
        clock: Arc<dyn Clock>,
        metrics: GoogleMetrics,
    ) -> Channels {
        let slots = EVENTS
            .iter()
            .map(|event| Slot {
                event,
                current: None,
                due_ms: 0,
            })
            .collect();
        Channels {
            api,
            address,
            token,
            ids,
            clock,
            metrics,
            slots,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// How long until the next channel is due.
    fn until_due(&self) -> Duration {
        let due = self
            .slots
            .iter()
            .map(|s| s.due_ms)
            .min()
            .unwrap_or(i64::MAX);
        Duration::from_millis(u64::try_from(due - self.now_ms()).unwrap_or(0))
    }

    /// Register every channel that is due; stop the ones they replace.
    async fn renew_due(&mut self) {
        for i in 0..self.slots.len() {
            let now = self.now_ms();
            if self.slots[i].due_ms > now {
                continue;
            }
            let event = self.slots[i].event;
            let id = format!("slipway-{}", self.ids.next());
            let opened = self
                .api
                .watch(
                    event,
                    &id,
                    &self.address,
                    &self.token,
                    now + CHANNEL_LIFETIME_MS,
                )
                .await;
            let outcome = if opened.is_ok() { "ok" } else { "failed" };
            self.metrics
                .channels
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            match opened {
                Ok(watch) => {
                    tracing::info!(%event, channel = %watch.id, "Google push channel open");
                    self.slots[i].due_ms = renew_at(now, watch.expiration_ms);
                    if let Some(old) = self.slots[i].current.replace(watch)
                        && let Err(e) = self.api.stop(&old).await
                    {
                        tracing::warn!(error = %e, channel = %old.id, "stopping a replaced Google push channel");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, %event, "opening a Google push channel; the interval sync goes on");
                    self.slots[i].due_ms = now + CHANNEL_RETRY_MS;
                }
            }
        }
    }
}

/// How often a replica that doesn't lead asks whether it now does.
const FOLLOWER_POLL: Duration = Duration::from_secs(1);

/// The task: runs, waits, renews.
#[derive(Debug)]
pub(super) struct Service {
    pub syncer: Syncer,
    pub interval: Duration,
    pub channels: Option<Channels>,
    wake: Arc<Wake>,
    leader: crate::shared::Leader,
}

impl Service {
    pub fn new(
        syncer: Syncer,
        interval: Duration,
        channels: Option<Channels>,
        leader: crate::shared::Leader,
    ) -> Service {
        Service {
            syncer,
            interval,
            channels,
            wake: Arc::default(),
            leader,
        }
    }

    /// The handle the ingress pokes; with `shared`, pokes reach the leader on any replica.
    pub fn handle(&self, shared: Option<crate::shared::Redis>) -> GoogleSync {
        let handle = GoogleSync {
            wake: self.wake.clone(),
            shared,
        };
        handle.listen();
        handle
    }

    pub async fn run(mut self) {
        loop {
            // One replica syncs for all: a follower checks again within a lease's life.
            if self.leader.lead().await.is_none() {
                tokio::time::sleep(FOLLOWER_POLL).await;
                continue;
            }
            if let Some(c) = &mut self.channels {
                c.renew_due().await;
            }
            let wait = match self.syncer.run_once().await {
                Ok(_) => self.interval,
                Err(_) => self.interval.min(RETRY_AFTER_FAILURE),
            };
            self.wait(Instant::now() + wait).await;
        }
    }

    /// Until the interval ends or a push asks for a run, renewing channels on the way.
    async fn wait(&mut self, until: Instant) {
        let wake = self.wake.clone();
        loop {
            let renew = self
                .channels
                .as_ref()
                .map(|c| Instant::now() + c.until_due());
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = wake.notify.notified() => {
                    if wake.pending.swap(false, Ordering::SeqCst) {
                        tokio::time::sleep(DEBOUNCE).await;
                        wake.pending.store(false, Ordering::SeqCst);
                        return;
                    }
                }
                () = tokio::time::sleep_until(renew.unwrap_or(until)), if renew.is_some() => {
                    if let Some(c) = &mut self.channels {
                        c.renew_due().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_renewed_halfway_or_a_quarter_hour_before_they_expire() {
        let hour = 3600 * 1000;
        assert_eq!(renew_at(0, 6 * hour), 6 * hour - RENEW_MARGIN_MS);
        assert_eq!(renew_at(0, 4000), 2000);
        assert_eq!(renew_at(1000, 1000), 1000);
    }
}
