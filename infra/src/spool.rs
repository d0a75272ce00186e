//! The durable local audit spool: sealed records are appended as JSON lines and fsync'd, with
//! a signed checkpoint of the new chain head, before the caller hears "ok", so an audit record
//! exists before (or at worst, alongside) the action it describes, even when S3 or the network
//! is down. A later uploader mirrors it, tracked by a cursor file.
//!
//! Layout of a spool directory, files per writer id (so a renamed host or a second process never
//! interleaves two chains in one file):
//!
//! - `<writer>.jsonl`: one sealed [`AuditRecord`] per line, seq 1, 2, 3…, append-only. The writer
//!   id is percent-encoded into the file name (`bridge:host-1` → `bridge%3Ahost-1.jsonl`).
//! - `<writer>.checkpoints`: one signed [`Checkpoint`] per write batch, of its last record.
//! - `<writer>.<cursor>`: `{"writer":…,"seq":N,"hash":…}`, the last record a consumer has
//!   acknowledged; replaced atomically. Absent means nothing is delivered yet. The S3 mirror's
//!   cursor is `mirrored` ([`MIRROR_CURSOR`]); sinks have their own (`jira`, `webhook`).
//! - `<file>.set-aside-<time>`: bytes recovery took out of a file (see `scan`), kept for a person.
//!
//! The appending side ([`Spool`], one per process and writer) and the reading side ([`SpoolLog`],
//! shared with the mirror and sinks) are separate so consumers never hold up an append.
//!
//! There is no segment rotation yet: the file grows until something compacts the mirrored prefix.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use slipway_core::audit::{AuditRecord, ChainState, Checkpoint, seal};

use crate::audit_signer::AuditSigning;

mod files;
mod log;
mod scan;
#[cfg(test)]
mod tests;
mod trail;

pub use log::{MIRROR_CURSOR, Pending, SpoolLog};
pub use scan::MAX_UNSIGNED_TAIL;
pub use trail::{FileState, SpoolTrail, read_all, read_trail, writer_of_stem};

const SPOOL_EXT: &str = "jsonl";
const CHECKPOINT_EXT: &str = "checkpoints";
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
    #[error(
        "audit spool {} holds records but no signed checkpoint file ({}): it was written without \
         audit signing, or its checkpoints were removed. Check it against the S3 mirror \
         (`slipway audit verify --spool … --bucket …`), move it aside, and start under a new \
         writer id (SLIPWAY_AUDIT_WRITER) so the new chain never collides with the old one",
        path.display(), checkpoints.display()
    )]
    Unsigned { path: PathBuf, checkpoints: PathBuf },
    #[error("audit spool {}: record {seq} {reason}: the file changed after it was written and signed; nothing from it is delivered until it is restored", path.display())]
    Tampered {
        path: PathBuf,
        seq: u64,
        reason: String,
    },
    #[error("audit signing: {reason}")]
    Signing { reason: String },
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
    checkpoints: File,
    state: ChainState,
    /// The end of the last durable line, in each file.
    len: u64,
    checkpoints_len: u64,
    poisoned: bool,
    log: Arc<SpoolLog>,
    signing: AuditSigning,
    recovered: Vec<String>,
}

/// A batch, sealed and encoded, before anything is written.
struct Encoded {
    buf: Vec<u8>,
    /// Each record's offset in the spool file.
    offsets: Vec<u64>,
    sealed: Vec<AuditRecord>,
}

impl Spool {
    /// Opens (creating if needed) `writer`'s spool in `dir` and recovers it by the rule in
    /// `scan`: everything up to the last signed checkpoint must be intact; unacknowledged lines
    /// after it are set aside (bytes kept, logged); sealing resumes after the last signed record;
    /// the mirror cursor must name a record the spool holds. `signing` must allow `writer` with
    /// its signer's key.
    pub fn open(dir: &Path, writer: &str, signing: &AuditSigning) -> Result<Spool> {
        let stem = file_stem(writer)?;
        signing
            .check(writer)
            .map_err(|reason| SpoolError::Signing { reason })?;
        fs::create_dir_all(dir).map_err(io_err(dir, "create the spool directory"))?;
        let path = dir.join(format!("{stem}.{SPOOL_EXT}"));
        let cp_path = dir.join(format!("{stem}.{CHECKPOINT_EXT}"));
        let (file, cp_file) = open_files(dir, &path, &cp_path)?;

        let mut recovered = Vec::new();
        let cps = scan::checkpoints(&cp_path, writer, Some(&signing.writers), false)?;
        let cp_len = recover_checkpoints(&cp_file, &cp_path, &cps, &mut recovered)?;
        let (scan, len) = recover_records(&file, &path, writer, (&cp_path, &cps), &mut recovered)?;
        for note in &recovered {
            tracing::error!(writer, "audit spool recovery: {note}");
        }
        let state = match &scan.last {
            Some(last) => ChainState::resume(writer, last.seq, last.hash.clone()),
            None => ChainState::new(writer),
        };
        let log = Arc::new(SpoolLog::new(
            log::Files {
                dir: dir.to_path_buf(),
                path,
                checkpoints: cp_path,
                stem,
                writer: writer.to_string(),
            },
            log::Index::new(scan.offsets, len, cps.entries, cp_len, cps.last),
            signing.writers.clone(),
        ));
        log.cursor(MIRROR_CURSOR)?;
        Ok(Spool {
            file,
            checkpoints: cp_file,
            state,
            len,
            checkpoints_len: cp_len,
            poisoned: false,
            log,
            signing: signing.clone(),
            recovered,
        })
    }

