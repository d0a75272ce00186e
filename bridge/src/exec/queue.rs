//! The bounded worker pool: a global queue bound, a per-user limit, and the registry of running
//! commands that the Cancel button reaches. When full, the user hears "busy" at once; nothing
//! waits past the ack deadline.

use std::collections::HashMap;
use std::sync::Mutex;

use slipway_core::command::Tier;
use slipway_core::policy::SlackUser;
use slipway_core::policy::model::Visibility;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::work::Work;
use crate::metrics::Metrics;

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
}

/// A change step (a dry run, opening a PR): it holds a pool slot and counts against its
/// requester's limit like a run, but reports through its own messages.
pub struct ChangeTask {
    pub user: String,
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
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    Ok,
    /// The user already has this many commands queued or running.
    UserBusy(usize),
    /// The global queue is full.
    Full,
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
}

/// Queue and registry.
#[derive(Debug)]
pub struct Runs {
    tx: mpsc::Sender<Queued>,
    rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    per_user: usize,
    active: Mutex<HashMap<String, usize>>,
    running: Mutex<HashMap<String, Handle>>,
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
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Try to queue a job without waiting.
    pub fn enqueue(&self, job: Job, metrics: &Metrics) -> Enqueued {
        self.admit(Queued::Run(Box::new(job)), metrics)
    }

    /// Try to queue a change step without waiting, under the same limits as runs.
    pub fn enqueue_change(&self, task: ChangeTask, metrics: &Metrics) -> Enqueued {
        self.admit(Queued::Change(task), metrics)
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

    /// Cancel a run if `who` is its requester or `is_owner`.
    pub fn cancel(&self, run_id: &str, who: &str, is_owner: bool) -> Result<(), CancelError> {
        let mut running = lock(&self.running);
        let handle = running.get_mut(run_id).ok_or(CancelError::NotRunning)?;
        if handle.requester != who && !is_owner {
            return Err(CancelError::NotAllowed);
        }
        handle.cancelled_by.get_or_insert_with(|| who.to_string());
        handle.cancel.cancel();
        Ok(())
    }
}
