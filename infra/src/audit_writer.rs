//! Group commit in front of the spool: many concurrent callers hand over records, one thread
//! writes them in a batch with a single fsync, and each caller hears back only after its record
//! is durable. This is what lets the Slack ack wait for the audit record (nothing acknowledged is
//! lost to `kill -9`) without an fsync per request.

use std::sync::Arc;
use std::thread;

use slipway_core::audit::{AuditRecord, Checkpoint};
use tokio::sync::{mpsc, oneshot};

use crate::audit_signer::AuditSigning;
use crate::spool::{MIRROR_CURSOR, Spool, SpoolError, SpoolLog};

/// Most records written per fsync.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<AuditRecord, String>>;

/// A cloneable handle to the writer thread.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::UnboundedSender<(AuditRecord, Reply)>,
    log: Arc<SpoolLog>,
    writer_id: Arc<str>,
    recovered: Arc<[String]>,
    /// Set once a write failed: the writer refuses everything from then on.
    failed: Arc<std::sync::atomic::AtomicBool>,
}

impl AuditWriter {
    /// Open (and recover) the spool and start the writer thread. Each batch is signed by
    /// `signing`'s signer before it is acknowledged.
    pub fn start(
        dir: &std::path::Path,
        writer: &str,
        signing: &AuditSigning,
    ) -> Result<AuditWriter, SpoolError> {
        let spool = Spool::open(dir, writer, signing)?;
        let log = spool.log();
        let recovered = spool.recovered().into();
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = failed.clone();
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(spool, rx, &flag))
            .map_err(|source| SpoolError::Io {
                path: dir.to_path_buf(),
                action: "start the audit writer thread",
                source,
            })?;
        Ok(AuditWriter {
            tx,
            log,
            writer_id: writer.into(),
            recovered,
            failed,
        })
    }

    /// What recovery did when the spool was opened (also logged), for callers that print it.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }

    /// The newest signed checkpoint, covering every record acknowledged so far.
    pub fn latest_checkpoint(&self) -> Option<Checkpoint> {
        self.log.latest_checkpoint()
    }

    /// Append a record; returns the sealed record once it is on disk.
    pub async fn record(&self, record: AuditRecord) -> Result<AuditRecord, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((record, reply))
            .map_err(|_| "the audit writer has stopped".to_string())?;
        rx.await
            .map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Records written but not yet mirrored to S3.
    pub fn depth(&self) -> u64 {
        self.log
            .last_seq()
            .saturating_sub(self.log.cursor(MIRROR_CURSOR).unwrap_or(0))
    }

    /// The spool's read side, for the S3 mirror and the sinks.
    pub fn log(&self) -> Arc<SpoolLog> {
        self.log.clone()
    }

    /// Whether the writer still accepts records: its thread runs and no write has failed.
    /// Readiness (`/readyz`) also checks that the spool directory takes a new file.
    pub fn is_healthy(&self) -> bool {
        !self.tx.is_closed() && !self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn writer_id(&self) -> &str {
        &self.writer_id
    }
}

fn run(
    mut spool: Spool,
    mut rx: mpsc::UnboundedReceiver<(AuditRecord, Reply)>,
    failed_flag: &std::sync::atomic::AtomicBool,
) {
    let mut failed: Option<String> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        if let Some(e) = &failed {
            // Once a write failed, the file's state is uncertain: refuse everything rather than
            // acknowledge records that might not be there.
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
            continue;
        }
        match spool.append_batch(records) {
            Ok(sealed) => {
                for (r, rec) in replies.into_iter().zip(sealed) {
                    let _ = r.send(Ok(rec));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, "audit spool write failed; refusing further records");
                for r in replies {
                    let _ = r.send(Err(msg.clone()));
                }
                failed = Some(msg);
                failed_flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::audit::{EventKind, verify_chain};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_all_durable_and_chained() {
        let dir = tempfile::tempdir().unwrap();
        let w = AuditWriter::start(
            dir.path(),
            "bridge:test",
            &crate::audit_signer::test_signing("bridge:test"),
        )
        .unwrap();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.record(AuditRecord::new(
                    EventKind::Command,
                    format!("ev-{i}"),
                    chrono::DateTime::UNIX_EPOCH,
                ))
                .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        let all = crate::spool::read_all(dir.path()).unwrap();
        assert_eq!(all.len(), 300);
        assert!(verify_chain(&all).is_ok());
        assert_eq!(w.depth(), 300);
    }
}