    /// Seals each record, writes them all, fsyncs, then signs the new head and fsyncs that
    /// checkpoint. Returning `Ok` means every record is on disk and signed. On error none of
    /// them count (the files are cut back where possible) and the spool refuses further appends
    /// until reopened, since after a failed fsync the page cache can no longer be trusted to say
    /// what is durable.
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
        let Encoded {
            buf,
            offsets,
            sealed,
        } = self.encode(&mut state, records)?;
        let checkpoint = self.sign(&state)?;
        let mut line = checkpoint.to_json().into_bytes();
        line.push(b'\n');
        self.write_durably(&buf, &line)?;
        let cp_offset = self.checkpoints_len;
        self.state = state;
        self.len += len64(buf.len());
        self.checkpoints_len += len64(line.len());
        self.log.extend(
            offsets,
            self.len,
            (checkpoint.seq, cp_offset),
            self.checkpoints_len,
            checkpoint,
        );
        Ok(sealed)
    }

    /// Seal each record onto `state` and encode it as one JSON line, with its file offset.
    fn encode(&self, state: &mut ChainState, records: Vec<AuditRecord>) -> Result<Encoded> {
        let mut out = Encoded {
            buf: Vec::with_capacity(records.len() * 1024),
            offsets: Vec::with_capacity(records.len()),
            sealed: Vec::with_capacity(records.len()),
        };
        for record in records {
            let record = seal(state, record);
            out.offsets.push(self.len + len64(out.buf.len()));
            serde_json::to_writer(&mut out.buf, &record).map_err(|source| SpoolError::Encode {
                path: self.path().to_path_buf(),
                source,
            })?;
            out.buf.push(b'\n');
            out.sealed.push(record);
        }
        Ok(out)
    }

    /// Append and fsync the records, then the checkpoint line. On error the spool is poisoned
    /// and both files are cut back to where they were.
    fn write_durably(&mut self, buf: &[u8], line: &[u8]) -> Result<()> {
        let (path, cp_path) = (self.log.path(), self.log.checkpoints_path());
        let written = (&self.file)
            .write_all(buf)
            .map_err(io_err(path, "append"))
            .and_then(|()| self.file.sync_data().map_err(io_err(path, "fsync")))
            .and_then(|()| {
                (&self.checkpoints)
                    .write_all(line)
                    .map_err(io_err(cp_path, "append"))
            })
            .and_then(|()| {
                self.checkpoints
                    .sync_data()
                    .map_err(io_err(cp_path, "fsync"))
            });
        if written.is_err() {
            self.poisoned = true;
            let _ = self
                .checkpoints
                .set_len(self.checkpoints_len)
                .and_then(|()| self.checkpoints.sync_data());
            let _ = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
        }
        written
    }

    fn sign(&self, state: &ChainState) -> Result<Checkpoint> {
        let signer = &self.signing.signer;
        let cp = Checkpoint::unsigned(
            &state.writer,
            state.seq,
            &state.last_hash,
            chrono::Utc::now(),
            &signer.key_id(),
        );
        let signature = signer
            .sign(&cp.signing_bytes())
            .map_err(|reason| SpoolError::Signing {
                reason: format!("{reason}; nothing was written"),
            })?;
        Ok(cp.with_signature(&signature))
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
        Ok(self.log.pending(MIRROR_CURSOR, limit)?.records)
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

    /// What recovery did when the spool was opened (also logged at error level), for callers
    /// without a log subscriber to print.
    pub fn recovered(&self) -> &[String] {
        &self.recovered
    }
}

