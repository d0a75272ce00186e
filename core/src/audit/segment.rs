//! Another writer's records shown to this process (the runner's, in its evidence comment):
//! accepted only as one writer's whole chain from its first record, every link intact, ending
//! in a checkpoint that writer's allowed key signed over the last record. Anyone can write a
//! comment; only the key holder can make this pass.

use super::{AuditRecord, Checkpoint, WriterAllowlist, verify_chain};

/// Checks `records` (seq 1..n of one writer whose id starts with `writer_prefix`) against
/// `checkpoint` and `allow`. The error says what failed, for the log.
pub fn verify_segment(
    records: &[AuditRecord],
    checkpoint: &Checkpoint,
    allow: &WriterAllowlist,
    writer_prefix: &str,
) -> Result<(), String> {
    let last = records.last().ok_or("no records")?;
    let writer = &last.writer;
    if !writer.starts_with(writer_prefix) {
        return Err(format!(
            "writer `{writer}` is not a `{writer_prefix}*` writer"
        ));
    }
    if let Some(other) = records.iter().find(|r| r.writer != *writer) {
        return Err(format!(
            "records of two writers (`{writer}`, `{}`)",
            other.writer
        ));
    }
    let report = verify_chain(records);
    if !report.is_ok() {
        return Err(format!("the chain doesn't verify: {report}"));
    }
    if records.first().map(|r| r.seq) != Some(1) {
        return Err("the records don't start at the writer's first".into());
    }
    if checkpoint.writer != *writer || checkpoint.seq != last.seq || checkpoint.hash != last.hash {
        return Err(format!(
            "the checkpoint (writer `{}`, seq {}) doesn't cover the last record (seq {})",
            checkpoint.writer, checkpoint.seq, last.seq
        ));
    }
    allow
        .verify(checkpoint)
        .map_err(|e| format!("the checkpoint doesn't verify: {e}"))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::audit::{ChainState, EventKind, seal};

    fn chain(writer: &str, n: u64) -> Vec<AuditRecord> {
        let mut state = ChainState::new(writer);
        (1..=n)
            .map(|i| {
                seal(
                    &mut state,
                    AuditRecord::new(EventKind::Execution, format!("e{i}"), t0()),
                )
            })
            .collect()
    }

    fn signed(records: &[AuditRecord], key: &SigningKey) -> Checkpoint {
        let last = records.last().unwrap();
        Checkpoint::unsigned(
            &last.writer,
            last.seq,
            &last.hash,
            t0(),
            &crate::audit::key_id(&key.verifying_key()),
        )
        .signed_with(key)
    }

    #[test]
    fn only_a_whole_chain_signed_by_the_writers_key_passes() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let mut allow = WriterAllowlist::new();
        allow.allow("runner:*", key.verifying_key()).unwrap();
        let records = chain("runner:9-1", 3);
        let cp = signed(&records, &key);
        assert_eq!(verify_segment(&records, &cp, &allow, "runner:"), Ok(()));
        // Forged by another key; a record edited; the tail cut; the head missing.
        let other = signed(&records, &SigningKey::from_bytes(&[6; 32]));
        assert!(verify_segment(&records, &other, &allow, "runner:").is_err());
        let mut edited = records.clone();
        edited[1].event_id = "forged".into();
        assert!(verify_segment(&edited, &cp, &allow, "runner:").is_err());
        assert!(verify_segment(&records[..2], &cp, &allow, "runner:").is_err());
        assert!(verify_segment(&records[1..], &cp, &allow, "runner:").is_err());
        // A runner key can't vouch for a bridge writer's records.
        let bridge = chain("bridge:x", 1);
        let cp = signed(&bridge, &key);
        assert!(verify_segment(&bridge, &cp, &allow, "runner:").is_err());
        assert!(verify_segment(&[], &cp, &allow, "runner:").is_err());
    }
}
