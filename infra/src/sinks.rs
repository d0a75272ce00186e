//! Consumers of the audit spool: the S3 mirror ([`crate::s3`]), Jira ([`jira`]), Loki
//! ([`loki`]), ServiceNow ([`servicenow`]) and a signed webhook ([`webhook`]). Each runs as its own background task through
//! [`run`], which reads the records its cursor has not acknowledged, hands them to the sink in
//! order, and moves the cursor past what was delivered.
//!
//! The spool is the buffer: a sink that is down (S3 outage, Jira maintenance) only falls behind,
//! retrying with exponential backoff, and never holds up an append or drops a record. Delivery
//! is at least once; each sink makes a repeat harmless (S3: conditional put and compare;
//! Jira: a comment marker; Loki: the same timestamp and line, which Loki drops as a duplicate;
//! webhook: `X-Slipway-Event-Id` for the receiver to dedupe).

mod backoff;
pub mod forward;
pub(crate) mod http;
pub mod jira;
pub mod loki;
pub mod servicenow;
pub mod servicenow_cab;
pub mod webhook;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use slipway_core::audit::{AuditRecord, Checkpoint};
use tokio_util::sync::CancellationToken;

pub use backoff::Backoff;

use crate::credential::Credential;
use crate::spool::{Pending, SpoolError, SpoolLog};

/// How a sink signs in to an HTTP API (Jira, Loki): basic auth with a user and an API token or
/// password, or a bearer token, each read at use (so a rotated secret is sent from the next
/// request on). Never printed.
#[derive(Clone)]
pub enum Auth {
    Basic { user: String, token: Credential },
    Bearer { token: Credential },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { user, .. } => write!(f, "Basic({user}, ***)"),
            Auth::Bearer { .. } => f.write_str("Bearer(***)"),
        }
    }
}

impl Auth {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        match self {
            Auth::Basic { user, token } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", token.get()))
            ),
            Auth::Bearer { token } => format!("Bearer {}", token.get()),
        }
    }
}

/// Why a delivery failed. Every kind is retried with backoff; the kind is the metric label and
/// says what an operator should look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The network, a timeout, throttling or a 5xx: it should pass by itself.
    #[error("{0}")]
    Transient(String),
    /// The target is misconfigured (missing bucket, no Object Lock, bad credentials): it needs
    /// an operator. The sink re-runs its [`Sink::prepare`] checks before the next attempt.
    #[error("{0}")]
    Config(String),
    /// A different record already sits where this one belongs: a forked or replaced chain. The
    /// stored copy is never overwritten; this is an alarm.
    #[error("{0}")]
    Conflict(String),
}

impl SinkError {
    /// The `reason` metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Transient(_) => "transient",
            SinkError::Config(_) => "config",
            SinkError::Conflict(_) => "conflict",
        }
    }
}

/// What [`Sink::deliver`] achieved: the first `delivered` records are done; `error` stopped it.
#[derive(Debug)]
pub struct Delivery {
    pub delivered: usize,
    pub error: Option<SinkError>,
}

impl Delivery {
    /// Delivers `records` one at a time, in order, stopping at the first error (receivers see
    /// the chain in seq order).
    pub async fn in_order<'r, F, Fut>(records: &'r [AuditRecord], mut deliver_one: F) -> Delivery
    where
        F: FnMut(&'r AuditRecord) -> Fut,
        Fut: Future<Output = Result<(), SinkError>>,
    {
        let mut results = Vec::with_capacity(records.len());
        for record in records {
            let result = deliver_one(record).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        Self::from_results(results)
    }

    /// Counts the leading successes of per-record results, keeping the first error.
    pub fn from_results(results: impl IntoIterator<Item = Result<(), SinkError>>) -> Delivery {
        let mut delivered = 0;
        for result in results {
            if let Err(error) = result {
                return Delivery {
                    delivered,
                    error: Some(error),
                };
            }
            delivered += 1;
        }
        Delivery {
            delivered,
            error: None,
        }
    }
}

/// One consumer of the spool.
pub trait Sink: Send + Sync + 'static {
    /// The metric label and log name (`s3`, `jira`, `webhook`).
    fn name(&self) -> &'static str;

    /// The spool cursor this sink moves.
    fn cursor(&self) -> &'static str;

    /// Checks run before the first delivery and after a [`SinkError::Config`] failure.
    fn prepare(&self) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    /// Delivers `records` (consecutive seqs, oldest first). Must be safe to repeat for records
    /// delivered before a crash.
    fn deliver(&self, records: &[AuditRecord]) -> impl Future<Output = Delivery> + Send;

    /// Whether the sink keeps the writers' signed checkpoints (the S3 mirror does). Its cursor
    /// then moves only to a checkpoint it stored, so what it holds always ends signed.
    fn anchors(&self) -> bool {
        false
    }

    /// Stores the checkpoint covering records just delivered. Must be safe to repeat.
    fn anchor(
        &self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = checkpoint;
        async { Ok(()) }
    }
}

