use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use slipway_core::audit::{AuditRecord, EventKind, ProblemKind, verify_chain};
use tempfile::TempDir;

use super::*;
use crate::audit_signer::AuditSigning;

const WRITER: &str = "bridge:host-1";

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .unwrap_or_default()
}

fn record(i: u64) -> AuditRecord {
    AuditRecord::new(
        EventKind::Command,
        format!("evt-{i}"),
        at(i64::try_from(i).unwrap_or(0)),
    )
    .with_change_id(format!("cr-{}", i % 7))
}

fn records(from: u64, n: u64) -> Vec<AuditRecord> {
    (from..from + n).map(record).collect()
}

fn signing() -> AuditSigning {
    crate::audit_signer::test_signing(WRITER)
}

fn open_as(dir: &TempDir, writer: &str) -> Result<Spool> {
    Spool::open(dir.path(), writer, &signing())
}

fn open(dir: &TempDir) -> Spool {
    match open_as(dir, WRITER) {
        Ok(spool) => spool,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn spool_file(dir: &TempDir) -> PathBuf {
    dir.path().join("bridge%3Ahost-1.jsonl")
}

fn set_aside_files(dir: &TempDir) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir.path())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.retain(|p| p.to_string_lossy().contains(".set-aside-"));
    found
}

fn ok<T>(r: Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn seqs(records: &[AuditRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn assert_verifies(dir: &TempDir, expect: usize) {
    let all = ok(read_all(dir.path()));
    assert_eq!(all.len(), expect);
    let report = verify_chain(&all);
    assert!(report.is_ok(), "{report}");
}

#[test]
fn reopen_resumes_the_chain() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    let sealed = ok(spool.append_batch(records(1, 3)));
    assert_eq!(seqs(&sealed), [1, 2, 3]);
    assert!(sealed.iter().all(|r| r.writer == WRITER));
    let last_hash = sealed[2].hash.clone();
    drop(spool);

    let mut spool = open(&dir);
    assert_eq!(spool.chain_state().seq, 3);
    assert_eq!(spool.chain_state().last_hash, last_hash);
    let next = ok(spool.append(record(4)));
    assert_eq!((next.seq, next.prev_hash.as_str()), (4, last_hash.as_str()));
    assert_eq!(
        spool.path().file_name().and_then(|n| n.to_str()),
        Some("bridge%3Ahost-1.jsonl")
    );
    drop(spool);
    assert_verifies(&dir, 4);
}

#[test]
fn a_torn_unacknowledged_line_is_set_aside_with_its_bytes_kept() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 3)));
    let path = spool.path().to_path_buf();
    drop(spool);
    let durable_len = fs::metadata(&path).map(|m| m.len()).unwrap_or_default();

    // A crash halfway through writing record 4 (before its checkpoint).
    let half = serde_json::to_string(&record(4)).unwrap_or_default();
    let torn = &half.as_bytes()[..half.len() / 2];
    let mut file = OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{e}"));
    file.write_all(torn).unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    // A reader running beside the writer leaves the unacknowledged line out of the trail.
    assert_eq!(ok(read_all(dir.path())).len(), 3);

    let mut spool = open(&dir);
    assert_eq!(fs::metadata(&path).map(|m| m.len()).ok(), Some(durable_len));
    assert_eq!(spool.chain_state().seq, 3);
    assert_eq!(spool.recovered().len(), 1, "{:?}", spool.recovered());
    let aside = set_aside_files(&dir);
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read(&aside[0]).ok().as_deref(), Some(torn));
    assert_eq!(ok(spool.append(record(4))).seq, 4);
    drop(spool);
    assert_verifies(&dir, 4);
}

