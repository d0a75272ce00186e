//! The recovery rule, one for `serve` (which acts on it) and `slipway audit verify` (which
//! reports it).
//!
//! A batch is acknowledged only once its records *and* the signed checkpoint of their last
//! record are fsync'd, so:
//!
//! - every record at or before the last valid checkpoint was acknowledged: it must be whole, in
//!   sequence, linked, hash to its stored hash, and the checkpointed record must hash to what was
//!   signed. Anything else is damage or tampering, never a torn write, and the spool is refused.
//!   A last record that lost only its newline is whole: the newline is restored.
//! - records after it were never acknowledged (a crash between the two fsyncs, or lines someone
//!   appended). They are set aside, bytes kept, never chained onto; more than one batch of them
//!   means checkpoints went missing, and the spool is refused.
//! - in the checkpoint file, only a last line that fails to parse (a torn write) is set aside; a
//!   whole checkpoint that fails to verify was written by someone else, and the spool is refused.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use slipway_core::audit::{AuditRecord, Checkpoint, GENESIS_HASH, WriterAllowlist, compute_hash};

use super::files::parse_line;
use super::{Result, SpoolError, io_err, len64};

/// Most records one write batch holds, so most that can lack a checkpoint after a crash.
pub const MAX_UNSIGNED_TAIL: u64 = 512;

/// What the checkpoint file holds.
#[derive(Debug, Default)]
pub(super) struct Checkpoints {
    /// `(seq, byte offset)` of every valid line.
    pub entries: Vec<(u64, u64)>,
    /// Every valid checkpoint, when asked to keep them (verify); otherwise empty.
    pub kept: Vec<Checkpoint>,
    pub last: Option<Checkpoint>,
    /// The end of the last valid line.
    pub len: u64,
    /// The last valid line has no newline.
    pub missing_newline: bool,
    /// A last line that failed to parse or verify: `(offset, why)`.
    pub bad_tail: Option<(u64, String)>,
}

fn corrupt(path: &Path, line: u64, offset: u64, reason: String) -> SpoolError {
    SpoolError::Corrupt {
        path: path.to_path_buf(),
        line,
        offset,
        reason,
    }
}

/// Reads a checkpoint file: each line parses, is `writer`'s, comes after the one before and
/// (with `allow`) verifies. A bad line followed by another one is an error.
pub(super) fn checkpoints(
    path: &Path,
    writer: &str,
    allow: Option<&WriterAllowlist>,
    keep: bool,
) -> Result<Checkpoints> {
    let mut out = Checkpoints::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(path, "open")(e)),
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let (mut line, mut number, mut offset) = (Vec::new(), 0u64, 0u64);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err(path, "read"))?;
        if n == 0 {
            return Ok(out);
        }
        number += 1;
        if let Some((at, why)) = out.bad_tail.take() {
            return Err(corrupt(
                path,
                number - 1,
                at,
                format!("{why}; lines follow it, so this is damage, not a torn write"),
            ));
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let cp = match serde_json::from_slice::<Checkpoint>(body) {
            Ok(cp) => cp,
            Err(e) => {
                // Only a line that doesn't parse can be a torn write.
                out.bad_tail = Some((offset, format!("not a checkpoint: {e}")));
                offset += len64(n);
                continue;
            }
        };
        // A whole line a crash can't produce: forged, or signed with another key.
        check_checkpoint(&cp, writer, allow, out.last.as_ref())
            .map_err(|why| corrupt(path, number, offset, format!("{why}: checkpoints are never partly valid, so this was written by someone else; the spool is refused")))?;
        out.entries.push((cp.seq, offset));
        out.missing_newline = !line.ends_with(b"\n");
        out.len = offset + len64(n);
        if keep {
            out.kept.push(cp.clone());
        }
        out.last = Some(cp);
        offset += len64(n);
    }
}

