//! The runner's audit trail: the same spool and writer as the bridge (writer id
//! `runner:<run id>-<attempt>[-<target>]`), each batch signed with the runner's own key,
//! flushed to the S3 mirror (records, then the signed checkpoint) before the job ends, because
//! a CI machine's disk does not outlive the job.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use slipway_core::audit::WriterAllowlist;
use slipway_infra::audit_signer::{AuditSigning, KeyFileSigner};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::s3::{self, S3Mirror, S3Settings};
use slipway_infra::sinks::{self, Backoff, NoMetrics, Pacing, Sink as _};
use tokio_util::sync::CancellationToken;

use crate::config::{AuditConfig, S3Config};

/// Longest writer id the spool takes.
const MAX_WRITER: usize = 128;

/// The writer id of one runner job. Run id and attempt keep re-runs apart; the target keeps
/// the jobs of one matrix apart (each writes its own chain). Past the spool's 128-byte limit the
/// end is replaced by a digest of the whole id, so two long targets never share a chain.
pub fn writer_id(run_id: &str, attempt: &str, target: Option<&str>) -> String {
    let mut id = format!("runner:{run_id}-{attempt}");
    if let Some(t) = target {
        id.push('-');
        id.push_str(t);
    }
    if id.len() <= MAX_WRITER {
        return id;
    }
    // `~` never occurs in a target (lock slugs are `[A-Za-z0-9._-]`), so a shortened id can't
    // equal a natural one.
    let digest = hex::encode(&Sha256::digest(id.as_bytes())[..16]);
    let mut keep = MAX_WRITER - digest.len() - 1;
    while !id.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}~{digest}", &id[..keep])
}

/// Opens the job's spool in `spool`, signed with the configured key (`SLIPWAY_AUDIT_SIGNING_KEY_FILE`
/// overrides the config), which must not be in the checkout nor the spool: whoever can change
/// those must not be able to read or swap it.
pub fn open(
    cfg: &AuditConfig,
    lookup: &dyn Fn(&str) -> Option<String>,
    workspace: &Path,
    spool: &Path,
    writer: &str,
) -> Result<AuditWriter, String> {
    let key_file = lookup("SLIPWAY_AUDIT_SIGNING_KEY_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| cfg.signing_key_file.clone())
        .ok_or(
            "audit.signing_key_file (or SLIPWAY_AUDIT_SIGNING_KEY_FILE) is required: the runner \
             signs its audit records with its own Ed25519 key. Write it from a secret to a file \
             outside the checkout (e.g. $RUNNER_TEMP/audit.key, mode 600)",
        )?;
    let signer = KeyFileSigner::load(&key_file, &[workspace, spool])?;
    let writers = WriterAllowlist::from_config(&cfg.writers)?;
    let signing = AuditSigning::new(Arc::new(signer), Some(writers), writer)?;
    let audit = AuditWriter::start(spool, writer, &signing).map_err(|e| e.to_string())?;
    for note in audit.recovered() {
        eprintln!("slipway-runner: audit spool recovery: {note}");
    }
    Ok(audit)
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
        let long = |t: &str| writer_id("42", "1", Some(t));
        let (a, b) = (
            long(&"x".repeat(200)),
            long(&format!("{}y", "x".repeat(199))),
        );
        assert!(slipway_infra::spool::file_stem(&a).is_ok());
        assert_eq!(a.len(), 128);
        assert_ne!(
            a, b,
            "targets that differ past the limit get different writers"
        );
        assert_eq!(
            a,
            long(&"x".repeat(200)),
            "and the same target the same one"
        );
        let unicode = long(&"é".repeat(100));
        assert!(unicode.len() <= 128 && unicode.contains('~'), "{unicode}");
    }
}