/// The old rule judged a line torn by its missing newline alone, so one byte removed from the
/// end deleted a whole acknowledged record, silently.
#[test]
fn a_one_byte_tear_never_deletes_an_acknowledged_record() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 3)));
    drop(spool);
    let path = spool_file(&dir);
    let bytes = fs::read(&path).unwrap_or_default();

    // The final newline removed: record 3 is whole and signed, so it stays, newline restored.
    fs::write(&path, &bytes[..bytes.len() - 1]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok(read_all(dir.path())).len(), 3);
    let spool = open(&dir);
    assert_eq!(spool.chain_state().seq, 3);
    assert!(
        spool.recovered()[0].contains("newline"),
        "{:?}",
        spool.recovered()
    );
    drop(spool);
    assert_eq!(fs::read(&path).ok(), Some(bytes.clone()));

    // A byte torn out of the last record: it no longer parses, but it was acknowledged, so the
    // spool is refused by `serve` and by `verify` alike, and nothing is truncated.
    let mut damaged = bytes.clone();
    damaged.remove(bytes.len() - 2);
    fs::write(&path, &damaged).unwrap_or_else(|e| panic!("{e}"));
    match open_as(&dir, WRITER) {
        Err(SpoolError::Corrupt { line, reason, .. }) => {
            assert_eq!(line, 3);
            assert!(reason.contains("acknowledged"), "{reason}");
        }
        other => panic!("expected a refused spool, got {other:?}"),
    }
    assert_eq!(fs::read(&path).ok(), Some(damaged));
    let trail = ok(read_trail(dir.path(), Some(&signing().writers)));
    assert!(trail.files[0].refused.is_some(), "{:?}", trail.files);
    assert!(set_aside_files(&dir).is_empty());
}

#[test]
fn lines_after_the_last_checkpoint_are_set_aside_and_never_chained_onto() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    let sealed = ok(spool.append_batch(records(1, 2)));
    drop(spool);
    // Someone appends a well-formed record, linked and hashed, but unsigned.
    let mut state = ChainState::resume(WRITER, 2, sealed[1].hash.clone());
    let forged = slipway_core::audit::seal(&mut state, record(99));
    let mut file = OpenOptions::new()
        .append(true)
        .open(spool_file(&dir))
        .unwrap_or_else(|e| panic!("{e}"));
    writeln!(
        file,
        "{}",
        serde_json::to_string(&forged).unwrap_or_default()
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(file);

    let mut spool = open(&dir);
    assert_eq!(spool.chain_state().seq, 2);
    let next = ok(spool.append(record(3)));
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (3, sealed[1].hash.as_str())
    );
    assert_ne!(next.hash, forged.hash);
    drop(spool);
    assert_verifies(&dir, 3);
    assert_eq!(set_aside_files(&dir).len(), 1);
}

#[test]
fn a_rewritten_chain_or_a_cut_tail_is_refused() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    for i in 1..=3 {
        ok(spool.append(record(i)));
    }
    drop(spool);
    let path = spool_file(&dir);
    let original = fs::read_to_string(&path).unwrap_or_default();

    // Record 2 edited, and it and record 3 re-hashed and re-linked.
    let mut recs: Vec<AuditRecord> = original
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    recs[1].event_id = "evt-X".into();
    recs[1].hash = slipway_core::audit::compute_hash(&recs[1]);
    recs[2].prev_hash = recs[1].hash.clone();
    recs[2].hash = slipway_core::audit::compute_hash(&recs[2]);
    let rewritten: String = recs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
        .collect();
    fs::write(&path, rewritten).unwrap_or_else(|e| panic!("{e}"));
    let err = open_as(&dir, WRITER)
        .map(|_| ())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("rewritten")),
        "{err:?}"
    );

    // The last record cut (and its line only): the checkpoint still covers it.
    let cut: String = original.lines().take(2).flat_map(|l| [l, "\n"]).collect();
    fs::write(&path, cut).unwrap_or_else(|e| panic!("{e}"));
    let err = open_as(&dir, WRITER)
        .map(|_| ())
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("removed from the end")),
        "{err:?}"
    );

    // A spool without its checkpoint file is unsigned.
    fs::write(&path, original).unwrap_or_else(|e| panic!("{e}"));
    fs::remove_file(dir.path().join("bridge%3Ahost-1.checkpoints"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        open_as(&dir, WRITER),
        Err(SpoolError::Unsigned { .. })
    ));
}

