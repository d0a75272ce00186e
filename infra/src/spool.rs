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
//! - `<writer>.mirrored`: `{"writer":…,"seq":N,"hash":…}`, the last record the mirror has
//!   acknowledged; replaced atomically. Absent means nothing is mirrored yet.
//!
//! There is no segment rotation yet: the file grows until something compacts the mirrored prefix.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slipway_core::audit::{AuditRecord, ChainState, compute_hash, seal};

#[cfg(test)]
mod tests;

const SPOOL_EXT: &str = "jsonl";
const CURSOR_EXT: &str = "mirrored";
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
    #[error("audit spool {}: cannot encode a record: {source}", path.display())]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

type Result<T, E = SpoolError> = std::result::Result<T, E>;

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_path_buf();
    move |source| SpoolError::Io {
        path,
        action,
        source,
    }
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// One writer's spool, open for appending. Holds an exclusive lock on the spool file, so a second
/// process with the same writer id fails to open rather than forking the chain.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    path: PathBuf,
    cursor_path: PathBuf,
    file: File,
    state: ChainState,
    /// `offsets[i]` is the byte offset of the line holding seq `i + 1`; `len` ends the last one.
    offsets: Vec<u64>,
    len: u64,
    /// The last seq the mirror acknowledged (0: none).
    mirrored: u64,
    poisoned: bool,
}

/// The cursor file's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    writer: String,
    seq: u64,
    hash: String,
}

impl Spool {
    /// Opens (creating if needed) `writer`'s spool in `dir` and recovers it: a torn last line
    /// left by a crash mid-write is truncated, the chain links are checked, the last record's
    /// hash is recomputed, and sealing resumes at the next seq.
    ///
    /// Only bytes after the last newline count as torn: every earlier line was fsync'd before an
    /// append returned. A damaged complete line is an error, never silently dropped.
    pub fn open(dir: &Path, writer: &str) -> Result<Spool> {
        let stem = file_stem(writer)?;
        fs::create_dir_all(dir).map_err(io_err(dir, "create the spool directory"))?;
        let path = dir.join(format!("{stem}.{SPOOL_EXT}"));
        let cursor_path = dir.join(format!("{stem}.{CURSOR_EXT}"));

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
            sync_dir(dir)?;
        }

        let cursor = read_cursor(&cursor_path, writer)?;
        let scan = scan(&file, &path, writer, cursor.as_ref().map(|c| c.seq))?;
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
        let mirrored = match cursor {
            None => 0,
            Some(c) => check_cursor(&cursor_path, &c, &state, scan.hash_at_cursor.as_deref())?,
        };
        // A leftover from a crash during `mark_mirrored`; the rename never happened.
        let _ = fs::remove_file(tmp_path(&cursor_path));

