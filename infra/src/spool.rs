//! The durable local audit spool: sealed records are appended as JSON lines and fsync'd before
//! the caller hears "ok", so an audit record exists before (or at worst, alongside) the action it
//! describes, even when S3 or the network is down. A later uploader mirrors it, tracked by a
//! cursor file.
//!
//! Layout of a spool directory, one pair of files per writer id (so a renamed host or a second
//! process never interleaves two chains in one file):
//!
//! - `<writer>.jsonl`: one sealed [`AuditRecord`] per line, seq 1, 2, 3…, append-only. The writer
//!   id is percent-encoded into the file name (`bridge:host-1` → `bridge%3Ahost-1.jsonl`).
//! - `<writer>.<cursor>`: `{"writer":…,"seq":N,"hash":…}`, the last record a consumer has
//!   acknowledged; replaced atomically. Absent means nothing is delivered yet. The S3 mirror's
//!   cursor is `mirrored` ([`MIRROR_CURSOR`]); sinks have their own (`jira`, `webhook`).
//!
//! The appending side ([`Spool`], one per process and writer) and the reading side ([`SpoolLog`],
//! shared with the mirror and sinks) are separate so consumers never hold up an append.
//!
//! There is no segment rotation yet: the file grows until something compacts the mirrored prefix.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use slipway_core::audit::{AuditRecord, ChainState, compute_hash, seal};

mod files;
mod log;
#[cfg(test)]
mod tests;

pub use log::{MIRROR_CURSOR, SpoolLog};

const SPOOL_EXT: &str = "jsonl";
const MAX_WRITER_LEN: usize = 128;

/// What went wrong, and with which file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("audit spool {}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("audit spool {}, line {line} (byte {offset}): {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line: u64,
        offset: u64,
        reason: String,
    },
    #[error("audit spool {} is in use by another process (it holds the file lock)", path.display())]
    Locked { path: PathBuf },
    #[error("mirror cursor {}: {reason}", path.display())]
    Cursor { path: PathBuf, reason: String },
    #[error(
        "audit spool {}: an earlier append failed, so what reached the disk is uncertain; reopen the spool to recover",
        path.display()
    )]
    Poisoned { path: PathBuf },
    #[error("audit spool {}: cannot mark seq {seq} mirrored, the last record is seq {last}", path.display())]
    BeyondEnd { path: PathBuf, seq: u64, last: u64 },
    #[error("invalid audit writer id {writer:?}: {reason}")]
    InvalidWriter {
        writer: String,
        reason: &'static str,
    },
    #[error(
        "invalid spool cursor name {name:?}: use 1 to 32 lowercase letters, digits, `-` or `_`"
    )]
    InvalidCursor { name: String },
    #[error("audit spool {}: cannot encode a record: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

type Result<T, E = SpoolError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io {
        path,
        action,
        source,
    }
}

pub(crate) fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// One writer's spool, open for appending. Holds an exclusive lock on the spool file, so a second
/// process with the same writer id fails to open rather than forking the chain.
#[derive(Debug)]
pub struct Spool {
    file: File,
    state: ChainState,
    /// The end of the last durable line.
    len: u64,
    poisoned: bool,
    log: Arc<SpoolLog>,
}

impl Spool {
    /// Opens (creating if needed) `writer`'s spool in `dir` and recovers it: a torn last line
    /// left by a crash mid-write is truncated, the chain links are checked, the last record's
    /// hash is recomputed, sealing resumes at the next seq, and the mirror cursor is checked
    /// against the records it names.
    ///
    /// Only bytes after the last newline count as torn: every earlier line was fsync'd before an
    /// append returned. A damaged complete line is an error, never silently dropped.
    pub fn open(dir: &Path, writer: &str) -> Result<Spool> {
        let stem = file_stem(writer)?;
        fs::create_dir_all(dir).map_err(io_err(dir, "create the spool directory"))?;
        let path = dir.join(format!("{stem}.{SPOOL_EXT}"));

        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(SpoolError::Locked { path }),
            Err(TryLockError::Error(e)) => return Err(io_err(&path, "lock")(e)),
        }
        if !existed {
            files::sync_dir(dir)?;
        }

