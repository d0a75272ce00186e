//! Opens the audit spool with its signing key, and starts its consumers: the S3 mirror, Jira,
//! Loki, ServiceNow and the webhook, each a background task on its own spool cursor. None of them is on the ack
//! path: an outage only makes them fall behind (see `slipway_audit_sink_depth` and
//! `_lag_seconds`), and the spool keeps everything.

use std::path::Path;
use std::sync::Arc;

use slipway_core::audit::WriterAllowlist;
use slipway_infra::audit_signer::{AuditSigning, KeyFileSigner};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::s3::{self, S3Mirror};
use slipway_infra::sinks::forward::{self, ForwardQueue};
use slipway_infra::sinks::jira::JiraSink;
use slipway_infra::sinks::loki::LokiSink;
use slipway_infra::sinks::servicenow::ServiceNowSink;
use slipway_infra::sinks::webhook::WebhookSink;
use slipway_infra::sinks::{self, Pacing, Sink, SinkError, SinkMetrics};
use slipway_infra::spool::SpoolLog;
use tokio_util::sync::CancellationToken;

use crate::config::{AuditConfig, Config};
use crate::metrics::AuditSinkMetrics;

/// Opens `writer`'s spool in `<state_dir>/audit`, signed with the configured key file, after
/// checking that every writer with a spool there is one the allowlist names.
pub fn open_spool(config: &Config, writer: &str) -> Result<AuditWriter, String> {
    let dir = config.state_dir.join("audit");
    let key_file = config.audit.signing_key_file.as_ref().ok_or(
        "the audit spool needs a signing key for its checkpoints: create one with `slipway audit \
         keygen --out /etc/slipway/audit.key` (a file only the bridge can read, outside the state \
         directory) and set SLIPWAY_AUDIT_SIGNING_KEY_FILE or `audit.signing.key_file`",
    )?;
    let signer = KeyFileSigner::load(key_file, &[&config.state_dir])?;
    if config.audit.writers.is_none() {
        tracing::warn!(
            writer,
            "audit.writers is not set: only this bridge's own key is trusted; list every writer \
             (bridge and runner) with its public key so the key file can't be swapped unnoticed"
        );
    }
    let signing = AuditSigning::new(Arc::new(signer), config.audit.writers.clone(), writer)?;
    check_writers(&dir, &signing.writers)?;
    AuditWriter::start(&dir, writer, &signing).map_err(|e| e.to_string())
}

/// A spool file of a writer the allowlist doesn't name was put there by someone: refuse to run
/// beside it rather than let it pass as a new chain.
fn check_writers(dir: &Path, allow: &WriterAllowlist) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".jsonl") else {
            continue;
        };
        let writer = slipway_infra::spool::writer_of_stem(stem);
        if !writer.as_deref().is_some_and(|w| allow.allows(w)) {
            return Err(format!(
                "the audit spool directory {} holds {name}, the records of writer {}, which the \
                 allowlist of audit writers does not name ({}): someone added it, or a writer \
                 was renamed. Check it with `slipway audit verify`, then move it out of the \
                 directory or add the writer to `audit.writers`",
                dir.display(),
                writer.map_or_else(
                    || format!("{stem:?} (not a writer id)"),
                    |w| format!("{w:?}")
                ),
                allow.patterns().join(", ")
            ));
        }
    }
    Ok(())
}

/// The running consumers; they stop when this is dropped (with the app state).
#[derive(Debug)]
pub struct AuditSinks {
    stop: CancellationToken,
    /// The names of the started sinks, for logs and tests.
    pub started: Vec<&'static str>,
    /// The runner's records on their way to the sinks above but S3 (which the runner mirrors
    /// to itself); `None` without such a sink.
    pub forward: Option<Arc<ForwardQueue>>,
}

impl AuditSinks {
    /// Runs `sink` on its own spool cursor, and on the forwarded records, until these sinks
    /// are dropped.
    fn spawn<S: Sink>(
        &mut self,
        runtime: &tokio::runtime::Handle,
        sink: S,
        log: &Arc<SpoolLog>,
        metrics: &Arc<dyn SinkMetrics>,
    ) {
        let sink = Arc::new(sink);
        self.started.push(sink.name());
        let (log, metrics, stop) = (log.clone(), metrics.clone(), self.stop.clone());
        if let Some(queue) = &self.forward {
            runtime.spawn(forward::run(sink.clone(), queue.clone(), stop.clone()));
        }
        runtime.spawn(sinks::run(sink, log, metrics, Pacing::default(), stop));
    }
}

impl Drop for AuditSinks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts every configured consumer of the spool in `spool_dir`. Needs a tokio runtime.
pub fn start(
    config: &AuditConfig,
    spool_dir: &Path,
    log: &Arc<SpoolLog>,
    metrics: &AuditSinkMetrics,
) -> Result<AuditSinks, String> {
    let mut sinks = AuditSinks {
        stop: CancellationToken::new(),
        started: Vec::new(),
        forward: None,
    };
    let bridge_side = config.jira.is_some()
        || config.loki.is_some()
        || config.servicenow.is_some()
        || config.webhook.is_some();
    if config.s3.is_none() && !bridge_side {
        return Ok(sinks);
    }
    if bridge_side {
        let dir = spool_dir.with_file_name("audit-forward");
        sinks.forward = Some(Arc::new(ForwardQueue::open(&dir)?));
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "the audit mirror and sinks need a tokio runtime to run on".to_string())?;
    let metrics: Arc<dyn SinkMetrics> = Arc::new(metrics.clone());

    if let Some(settings) = config.s3.clone() {
        let (log, metrics, stop) = (log.clone(), metrics.clone(), sinks.stop.clone());
        runtime.spawn(async move {
            let client = s3::client(&settings).await;
            let mirror = S3Mirror::new(client, settings);
            sinks::run(mirror, log, metrics, Pacing::default(), stop).await;
        });
        sinks.started.push("s3");
    }
    if let Some(jira) = &config.jira {
        sinks.spawn(
            &runtime,
            JiraSink::new(jira.settings(spool_dir))?,
            log,
            &metrics,
        );
    }
    if let Some(loki) = &config.loki {
        sinks.spawn(&runtime, LokiSink::new(loki.clone())?, log, &metrics);
    }
    if let Some(servicenow) = &config.servicenow {
        let mut settings = servicenow.clone();
        settings.changes_file = spool_dir.join("servicenow-changes.json");
        sinks.spawn(&runtime, ServiceNowSink::new(settings)?, log, &metrics);
    }
    if let Some(webhook) = &config.webhook {
        sinks.spawn(&runtime, WebhookSink::new(webhook.clone())?, log, &metrics);
    }
    tracing::info!(sinks = ?sinks.started, "audit sinks started");
    Ok(sinks)
}

/// Checks the S3 bucket before the bridge starts serving: a bucket without versioning or Object
/// Lock (or one that does not exist) is a configuration error that stops startup. S3 being
/// unreachable is not: records wait in the spool and the mirror keeps retrying.
pub async fn preflight(config: &AuditConfig) -> Result<(), String> {
    let Some(settings) = &config.s3 else {
        return Ok(());
    };
    let mirror = S3Mirror::new(s3::client(settings).await, settings.clone());
    match mirror.check_bucket().await {
        Ok(()) => {
            tracing::info!(bucket = %settings.bucket, "audit S3 bucket has versioning and Object Lock");
            Ok(())
        }
        Err(SinkError::Transient(e)) => {
            tracing::warn!(error = %e, "audit S3 bucket unreachable at startup; records stay in the spool until it is");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
