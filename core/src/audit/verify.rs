//! Chain verification over any set of records (a local spool, a mirror listing, a SIEM export),
//! reporting every problem rather than the first, so one bad record does not hide the next.
//!
//! What a chain cannot show on its own: records dropped from the *end* of a writer's chain, a
//! chain rewritten and re-hashed from some record on, or a writer made up whole. Those need the
//! writers' signed checkpoints ([`super::verify_trail`]) and outside anchors (S3, git) to compare
//! each writer's [`WriterHead`] with.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::{AuditRecord, GENESIS_HASH, SCHEMA_VERSION, compute_hash};

/// What is wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Written by a schema this verifier does not know.
    UnsupportedVersion,
    /// seq 0: never passed through `seal`.
    Unsealed,
    /// The content no longer hashes to the stored hash: edited after sealing.
    HashMismatch,
    /// Sequence numbers are missing: records were deleted (or not collected).
    Gap,
    /// An identical copy of a record appears more than once.
    Duplicate,
    /// Two different records claim the same place in the chain.
    Fork,
    /// `prev_hash` does not match the previous record's hash.
    BrokenLink,
    /// The writer is not in the allowlist: a made-up writer, or configuration that lacks it.
    UnknownWriter,
    /// A checkpoint whose signature does not verify with the writer's keys.
    BadCheckpoint,
    /// The record at a signed checkpoint's seq is not the one signed: the chain was rewritten.
    CheckpointMismatch,
    /// A signed checkpoint covers records the trail no longer has at its end: a cut tail.
    Truncated,
    /// Records no signed checkpoint covers: written after the last checkpoint, or forged.
    Unsigned,
}

