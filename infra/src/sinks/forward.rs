//! Records another writer made (the runner's), handed on to this process's sinks as they are:
//! never re-sealed into this writer's chain, so the S3 mirror and `audit verify` count each
//! record once, under its own writer.
//!
//! The caller verifies what it appends (chain links and a signed checkpoint). The queue is one
//! append-only JSON-lines file, fsynced before [`ForwardQueue::append`] returns; each sink keeps
//! its own cursor (how many lines it delivered) beside it, so a crash loses nothing and a
//! record is delivered at least once (the sinks are idempotent per record).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use slipway_core::audit::AuditRecord;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Backoff, Sink};
use crate::sync::{lock, read, write};

/// The queue's file in its directory.
const QUEUE: &str = "forwarded.jsonl";

/// See the module docs.
#[derive(Debug)]
pub struct ForwardQueue {
    dir: PathBuf,
    records: RwLock<Vec<AuditRecord>>,
    /// (writer, seq) of every record queued: a record comes in once however often it is shown.
    seen: Mutex<HashSet<(String, u64)>>,
    /// Serialises appends.
    file: Mutex<File>,
    len: watch::Sender<usize>,
}

fn io(path: &Path, what: &str, e: &std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl ForwardQueue {
    /// Opens (or creates) the queue in `dir`.
    pub fn open(dir: &Path) -> Result<ForwardQueue, String> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "creating", &e))?;
        let path = dir.join(QUEUE);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, "opening", &e))?;
        let mut records = Vec::new();
        for (n, line) in BufReader::new(&file).lines().enumerate() {
            let line = line.map_err(|e| io(&path, "reading", &e))?;
            let record: AuditRecord = serde_json::from_str(&line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
            records.push(record);
        }
        let seen = records.iter().map(|r| (r.writer.clone(), r.seq)).collect();
        let (len, _) = watch::channel(records.len());
        Ok(ForwardQueue {
            dir: dir.to_path_buf(),
            records: RwLock::new(records),
            seen: Mutex::new(seen),
            file: Mutex::new(file),
            len,
        })
    }

    /// Queues the records not queued before, durably; how many were new.
    pub fn append(&self, records: &[AuditRecord]) -> Result<usize, String> {
        let mut file = lock(&self.file);
        let mut seen = lock(&self.seen);
        let new: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| !seen.contains(&(r.writer.clone(), r.seq)))
            .collect();
        if new.is_empty() {
            return Ok(0);
        }
        let mut text = String::new();
        for r in &new {
            text.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        let path = self.dir.join(QUEUE);
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| io(&path, "appending to", &e))?;
        let mut all = write(&self.records);
        for r in &new {
            seen.insert((r.writer.clone(), r.seq));
            all.push((*r).clone());
        }
        self.len.send_replace(all.len());
        Ok(new.len())
    }

    /// How many records the queue holds.
    pub fn len(&self) -> usize {
        read(&self.records).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cursor_path(&self, sink: &str) -> PathBuf {
        self.dir.join(format!("{sink}.cursor"))
    }

    /// How many records `sink` delivered.
    pub fn cursor(&self, sink: &str) -> usize {
        std::fs::read_to_string(self.cursor_path(sink))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn mark(&self, sink: &str, delivered: usize) -> Result<(), String> {
        let path = self.cursor_path(sink);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, delivered.to_string())
            .and_then(|()| File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| io(&path, "saving", &e))
    }

    fn at(&self, n: usize) -> Option<AuditRecord> {
        read(&self.records).get(n).cloned()
    }
}

/// Hands the queue's records to `sink`, one at a time in queue order, until `stop`.
pub async fn run<S: Sink>(sink: S, queue: Arc<ForwardQueue>, stop: CancellationToken) {
    let name = sink.name();
    let mut wake = queue.len.subscribe();
    let backoff = Backoff::default();
    let mut failures = 0u32;
    let mut next = queue.cursor(name);
    while !stop.is_cancelled() {
        let Some(record) = queue.at(next) else {
            tokio::select! {
                _ = wake.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = stop.cancelled() => {}
            }
            continue;
        };
        let delivery = sink.deliver(std::slice::from_ref(&record)).await;
        if delivery.delivered == 1 {
            next += 1;
            failures = 0;
            if let Err(e) = queue.mark(name, next) {
                tracing::error!(sink = name, error = %e, "forwarded records: cannot save the cursor");
            }
            continue;
        }
        if let Some(e) = delivery.error {
            tracing::warn!(sink = name, error = %e, writer = %record.writer, seq = record.seq, "forwarding a record failed; will retry");
        }
        let delay = backoff.delay(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use slipway_core::audit::EventKind;

    use super::*;

    fn record(writer: &str, seq: u64) -> AuditRecord {
        let mut r = AuditRecord::new(EventKind::Execution, format!("e{seq}"), Utc::now());
        r.writer = writer.into();
        r.seq = seq;
        r
    }

    #[test]
    fn records_are_queued_once_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let q = ForwardQueue::open(dir.path()).unwrap();
        let batch = [record("runner:1-1", 1), record("runner:1-1", 2)];
        assert_eq!(q.append(&batch).unwrap(), 2);
        assert_eq!(q.append(&batch).unwrap(), 0, "shown again, queued once");
        q.mark("jira", 1).unwrap();
        drop(q);
        let q = ForwardQueue::open(dir.path()).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.append(&batch[1..]).unwrap(), 0);
        assert_eq!(q.cursor("jira"), 1);
        assert_eq!(q.cursor("loki"), 0);
        assert_eq!(q.at(1).unwrap().seq, 2);
    }
}