/// Opens (creating) the spool file, locked, and its checkpoint file. A spool with records but no
/// checkpoint file was written without signing: refused.
fn open_files(dir: &Path, path: &Path, cp_path: &Path) -> Result<(File, File)> {
    let had_checkpoints = cp_path.exists();
    let existed = path.exists();
    let file = open_append(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(SpoolError::Locked {
                path: path.to_path_buf(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(path, "lock")(e)),
    }
    let size = file.metadata().map_err(io_err(path, "read"))?.len();
    if size > 0 && !had_checkpoints {
        return Err(SpoolError::Unsigned {
            path: path.to_path_buf(),
            checkpoints: cp_path.to_path_buf(),
        });
    }
    let cp_file = open_append(cp_path)?;
    if !existed || !had_checkpoints {
        files::sync_dir(dir)?;
    }
    Ok((file, cp_file))
}

/// Sets aside a torn last checkpoint line and restores a lost newline; returns the file's
/// length after.
fn recover_checkpoints(
    file: &File,
    path: &Path,
    cps: &scan::Checkpoints,
    recovered: &mut Vec<String>,
) -> Result<u64> {
    if let Some((at, why)) = &cps.bad_tail {
        let aside = set_aside(file, path, *at)?;
        recovered.push(format!(
            "set aside the last line of {} ({why}) in {}",
            path.display(),
            aside.display()
        ));
    }
    if cps.missing_newline {
        restore_newline(file, path)?;
        recovered.push(format!(
            "restored the newline the last checkpoint in {} had lost",
            path.display()
        ));
        return Ok(cps.len + 1);
    }
    Ok(cps.len)
}

/// Checks the records against the checkpoints, sets aside the unacknowledged tail (at most one
/// batch of it) and restores a lost newline; returns the scan and the file's length after.
fn recover_records(
    file: &File,
    path: &Path,
    writer: &str,
    checkpoints: (&Path, &scan::Checkpoints),
    recovered: &mut Vec<String>,
) -> Result<(scan::Records, u64)> {
    let scan = scan::records(file, path, writer, checkpoints, |_| {})?;
    let signed = checkpoints.1.last.as_ref().map_or(0, |c| c.seq);
    if scan.tail_lines > scan::MAX_UNSIGNED_TAIL {
        return Err(SpoolError::Corrupt {
            path: path.to_path_buf(),
            line: signed + 1,
            offset: scan.len,
            reason: format!(
                "{} lines follow the last signed checkpoint (seq {signed}); a crash leaves at \
                 most one batch ({}) unsigned, so checkpoints were removed or records added. \
                 Compare the spool with the S3 mirror before moving anything",
                scan.tail_lines,
                scan::MAX_UNSIGNED_TAIL
            ),
        });
    }
    if scan.tail_lines > 0 {
        let aside = set_aside(file, path, scan.len)?;
        recovered.push(format!(
            "set aside {} line(s) ({} bytes) after seq {signed} of {}: no signed checkpoint \
             covers them, so they were never acknowledged (a crash mid-write, or lines someone \
             added); the bytes are in {}",
            scan.tail_lines,
            scan.tail_bytes,
            path.display(),
            aside.display()
        ));
    }
    let mut len = scan.len;
    if scan.missing_newline {
        restore_newline(file, path)?;
        len += 1;
        recovered.push(format!(
            "restored the newline the last record in {} had lost",
            path.display()
        ));
    }
    Ok((scan, len))
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err(path, "open"))
}

/// Moves the bytes of `file` from `from` on into a new file beside it (fsync'd), then cuts
/// `file` back to `from`. Returns where the bytes went.
fn set_aside(file: &File, path: &Path, from: u64) -> Result<PathBuf> {
    let aside = scan::set_aside_path(path);
    let mut bytes = Vec::new();
    let mut reader = file;
    reader
        .seek(SeekFrom::Start(from))
        .and_then(|_| reader.read_to_end(&mut bytes))
        .map_err(io_err(path, "read the lines to set aside"))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&aside)
        .map_err(io_err(&aside, "create"))?;
    out.write_all(&bytes)
        .and_then(|()| out.sync_all())
        .map_err(io_err(&aside, "write"))?;
    if let Some(dir) = path.parent() {
        files::sync_dir(dir)?;
    }
    file.set_len(from)
        .and_then(|()| file.sync_data())
        .map_err(io_err(path, "cut the set-aside lines"))?;
    Ok(aside)
}

fn restore_newline(file: &File, path: &Path) -> Result<()> {
    let mut f = file;
    f.write_all(b"\n")
        .and_then(|()| file.sync_data())
        .map_err(io_err(path, "restore a lost newline"))
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