#[test]
fn consumers_never_get_records_changed_after_they_were_signed() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 2)));
    ok(spool.append_batch(records(3, 2)));
    let log = spool.log();
    let pending = ok(log.pending("jira", 100));
    assert_eq!(seqs(&pending.records), [1, 2, 3, 4]);
    assert_eq!(
        pending
            .checkpoints
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>(),
        [2, 4]
    );
    assert_eq!(log.latest_checkpoint().map(|c| c.seq), Some(4));
    // Whole batches: a limit inside one still returns it all.
    assert_eq!(seqs(&ok(log.pending("jira", 1)).records), [1, 2]);

    // The file edited under the running writer (same length, so the offsets still hold).
    let path = spool_file(&dir);
    let text = fs::read_to_string(&path).unwrap_or_default();
    fs::write(&path, text.replacen("evt-3", "evt-Z", 1)).unwrap_or_else(|e| panic!("{e}"));
    ok(log.mark("jira", 2));
    match log.pending("jira", 100) {
        Err(SpoolError::Tampered { seq, .. }) => assert_eq!(seq, 3),
        other => panic!("expected a tampered spool, got {other:?}"),
    }
}

#[test]
fn damaged_complete_line_is_an_error_not_a_truncation() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 3)));
    let path = spool.path().to_path_buf();
    drop(spool);
    let text = fs::read_to_string(&path).unwrap_or_default();
    fs::write(
        &path,
        text.replacen("evt-2", "evt-X", 1)
            .replacen("\"seq\":3", "\"seq\":9", 1),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    match open_as(&dir, WRITER) {
        Err(SpoolError::Corrupt { line, reason, .. }) => {
            assert_eq!(line, 2);
            assert!(reason.contains("does not match its hash"), "{reason}");
        }
        other => panic!("expected a corrupt spool, got {other:?}"),
    }
    // `audit verify` sees every line that parses, to say what is wrong in detail.
    let all = ok(read_all(dir.path()));
    assert_eq!(verify_chain(&all).count(ProblemKind::HashMismatch), 2);
}

#[test]
fn mirror_cursor_persists_across_reopen() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 10)));
    assert_eq!(spool.depth(), 10);
    assert_eq!(seqs(&ok(spool.pending(100))), (1..=10).collect::<Vec<_>>());
    ok(spool.mark_mirrored(4));
    assert_eq!((spool.depth(), spool.mirrored_seq()), (6, 4));
    drop(spool);

    let mut spool = open(&dir);
    assert_eq!(spool.depth(), 6);
    assert_eq!(seqs(&ok(spool.pending(100))), [5, 6, 7, 8, 9, 10]);
    ok(spool.mark_mirrored(2)); // a retried upload never moves the cursor back
    assert_eq!(spool.mirrored_seq(), 4);
    assert!(matches!(
        spool.mark_mirrored(11),
        Err(SpoolError::BeyondEnd {
            seq: 11,
            last: 10,
            ..
        })
    ));
    ok(spool.mark_mirrored(10));
    assert!(ok(spool.pending(100)).is_empty());
    ok(spool.append(record(11)));
    assert_eq!(seqs(&ok(spool.pending(100))), [11]);
    assert_eq!(spool.depth(), 1);
    drop(spool);
    assert_eq!(open(&dir).mirrored_seq(), 10);
}

