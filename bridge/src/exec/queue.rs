//! The bounded worker pool: a global queue bound, a per-user limit, and the registry of running
//! commands that the Cancel button reaches. When full, the user hears "busy" at once; nothing
//! waits past the ack deadline.
//!
//! Embedded (one replica) all of it is in this process. With shared state (`SLIPWAY_REDIS_URL`)
//! reads go through a Redis Stream every replica's workers take from ([`shared`]), limits are
//! counted in Redis, change steps still run where they were accepted but are recorded there
//! ([`changes`]), and a Cancel click reaches the replica running the command over pub/sub.

pub mod ack;
pub mod changes;
pub mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use slipway_core::command::Tier;
use slipway_core::policy::SlackUser;
use slipway_core::policy::model::Visibility;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::shared::{Shared, WireJob};
use super::work::Work;
use crate::metrics::Metrics;
use crate::shared::Ticket;

/// A command waiting for, or holding, a worker.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub requester: SlackUser,
    pub subject: String,
    pub role: String,
    pub channel: String,
    pub response_url: String,
    pub text: String,
    /// The argv as shown to people.
    pub shown: String,
    pub target: String,
    pub tier: Option<Tier>,
    pub decision_audit_id: String,
    /// What to do: a process, a terraform plan or an API call.
    pub spec: Work,
    /// Who sees the output, as policy decided.
    pub visibility: Visibility,
    /// A protected entry covers the resource.
    pub protected: bool,
    /// Claimed from a replica that stopped answering: the read runs a second time.
    pub retried: bool,
    /// The thread its messages go in (a command from an `@slipway` mention), if any.
    pub thread_ts: Option<String>,
}

/// A change step (a dry run, opening a PR): it holds a pool slot and counts against its
/// requester's limit like a run, but reports through its own messages.
pub struct ChangeTask {
    /// Its id among the change steps in flight (shared state records it by this).
    pub id: String,
    pub user: String,
    /// Where to say it was interrupted if its replica dies (the command's `response_url`).
    pub report_to: String,
    pub work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for ChangeTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeTask")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What the queue holds.
#[derive(Debug)]
pub enum Queued {
    Run(Box<Job>),
    Change(ChangeTask),
}

impl Queued {
    pub fn user(&self) -> &str {
        match self {
            Queued::Run(j) => &j.requester.user_id,
            Queued::Change(c) => &c.user,
        }
    }
}

/// The outcome of trying to enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Ok,
    /// The user already has this many commands queued or running.
    UserBusy(usize),
    /// The global queue is full.
    Full,
    /// The shared state (Redis) can't be reached: nothing was queued.
    Unavailable,
    /// The gate's deferred check found a replay of a signed request already accepted.
    Replayed,
    /// The gate's deferred check found a retry of an event or trigger already handled.
    Duplicate,
    /// The pending change to take has expired or was taken by another click.
    Gone,
}

/// A running command, as the Cancel button sees it.
#[derive(Debug, Clone)]
struct Handle {
    cancel: CancellationToken,
    requester: String,
    cancelled_by: Option<String>,
}

/// Why a cancel click did nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelError {
    NotRunning,
    NotAllowed,
    /// The shared state (Redis) can't be reached to find or tell the replica running it.
    Unavailable,
}

/// Queue and registry.
#[derive(Debug)]
pub struct Runs {
    tx: mpsc::Sender<Queued>,
    rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    per_user: usize,
    active: Mutex<HashMap<String, usize>>,
    running: Arc<Mutex<HashMap<String, Handle>>>,
    /// The shared queue, when replicas share state.
    shared: Option<Shared>,
}

pub(crate) use slipway_infra::sync::lock;