/// A shared sink: the spool's drain and the forwarded records' drain use one instance (its
/// issue map, its per-writer order).
impl<S: Sink> Sink for Arc<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn cursor(&self) -> &'static str {
        (**self).cursor()
    }

    fn prepare(&self) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).prepare()
    }

    fn deliver(&self, records: &[AuditRecord]) -> impl Future<Output = Delivery> + Send {
        (**self).deliver(records)
    }

    fn anchors(&self) -> bool {
        (**self).anchors()
    }

    fn anchor(
        &self,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        (**self).anchor(checkpoint)
    }
}

/// Where sinks report, so `infra` does not depend on the bridge's metrics registry.
pub trait SinkMetrics: Send + Sync + fmt::Debug {
    /// Records the sink has not acknowledged.
    fn depth(&self, sink: &'static str, records: u64);
    /// Age in seconds of the oldest record the sink has not acknowledged (0 when caught up).
    fn lag(&self, sink: &'static str, seconds: f64);
    /// Records delivered.
    fn delivered(&self, sink: &'static str, records: u64);
    /// A failed attempt, by [`SinkError::reason`] (or `spool` when the spool could not be read).
    fn failed(&self, sink: &'static str, reason: &'static str);
}

/// Discards everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMetrics;

impl SinkMetrics for NoMetrics {
    fn depth(&self, _: &'static str, _: u64) {}
    fn lag(&self, _: &'static str, _: f64) {}
    fn delivered(&self, _: &'static str, _: u64) {}
    fn failed(&self, _: &'static str, _: &'static str) {}
}

/// How [`run`] paces a sink.
#[derive(Debug, Clone)]
pub struct Pacing {
    /// Most records handed to one [`Sink::deliver`] call.
    pub batch: usize,
    /// Delay after a failure, growing with consecutive failures.
    pub backoff: Backoff,
    /// How often an idle sink looks for records it was not woken for (a lost wake-up is
    /// harmless) and refreshes its lag metric.
    pub idle_poll: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            batch: 256,
            backoff: Backoff::default(),
            idle_poll: Duration::from_secs(5),
        }
    }
}

/// Starts [`run`] on the current tokio runtime.
pub fn spawn<S: Sink>(
    sink: S,
    log: Arc<SpoolLog>,
    metrics: Arc<dyn SinkMetrics>,
    pacing: Pacing,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(sink, log, metrics, pacing, stop))
}

/// Drains the spool into `sink` until `stop` is cancelled.
pub async fn run<S: Sink>(
    sink: S,
    log: Arc<SpoolLog>,
    metrics: Arc<dyn SinkMetrics>,
    pacing: Pacing,
    stop: CancellationToken,
) {
    let mut wake = log.subscribe();
    let mut drain = Drain {
        sink,
        log,
        metrics,
        pacing,
        stop,
        failures: 0,
        prepared: false,
    };
    while !drain.stop.is_cancelled() {
        let Some(batch) = drain.read().await else {
            drain.pause().await;
            continue;
        };
        if batch.records.is_empty() {
            drain.failures = 0;
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(drain.pacing.idle_poll) => {}
                () = drain.stop.cancelled() => {}
            }
            continue;
        }
        drain.round(&batch).await;
    }
}

/// One sink's drain loop state: consecutive failures (for the backoff) and whether the sink's
/// checks have passed since its last configuration error.
struct Drain<S> {
    sink: S,
    log: Arc<SpoolLog>,
    metrics: Arc<dyn SinkMetrics>,
    pacing: Pacing,
    stop: CancellationToken,
    failures: u32,
    prepared: bool,
}

impl<S: Sink> Drain<S> {
    /// The records past the cursor, with the depth and lag metrics updated; `None` (reported)
    /// when the spool can't be read.
    async fn read(&self) -> Option<Pending> {
        let (name, cursor, batch) = (self.sink.name(), self.sink.cursor(), self.pacing.batch);
        match blocking(&self.log, move |log| log.pending(cursor, batch)).await {
            Ok(p) => {
                self.metrics
                    .depth(name, self.log.depth(cursor).unwrap_or_default());
                self.metrics
                    .lag(name, p.records.first().map_or(0.0, age_seconds));
                Some(p)
            }
            Err(e) => {
                tracing::error!(sink = name, error = %e, "audit sink cannot read the spool");
                self.metrics.failed(name, "spool");
                None
            }
        }
    }

    /// Prepare the sink if needed, deliver a batch and move the cursor past what was delivered;
    /// a failure backs off (and a configuration error re-runs the checks next time).
    async fn round(&mut self, batch: &Pending) {
        let (name, cursor) = (self.sink.name(), self.sink.cursor());
        if !self.prepared {
            if let Err(e) = self.sink.prepare().await {
                report(name, &e, &*self.metrics);
                self.pause().await;
                return;
            }
            self.prepared = true;
        }
        let records = &batch.records;
        let (done, error) = deliver(&self.sink, records, &batch.checkpoints).await;
        if let Some(seq) = done {
            if let Err(e) = blocking(&self.log, move |log| log.mark(cursor, seq)).await {
                tracing::error!(sink = name, error = %e, "audit sink cannot save its cursor");
                self.metrics.failed(name, "spool");
            }
            let first = records.first().map_or(seq, |r| r.seq);
            self.metrics.delivered(name, seq.saturating_sub(first) + 1);
            let last = records.last().map(|r| r.seq);
            tracing::debug!(sink = name, up_to = seq, last, "audit records delivered");
        }
        match error {
            None => self.failures = 0,
            Some(e) => {
                if matches!(e, SinkError::Config(_)) {
                    self.prepared = false;
                }
                report(name, &e, &*self.metrics);
                self.pause().await;
            }
        }
    }

    async fn pause(&mut self) {
        pause(&self.pacing, &mut self.failures, &self.stop).await;
    }
}

/// Delivers `records`; returns how far the cursor may move and the first error. A sink that
/// anchors moves only as far as the newest checkpoint the delivered records reach, once it has
/// stored that checkpoint.
async fn deliver<S: Sink>(
    sink: &S,
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
) -> (Option<u64>, Option<SinkError>) {
    let delivery = sink.deliver(records).await;
    let mut error = delivery.error;
    let done = delivery
        .delivered
        .checked_sub(1)
        .and_then(|i| records.get(i))
        .map(|r| r.seq);
    if !sink.anchors() {
        return (done, error);
    }
    let covered = checkpoints
        .iter()
        .rev()
        .find(|c| done.is_some_and(|d| c.seq <= d));
    let anchored = match covered {
        None => None,
        Some(cp) => match sink.anchor(cp).await {
            Ok(()) => Some(cp.seq),
            Err(e) => {
                error.get_or_insert(e);
                None
            }
        },
    };
    (anchored, error)
}

fn report(name: &'static str, e: &SinkError, metrics: &dyn SinkMetrics) {
    metrics.failed(name, e.reason());
    match e {
        SinkError::Transient(_) => {
            tracing::warn!(sink = name, error = %e, "audit sink delivery failed; will retry");
        }
        SinkError::Config(_) | SinkError::Conflict(_) => {
            tracing::error!(sink = name, kind = e.reason(), error = %e, "audit sink delivery failed; will retry");
        }
    }
}

async fn pause(pacing: &Pacing, failures: &mut u32, stop: &CancellationToken) {
    let delay = pacing.backoff.delay(*failures);
    *failures = failures.saturating_add(1);
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = stop.cancelled() => {}
    }
}

/// Spool reads and cursor fsyncs are blocking file I/O: keep them off the async workers.
async fn blocking<T: Send + 'static>(
    log: &Arc<SpoolLog>,
    f: impl FnOnce(&SpoolLog) -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    let log = log.clone();
    match tokio::task::spawn_blocking(move || f(&log)).await {
        Ok(result) => result,
        Err(e) => Err(SpoolError::Io {
            path: std::path::PathBuf::new(),
            action: "run a spool task",
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

fn age_seconds(record: &AuditRecord) -> f64 {
    let age = chrono::Utc::now().signed_duration_since(record.time);
    age.to_std().map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