        let scan = files::scan(&file, &path, writer)?;
        if scan.torn > 0 {
            file.set_len(scan.len)
                .and_then(|()| file.sync_data())
                .map_err(io_err(&path, "truncate the torn last line"))?;
        }
        let state = match &scan.last {
            Some(last) => {
                if compute_hash(last) != last.hash {
                    return Err(SpoolError::Corrupt {
                        path,
                        line: last.seq,
                        offset: scan.offsets.last().copied().unwrap_or_default(),
                        reason: "the last record's content does not match its hash".into(),
                    });
                }
                ChainState::resume(writer, last.seq, last.hash.clone())
            }
            None => ChainState::new(writer),
        };
        let log = Arc::new(SpoolLog::new(
            dir,
            path,
            stem,
            writer,
            scan.offsets,
            scan.len,
        ));
        log.cursor(MIRROR_CURSOR)?;
        Ok(Spool {
            file,
            state,
            len: scan.len,
            poisoned: false,
            log,
        })
    }

    /// Seals each record, writes them all and fsyncs once. Returning `Ok` means every record is on
    /// disk. On error none of them count (the file is cut back where possible) and the spool
    /// refuses further appends until reopened, since after a failed fsync the page cache can no
    /// longer be trusted to say what is durable.
    pub fn append_batch(&mut self, records: Vec<AuditRecord>) -> Result<Vec<AuditRecord>> {
        if self.poisoned {
            return Err(SpoolError::Poisoned {
                path: self.path().to_path_buf(),
            });
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.state.clone();
        let mut buf = Vec::with_capacity(records.len() * 1024);
        let mut offsets = Vec::with_capacity(records.len());
        let mut sealed = Vec::with_capacity(records.len());
        for record in records {
            let record = seal(&mut state, record);
            offsets.push(self.len + len64(buf.len()));
            serde_json::to_writer(&mut buf, &record).map_err(|source| SpoolError::Encode {
                path: self.path().to_path_buf(),
                source,
            })?;
            buf.push(b'\n');
            sealed.push(record);
        }

        let path = self.log.path();
        let written = (&self.file)
            .write_all(&buf)
            .map_err(io_err(path, "append"))
            .and_then(|()| self.file.sync_data().map_err(io_err(path, "fsync")));
        if let Err(e) = written {
            self.poisoned = true;
            let _ = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            return Err(e);
        }
        self.state = state;
        self.len += len64(buf.len());
        self.log.extend(offsets, self.len);
        Ok(sealed)
    }

    /// [`Self::append_batch`] of one.
    pub fn append(&mut self, record: AuditRecord) -> Result<AuditRecord> {
        let mut sealed = self.append_batch(vec![record])?;
        sealed.pop().ok_or_else(|| SpoolError::Poisoned {
            path: self.path().to_path_buf(),
        })
    }

    /// Up to `limit` sealed records the mirror has not acknowledged yet, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        self.log.pending(MIRROR_CURSOR, limit)
    }

    /// Records that the mirror has acknowledged every record up to `up_to_seq`. Persisted
    /// atomically (temp file, fsync, rename, fsync of the directory) so a restart resumes from it.
    /// A seq at or below the current cursor is a no-op: retried uploads never move it back.
    pub fn mark_mirrored(&mut self, up_to_seq: u64) -> Result<()> {
        self.log.mark(MIRROR_CURSOR, up_to_seq)
    }

    /// Records not yet mirrored, for a backlog metric.
    pub fn depth(&self) -> u64 {
        self.state.seq.saturating_sub(self.mirrored_seq())
    }

    /// The last seq the mirror acknowledged (0: none).
    pub fn mirrored_seq(&self) -> u64 {
        self.log.loaded_cursor(MIRROR_CURSOR)
    }

    /// Where the chain stands: the last durable seq and its hash.
    pub fn chain_state(&self) -> &ChainState {
        &self.state
    }

    pub fn writer(&self) -> &str {
        &self.state.writer
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        self.log.path()
    }

    /// The shared read side, for the mirror and sinks.
    pub fn log(&self) -> Arc<SpoolLog> {
        self.log.clone()
    }
}

/// Every complete record in every spool file in `dir`, for `slipway audit verify`. Read-only and
/// lock-free, so it can run beside a live writer; a torn last line is not durable and is skipped.
pub fn read_all(dir: &Path) -> Result<Vec<AuditRecord>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list the spool directory"))? {
        let entry = entry.map_err(io_err(dir, "list the spool directory"))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == SPOOL_EXT) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();

    let mut records = Vec::new();
    for path in paths {
        files::read_file(&path, &mut records)?;
    }
    Ok(records)
}

/// The percent-encoded writer id used in file names and mirror keys: `[A-Za-z0-9_-]` and non-leading `.` as is,
/// every other byte as `%XX`. Reversible, so two writer ids never share a file.
pub fn file_stem(writer: &str) -> Result<String> {
    let invalid = |reason| SpoolError::InvalidWriter {
        writer: writer.to_string(),
        reason,
    };
    if writer.is_empty() {
        return Err(invalid("it is empty"));
    }
    if writer.len() > MAX_WRITER_LEN {
        return Err(invalid("it is longer than 128 bytes"));
    }
    if writer.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    let mut stem = String::with_capacity(writer.len() * 3);
    for (i, b) in writer.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0) {
            stem.push(char::from(b));
        } else {
            let _ = write!(stem, "%{b:02X}"); // writing to a String cannot fail
        }
    }
    Ok(stem)
}
