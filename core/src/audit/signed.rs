//! The trail as its writers signed it: [`verify_chain`] plus every checkpoint checked against
//! the allowlist and against the records it pins.

use std::collections::{BTreeMap, BTreeSet};

use super::verify::short;
use super::{
    AuditRecord, ChainProblem, ChainReport, Checkpoint, ProblemKind, WriterAllowlist, verify_chain,
};

/// Verifies the chains and their signatures: every writer is allowed, every checkpoint verifies
/// with the writer's keys and names a record the trail holds with that very hash, and every
/// record is covered by a valid checkpoint.
pub fn verify_trail(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    allow: &WriterAllowlist,
) -> ChainReport {
    let mut report = verify_chain(records);
    let mut problems = Vec::new();

    // writer → seq → the hashes stored there (several on a fork).
    let mut held: BTreeMap<&str, BTreeMap<u64, BTreeSet<&str>>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.seq > 0) {
        held.entry(&r.writer)
            .or_default()
            .entry(r.seq)
            .or_default()
            .insert(&r.hash);
    }
    let writers: BTreeSet<&str> = held
        .keys()
        .copied()
        .chain(checkpoints.iter().map(|c| c.writer.as_str()))
        .collect();

    for writer in writers {
        let chain = held.get(writer);
        if !allow.allows(writer) {
            problems.push(unknown_writer(records, writer, allow));
            continue;
        }
        let signed_seq = check_writer(writer, chain, checkpoints, allow, &mut problems);
        if let Some(head) = report.writers.get_mut(writer) {
            head.signed_seq = signed_seq;
        }
        problems.extend(unsigned(records, writer, chain, signed_seq));
    }

    report.problems.extend(problems);
    report
        .problems
        .sort_by(|a, b| (&a.writer, a.seq, a.kind).cmp(&(&b.writer, b.seq, b.kind)));
    report
}

/// A writer the allowlist doesn't name.
fn unknown_writer(records: &[AuditRecord], writer: &str, allow: &WriterAllowlist) -> ChainProblem {
    let first = records.iter().find(|r| r.writer == writer);
    let message = format!(
        "writer {writer:?} is not in the allowlist of audit writers: records made up \
         under a new name, or a writer the configuration lacks (allowed: {})",
        allow.patterns().join(", ")
    );
    ChainProblem {
        writer: writer.to_string(),
        seq: first.map_or(0, |r| r.seq),
        event_id: first.map(|r| r.event_id.clone()).unwrap_or_default(),
        kind: ProblemKind::UnknownWriter,
        message,
    }
}

/// The writer's records past its last valid checkpoint, as one problem (if there are any).
fn unsigned(
    records: &[AuditRecord],
    writer: &str,
    chain: Option<&BTreeMap<u64, BTreeSet<&str>>>,
    signed_seq: u64,
) -> Option<ChainProblem> {
    let unsigned: Vec<u64> = chain
        .into_iter()
        .flat_map(BTreeMap::keys)
        .copied()
        .filter(|&s| s > signed_seq)
        .collect();
    let (&from, &to) = (unsigned.first()?, unsigned.last()?);
    let first = records.iter().find(|r| r.writer == writer && r.seq == from);
    let message = format!(
        "records {from}..={to} are not covered by a signed checkpoint{}: written after \
         the writer's last checkpoint (rerun once the mirror has caught up), or forged",
        if signed_seq == 0 {
            String::new()
        } else {
            format!(" (the last valid one is at seq {signed_seq})")
        }
    );
    Some(ChainProblem {
        writer: writer.to_string(),
        seq: from,
        event_id: first.map(|r| r.event_id.clone()).unwrap_or_default(),
        kind: ProblemKind::Unsigned,
        message,
    })
}