#[test]
fn cursor_ahead_of_a_lost_spool_is_refused() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 3)));
    ok(spool.mark_mirrored(3));
    let path = spool.path().to_path_buf();
    drop(spool);
    fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
    fs::remove_file(dir.path().join("bridge%3Ahost-1.checkpoints"))
        .unwrap_or_else(|e| panic!("{e}"));
    let err = open_as(&dir, WRITER).map(|_| ()).err();
    assert!(
        matches!(&err, Some(SpoolError::Cursor { reason, .. }) if reason.contains("lost records")),
        "{err:?}"
    );
}

#[test]
fn second_open_of_the_same_writer_is_locked() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let spool = open(&dir);
    assert!(matches!(
        open_as(&dir, WRITER),
        Err(SpoolError::Locked { .. })
    ));
    drop(spool);
    let _reopened = open(&dir);
}

#[test]
fn writers_get_their_own_files_and_verify_together() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut a = open(&dir);
    let mut b = ok(open_as(&dir, "runner:42"));
    for i in 1..=5 {
        ok(a.append(record(i)));
        ok(b.append(record(100 + i)));
    }
    assert_eq!(b.chain_state().seq, 5);
    drop((a, b));
    assert_verifies(&dir, 10);
    assert!(matches!(
        open_as(&dir, ""),
        Err(SpoolError::InvalidWriter { .. })
    ));
    assert!(matches!(
        open_as(&dir, "intruder:1"),
        Err(SpoolError::Signing { .. })
    ));
    assert_eq!(writer_of_stem("bridge%3Ahost-1").as_deref(), Some(WRITER));
    assert_eq!(
        writer_of_stem("bridge%3ahost-1"),
        None,
        "not the canonical spelling"
    );
    assert_eq!(
        file_stem(".hidden/../x").ok().as_deref(),
        Some("%2Ehidden%2F..%2Fx")
    );
}

#[test]
fn thousand_appends_in_batches_are_durable() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    let started = Instant::now();
    for batch in 0..20 {
        let sealed = ok(spool.append_batch(records(batch * 50 + 1, 50)));
        assert_eq!(sealed.last().map(|r| r.seq), Some((batch + 1) * 50));
    }
    let elapsed = started.elapsed();
    println!(
        "spool: 1000 records in 20 fsync'd batches in {elapsed:?} ({:.0} records/s)",
        1000.0 / elapsed.as_secs_f64().max(1e-9)
    );
    drop(spool);

    let spool = open(&dir);
    assert_eq!(spool.chain_state().seq, 1000);
    assert_eq!(spool.depth(), 1000);
    assert_eq!(ok(spool.pending(2000)).len(), 1000);
    assert_verifies(&dir, 1000);
}

#[test]
fn named_cursors_are_independent_and_persist() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 5)));
    let log = spool.log();
    assert_eq!(ok(log.cursor("jira")), 0);
    ok(log.mark("jira", 3));
    ok(log.mark("webhook", 1));
    assert_eq!(seqs(&ok(log.pending("jira", 10)).records), [4, 5]);
    assert_eq!(ok(log.depth("webhook")), 4);
    assert_eq!(spool.mirrored_seq(), 0, "the mirror cursor is separate");
    assert!(matches!(
        log.mark("Bad.Name", 1),
        Err(SpoolError::InvalidCursor { .. })
    ));
    assert!(matches!(
        log.mark("jira", 6),
        Err(SpoolError::BeyondEnd {
            seq: 6,
            last: 5,
            ..
        })
    ));
    // A new append wakes consumers and is readable at once.
    let wake = log.subscribe();
    ok(spool.append(record(6)));
    assert!(wake.has_changed().unwrap_or(false));
    assert_eq!(log.last_seq(), 6);
    assert_eq!(ok(log.record(6)).map(|r| r.seq), Some(6));
    drop((spool, log));

    let spool = open(&dir);
    let log = spool.log();
    assert_eq!((ok(log.cursor("jira")), ok(log.cursor("webhook"))), (3, 1));
    assert!(dir.path().join("bridge%3Ahost-1.jira").is_file());
}
