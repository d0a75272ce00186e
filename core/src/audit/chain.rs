//! Sealing: each writer numbers its records 1, 2, 3… and links each to the previous one by hash,
//! so a verifier can tell an edited, missing or forked record from an intact chain.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AuditRecord, SCHEMA_VERSION};

/// `prev_hash` of a writer's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a writer's chain stands: the last sequence number it used and that record's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub writer: String,
    /// The last sequence number sealed; 0 before the first record.
    pub seq: u64,
    pub last_hash: String,
}

impl ChainState {
    /// A fresh chain: the next record is seq 1 and links to [`GENESIS_HASH`].
    pub fn new(writer: impl Into<String>) -> Self {
        Self {
            writer: writer.into(),
            seq: 0,
            last_hash: GENESIS_HASH.to_string(),
        }
    }

    /// Continue a chain whose last durable record had `seq` and `last_hash` (e.g. after a restart).
    pub fn resume(writer: impl Into<String>, seq: u64, last_hash: impl Into<String>) -> Self {
        Self {
            writer: writer.into(),
            seq,
            last_hash: last_hash.into(),
        }
    }
}

/// Fills writer/seq/prev_hash/hash and advances the state.
///
/// Also pins `schema_version` to this crate's version and normalises `details: Some(null)` to
/// `None`, since JSON cannot tell those apart and the hash must survive a round trip.
pub fn seal(state: &mut ChainState, mut record: AuditRecord) -> AuditRecord {
    record.schema_version = SCHEMA_VERSION;
    if record.details.as_ref().is_some_and(Value::is_null) {
        record.details = None;
    }
    record.writer.clone_from(&state.writer);
    record.seq = state.seq.saturating_add(1);
    record.prev_hash.clone_from(&state.last_hash);
    record.hash = compute_hash(&record);
    state.seq = record.seq;
    state.last_hash.clone_from(&record.hash);
    record
}

/// `hex(sha256(canonical_json(record)))`, lowercase.
///
/// Serialising an `AuditRecord` cannot fail (every map key is a string); should it ever, the
/// result is a non-hex marker that no stored hash can equal, so verification reports it rather
/// than this function panicking.
pub fn compute_hash(record: &AuditRecord) -> String {
    match canonical_json(record) {
        Ok(json) => hex::encode(Sha256::digest(json.as_bytes())),
        Err(e) => format!("unhashable: {e}"),
    }
}

/// The bytes that are hashed: the record as serde_json serialises it, minus the `hash` field,
/// with every object's keys sorted by their UTF-8 bytes, and no whitespace. Strings and numbers
/// are written exactly as serde_json writes them.
///
/// Keys are sorted here rather than relying on `serde_json::Map` being a `BTreeMap`, because any
/// crate in the build enabling serde_json's `preserve_order` feature would silently change that.
pub fn canonical_json(record: &AuditRecord) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(record)?;
    if let Value::Object(map) = &mut value {
        map.remove("hash");
    }
    let mut out = Vec::with_capacity(512);
    write_canonical(&value, &mut out)?;
    // Only serde_json output and ASCII punctuation were written, so this is valid UTF-8.
    String::from_utf8(out).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_canonical(v, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}