impl Runs {
    pub fn new(queue: usize, per_user: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            per_user,
            active: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
            shared: None,
        }
    }

    /// The same pool with its reads and limits shared through Redis.
    #[must_use]
    pub fn with_shared(mut self, shared: Shared) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The shared queue, if replicas share state.
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
    }

    /// Try to queue a read without waiting. Shared, `wire` is what goes into the stream (the
    /// worker that takes it rebuilds the job), and the gate's deferred check, the slot and the
    /// entry are one script: the ack's one round trip.
    pub async fn enqueue(
        &self,
        job: Job,
        wire: &WireJob,
        gate: Option<&Ticket>,
        metrics: &Metrics,
    ) -> Enqueued {
        let Some(shared) = &self.shared else {
            return self.admit(Queued::Run(Box::new(job)), metrics);
        };
        let admission = ack::Admission {
            id: &job.id,
            user: &job.requester.user_id,
            gate,
            work: ack::Work::Read(wire),
            take: None,
        };
        from_shared(shared.admit_ack(admission).await).0
    }

    /// Try to queue a change step without waiting, under the same limits as runs. Shared, the
    /// slot is taken in Redis and the step recorded there (with the gate's deferred check, in
    /// one round trip), but it runs here.
    pub async fn enqueue_change(
        &self,
        task: ChangeTask,
        gate: Option<&Ticket>,
        metrics: &Metrics,
    ) -> Enqueued {
        if self.shared.is_none() {
            return self.admit(Queued::Change(task), metrics);
        }
        match self
            .reserve_change(&task.id, &task.user, &task.report_to, gate, None)
            .await
        {
            Ok(_) => self.start_change(task, metrics).await,
            Err(refused) => refused,
        }
    }

    /// Shared state only: take a change step's slot and record it, settling the gate's check
    /// and taking the pending change `take` (a key) in the same round trip. `Ok` holds the
    /// taken change's stored value. Follow with [`Runs::start_change`] (or give it back with
    /// [`Runs::change_done`]).
    pub async fn reserve_change(
        &self,
        id: &str,
        user: &str,
        report_to: &str,
        gate: Option<&Ticket>,
        take: Option<&str>,
    ) -> Result<Option<String>, Enqueued> {
        let Some(shared) = &self.shared else {
            return Err(Enqueued::Unavailable);
        };
        let record = changes::ChangeRecord {
            id: id.to_string(),
            replica: shared.replica.clone(),
            user: user.to_string(),
            report_to: report_to.to_string(),
        };
        let admission = ack::Admission {
            id,
            user,
            gate,
            work: ack::Work::Change(&record),
            take,
        };
        match from_shared(shared.admit_ack(admission).await) {
            (Enqueued::Ok, taken) => Ok(taken),
            (refused, _) => Err(refused),
        }
    }

    /// Run a reserved change step here; if this replica's own queue is full, its reservation
    /// is given back.
    pub async fn start_change(&self, task: ChangeTask, metrics: &Metrics) -> Enqueued {
        let (id, user) = (task.id.clone(), task.user.clone());
        if self.tx.try_send(Queued::Change(task)).is_err() {
            self.change_done(&id, &user).await;
            return Enqueued::Full;
        }
        metrics.queue_depth.inc();
        Enqueued::Ok
    }

    /// After the ack: record where a reserved change step reports if its replica dies.
    pub fn report_change_to(&self, id: &str, user: &str, report_to: &str) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let record = changes::ChangeRecord {
            id: id.to_string(),
            replica: shared.replica.clone(),
            user: user.to_string(),
            report_to: report_to.to_string(),
        };
        tokio::spawn(async move {
            if let Err(e) = shared.report_change_to(&record).await {
                tracing::warn!(error = %e, "could not record where a change step reports");
            }
        });
    }

    /// A change step ended: free its slot (shared: in Redis, and forget its record).
    pub async fn change_done(&self, id: &str, user: &str) {
        match &self.shared {
            None => self.finished(user),
            Some(shared) => {
                if let Err(e) = shared.change_done(id, user).await {
                    tracing::warn!(error = %e, "could not free a change step's slot; it expires");
                }
            }
        }
    }

    fn admit(&self, job: Queued, metrics: &Metrics) -> Enqueued {
        let user = job.user().to_string();
        let mut active = lock(&self.active);
        let mine = active.get(&user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Enqueued::UserBusy(mine);
        }
        match self.tx.try_send(job) {
            Ok(()) => {
                *active.entry(user).or_default() += 1;
                metrics.queue_depth.inc();
                Enqueued::Ok
            }
            Err(_) => Enqueued::Full,
        }
    }

    pub fn finished(&self, user: &str) {
        let mut active = lock(&self.active);
        if let Some(n) = active.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                active.remove(user);
            }
        }
    }

    /// The receiving end, once: the workers take it at start.
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Queued>> {
        lock(&self.rx).take()
    }

    /// Register a run before its Cancel button exists, so every click finds it.
    pub fn register(&self, run_id: &str, requester: &str) -> CancellationToken {
        let cancel = CancellationToken::new();
        lock(&self.running).insert(
            run_id.to_string(),
            Handle {
                cancel: cancel.clone(),
                requester: requester.to_string(),
                cancelled_by: None,
            },
        );
        cancel
    }

    /// Forget a finished run; who cancelled it, if anyone did.
    pub fn unregister(&self, run_id: &str) -> Option<String> {
        lock(&self.running)
            .remove(run_id)
            .and_then(|h| h.cancelled_by)
    }

    /// Cancel a run if `who` is its requester or `is_owner`: here, or (shared) on the replica
    /// running it, which hears it over pub/sub and stops it as if clicked there.
    pub async fn cancel(&self, run_id: &str, who: &str, is_owner: bool) -> Result<(), CancelError> {
        match cancel_in(&self.running, run_id, who, is_owner) {
            Err(CancelError::NotRunning) => {}
            done => return done,
        }
        let Some(shared) = &self.shared else {
            return Err(CancelError::NotRunning);
        };
        let entry = shared
            .running(run_id)
            .await
            .map_err(|_| CancelError::Unavailable)?
            .ok_or(CancelError::NotRunning)?;
        if entry.requester != who && !is_owner {
            return Err(CancelError::NotAllowed);
        }
        shared
            .publish_cancel(run_id, who)
            .await
            .map_err(|_| CancelError::Unavailable)
    }

    /// Stop `run_id` if it runs here, on behalf of `by`: a Cancel another replica took (and
    /// checked), heard by this one's heartbeat.
    pub fn cancel_relayed(&self, run_id: &str, by: &str) {
        cancel_here(&self.running, run_id, by);
    }

    /// Cancel clicks from other replicas, for the life of the process (shared state only).
    pub fn start_cancel_listener(&self) {
        if let Some(shared) = &self.shared {
            changes::listen_for_cancels(shared, self.running.clone());
        }
    }
}

