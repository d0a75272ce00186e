//! A local spool against what is outside it: its consumers' cursors, and the S3 mirror. A tail
//! cut from the spool together with its checkpoints (and a cursor edited to match) leaves a
//! spool that agrees with itself; only what was already mirrored, or anchored elsewhere, shows
//! that more was written once.

use std::collections::{BTreeMap, BTreeSet};

use slipway_core::audit::{AuditRecord, Checkpoint, WriterAllowlist};
use slipway_infra::spool::{FileState, MIRROR_CURSOR};

use super::bucket::by_seq;
use super::report::Finding;

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// What `serve` would do with each spool file, and whether each cursor names a record the
/// spool holds.
pub(super) fn spool_files(
    files: &[FileState],
    records: &[AuditRecord],
    allow: &WriterAllowlist,
    notes: &mut Vec<String>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for file in files {
        let w = file.writer.as_str();
        if file.records == 0 && !allow.allows(w) {
            // Nothing of it is in the trail, so the chain check can't name it: its file is here.
            findings.push(
                Finding::new(
                    "unknown_writer",
                    format!(
                        "{} belongs to writer {w:?}, which the allowlist of audit writers does not \
                         name: someone put it there",
                        file.path.display()
                    ),
                )
                .at(w, 0, ""),
            );
        }
        if let Some(why) = &file.refused {
            findings.push(
                Finding::new(
                    "refused",
                    format!("`slipway serve` would refuse this spool: {why}"),
                )
                .at(w, 0, ""),
            );
        }
        for aside in &file.set_aside {
            notes.push(format!(
                "note: {w}: `slipway serve` would set aside {aside}; they are not part of the trail"
            ));
        }
        let held = by_seq(records, w);
        let end = held.last_key_value().map_or(0, |(&s, _)| s);
        for (name, seq, hash) in &file.cursors {
            let finding = match held.get(seq) {
                _ if *seq == 0 => None,
                None if *seq > end => Some(Finding::new(
                    "truncated",
                    format!(
                        "the `{name}` cursor says seq {seq} was delivered, but the spool ends at \
                         seq {end}: records were cut from the spool"
                    ),
                )),
                Some(hashes) if !hashes.contains(hash.as_str()) => Some(Finding::new(
                    "cursor_mismatch",
                    format!(
                        "the `{name}` cursor names seq {seq} with hash {}, but the spool holds \
                         another record there: the spool was replaced or rewritten",
                        short(hash)
                    ),
                )),
                _ => None,
            };
            findings.extend(finding.map(|f| f.at(w, *seq, "")));
        }
    }
    findings
}

/// Each writer the spool directory holds, against the bucket: the spool must reach as far as
/// what S3 holds of it (records and signed checkpoints), hold the same record at every seq both
/// have, and its mirror cursor must not claim more than S3 has.
pub(super) fn spool_vs_bucket(
    files: &[FileState],
    spool: &[AuditRecord],
    s3: &[AuditRecord],
    s3_checkpoints: &[Checkpoint],
    notes: &mut Vec<String>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let local: BTreeSet<&str> = files.iter().map(|f| f.writer.as_str()).collect();
    for file in files {
        let w = file.writer.as_str();
        let (mine, theirs) = (by_seq(spool, w), by_seq(s3, w));
        findings.extend(cut_after_mirroring(w, &mine, &theirs, s3_checkpoints));
        findings.extend(rewritten_after_mirroring(w, &mine, &theirs));
        findings.extend(cursor_ahead(file, &theirs));
    }
    let elsewhere: BTreeSet<&str> = s3
        .iter()
        .map(|r| r.writer.as_str())
        .filter(|w| !local.contains(w))
        .collect();
    if !elsewhere.is_empty() {
        notes.push(format!(
            "note: S3 also holds {} writer(s) with no spool here (runners, other hosts); they \
             are verified from S3 alone",
            elsewhere.len()
        ));
    }
    findings
}

/// A writer's records by seq, each with the hashes seen there.
type BySeq<'a> = BTreeMap<u64, BTreeSet<&'a str>>;

/// The spool ends before S3's last record or signed checkpoint of `w`: its tail was cut after
/// it was mirrored (a checkpoint counts, so cutting records and checkpoints together shows).
fn cut_after_mirroring(
    w: &str,
    mine: &BySeq<'_>,
    theirs: &BySeq<'_>,
    s3_checkpoints: &[Checkpoint],
) -> Option<Finding> {
    let end = mine.last_key_value().map_or(0, |(&s, _)| s);
    let s3_end = theirs
        .last_key_value()
        .map(|(&s, _)| s)
        .into_iter()
        .chain(
            s3_checkpoints
                .iter()
                .filter(|c| c.writer == w)
                .map(|c| c.seq),
        )
        .max()
        .unwrap_or(0);
    (s3_end > end).then(|| {
        Finding::new(
            "truncated",
            format!(
                "S3 holds this writer's records up to seq {s3_end}, but the spool ends at \
                 seq {end}: records were cut from the spool after they were mirrored"
            ),
        )
        .at(w, end + 1, "")
    })
}

/// Every seq both hold where none of the spool's records is S3's: S3's copy is under Object
/// Lock, so the spool is the one that changed.
fn rewritten_after_mirroring(w: &str, mine: &BySeq<'_>, theirs: &BySeq<'_>) -> Vec<Finding> {
    theirs
        .iter()
        .filter(|(seq, hashes)| mine.get(seq).is_some_and(|held| held.is_disjoint(hashes)))
        .map(|(seq, _)| {
            Finding::new(
                "diverged",
                format!(
                    "the spool's record {seq} is not the one S3 holds under Object Lock: \
                     the spool was rewritten after mirroring"
                ),
            )
            .at(w, *seq, "")
        })
        .collect()
}

/// The spool's mirror cursor claims more than S3 holds of the writer.
fn cursor_ahead(file: &FileState, theirs: &BySeq<'_>) -> Option<Finding> {
    let mirrored = file
        .cursors
        .iter()
        .find(|(name, _, _)| name == MIRROR_CURSOR)
        .map_or(0, |(_, seq, _)| *seq);
    let s3_records = theirs.last_key_value().map_or(0, |(&s, _)| s);
    (mirrored > s3_records).then(|| {
        Finding::new(
            "cursor_ahead",
            format!(
                "the mirror cursor says seq {mirrored} is in S3, but S3 holds this \
                 writer's records up to seq {s3_records}: the cursor was edited, or the \
                 mirror's uploads went elsewhere"
            ),
        )
        .at(&file.writer, mirrored, "")
    })
}
