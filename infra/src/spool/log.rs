//! The read side of one writer's spool, shared between the appending [`Spool`](super::Spool) and
//! its consumers (the S3 mirror, the Jira and webhook sinks). Consumers read and move their own
//! named cursors without ever taking the writer's lock, so a slow cursor fsync or a large read
//! never delays an append, and so never delays a Slack ack.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use slipway_core::audit::AuditRecord;
use tokio::sync::watch;

use super::files::{CursorFile, parse_line, read_cursor, tmp_path, write_cursor};
use super::{Result, SpoolError, io_err, len64};

/// The S3 mirror's cursor. Its file is `<writer>.mirrored`, as it was before named cursors.
pub const MIRROR_CURSOR: &str = "mirrored";

const MAX_CURSOR_NAME: usize = 32;

/// Byte offsets of the durable lines. Only ever grows: a failed append is cut back before it is
/// published here, so every published offset stays valid.
#[derive(Debug, Default)]
struct Index {
    /// `offsets[i]` is where the line of seq `i + 1` starts.
    offsets: Vec<u64>,
    /// The end of the last durable line.
    len: u64,
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
    stem: String,
    writer: String,
    index: RwLock<Index>,
    /// The last durable seq; consumers wait on it for new records.
    durable: watch::Sender<u64>,
    cursors: Mutex<BTreeMap<String, Arc<Slot>>>,
}

impl SpoolLog {
    pub(super) fn new(
        dir: &Path,
        path: PathBuf,
        stem: String,
        writer: &str,
        offsets: Vec<u64>,
        len: u64,
    ) -> SpoolLog {
        let (durable, _) = watch::channel(len64(offsets.len()));
        SpoolLog {
            dir: dir.to_path_buf(),
            path,
            stem,
            writer: writer.to_string(),
            index: RwLock::new(Index { offsets, len }),
            durable,
            cursors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes lines that are now durable (after their fsync).
    pub(super) fn extend(&self, offsets: Vec<u64>, len: u64) {
        let seq = {
            let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
            index.offsets.extend(offsets);
            index.len = len;
            len64(index.offsets.len())
        };
        self.durable.send_replace(seq);
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
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
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
        self.cursors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map_or(0, |s| s.seq.load(Ordering::Acquire))
    }

    /// Up to `limit` records cursor `name` has not acknowledged, oldest first.
    pub fn pending(&self, name: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        self.read_after(self.cursor(name)?, limit)
    }

    /// Records not yet acknowledged by cursor `name`.
    pub fn depth(&self, name: &str) -> Result<u64> {
        Ok(self.last_seq().saturating_sub(self.cursor(name)?))
    }

    /// Moves cursor `name` to `up_to_seq`, persisted atomically so a restart resumes from it. A
    /// seq at or below the cursor is a no-op: a retried delivery never moves it back.
    pub fn mark(&self, name: &str, up_to_seq: u64) -> Result<()> {
        let slot = self.slot(name)?;
        let _writing = slot.write.lock().unwrap_or_else(PoisonError::into_inner);
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
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
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