/// One allowed writer's checkpoints against its records; returns the seq of the last valid one.
fn check_writer(
    writer: &str,
    chain: Option<&BTreeMap<u64, BTreeSet<&str>>>,
    checkpoints: &[Checkpoint],
    allow: &WriterAllowlist,
    problems: &mut Vec<ChainProblem>,
) -> u64 {
    let end = chain
        .and_then(|c| c.last_key_value())
        .map_or(0, |(&s, _)| s);
    let mut signed_seq = 0;
    for cp in checkpoints.iter().filter(|c| c.writer == writer) {
        let at = |kind, message| ChainProblem {
            writer: writer.to_string(),
            seq: cp.seq,
            event_id: String::new(),
            kind,
            message,
        };
        if let Err(e) = allow.verify(cp) {
            problems.push(at(
                ProblemKind::BadCheckpoint,
                format!("checkpoint of seq {}: {e}", cp.seq),
            ));
            continue;
        }
        match chain.and_then(|c| c.get(&cp.seq)) {
            Some(hashes) if hashes.contains(cp.hash.as_str()) => {}
            Some(hashes) => problems.push(at(
                ProblemKind::CheckpointMismatch,
                format!(
                    "the writer signed seq {} with hash {} ({}), but the trail holds {}: the \
                     chain was rewritten from here or earlier",
                    cp.seq,
                    short(&cp.hash),
                    cp.time.to_rfc3339(),
                    hashes
                        .iter()
                        .map(|h| short(h))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            None if cp.seq > end => problems.push(at(
                ProblemKind::Truncated,
                format!(
                    "the writer signed its chain up to seq {} ({}), but the trail ends at seq \
                     {end}: records were removed from the end",
                    cp.seq,
                    cp.time.to_rfc3339()
                ),
            )),
            // Missing in the middle: the gap is reported by the chain check.
            None => {}
        }
        signed_seq = signed_seq.max(cp.seq);
    }
    signed_seq
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::audit::{
        Approval, ApprovalSource, ChainState, EventKind, compute_hash, key_id, seal,
    };

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn allow(pattern: &str, k: &SigningKey) -> WriterAllowlist {
        let mut a = WriterAllowlist::new();
        a.allow(pattern, k.verifying_key()).unwrap_or_default();
        a
    }

    fn approval(i: u64, who: &str) -> AuditRecord {
        let at = Utc
            .timestamp_opt(1_700_000_000 + i64::try_from(i).unwrap_or(0), 0)
            .single()
            .unwrap_or_default();
        AuditRecord::new(EventKind::Approval, format!("e{i}"), at).with_approval(Approval {
            who: who.into(),
            when: at,
            source: ApprovalSource::Slack,
            head_sha: None,
        })
    }

    /// `n` records by `writer`, and a checkpoint after each record.
    fn signed(writer: &str, n: u64, k: &SigningKey) -> (Vec<AuditRecord>, Vec<Checkpoint>) {
        let mut state = ChainState::new(writer);
        let mut records = Vec::new();
        let mut cps = Vec::new();
        for i in 1..=n {
            let r = seal(&mut state, approval(i, &format!("approver-{i}")));
            cps.push(
                Checkpoint::unsigned(writer, r.seq, &r.hash, r.time, &key_id(&k.verifying_key()))
                    .signed_with(k),
            );
            records.push(r);
        }
        (records, cps)
    }

    fn kinds(report: &ChainReport) -> Vec<(ProblemKind, u64)> {
        report.problems.iter().map(|p| (p.kind, p.seq)).collect()
    }

    #[test]
    fn a_signed_trail_verifies_and_names_its_signed_head() {
        let k = key(1);
        let (records, cps) = signed("bridge:a", 4, &k);
        let report = verify_trail(&records, &cps, &allow("bridge:*", &k));
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.writers["bridge:a"].signed_seq, 4);
    }

    #[test]
    fn an_approver_rewritten_with_the_rest_rehashed_contradicts_the_checkpoints() {
        let k = key(1);
        let (mut records, cps) = signed("bridge:a", 4, &k);
        // The attacker edits record 2 and re-links and re-hashes everything after it.
        records[1].approvals[0].who = "mallory".into();
        for i in 1..records.len() {
            if i > 1 {
                let prev = records[i - 1].hash.clone();
                records[i].prev_hash = prev;
            }
            records[i].hash = compute_hash(&records[i]);
        }
        assert!(verify_chain(&records).is_ok(), "the chain alone can't tell");
        let report = verify_trail(&records, &cps, &allow("bridge:a", &k));
        assert_eq!(
            kinds(&report),
            [
                (ProblemKind::CheckpointMismatch, 2),
                (ProblemKind::CheckpointMismatch, 3),
                (ProblemKind::CheckpointMismatch, 4)
            ],
            "{report}"
        );
    }

    #[test]
    fn a_tail_cut_below_a_checkpoint_is_truncated_and_one_without_it_is_not_signed_further() {
        let k = key(1);
        let (mut records, cps) = signed("bridge:a", 4, &k);
        records.truncate(2);
        let report = verify_trail(&records, &cps, &allow("bridge:a", &k));
        assert_eq!(
            kinds(&report),
            [(ProblemKind::Truncated, 3), (ProblemKind::Truncated, 4)],
            "{report}"
        );
        assert!(report.problems[1].message.contains("ends at seq 2"));
        // Cutting the checkpoints too leaves a shorter trail that verifies: only an anchor
        // outside the host (S3, git) shows that more was signed once.
        let report = verify_trail(&records, &cps[..2], &allow("bridge:a", &k));
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn a_forged_writer_is_unknown_and_a_key_the_allowlist_lacks_verifies_nothing() {
        let (k, evil) = (key(1), key(9));
        let (mut records, mut cps) = signed("bridge:a", 2, &k);
        let (forged, forged_cps) = signed("bridge-evil", 2, &evil);
        records.extend(forged);
        cps.extend(forged_cps);
        let report = verify_trail(&records, &cps, &allow("bridge:*", &k));
        assert_eq!(
            kinds(&report),
            [(ProblemKind::UnknownWriter, 1)],
            "{report}"
        );

        // A name the allowlist covers, signed with another key: every checkpoint is refused
        // and no record is covered.
        let (forged, forged_cps) = signed("bridge:b", 2, &evil);
        let report = verify_trail(&forged, &forged_cps, &allow("bridge:*", &k));
        assert_eq!(
            kinds(&report),
            [
                (ProblemKind::BadCheckpoint, 1),
                (ProblemKind::Unsigned, 1),
                (ProblemKind::BadCheckpoint, 2)
            ],
            "{report}"
        );
        assert!(report.problems[0].message.contains("does not give writer"));
    }

    #[test]
    fn an_altered_checkpoint_does_not_verify_and_records_after_the_last_one_are_unsigned() {
        let k = key(1);
        let (records, mut cps) = signed("bridge:a", 3, &k);
        cps.truncate(1);
        cps[0].seq = 2;
        cps[0].hash.clone_from(&records[1].hash);
        let report = verify_trail(&records, &cps, &allow("bridge:a", &k));
        assert_eq!(
            kinds(&report),
            [(ProblemKind::Unsigned, 1), (ProblemKind::BadCheckpoint, 2)],
            "{report}"
        );
        assert!(report.problems[0].message.contains("records 1..=3"));
    }

    #[test]
    fn checkpoints_travel_as_trailers_and_patterns_are_checked() {
        let k = key(1);
        let (_, cps) = signed("bridge:a", 1, &k);
        let message = format!("Merge\n\nSlipway-Change: cr-1\n{}\n", cps[0].to_trailer());
        let back: Vec<_> = Checkpoint::from_trailers(&message);
        assert_eq!(back, [Ok(cps[0].clone())]);
        assert!(allow("bridge:a", &k).verify(&cps[0]).is_ok());
        let mut a = WriterAllowlist::new();
        for bad in ["*", "", "a*b*", "x\n"] {
            assert!(a.allow(bad, k.verifying_key()).is_err(), "{bad:?}");
        }
        assert!(a.allow_text("runner:*", "not a key").is_err());
        assert!(
            a.allow_text("runner:*", &hex::encode(k.verifying_key().as_bytes()))
                .is_ok()
        );
        assert!(a.allows("runner:42-1") && !a.allows("bridge:a"));
        assert!(!format!("{a:?}").contains(&hex::encode(k.as_bytes())));
    }
}
