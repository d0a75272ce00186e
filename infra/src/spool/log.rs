//! The read side of one writer's spool, shared between the appending [`Spool`](super::Spool) and
//! its consumers (the S3 mirror, the Jira and webhook sinks). Consumers read and move their own
//! named cursors without ever taking the writer's lock, so a slow cursor fsync or a large read
//! never delays an append, and so never delays a Slack ack.
//!
//! What consumers get is checked against the signed checkpoints first ([`SpoolLog::pending`]):
//! a file changed on disk after its records were signed is never delivered, so a forgery can't
//! reach the Object Lock mirror or a SIEM.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use slipway_core::audit::{AuditRecord, Checkpoint, GENESIS_HASH, WriterAllowlist, compute_hash};
use tokio::sync::watch;

use super::files::{CursorFile, parse_line, read_cursor, tmp_path, write_cursor};
use super::{Result, SpoolError, io_err, len64};

/// The S3 mirror's cursor. Its file is `<writer>.mirrored`, as it was before named cursors.
pub const MIRROR_CURSOR: &str = "mirrored";

const MAX_CURSOR_NAME: usize = 32;

/// Byte offsets of the durable lines and checkpoints. Only ever grows: a failed append is cut
/// back before it is published here, so every published offset stays valid.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// `offsets[i]` is where the line of seq `i + 1` starts.
    offsets: Vec<u64>,
    /// The end of the last durable line.
    len: u64,
    /// `(seq, offset)` of each checkpoint line; the last one covers the last durable record.
    checkpoints: Vec<(u64, u64)>,
    checkpoints_len: u64,
    latest: Option<Checkpoint>,
}

impl Index {
    pub(super) fn new(
        offsets: Vec<u64>,
        len: u64,
        checkpoints: Vec<(u64, u64)>,
        checkpoints_len: u64,
        latest: Option<Checkpoint>,
    ) -> Index {
        Index {
            offsets,
            len,
            checkpoints,
            checkpoints_len,
            latest,
        }
    }
}

/// One writer's files.
#[derive(Debug)]
pub(super) struct Files {
    pub dir: PathBuf,
    pub path: PathBuf,
    pub checkpoints: PathBuf,
    pub stem: String,
    pub writer: String,
}

/// Records a consumer has not acknowledged, checked against the signed checkpoints, and those
/// checkpoints (the last one covers the last record).
#[derive(Debug, Default)]
pub struct Pending {
    pub records: Vec<AuditRecord>,
    pub checkpoints: Vec<Checkpoint>,
}

/// One named cursor: the last seq its consumer acknowledged, and the file that keeps it.
#[derive(Debug)]
struct Slot {
    path: PathBuf,
    seq: AtomicU64,
    /// Serialises writers of this cursor's file.
    write: Mutex<()>,
}

/// See the module docs. Obtain it with [`Spool::log`](super::Spool::log).
#[derive(Debug)]
pub struct SpoolLog {
    dir: PathBuf,
    path: PathBuf,
    checkpoints_path: PathBuf,
    stem: String,
    writer: String,
    writers: Arc<WriterAllowlist>,
    index: RwLock<Index>,
    /// The last durable seq; consumers wait on it for new records.
    durable: watch::Sender<u64>,
    cursors: Mutex<BTreeMap<String, Arc<Slot>>>,
}

