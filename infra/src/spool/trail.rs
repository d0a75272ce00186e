//! Reading a whole spool directory for `slipway audit verify`: read-only, lock-free (it can run
//! beside a live writer), and by the same rule `serve` recovers with ([`super::scan`]), so a
//! spool `serve` would refuse never verifies, and records `serve` would set aside are not part of
//! the trail.

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use slipway_core::audit::{AuditRecord, Checkpoint, WriterAllowlist};

use super::files::{parse_line, read_cursor};
use super::{CHECKPOINT_EXT, Result, SPOOL_EXT, file_stem, io_err, scan};

/// One writer's files as `serve` would find them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub writer: String,
    pub path: PathBuf,
    /// Acknowledged records (those in the trail).
    pub records: usize,
    /// Why `serve` would refuse this spool, if it would.
    pub refused: Option<String>,
    /// Lines `serve` would set aside: unacknowledged records and a bad last checkpoint line.
    pub set_aside: Vec<String>,
    /// Each consumer cursor: `(name, seq, hash)`.
    pub cursors: Vec<(String, u64, String)>,
}

/// Everything a spool directory holds.
#[derive(Debug, Default)]
pub struct SpoolTrail {
    pub records: Vec<AuditRecord>,
    pub checkpoints: Vec<Checkpoint>,
    pub files: Vec<FileState>,
}

/// The records of the trail in `dir`, without checking signatures: for tests and tools. `slipway
/// audit verify` uses [`read_trail`] with the allowlist.
pub fn read_all(dir: &Path) -> Result<Vec<AuditRecord>> {
    Ok(read_trail(dir, None)?.records)
}

/// Every writer's file in `dir`, checkpoints verified against `allow` when given. A file
/// `serve` would refuse contributes every line that parses, so the verifier can say what is
/// wrong with it in detail.
pub fn read_trail(dir: &Path, allow: Option<&WriterAllowlist>) -> Result<SpoolTrail> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list the spool directory"))? {
        let entry = entry.map_err(io_err(dir, "list the spool directory"))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let mut trail = SpoolTrail::default();
    for name in &names {
        let Some(stem) = name.strip_suffix(&format!(".{SPOOL_EXT}")) else {
            continue;
        };
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        read_file(dir, stem, &path, &names, allow, &mut trail)?;
    }
    Ok(trail)
}

fn read_file(
    dir: &Path,
    stem: &str,
    path: &Path,
    names: &[String],
    allow: Option<&WriterAllowlist>,
    trail: &mut SpoolTrail,
) -> Result<()> {
    let Some(writer) = writer_of_stem(stem) else {
        trail.files.push(FileState {
            writer: stem.to_string(),
            path: path.to_path_buf(),
            records: 0,
            refused: Some("its name is not a percent-encoded writer id".into()),
            set_aside: Vec::new(),
            cursors: Vec::new(),
        });
        return Ok(());
    };
    let cp_path = dir.join(format!("{stem}.{CHECKPOINT_EXT}"));
    let mut state = FileState {
        writer: writer.clone(),
        path: path.to_path_buf(),
        records: 0,
        refused: None,
        set_aside: Vec::new(),
        cursors: cursors(dir, stem, &writer, names),
    };
    let file = File::open(path).map_err(io_err(path, "open for reading"))?;
    let cps = read_checkpoints(&file, &cp_path, &writer, allow, &mut state)?;
    let mut records = Vec::new();
    let scanned = scan::records(&file, path, &writer, (&cp_path, &cps), |r| {
        records.push(r.clone());
    });
    match scanned {
        Ok(s) if s.tail_lines > scan::MAX_UNSIGNED_TAIL => {
            state.refused.get_or_insert(format!(
                "{} lines follow the last signed checkpoint: more than one batch, so checkpoints \
                 were removed or records added",
                s.tail_lines
            ));
        }
        Ok(s) if s.tail_lines > 0 => state.set_aside.push(format!(
            "{} line(s) after seq {} of {}: not covered by a signed checkpoint, so never \
             acknowledged",
            s.tail_lines,
            cps.last.as_ref().map_or(0, |c| c.seq),
            path.display()
        )),
        Ok(_) => {}
        Err(e) => {
            state.refused.get_or_insert(e.to_string());
        }
    }
    if state.refused.is_some() {
        // Every line that parses, so the chain check can say what is wrong in detail.
        records = lax_records(path)?;
        state.set_aside.clear();
    }
    state.records = records.len();
    trail.records.extend(records);
    trail.checkpoints.extend(cps.kept);
    trail.files.push(state);
    Ok(())
}

/// The checkpoint file as `serve` reads it; what would refuse the spool or be set aside goes
/// into `state`. A refused file's checkpoints are still returned, unverified, for detail.
fn read_checkpoints(
    file: &File,
    cp_path: &Path,
    writer: &str,
    allow: Option<&WriterAllowlist>,
    state: &mut FileState,
) -> Result<scan::Checkpoints> {
    let size = file.metadata().map_err(io_err(&state.path, "read"))?.len();
    if size > 0 && !cp_path.exists() {
        state.refused = Some(format!(
            "it holds records but there is no signed checkpoint file {}",
            cp_path.display()
        ));
    }
    let cps = match scan::checkpoints(cp_path, writer, allow, true) {
        Ok(c) => c,
        Err(e) => {
            state.refused.get_or_insert(e.to_string());
            lax_checkpoints(cp_path)?
        }
    };
    if let Some((at, why)) = &cps.bad_tail {
        state.set_aside.push(format!(
            "the last line of {} (byte {at}): {why}",
            cp_path.display()
        ));
    }
    Ok(cps)
}

/// Every cursor file of `stem`.
fn cursors(dir: &Path, stem: &str, writer: &str, names: &[String]) -> Vec<(String, u64, String)> {
    let prefix = format!("{stem}.");
    names
        .iter()
        .filter_map(|n| n.strip_prefix(&prefix))
        .filter(|rest| {
            *rest != SPOOL_EXT
                && *rest != CHECKPOINT_EXT
                && !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
        .filter_map(|name| {
            let c = read_cursor(&dir.join(format!("{prefix}{name}")), writer)
                .ok()
                .flatten()?;
            Some((name.to_string(), c.seq, c.hash))
        })
        .collect()
}

/// Every line of a damaged spool file that still parses.
fn lax_records(path: &Path) -> Result<Vec<AuditRecord>> {
    Ok(lines(path)?
        .iter()
        .filter_map(|l| parse_line(l).ok())
        .collect())
}

fn lax_checkpoints(path: &Path) -> Result<scan::Checkpoints> {
    let kept: Vec<Checkpoint> = lines(path)?
        .iter()
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok(scan::Checkpoints {
        kept,
        ..scan::Checkpoints::default()
    })
}

fn lines(path: &Path) -> Result<Vec<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path, "open for reading")(e)),
    };
    BufReader::new(file)
        .split(b'\n')
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io_err(path, "read"))
}

/// The writer id a file stem encodes ([`file_stem`] reversed); `None` if it is not one.
pub fn writer_of_stem(stem: &str) -> Option<String> {
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = stem.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let writer = String::from_utf8(out).ok()?;
    (file_stem(&writer).ok()? == stem).then_some(writer)
}
