//! The runner's audit trail: the same spool and writer as the bridge (writer id
//! `runner:<run id>-<attempt>[-<target>]`), flushed to the S3 mirror before the job ends,
//! because a CI machine's disk does not outlive the job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::s3::{self, S3Mirror, S3Settings};
use slipway_infra::sinks::{self, Backoff, NoMetrics, Pacing, Sink as _};
use tokio_util::sync::CancellationToken;

use crate::config::S3Config;

/// The writer id of one runner job. Run id and attempt keep re-runs apart; the target keeps
/// the jobs of one matrix apart (each writes its own chain).
pub fn writer_id(run_id: &str, attempt: &str, target: Option<&str>) -> String {
    let mut id = format!("runner:{run_id}-{attempt}");
    if let Some(t) = target {
        id.push('-');
        id.push_str(t);
    }
    id.chars().take(128).collect()
}

/// Upload everything the writer spooled to S3, waiting at most the configured time.
/// `credentials`: temporary credentials for the upload, else the default chain.
pub async fn flush(
    writer: &AuditWriter,
    cfg: &S3Config,
    credentials: Option<aws_sdk_s3::config::Credentials>,
) -> Result<u64, String> {
    let mut settings = S3Settings::new(cfg.bucket.clone(), cfg.prefix.clone(), cfg.retention_days);
    settings.region.clone_from(&cfg.region);
    settings.endpoint_url.clone_from(&cfg.endpoint_url);
    settings.retention.mode = cfg.retention_mode.parse()?;
    let base = s3::client(&settings).await;
    let client = match credentials {
        Some(c) => aws_sdk_s3::Client::from_conf(
            base.config().to_builder().credentials_provider(c).build(),
        ),
        None => base,
    };
    let mirror = S3Mirror::new(client, settings);
    mirror.prepare().await.map_err(|e| e.to_string())?;
    let pending = writer.depth();
    let stop = CancellationToken::new();
    let pacing = Pacing {
        batch: 256,
        backoff: Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        },
        idle_poll: Duration::from_millis(200),
    };
    let task = sinks::spawn(
        mirror,
        writer.log(),
        Arc::new(NoMetrics),
        pacing,
        stop.clone(),
    );
    let deadline = Instant::now() + cfg.flush_timeout.0;
    while writer.depth() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let _ = task.await;
    match writer.depth() {
        0 => Ok(pending),
        left => Err(format!(
            "{left} audit record(s) were not mirrored to s3://{} within {}s; they remain in the local spool",
            cfg.bucket,
            cfg.flush_timeout.0.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_ids_keep_runs_attempts_and_targets_apart() {
        assert_eq!(writer_id("42", "1", None), "runner:42-1");
        assert_eq!(
            writer_id("42", "2", Some("stack-app")),
            "runner:42-2-stack-app"
        );
        assert!(
            slipway_infra::spool::file_stem(&writer_id("42", "1", Some(&"x".repeat(200)))).is_ok()
        );
    }
}