impl SpoolLog {
    pub(super) fn new(files: Files, index: Index, writers: Arc<WriterAllowlist>) -> SpoolLog {
        let (durable, _) = watch::channel(len64(index.offsets.len()));
        SpoolLog {
            dir: files.dir,
            path: files.path,
            checkpoints_path: files.checkpoints,
            stem: files.stem,
            writer: files.writer,
            writers,
            index: RwLock::new(index),
            durable,
            cursors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes lines that are now durable and signed (after both fsyncs).
    pub(super) fn extend(
        &self,
        offsets: Vec<u64>,
        len: u64,
        checkpoint: (u64, u64),
        checkpoints_len: u64,
        latest: Checkpoint,
    ) {
        let seq = {
            let mut index = crate::sync::write(&self.index);
            index.offsets.extend(offsets);
            index.len = len;
            index.checkpoints.push(checkpoint);
            index.checkpoints_len = checkpoints_len;
            index.latest = Some(latest);
            len64(index.offsets.len())
        };
        self.durable.send_replace(seq);
    }

    /// The checkpoint file.
    pub fn checkpoints_path(&self) -> &Path {
        &self.checkpoints_path
    }

    /// The newest signed checkpoint: the head every acknowledged record is under, to anchor in
    /// git or anywhere else outside the host.
    pub fn latest_checkpoint(&self) -> Option<Checkpoint> {
        crate::sync::read(&self.index).latest.clone()
    }

    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// The writer id as it appears in file names and mirror keys (percent-encoded, no `/`).
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last durable seq (0: none yet).
    pub fn last_seq(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Changes whenever records become durable, to wake a consumer waiting for work.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    /// Up to `limit` durable records after seq `after`, oldest first, in one read.
    pub fn read_after(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let (from, to, count) = {
            let index = crate::sync::read(&self.index);
            let end = start.saturating_add(limit).min(index.offsets.len());
            let Some(&from) = index.offsets.get(start).filter(|_| start < end) else {
                return Ok(Vec::new());
            };
            let to = index.offsets.get(end).copied().unwrap_or(index.len);
            (from, to, end - start)
        };
        let size = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
        let mut buf = vec![0; size];
        let mut file = File::open(&self.path).map_err(io_err(&self.path, "open for reading"))?;
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(io_err(&self.path, "read pending records"))?;

        let mut records = Vec::with_capacity(count);
        let mut offset = from;
        for (i, line) in buf.split_inclusive(|&b| b == b'\n').enumerate() {
            let seq = len64(start + i + 1);
            let corrupt = |reason: String| SpoolError::Corrupt {
                path: self.path.clone(),
                line: seq,
                offset,
                reason,
            };
            let body = line
                .strip_suffix(b"\n")
                .ok_or_else(|| corrupt("line is cut short".into()))?;
            let record = parse_line(body).map_err(corrupt)?;
            if record.seq != seq {
                return Err(corrupt(format!(
                    "expected seq {seq}, found {}: the file changed under the spool",
                    record.seq
                )));
            }
            offset += len64(line.len());
            records.push(record);
        }
        Ok(records)
    }

    /// The durable record with `seq`, if there is one.
    pub fn record(&self, seq: u64) -> Result<Option<AuditRecord>> {
        if seq == 0 {
            return Ok(None);
        }
        Ok(self.read_after(seq - 1, 1)?.pop())
    }

    /// The last seq cursor `name` acknowledged (0: none). The first call for a name reads and
    /// checks its file: it must name a record this spool holds, by seq and by hash.
    pub fn cursor(&self, name: &str) -> Result<u64> {
        Ok(self.slot(name)?.seq.load(Ordering::Acquire))
    }

    /// Like [`Self::cursor`], but only for a cursor already loaded; 0 otherwise.
    pub(super) fn loaded_cursor(&self, name: &str) -> u64 {
        crate::sync::lock(&self.cursors)
            .get(name)
            .map_or(0, |s| s.seq.load(Ordering::Acquire))
    }

    /// Records cursor `name` has not acknowledged, oldest first: whole signed batches, up to
    /// `limit` records unless one batch alone is longer. They are read back from disk and checked
    /// against the signed checkpoints (links, hashes, the signed hash at each checkpoint); a
    /// mismatch is [`SpoolError::Tampered`] and nothing is returned.
    pub fn pending(&self, name: &str, limit: usize) -> Result<Pending> {
        let cursor = self.cursor(name)?;
        let (before, range) = {
            let index = crate::sync::read(&self.index);
            let cps = &index.checkpoints;
            let first = cps.partition_point(|(s, _)| *s <= cursor);
            if first == cps.len() {
                return Ok(Pending::default());
            }
            let reach = cursor.saturating_add(len64(limit));
            let last = cps.partition_point(|(s, _)| *s <= reach).max(first + 1) - 1;
            let end = cps
                .get(last + 1)
                .map_or(index.checkpoints_len, |(_, offset)| *offset);
            let start = cps
                .get(first.saturating_sub(1))
                .map_or(0, |(_, offset)| *offset);
            (first > 0, (start, end))
        };
        let mut checkpoints = self.read_checkpoints(range)?;
        let previous = if before {
            Some(checkpoints.remove(0))
        } else {
            None
        };
        let start = previous.as_ref().map_or(0, |c| c.seq);
        let end = checkpoints.last().map_or(start, |c| c.seq);
        let count = usize::try_from(end - start).unwrap_or(usize::MAX);
        let records = self.read_after(start, count)?;
        self.check_segment(&records, previous.as_ref(), &checkpoints, end)?;
        Ok(Pending {
            records: records.into_iter().filter(|r| r.seq > cursor).collect(),
            checkpoints: checkpoints.into_iter().filter(|c| c.seq > cursor).collect(),
        })
    }

    /// Checkpoint lines between two byte offsets, each verified against the allowlist.
    fn read_checkpoints(&self, (from, to): (u64, u64)) -> Result<Vec<Checkpoint>> {
        let path = &self.checkpoints_path;
        let size = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
        let mut buf = vec![0; size];
        let mut file = File::open(path).map_err(io_err(path, "open for reading"))?;
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(io_err(path, "read checkpoints"))?;
        let mut out = Vec::new();
        for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let bad = |reason: String| SpoolError::Tampered {
                path: path.clone(),
                seq: out.last().map_or(0, |c: &Checkpoint| c.seq + 1),
                reason,
            };
            let cp: Checkpoint = serde_json::from_slice(line)
                .map_err(|e| bad(format!("has an unreadable checkpoint ({e})")))?;
            self.writers
                .verify(&cp)
                .map_err(|e| bad(format!("has a checkpoint that does not verify ({e})")))?;
            out.push(cp);
        }
        Ok(out)
    }

    /// `records` must run from just after `previous` to `end`, link and hash correctly, and hold
    /// each checkpoint's signed hash at its seq.
    fn check_segment(
        &self,
        records: &[AuditRecord],
        previous: Option<&Checkpoint>,
        checkpoints: &[Checkpoint],
        end: u64,
    ) -> Result<()> {
        let tampered = |seq: u64, reason: &str| SpoolError::Tampered {
            path: self.path.clone(),
            seq,
            reason: reason.to_string(),
        };
        let mut prev = previous.map_or(GENESIS_HASH, |c| c.hash.as_str());
        let mut signed = checkpoints.iter().peekable();
        for r in records {
            if r.writer != self.writer || r.prev_hash != prev {
                return Err(tampered(r.seq, "does not link to the record before it"));
            }
            if compute_hash(r) != r.hash {
                return Err(tampered(r.seq, "no longer matches its hash"));
            }
            if let Some(cp) = signed.next_if(|c| c.seq == r.seq)
                && cp.hash != r.hash
            {
                return Err(tampered(r.seq, "is not the record its writer signed"));
            }
            prev = &r.hash;
        }
        if records.last().map(|r| r.seq) != Some(end) || signed.next().is_some() {
            return Err(tampered(end, "is missing"));
        }
        Ok(())
    }

    /// Records not yet acknowledged by cursor `name`.
    pub fn depth(&self, name: &str) -> Result<u64> {
        Ok(self.last_seq().saturating_sub(self.cursor(name)?))
    }

    /// Moves cursor `name` to `up_to_seq`, persisted atomically so a restart resumes from it. A
    /// seq at or below the cursor is a no-op: a retried delivery never moves it back.
    pub fn mark(&self, name: &str, up_to_seq: u64) -> Result<()> {
        let slot = self.slot(name)?;
        let _writing = crate::sync::lock(&slot.write);
        if up_to_seq <= slot.seq.load(Ordering::Acquire) {
            return Ok(());
        }
        let beyond = || SpoolError::BeyondEnd {
            path: self.path.clone(),
            seq: up_to_seq,
            last: self.last_seq(),
        };
        let record = self.record(up_to_seq)?.ok_or_else(beyond)?;
        let cursor = CursorFile {
            writer: self.writer.clone(),
            seq: record.seq,
            hash: record.hash,
        };
        write_cursor(&self.dir, &slot.path, &cursor)?;
        slot.seq.store(up_to_seq, Ordering::Release);
        Ok(())
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>> {
        let mut cursors = crate::sync::lock(&self.cursors);
        if let Some(slot) = cursors.get(name) {
            return Ok(slot.clone());
        }
        check_name(name)?;
        let path = self.dir.join(format!("{}.{name}", self.stem));
        let seq = match read_cursor(&path, &self.writer)? {
            None => 0,
            Some(c) => self.check_cursor(&path, &c)?,
        };
        // A leftover from a crash while the cursor was being replaced; the rename never happened.
        let _ = std::fs::remove_file(tmp_path(&path));
        let slot = Arc::new(Slot {
            path,
            seq: AtomicU64::new(seq),
            write: Mutex::new(()),
        });
        cursors.insert(name.to_string(), slot.clone());
        Ok(slot)
    }

    /// The cursor must name a record that exists, by seq and hash; otherwise the spool file was
    /// lost or replaced after records were delivered, and resuming would re-use delivered seqs.
    fn check_cursor(&self, path: &Path, cursor: &CursorFile) -> Result<u64> {
        let bad = |reason: String| SpoolError::Cursor {
            path: path.to_path_buf(),
            reason,
        };
        let last = self.last_seq();
        if cursor.seq > last {
            return Err(bad(format!(
                "says seq {} was delivered but the spool ends at seq {last}: the spool lost records",
                cursor.seq
            )));
        }
        if cursor.seq > 0 {
            let held = self.record(cursor.seq)?.map(|r| r.hash);
            if held.as_deref() != Some(cursor.hash.as_str()) {
                return Err(bad(format!(
                    "records seq {} with a different hash than the spool holds: the spool was replaced",
                    cursor.seq
                )));
            }
        }
        Ok(cursor.seq)
    }
}

/// Cursor names become file extensions: short, lowercase, no dots.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_CURSOR_NAME
        && name != super::SPOOL_EXT
        && name != super::CHECKPOINT_EXT
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpoolError::InvalidCursor {
            name: name.to_string(),
        })
    }
}