fn check_checkpoint(
    cp: &Checkpoint,
    writer: &str,
    allow: Option<&WriterAllowlist>,
    previous: Option<&Checkpoint>,
) -> Result<(), String> {
    if cp.writer != writer {
        return Err(format!("a checkpoint of {:?}, not {writer:?}", cp.writer));
    }
    if let Some(prev) = previous
        && cp.seq <= prev.seq
    {
        return Err(format!(
            "checkpoint of seq {} after one of seq {}",
            cp.seq, prev.seq
        ));
    }
    if let Some(allow) = allow {
        allow.verify(cp).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What [`records`] found.
#[derive(Debug, Default)]
pub(super) struct Records {
    pub offsets: Vec<u64>,
    /// The end of the last acknowledged line, as on disk (without a missing newline).
    pub len: u64,
    pub missing_newline: bool,
    /// Bytes after `len`, and how many lines they hold: never acknowledged.
    pub tail_bytes: u64,
    pub tail_lines: u64,
    pub last: Option<AuditRecord>,
}

/// `(seq, hash)` of each checkpoint line [`checkpoints`] already verified, read again as the
/// records are, so every signed head is compared without holding them all in memory.
struct SignedHeads {
    lines: Option<std::io::Split<std::io::Take<BufReader<File>>>>,
}

impl SignedHeads {
    fn open(path: &Path, cps: &Checkpoints) -> Result<SignedHeads> {
        let lines = match File::open(path) {
            Ok(f) => Some(std::io::Read::take(BufReader::new(f), cps.len).split(b'\n')),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(path, "open")(e)),
        };
        Ok(SignedHeads { lines })
    }
}

impl Iterator for SignedHeads {
    type Item = (u64, String);
    fn next(&mut self) -> Option<(u64, String)> {
        let line = self.lines.as_mut()?.next()?.ok()?;
        let cp: Checkpoint = serde_json::from_slice(&line).ok()?;
        Some((cp.seq, cp.hash))
    }
}

/// Reads a spool file against its checkpoints (see the module docs); `each` sees every
/// acknowledged record in order.
pub(super) fn records(
    file: &File,
    path: &Path,
    writer: &str,
    (cp_path, cps): (&Path, &Checkpoints),
    mut each: impl FnMut(&AuditRecord),
) -> Result<Records> {
    let signed = cps.last.as_ref();
    let signed_seq = signed.map_or(0, |c| c.seq);
    let mut heads = SignedHeads::open(cp_path, cps)?.peekable();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(io_err(path, "read"))?;
    let mut out = Records::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err(path, "read"))?;
        if n == 0 {
            break;
        }
        let seq = len64(out.offsets.len()) + 1;
        if seq > signed_seq {
            out.tail_bytes += len64(n);
            out.tail_lines += 1;
            continue;
        }
        while heads.next_if(|(s, _)| *s < seq).is_some() {}
        let signed_hash = heads.next_if(|(s, _)| *s == seq).map(|(_, h)| h);
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let record = acknowledged(body, writer, seq, out.last.as_ref(), signed_hash.as_deref())
            .map_err(|reason| damaged(path, seq, out.len, signed_seq, &reason))?;
        each(&record);
        out.offsets.push(out.len);
        out.missing_newline = !line.ends_with(b"\n");
        out.len += len64(n);
        out.last = Some(record);
    }
    check_complete(path, &out, signed_seq)?;
    Ok(out)
}

/// An acknowledged record that doesn't check: damage or tampering, never dropped by itself.
fn damaged(path: &Path, seq: u64, offset: u64, signed_seq: u64, reason: &str) -> SpoolError {
    corrupt(
        path,
        seq,
        offset,
        format!(
            "{reason}. Record {seq} is covered by the writer's signed checkpoint of seq \
             {signed_seq}, so it was acknowledged: this is damage or tampering, not a torn \
             write. Restore the file from the S3 mirror or a backup; nothing is dropped \
             automatically"
        ),
    )
}

/// Every record up to the signed checkpoint must still be there.
fn check_complete(path: &Path, out: &Records, signed_seq: u64) -> Result<()> {
    let held = len64(out.offsets.len());
    if held < signed_seq {
        return Err(corrupt(
            path,
            held + 1,
            out.len,
            format!(
                "the spool ends at seq {held}, but its writer signed a checkpoint of seq \
                 {signed_seq}: acknowledged records were removed from the end. Restore the file \
                 from the S3 mirror or a backup"
            ),
        ));
    }
    Ok(())
}

/// One acknowledged line: it parses, is `writer`'s record `seq`, links to `previous`, hashes to
/// its stored hash, and is the record signed at its seq, if a checkpoint is there.
fn acknowledged(
    body: &[u8],
    writer: &str,
    seq: u64,
    previous: Option<&AuditRecord>,
    signed_hash: Option<&str>,
) -> Result<AuditRecord, String> {
    let record = parse_line(body)?;
    let prev = previous.map_or(GENESIS_HASH, |r| r.hash.as_str());
    if record.writer != writer {
        return Err(format!("written by {:?}, not {writer:?}", record.writer));
    }
    if record.seq != seq {
        return Err(format!("expected seq {seq}, found {}", record.seq));
    }
    if record.prev_hash != prev {
        return Err(format!("prev_hash does not link to seq {}", seq - 1));
    }
    if compute_hash(&record) != record.hash {
        return Err("its content does not match its hash".into());
    }
    if let Some(hash) = signed_hash
        && hash != record.hash
    {
        return Err(format!(
            "it is not the record its writer signed (hash {} instead of {}): the chain was \
             rewritten",
            short(&record.hash),
            short(hash)
        ));
    }
    Ok(record)
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Where bytes set aside from `path` go: beside it, never read as a spool again.
pub(super) fn set_aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%S%9fZ");
    name.push(format!(".set-aside-{now}"));
    PathBuf::from(name)
}