        Ok(Spool {
            dir: dir.to_path_buf(),
            path,
            cursor_path,
            file,
            state,
            offsets: scan.offsets,
            len: scan.len,
            mirrored,
            poisoned: false,
        })
    }

    /// Seals each record, writes them all and fsyncs once. Returning `Ok` means every record is on
    /// disk. On error none of them count (the file is cut back where possible) and the spool
    /// refuses further appends until reopened, since after a failed fsync the page cache can no
    /// longer be trusted to say what is durable.
    pub fn append_batch(&mut self, records: Vec<AuditRecord>) -> Result<Vec<AuditRecord>> {
        if self.poisoned {
            return Err(SpoolError::Poisoned {
                path: self.path.clone(),
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
                path: self.path.clone(),
                source,
            })?;
            buf.push(b'\n');
            sealed.push(record);
        }

        let written = (&self.file)
            .write_all(&buf)
            .map_err(io_err(&self.path, "append"))
            .and_then(|()| self.file.sync_data().map_err(io_err(&self.path, "fsync")));
        if let Err(e) = written {
            self.poisoned = true;
            let _ = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            return Err(e);
        }
        self.state = state;
        self.offsets.extend(offsets);
        self.len += len64(buf.len());
        Ok(sealed)
    }

    /// [`Self::append_batch`] of one.
    pub fn append(&mut self, record: AuditRecord) -> Result<AuditRecord> {
        let mut sealed = self.append_batch(vec![record])?;
        sealed.pop().ok_or_else(|| SpoolError::Poisoned {
            path: self.path.clone(),
        })
    }

    /// Up to `limit` sealed records the mirror has not acknowledged yet, oldest first.
    pub fn pending(&self, limit: usize) -> Result<Vec<AuditRecord>> {
        let start = usize::try_from(self.mirrored).unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(self.offsets.len());
        self.read_range(start, end)
    }

    /// Records that the mirror has acknowledged every record up to `up_to_seq`. Persisted
    /// atomically (temp file, fsync, rename, fsync of the directory) so a restart resumes from it.
    /// A seq at or below the current cursor is a no-op: retried uploads never move it back.
    pub fn mark_mirrored(&mut self, up_to_seq: u64) -> Result<()> {
        if up_to_seq <= self.mirrored {
            return Ok(());
        }
        if up_to_seq > self.state.seq {
            return Err(SpoolError::BeyondEnd {
                path: self.path.clone(),
                seq: up_to_seq,
                last: self.state.seq,
            });
        }
        let index = usize::try_from(up_to_seq - 1).unwrap_or(usize::MAX);
        let record = self.read_range(index, index.saturating_add(1))?;
        let Some(record) = record.first() else {
            return Err(SpoolError::BeyondEnd {
                path: self.path.clone(),
                seq: up_to_seq,
                last: self.state.seq,
            });
        };
        let cursor = Cursor {
            writer: self.state.writer.clone(),
            seq: record.seq,
            hash: record.hash.clone(),
        };
        write_cursor(&self.dir, &self.cursor_path, &cursor)?;
        self.mirrored = up_to_seq;
        Ok(())
    }

    /// Records not yet mirrored, for a backlog metric.
    pub fn depth(&self) -> u64 {
        self.state.seq.saturating_sub(self.mirrored)
    }

    /// The last seq the mirror acknowledged (0: none).
    pub fn mirrored_seq(&self) -> u64 {
        self.mirrored
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
        &self.path
    }

    /// Reads the records at indexes `start..end` (seq `start + 1` onwards) in one read.
    fn read_range(&self, start: usize, end: usize) -> Result<Vec<AuditRecord>> {
        let (Some(&from), true) = (self.offsets.get(start), start < end) else {
            return Ok(Vec::new());
        };
        let to = self.offsets.get(end).copied().unwrap_or(self.len);
        let size = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
        let mut buf = vec![0; size];
        let mut file = File::open(&self.path).map_err(io_err(&self.path, "open for reading"))?;
        file.seek(SeekFrom::Start(from))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(io_err(&self.path, "read pending records"))?;

        let mut records = Vec::with_capacity(end - start);
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
        let file = File::open(&path).map_err(io_err(&path, "open for reading"))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let (mut number, mut offset) = (0u64, 0u64);
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io_err(&path, "read"))?;
            let Some(body) = line.strip_suffix(b"\n") else {
                break; // end of file, or a torn last line
            };
            number += 1;
            let record = parse_line(body).map_err(|reason| SpoolError::Corrupt {
                path: path.clone(),
                line: number,
                offset,
                reason,
            })?;
            records.push(record);
            offset += len64(n);
        }
    }
    Ok(records)
}

fn parse_line(body: &[u8]) -> Result<AuditRecord, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a valid audit record: {e}"))
}