/// One problem, located by writer, seq and event id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    pub writer: String,
    pub seq: u64,
    /// The record's event id; for a gap, that of the first record after it (empty if none).
    pub event_id: String,
    pub kind: ProblemKind,
    pub message: String,
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} seq {}", self.writer, self.seq)?;
        if !self.event_id.is_empty() {
            write!(f, " (event {})", self.event_id)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The last record seen for a writer: what an outside anchor should be compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterHead {
    pub records: usize,
    pub last_seq: u64,
    pub last_hash: String,
    /// The seq of the writer's last valid signed checkpoint (0: none, or not checked).
    pub signed_seq: u64,
}

/// The result of [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub records: usize,
    pub writers: BTreeMap<String, WriterHead>,
    /// Sorted by writer, then seq.
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems of `kind` were found.
    pub fn count(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} record(s) from {} writer(s): ",
            self.records,
            self.writers.len()
        )?;
        if self.is_ok() {
            return f.write_str("chain intact");
        }
        write!(f, "{} problem(s)", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

pub(super) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn problem(r: &AuditRecord, kind: ProblemKind, message: String) -> ChainProblem {
    ChainProblem {
        writer: r.writer.clone(),
        seq: r.seq,
        event_id: r.event_id.clone(),
        kind,
        message,
    }
}

/// Verifies a set of records (any order, possibly from several writers): per writer, seq 1..n with
/// no gaps, no duplicates or forks, every hash recomputes and every prev_hash links.
pub fn verify_chain(records: &[AuditRecord]) -> ChainReport {
    let mut problems = Vec::new();
    let mut by_writer: BTreeMap<&str, BTreeMap<u64, Vec<&AuditRecord>>> = BTreeMap::new();

    for r in records {
        if r.schema_version != SCHEMA_VERSION {
            let msg = format!(
                "schema version {} (this verifier knows {SCHEMA_VERSION}); its hash is checked as v{SCHEMA_VERSION}",
                r.schema_version
            );
            problems.push(problem(r, ProblemKind::UnsupportedVersion, msg));
        }
        if r.seq == 0 {
            let msg = "record was never sealed (seq 0)".to_string();
            problems.push(problem(r, ProblemKind::Unsealed, msg));
            continue;
        }
        let actual = compute_hash(r);
        if actual != r.hash {
            let msg = format!(
                "content hashes to {} but the stored hash is {}: the record was altered after sealing",
                short(&actual),
                short(&r.hash)
            );
            problems.push(problem(r, ProblemKind::HashMismatch, msg));
        }
        by_writer
            .entry(&r.writer)
            .or_default()
            .entry(r.seq)
            .or_default()
            .push(r);
    }

    let mut writers = BTreeMap::new();
    for (writer, chain) in &by_writer {
        check_writer(chain, &mut problems);
        if let Some((&last_seq, last)) = chain.last_key_value() {
            writers.insert(
                (*writer).to_string(),
                WriterHead {
                    records: chain.values().map(Vec::len).sum(),
                    last_seq,
                    last_hash: last.first().map(|r| r.hash.clone()).unwrap_or_default(),
                    signed_seq: 0,
                },
            );
        }
    }

    problems.sort_by(|a, b| (&a.writer, a.seq, a.kind).cmp(&(&b.writer, b.seq, b.kind)));
    ChainReport {
        records: records.len(),
        writers,
        problems,
    }
}

/// Checks one writer's records, keyed by seq (each seq may hold several records).
fn check_writer(chain: &BTreeMap<u64, Vec<&AuditRecord>>, problems: &mut Vec<ChainProblem>) {
    check_copies(chain, problems);
    check_gaps(chain, problems);
    check_links(chain, problems);
    check_followers(chain, problems);
}

/// Several records at one seq: exact copies, or a fork.
fn check_copies(chain: &BTreeMap<u64, Vec<&AuditRecord>>, problems: &mut Vec<ChainProblem>) {
    for recs in chain.values() {
        for (i, r) in recs.iter().enumerate().skip(1) {
            let earlier = &recs[..i];
            if earlier.contains(r) {
                let msg = "an identical copy of this record appears earlier".to_string();
                problems.push(problem(r, ProblemKind::Duplicate, msg));
            } else {
                let others: Vec<&str> = earlier.iter().map(|e| e.event_id.as_str()).collect();
                let msg = format!(
                    "fork: a different record also claims this seq (event {})",
                    others.join(", ")
                );
                problems.push(problem(r, ProblemKind::Fork, msg));
            }
        }
    }
}

/// Gaps: seq must run 1, 2, 3… The gap is reported at its first missing seq.
fn check_gaps(chain: &BTreeMap<u64, Vec<&AuditRecord>>, problems: &mut Vec<ChainProblem>) {
    let mut expected = 1u64;
    for (&seq, recs) in chain {
        if seq > expected {
            let (event_id, writer) = recs
                .first()
                .map(|r| (r.event_id.clone(), r.writer.clone()))
                .unwrap_or_default();
            let missing = if seq - expected == 1 {
                format!("record {expected} is missing")
            } else {
                format!("records {expected}..={} are missing", seq - 1)
            };
            problems.push(ChainProblem {
                writer,
                seq: expected,
                event_id,
                kind: ProblemKind::Gap,
                message: format!("{missing} (chain resumes at seq {seq})"),
            });
        }
        expected = seq.saturating_add(1);
    }
}

/// Links: each record's prev_hash is the stored hash of some record at seq - 1.
fn check_links(chain: &BTreeMap<u64, Vec<&AuditRecord>>, problems: &mut Vec<ChainProblem>) {
    for (&seq, recs) in chain {
        for r in recs {
            if seq == 1 {
                if r.prev_hash != GENESIS_HASH {
                    let msg = format!(
                        "the first record must link to the genesis hash (64 zeros), not {}",
                        short(&r.prev_hash)
                    );
                    problems.push(problem(r, ProblemKind::BrokenLink, msg));
                }
            } else if let Some(prev) = chain.get(&(seq - 1))
                && !prev.iter().any(|p| p.hash == r.prev_hash)
            {
                let msg = format!(
                    "prev_hash {} does not match the hash {} of seq {}",
                    short(&r.prev_hash),
                    prev.first().map_or("", |p| short(&p.hash)),
                    seq - 1
                );
                problems.push(problem(r, ProblemKind::BrokenLink, msg));
            }
        }
    }
}

/// Two records at different seqs following the same record: a fork in disguise (one of them
/// also has a broken link, but this names the pair).
fn check_followers(chain: &BTreeMap<u64, Vec<&AuditRecord>>, problems: &mut Vec<ChainProblem>) {
    let mut followers: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (&seq, recs) in chain {
        for r in recs {
            if r.prev_hash != GENESIS_HASH {
                followers.entry(&r.prev_hash).or_default().insert(seq);
            }
        }
    }
    for seqs in followers.values().filter(|s| s.len() > 1) {
        let first = seqs.first().copied().unwrap_or_default();
        for &seq in seqs.iter().skip(1) {
            for r in chain.get(&seq).into_iter().flatten() {
                let msg = format!("fork: follows the same record as seq {first}");
                problems.push(problem(r, ProblemKind::Fork, msg));
            }
        }
    }
}
