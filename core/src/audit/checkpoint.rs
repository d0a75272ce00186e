//! Signed checkpoints of a writer's chain head, and the allowlist of writers and their keys.
//!
//! A hash chain shows an edit or a gap, but not a chain rewritten and re-hashed from some record
//! on, nor a tail cut off, nor a whole writer made up: anyone who can write the spool can redo
//! the hashes. A checkpoint is the writer's Ed25519 signature over its head (writer, seq, hash,
//! time) with a key that whoever writes the spool can't read. Every record at or before a signed
//! head is pinned by the links, so a verifier that trusts the key trusts the prefix.
//!
//! Which keys count is configuration, never the trail: the [`WriterAllowlist`] maps writer ids
//! (exactly, or by a `prefix*` such as `runner:*`) to public keys. A writer it doesn't list is an
//! error, not a new chain.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, SigningKey, Verifier as _, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The checkpoint format version.
pub const CHECKPOINT_VERSION: u32 = 1;
/// The only signature algorithm so far. The field exists so an HSM or KMS key of another curve
/// can be added without a new format.
pub const ED25519: &str = "ed25519";
/// The git trailer a commit carries a checkpoint in (its value is the checkpoint's JSON).
pub const TRAILER: &str = "Slipway-Audit-Checkpoint";

/// Signed over, ahead of the fields: a checkpoint signature can't be replayed as any other
/// Ed25519 signature made with the same key, nor the other way round.
const DOMAIN: &[u8] = b"slipway audit checkpoint v1\n";

/// A writer's signed chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub v: u32,
    pub alg: String,
    pub writer: String,
    /// The last record covered.
    pub seq: u64,
    /// That record's hash.
    pub hash: String,
    #[schemars(schema_with = "super::datetime_schema")]
    pub time: DateTime<Utc>,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// Base64 of the 64-byte signature over [`Checkpoint::signing_bytes`].
    pub sig: String,
}

/// The fields a signature covers, in a fixed order.
#[derive(Serialize)]
struct Signed<'a> {
    v: u32,
    alg: &'a str,
    writer: &'a str,
    seq: u64,
    hash: &'a str,
    time: &'a DateTime<Utc>,
    key_id: &'a str,
}

impl Checkpoint {
    /// An unsigned checkpoint of `writer`'s head; sign [`Self::signing_bytes`], then
    /// [`Self::with_signature`].
    pub fn unsigned(
        writer: &str,
        seq: u64,
        hash: &str,
        time: DateTime<Utc>,
        key_id: &str,
    ) -> Checkpoint {
        Checkpoint {
            v: CHECKPOINT_VERSION,
            alg: ED25519.into(),
            writer: writer.into(),
            seq,
            hash: hash.into(),
            time,
            key_id: key_id.into(),
            sig: String::new(),
        }
    }

    /// What is signed: a domain tag, then every field but the signature as JSON.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let signed = Signed {
            v: self.v,
            alg: &self.alg,
            writer: &self.writer,
            seq: self.seq,
            hash: &self.hash,
            time: &self.time,
            key_id: &self.key_id,
        };
        let mut out = DOMAIN.to_vec();
        // A struct of strings and numbers always serialises.
        out.extend(serde_json::to_vec(&signed).unwrap_or_default());
        out
    }

    #[must_use]
    pub fn with_signature(mut self, signature: &[u8]) -> Checkpoint {
        self.sig = base64::engine::general_purpose::STANDARD.encode(signature);
        self
    }

    /// Signs with a key held in memory (the embedded signer, and tests).
    #[must_use]
    pub fn signed_with(self, key: &SigningKey) -> Checkpoint {
        use ed25519_dalek::Signer as _;
        let sig = key.sign(&self.signing_bytes());
        self.with_signature(&sig.to_bytes())
    }

    /// One JSON line (no newline), as stored in a spool's `.checkpoints` file and in S3.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The git trailer line that anchors this checkpoint in a commit message.
    pub fn to_trailer(&self) -> String {
        format!("{TRAILER}: {}", self.to_json())
    }

    /// Every checkpoint trailer in a commit message; the ones that don't parse come back as
    /// errors, so a mangled anchor is reported rather than skipped.
    pub fn from_trailers(message: &str) -> Vec<Result<Checkpoint, String>> {
        let prefix = format!("{TRAILER}:");
        message
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|v| {
                serde_json::from_str(v.trim())
                    .map_err(|e| format!("a {TRAILER} trailer that is not a checkpoint: {e}"))
            })
            .collect()
    }
}

/// A public key's id: `ed25519:` and the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("{ED25519}:{}", hex::encode(&digest[..8]))
}

