//! Starts the audit spool's consumers: the S3 mirror, Jira and the webhook, each a background
//! task on its own spool cursor. None of them is on the ack path: an outage only makes them fall
//! behind (see `slipway_audit_sink_depth` and `_lag_seconds`), and the spool keeps everything.

use std::path::Path;
use std::sync::Arc;

use slipway_infra::s3::{self, S3Mirror};
use slipway_infra::sinks::jira::JiraSink;
use slipway_infra::sinks::webhook::WebhookSink;
use slipway_infra::sinks::{self, Pacing, SinkError, SinkMetrics};
use slipway_infra::spool::SpoolLog;
use tokio_util::sync::CancellationToken;

use crate::config::AuditConfig;
use crate::metrics::AuditSinkMetrics;

/// The running consumers; they stop when this is dropped (with the app state).
#[derive(Debug)]
pub struct AuditSinks {
    stop: CancellationToken,
    /// The names of the started sinks, for logs and tests.
    pub started: Vec<&'static str>,
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
    };
    if config.s3.is_none() && config.jira.is_none() && config.webhook.is_none() {
        return Ok(sinks);
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
        let sink = JiraSink::new(jira.settings(spool_dir))?;
        let (log, metrics, stop) = (log.clone(), metrics.clone(), sinks.stop.clone());
        runtime.spawn(sinks::run(sink, log, metrics, Pacing::default(), stop));
        sinks.started.push("jira");
    }
    if let Some(webhook) = &config.webhook {
        let sink = WebhookSink::new(webhook.clone())?;
        let (log, metrics, stop) = (log.clone(), metrics.clone(), sinks.stop.clone());
        runtime.spawn(sinks::run(sink, log, metrics, Pacing::default(), stop));
        sinks.started.push("webhook");
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
