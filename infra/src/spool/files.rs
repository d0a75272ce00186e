//! The spool's small on-disk formats: a record line, and the cursor files, which are replaced
//! atomically. Reading a whole spool file (recovery and `read_trail`) is in `scan`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slipway_core::audit::AuditRecord;

use super::{Result, SpoolError, io_err};

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
