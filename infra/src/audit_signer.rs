//! Who signs the audit chain's checkpoints, and with which key.
//!
//! [`ChainSigner`] is the seam: the embedded default is [`KeyFileSigner`], an Ed25519 key in a
//! file of its own that the spool's writers can't read or swap (not group- or world-accessible,
//! and never inside the spool or state directory). An HSM, a KMS or Vault Transit signer
//! implements the same trait; the private key then never reaches the host at all.
//!
//! [`AuditSigning`] pairs the signer with the allowlist of writers and their public keys, and
//! checks the two agree before anything is signed: a swapped key file is refused at startup
//! rather than producing checkpoints no verifier accepts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use slipway_core::audit::{WriterAllowlist, key_id};

/// Signs checkpoints. Called from the audit writer's thread once per write batch, before the
/// batch is acknowledged: it may block, and its latency adds to every acknowledgement.
pub trait ChainSigner: Send + Sync + fmt::Debug {
    /// The id of the key it signs with ([`key_id`] of its public key).
    fn key_id(&self) -> String;
    /// The public key, to check against the allowlist.
    fn public_key(&self) -> VerifyingKey;
    /// An Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], String>;
}

/// An Ed25519 key read once from its own file.
pub struct KeyFileSigner {
    key: SigningKey,
    path: PathBuf,
}

impl fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileSigner")
            .field("path", &self.path)
            .field("key_id", &key_id(&self.key.verifying_key()))
            .finish_non_exhaustive()
    }
}

impl KeyFileSigner {
    /// Reads the key (a PKCS#8 PEM, or a 32-byte seed as hex or base64) from `path`, which must
    /// be readable by its owner only and outside every directory in `not_under` (the state and
    /// spool directories: whoever can write those must not be able to read or replace the key).
    pub fn load(path: &Path, not_under: &[&Path]) -> Result<KeyFileSigner, String> {
        let shown = path.display();
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        for dir in not_under {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            if absolute.starts_with(&dir) {
                return Err(format!(
                    "the audit signing key {shown} is inside {}, which the audit spool's writers \
                     can change: keep the key in a file of its own outside it (a mounted secret)",
                    dir.display()
                ));
            }
        }
        check_mode(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "can't read the audit signing key {shown}: {e} (create one with `slipway audit \
                 keygen --out {shown}`)"
            )
        })?;
        let key = slipway_core::change::parse_signing_key(&text)
            .map_err(|e| format!("the audit signing key {shown}: {e}"))?;
        Ok(KeyFileSigner {
            key,
            path: path.to_path_buf(),
        })
    }

    /// A signer over a key held in memory (tests, and tools that just generated one).
    pub fn from_key(key: SigningKey) -> KeyFileSigner {
        KeyFileSigner {
            key,
            path: PathBuf::new(),
        }
    }
}

impl ChainSigner for KeyFileSigner {
    fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], String> {
        Ok(self.key.sign(message).to_bytes())
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "can't read the audit signing key {}: {e} (create one with `slipway audit keygen \
             --out {}`)",
            path.display(),
            path.display()
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the audit signing key {} can be read or written by others (mode {mode:03o}): \
             `chmod 600` it, so only the signer reads it",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path) -> Result<(), String> {
    Ok(())
}

/// Writes a new random key to `path` (mode 0600, never over an existing file) and returns its
/// public key.
pub fn generate_key_file(path: &Path) -> Result<VerifyingKey, String> {
    use std::io::Write as _;
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| "the system has no randomness".to_string())?;
    let key = SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    file.write_all(format!("{}\n", hex::encode(seed)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(key.verifying_key())
}

/// The signer and the allowlist, shared by a writer's spool and its verifiers.
#[derive(Debug, Clone)]
pub struct AuditSigning {
    pub signer: Arc<dyn ChainSigner>,
    pub writers: Arc<WriterAllowlist>,
}

impl AuditSigning {
    /// With an explicit allowlist (`None` or empty: only `writer`, with the signer's own key).
    pub fn new(
        signer: Arc<dyn ChainSigner>,
        writers: Option<WriterAllowlist>,
        writer: &str,
    ) -> Result<AuditSigning, String> {
        let writers = if let Some(w) = writers.filter(|w| !w.is_empty()) {
            w
        } else {
            let mut own = WriterAllowlist::new();
            own.allow(writer, signer.public_key())?;
            own
        };
        let signing = AuditSigning {
            signer,
            writers: Arc::new(writers),
        };
        signing.check(writer)?;
        Ok(signing)
    }

    /// `writer` is allowed, and allowed to sign with this signer's key.
    pub fn check(&self, writer: &str) -> Result<(), String> {
        if !self.writers.allows(writer) {
            return Err(format!(
                "the audit writer {writer:?} is not in the allowlist of audit writers ({}): add \
                 it (or a pattern covering it) with this signer's public key {}",
                self.writers.patterns().join(", "),
                hex::encode(self.signer.public_key().as_bytes())
            ));
        }
        let own = self.signer.public_key();
        if !self.writers.keys_for(writer).contains(&&own) {
            return Err(format!(
                "the audit signing key ({}) is not the key the allowlist gives writer {writer:?}: \
                 the key file was swapped, or the allowlist lacks the new key (public key {})",
                self.signer.key_id(),
                hex::encode(own.as_bytes())
            ));
        }
        Ok(())
    }
}

/// A signer with a fixed key allowed for writers starting with `writer`'s prefix up to `:`, for
/// unit tests.
#[cfg(test)]
pub(crate) fn test_signing(writer: &str) -> AuditSigning {
    let signer: Arc<dyn ChainSigner> =
        Arc::new(KeyFileSigner::from_key(SigningKey::from_bytes(&[7; 32])));
    let mut writers = WriterAllowlist::new();
    let prefix = writer.split_once(':').map_or(writer, |(p, _)| p);
    writers
        .allow(&format!("{prefix}:*"), signer.public_key())
        .unwrap_or_default();
    writers
        .allow("runner:*", signer.public_key())
        .unwrap_or_default();
    AuditSigning {
        signer,
        writers: Arc::new(writers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_others_can_read_or_inside_the_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let public = generate_key_file(&path).unwrap();
        let signer = KeyFileSigner::load(&path, &[]).unwrap();
        assert_eq!(signer.public_key(), public);
        assert!(!format!("{signer:?}").contains(&std::fs::read_to_string(&path).unwrap()));
        assert!(generate_key_file(&path).is_err(), "never overwrites");

        let e = KeyFileSigner::load(&path, &[dir.path()]).unwrap_err();
        assert!(e.contains("outside"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = KeyFileSigner::load(&path, &[]).unwrap_err();
            assert!(e.contains("chmod 600") && e.contains("644"), "{e}");
        }
    }

    #[test]
    fn the_signer_must_be_the_key_the_allowlist_gives_the_writer() {
        let signer: Arc<dyn ChainSigner> =
            Arc::new(KeyFileSigner::from_key(SigningKey::from_bytes(&[1; 32])));
        assert!(AuditSigning::new(signer.clone(), None, "bridge:a").is_ok());
        let mut other = WriterAllowlist::new();
        other
            .allow("bridge:*", SigningKey::from_bytes(&[2; 32]).verifying_key())
            .unwrap();
        let e = AuditSigning::new(signer.clone(), Some(other.clone()), "bridge:a").unwrap_err();
        assert!(e.contains("swapped"), "{e}");
        let e = AuditSigning::new(signer, Some(other), "runner:1").unwrap_err();
        assert!(e.contains("not in the allowlist"), "{e}");
    }
}
