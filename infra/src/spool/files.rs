//! The spool's on-disk formats: reading a spool file from the start (recovery and `read_all`),
//! and the cursor files, which are replaced atomically.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slipway_core::audit::{AuditRecord, GENESIS_HASH};

use super::{Result, SpoolError, io_err, len64};

/// A cursor file's content: the last record a consumer (the S3 mirror, a sink) has acknowledged.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CursorFile {
    pub(super) writer: String,
    pub(super) seq: u64,
    pub(super) hash: String,
}

pub(super) fn parse_line(body: &[u8]) -> Result<AuditRecord, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a valid audit record: {e}"))
}

/// What [`scan`] learned from an existing spool file.
pub(super) struct Scan {
    pub(super) offsets: Vec<u64>,
    /// End of the last complete line.
    pub(super) len: u64,
    /// Bytes after `len`: a torn line.
    pub(super) torn: u64,
    pub(super) last: Option<AuditRecord>,
}

/// Reads the spool from the start, checking each line parses, belongs to `writer`, has the next
/// seq and links to the previous hash. Hashes are not recomputed except the last one's (by the
/// caller): that is what `slipway audit verify` is for, and it would make every start O(n) sha256.
pub(super) fn scan(file: &File, path: &Path, writer: &str) -> Result<Scan> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io_err(path, "read"))?;
    let mut scan = Scan {
        offsets: Vec::new(),
        len: 0,
        torn: 0,
        last: None,
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
        let prev = scan.last.as_ref().map_or(GENESIS_HASH, |r| &r.hash);
        if record.prev_hash != prev {
            return Err(corrupt(format!(
                "prev_hash does not link to seq {}",
                seq - 1
            )));
        }
        scan.offsets.push(scan.len);
        scan.len += len64(n);
        scan.last = Some(record);
    }
    Ok(scan)
}

/// Every complete record of one spool file; a torn last line is not durable and is skipped.
pub(super) fn read_file(path: &Path, records: &mut Vec<AuditRecord>) -> Result<()> {
    let file = File::open(path).map_err(io_err(path, "open for reading"))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut number, mut offset) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err(path, "read"))?;
        let Some(body) = line.strip_suffix(b"\n") else {
            return Ok(()); // end of file, or a torn last line
        };
        number += 1;
        let record = parse_line(body).map_err(|reason| SpoolError::Corrupt {
            path: path.to_path_buf(),
            line: number,
            offset,
            reason,
        })?;
        records.push(record);
        offset += len64(n);
    }
}

pub(super) fn tmp_path(cursor_path: &Path) -> PathBuf {
    let mut name = cursor_path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

pub(super) fn read_cursor(path: &Path, writer: &str) -> Result<Option<CursorFile>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "read")(e)),
    };
    let bad = |reason: String| SpoolError::Cursor {
        path: path.to_path_buf(),
        reason,
    };
    let cursor: CursorFile =
        serde_json::from_str(&text).map_err(|e| bad(format!("unreadable: {e}")))?;
    if cursor.writer != writer {
        return Err(bad(format!(
            "belongs to writer {:?}, not {writer:?}",
            cursor.writer
        )));
    }
    Ok(Some(cursor))
}

/// Temp file, fsync, rename, fsync of the directory: after a crash the cursor is either the old
/// one or the new one, never a torn mix.
pub(super) fn write_cursor(dir: &Path, path: &Path, cursor: &CursorFile) -> Result<()> {
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
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync the directory"))
}