/// Cancel `run_id` here if it runs here and `who` may.
fn cancel_in(
    running: &Mutex<HashMap<String, Handle>>,
    run_id: &str,
    who: &str,
    is_owner: bool,
) -> Result<(), CancelError> {
    let mut running = lock(running);
    let handle = running.get_mut(run_id).ok_or(CancelError::NotRunning)?;
    if handle.requester != who && !is_owner {
        return Err(CancelError::NotAllowed);
    }
    handle.cancelled_by.get_or_insert_with(|| who.to_string());
    handle.cancel.cancel();
    Ok(())
}

/// A remote cancel: stop `run_id` if it runs here, on behalf of `by`.
fn cancel_here(running: &Mutex<HashMap<String, Handle>>, run_id: &str, by: &str) {
    let mut map = lock(running);
    if let Some(handle) = map.get_mut(run_id) {
        handle.cancelled_by.get_or_insert_with(|| by.to_string());
        handle.cancel.cancel();
    }
}

/// The queue's answer, and a taken pending change's stored value.
fn from_shared(r: Result<ack::Admitted, crate::shared::Unavailable>) -> (Enqueued, Option<String>) {
    match r {
        Ok(ack::Admitted::Ok(taken)) => (Enqueued::Ok, taken),
        Ok(ack::Admitted::UserBusy(n)) => (Enqueued::UserBusy(n), None),
        Ok(ack::Admitted::Full) => (Enqueued::Full, None),
        Ok(ack::Admitted::Replayed) => (Enqueued::Replayed, None),
        Ok(ack::Admitted::Duplicate) => (Enqueued::Duplicate, None),
        Ok(ack::Admitted::Gone) => (Enqueued::Gone, None),
        Err(e) => {
            tracing::warn!(error = %e, "could not queue through the shared state");
            (Enqueued::Unavailable, None)
        }
    }
}