/// Why a checkpoint is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// No allowlist entry covers the writer.
    UnknownWriter(String),
    /// The writer is listed, but not with this key.
    UnknownKey { writer: String, key_id: String },
    /// The signature does not verify: forged, or a field was changed.
    BadSignature,
    /// A version or algorithm this build does not know.
    Unsupported(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownWriter(w) => write!(
                f,
                "writer {w:?} is not in the allowlist of audit writers (audit.writers, or \
                 --writer PATTERN=KEY)"
            ),
            Self::UnknownKey { writer, key_id } => write!(
                f,
                "signed with key {key_id}, which the allowlist does not give writer {writer:?}"
            ),
            Self::BadSignature => {
                f.write_str("the signature does not verify: the checkpoint was forged or altered")
            }
            Self::Unsupported(what) => write!(f, "unsupported checkpoint: {what}"),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// One public key, or several (while a key is rotated), as configuration lists them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WriterKeys {
    One(String),
    Many(Vec<String>),
}

/// Writer ids (exact, or `prefix*`) and the public keys each may sign with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WriterAllowlist {
    entries: Vec<(String, Vec<VerifyingKey>)>,
}

impl fmt::Debug for WriterAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (pattern, keys) in &self.entries {
            m.entry(pattern, &keys.iter().map(key_id).collect::<Vec<_>>());
        }
        m.finish()
    }
}

impl WriterAllowlist {
    pub fn new() -> WriterAllowlist {
        WriterAllowlist::default()
    }

    /// Allows `pattern` to sign with `key`. A pattern is a writer id, or a prefix ending in `*`
    /// (`runner:*`); a bare `*` would let any name in and is refused.
    pub fn allow(&mut self, pattern: &str, key: VerifyingKey) -> Result<(), String> {
        let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
        if prefix.is_empty() || prefix.contains('*') || prefix.chars().any(char::is_control) {
            return Err(format!(
                "audit writer pattern {pattern:?}: use a writer id such as `bridge:prod-1`, or a \
                 prefix ending in `*` such as `runner:*` (a bare `*` would let any writer in)"
            ));
        }
        match self.entries.iter_mut().find(|(p, _)| p == pattern) {
            Some((_, keys)) if !keys.contains(&key) => keys.push(key),
            Some(_) => {}
            None => self.entries.push((pattern.to_string(), vec![key])),
        }
        Ok(())
    }

    /// [`Self::allow`] with the key as text: 64 hex digits, base64, or an SPKI PEM.
    pub fn allow_text(&mut self, pattern: &str, key: &str) -> Result<(), String> {
        let key = crate::change::parse_verifying_key(key)
            .map_err(|e| format!("the key for audit writer {pattern:?}: {e}"))?;
        self.allow(pattern, key)
    }

    /// From configuration's `pattern → key(s)` map (`audit.writers`, `--writers FILE`).
    pub fn from_config<'a>(
        map: impl IntoIterator<Item = (&'a String, &'a WriterKeys)>,
    ) -> Result<WriterAllowlist, String> {
        let mut allow = WriterAllowlist::new();
        for (pattern, keys) in map {
            let keys = match keys {
                WriterKeys::One(k) => std::slice::from_ref(k),
                WriterKeys::Many(ks) => ks.as_slice(),
            };
            if keys.is_empty() {
                return Err(format!("audit writer {pattern:?} lists no key"));
            }
            for key in keys {
                allow.allow_text(pattern, key)?;
            }
        }
        Ok(allow)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The patterns, for messages.
    pub fn patterns(&self) -> Vec<&str> {
        self.entries.iter().map(|(p, _)| p.as_str()).collect()
    }

    fn matches(pattern: &str, writer: &str) -> bool {
        match pattern.strip_suffix('*') {
            Some(prefix) => writer.starts_with(prefix),
            None => pattern == writer,
        }
    }

    /// Whether any entry covers `writer`.
    pub fn allows(&self, writer: &str) -> bool {
        self.entries.iter().any(|(p, _)| Self::matches(p, writer))
    }

    /// Every key some entry covering `writer` lists.
    pub fn keys_for(&self, writer: &str) -> Vec<&VerifyingKey> {
        self.entries
            .iter()
            .filter(|(p, _)| Self::matches(p, writer))
            .flat_map(|(_, keys)| keys)
            .collect()
    }

    /// The checkpoint is of an allowed writer, signed by one of its keys.
    pub fn verify(&self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        if cp.v != CHECKPOINT_VERSION || cp.alg != ED25519 {
            return Err(CheckpointError::Unsupported(format!(
                "version {} with {:?} (this build knows version {CHECKPOINT_VERSION} with {ED25519})",
                cp.v, cp.alg
            )));
        }
        if !self.allows(&cp.writer) {
            return Err(CheckpointError::UnknownWriter(cp.writer.clone()));
        }
        let key = self
            .keys_for(&cp.writer)
            .into_iter()
            .find(|k| key_id(k) == cp.key_id)
            .ok_or_else(|| CheckpointError::UnknownKey {
                writer: cp.writer.clone(),
                key_id: cp.key_id.clone(),
            })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&cp.sig)
            .map_err(|_| CheckpointError::BadSignature)?;
        let bytes: [u8; 64] = raw.try_into().map_err(|_| CheckpointError::BadSignature)?;
        key.verify(&cp.signing_bytes(), &Signature::from_bytes(&bytes))
            .map_err(|_| CheckpointError::BadSignature)
    }
}
