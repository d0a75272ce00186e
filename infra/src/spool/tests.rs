use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use slipway_core::audit::{AuditRecord, EventKind, ProblemKind, verify_chain};
use tempfile::TempDir;

use super::*;

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

fn open(dir: &TempDir) -> Spool {
    match Spool::open(dir.path(), WRITER) {
        Ok(spool) => spool,
        Err(e) => panic!("open failed: {e}"),
    }
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
fn torn_last_line_is_truncated() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 3)));
    let path = spool.path().to_path_buf();
    drop(spool);
    let durable_len = fs::metadata(&path).map(|m| m.len()).unwrap_or_default();

    // A crash halfway through writing record 4.
    let half = serde_json::to_string(&record(4)).unwrap_or_default();
    let mut file = OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{e}"));
    file.write_all(&half.as_bytes()[..half.len() / 2])
        .unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    // A reader running beside the writer skips the torn line rather than failing.
    assert_eq!(ok(read_all(dir.path())).len(), 3);

    let mut spool = open(&dir);
    assert_eq!(fs::metadata(&path).map(|m| m.len()).ok(), Some(durable_len));
    assert_eq!(spool.chain_state().seq, 3);
    assert_eq!(ok(spool.append(record(4))).seq, 4);
    drop(spool);
    assert_verifies(&dir, 4);
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

    match Spool::open(dir.path(), WRITER) {
        Err(SpoolError::Corrupt { line, reason, .. }) => {
            assert_eq!(line, 3);
            assert!(reason.contains("expected seq 3, found 9"), "{reason}");
        }
        other => panic!("expected a corrupt spool, got {other:?}"),
    }
    // The edit of record 2 is what `audit verify` is for.
    let all = ok(read_all(dir.path()));
    assert_eq!(verify_chain(&all).count(ProblemKind::HashMismatch), 2);
}

#[test]
fn mirror_cursor_persists_across_reopen() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut spool = open(&dir);
    ok(spool.append_batch(records(1, 10)));
    assert_eq!(spool.depth(), 10);
    assert_eq!(seqs(&ok(spool.pending(4))), [1, 2, 3, 4]);
    ok(spool.mark_mirrored(4));
    assert_eq!((spool.depth(), spool.mirrored_seq()), (6, 4));
    drop(spool);

    let mut spool = open(&dir);
    assert_eq!(spool.depth(), 6);
    assert_eq!(seqs(&ok(spool.pending(100))), [5, 6, 7, 8, 9, 10]);
    assert_eq!(seqs(&ok(spool.pending(2))), [5, 6]);
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
    let err = Spool::open(dir.path(), WRITER).map(|_| ()).err();
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
        Spool::open(dir.path(), WRITER),
        Err(SpoolError::Locked { .. })
    ));
    drop(spool);
    let _reopened = open(&dir);
}

#[test]
fn writers_get_their_own_files_and_verify_together() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut a = open(&dir);
    let mut b = ok(Spool::open(dir.path(), "runner:42"));
    for i in 1..=5 {
        ok(a.append(record(i)));
        ok(b.append(record(100 + i)));
    }
    assert_eq!(b.chain_state().seq, 5);
    drop((a, b));
    assert_verifies(&dir, 10);
    assert!(matches!(
        Spool::open(dir.path(), ""),
        Err(SpoolError::InvalidWriter { .. })
    ));
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
    assert_eq!(seqs(&ok(log.pending("jira", 10))), [4, 5]);
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