/// The percent-encoded writer id used in file names: `[A-Za-z0-9_-]` and non-leading `.` as is,
/// every other byte as `%XX`. Reversible, so two writer ids never share a file.
fn file_stem(writer: &str) -> Result<String> {
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

/// What [`scan`] learned from an existing spool file.
struct Scan {
    offsets: Vec<u64>,
    /// End of the last complete line.
    len: u64,
    /// Bytes after `len`: a torn line.
    torn: u64,
    last: Option<AuditRecord>,
    hash_at_cursor: Option<String>,
}

/// Reads the spool from the start, checking each line parses, belongs to `writer`, has the next
/// seq and links to the previous hash. Hashes are not recomputed except the last one's (by the
/// caller): that is what `slipway audit verify` is for, and it would make every start O(n) sha256.
fn scan(file: &File, path: &Path, writer: &str, cursor_seq: Option<u64>) -> Result<Scan> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io_err(path, "read"))?;
    let mut scan = Scan {
        offsets: Vec::new(),
        len: 0,
        torn: 0,
        last: None,
        hash_at_cursor: None,
    };
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err(path, "read"))?;
        if n == 0 {
            break;
        }
        let Some(body) = line.strip_suffix(b"\n") else {
            scan.torn = len64(n);
            break;
        };
        let seq = len64(scan.offsets.len()) + 1;
        let corrupt = |reason: String| SpoolError::Corrupt {
            path: path.to_path_buf(),
            line: seq,
            offset: scan.len,
            reason: format!(
                "{reason}; every line before a newline was fsync'd, so this is damage rather than a \
                 torn write: inspect the file (truncating it at byte {} drops this and later records)",
                scan.len
            ),
        };
        let record = parse_line(body).map_err(corrupt)?;
        if record.writer != writer {
            return Err(corrupt(format!(
                "written by {:?}, not {writer:?}",
                record.writer
            )));
        }
        if record.seq != seq {
            return Err(corrupt(format!("expected seq {seq}, found {}", record.seq)));
        }
        let prev = scan
            .last
            .as_ref()
            .map_or(slipway_core::audit::GENESIS_HASH, |r| &r.hash);
        if record.prev_hash != prev {
            return Err(corrupt(format!(
                "prev_hash does not link to seq {}",
                seq - 1
            )));
        }
        if cursor_seq == Some(seq) {
            scan.hash_at_cursor = Some(record.hash.clone());
        }
        scan.offsets.push(scan.len);
        scan.len += len64(n);
        scan.last = Some(record);
    }
    Ok(scan)
}

fn tmp_path(cursor_path: &Path) -> PathBuf {
    let mut name = cursor_path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn read_cursor(path: &Path, writer: &str) -> Result<Option<Cursor>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "read")(e)),
    };
    let bad = |reason: String| SpoolError::Cursor {
        path: path.to_path_buf(),
        reason,
    };
    let cursor: Cursor =
        serde_json::from_str(&text).map_err(|e| bad(format!("unreadable: {e}")))?;
    if cursor.writer != writer {
        return Err(bad(format!(
            "belongs to writer {:?}, not {writer:?}",
            cursor.writer
        )));
    }
    Ok(Some(cursor))
}

/// The cursor must name a record that exists, by seq and hash; otherwise the spool file was lost
/// or replaced after records were mirrored, and resuming would re-use seqs already uploaded.
fn check_cursor(
    path: &Path,
    cursor: &Cursor,
    state: &ChainState,
    hash: Option<&str>,
) -> Result<u64> {
    let bad = |reason: String| SpoolError::Cursor {
        path: path.to_path_buf(),
        reason,
    };
    if cursor.seq > state.seq {
        return Err(bad(format!(
            "says seq {} was mirrored but the spool ends at seq {}: the spool lost records",
            cursor.seq, state.seq
        )));
    }
    if cursor.seq > 0 && hash != Some(cursor.hash.as_str()) {
        return Err(bad(format!(
            "records seq {} with a different hash than the spool holds: the spool was replaced",
            cursor.seq
        )));
    }
    Ok(cursor.seq)
}

fn write_cursor(dir: &Path, path: &Path, cursor: &Cursor) -> Result<()> {
    let tmp = tmp_path(path);
    let mut body = serde_json::to_vec(cursor).map_err(|source| SpoolError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    body.push(b'\n');
    let mut file = File::create(&tmp).map_err(io_err(&tmp, "create"))?;
    file.write_all(&body)
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp, "write"))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path, "replace"))?;
    sync_dir(dir)
}

/// Makes a created or renamed directory entry durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync the directory"))
}
