//! Change requests: the signed file (`changes/<id>.yaml`) a mutation becomes in the GitOps repo.
//!
//! Format (schema version 1): YAML with the fields of [`ChangeRequest`]. The bridge signs it with
//! Ed25519; the signature covers the canonical JSON of every field except `signature` itself
//! (object keys sorted, no whitespace), so any edit to the file's content in the PR invalidates
//! it, while YAML formatting does not matter. The runner verifies the signature with the
//! bridge's public key, the expiry, and the schema version before anything else.

mod marker;
pub mod people;
mod plan;
mod requirement;

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::command::{Family, Target, Tier};

/// The change-request file format version this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// Where change files live in the GitOps repo.
pub const CHANGES_DIR: &str = "changes";

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    pub slack_user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_enterprise_id: Option<String>,
    /// The resolved SSO subject.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The requester's GitHub login, so their own review never counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_login: Option<String>,
    pub role: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The command as typed and the exact argv the runner will execute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeCommand {
    pub text: String,
    pub family: Family,
    pub argv: Vec<String>,
}

/// Which policy rules decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBinding {
    /// The permission rule that allowed the request.
    pub rule: String,
    pub approval: ApprovalRequirement,
}

/// One file the change writes, with its content hash (so the runner can check that what merged
/// is what was rendered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderedFile {
    pub path: String,
    pub sha256: String,
}

/// What was rendered when the request was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rendered {
    /// Files the change writes besides its own change file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<RenderedFile>,
    /// The manifest diff (unified), redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Deploys: the image reference and digest or tag deployed, and where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_run_id: Option<u64>,
    /// Terraform: the stack directory, the commit planned, the plan's hash and summary, and the PR
    /// through which the stack's code arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_pr: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_merged_by: Option<String>,
    /// Destructive changes: the text the requester typed to confirm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    /// kubectl: what the cluster's API discovery said about the custom kinds this change names
    /// (`widgets.example.com → namespaced`), so the runner judges their scope as the bridge did.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub kind_scopes: std::collections::BTreeMap<String, bool>,
}

pub use marker::{is_slack_review, slack_review_marker};
pub use plan::{plan_digest, plan_summary};
pub use requirement::{ApprovalRequirement, GroupQuorum};

/// Everything execution depends on, signed: the cluster alias (and namespace) for kubectl and
/// deploys, the stack for terraform. The runner maps these aliases to credentials from its own
/// configuration, never from the merged commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl Execution {
    /// Where a decided target executes; `env_cluster` maps a deploy environment to its cluster
    /// (from the policy at request time).
    pub fn of(target: &Target, env_cluster: impl Fn(&str) -> Option<String>) -> Execution {
        match target {
            Target::Cluster { cluster, namespace } => Execution {
                cluster: cluster.clone(),
                namespace: match namespace {
                    crate::command::Namespace::Named(n) => Some(n.clone()),
                    crate::command::Namespace::Default => Some("default".into()),
                    crate::command::Namespace::All | crate::command::Namespace::ClusterScoped => {
                        None
                    }
                },
                stack: None,
            },
            Target::Service { env, .. } => Execution {
                cluster: env_cluster(env),
                ..Execution::default()
            },
            Target::Stack { stack } => Execution {
                stack: Some(stack.clone()),
                ..Execution::default()
            },
            Target::AwsProfile { .. }
            | Target::GcpProject { .. }
            | Target::Alerts { .. }
            | Target::None => Execution::default(),
        }
    }
}

/// A freeze override, as signed into a change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreezeOverride {
    /// The windows overridden, by name.
    pub windows: Vec<String>,
    /// Why, as the requester said after `--override-freeze` (redacted).
    pub reason: String,
}

/// The bridge's signature over the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Always `ed25519`.
    pub alg: String,
    /// Which bridge key signed, so keys can rotate.
    pub key_id: String,
    /// Base64 of the 64-byte signature.
    pub value: String,
}

/// A change request, as committed to `changes/<id>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub schema_version: u32,
    /// `cr-…`: unique, also the PR branch `slipway/<id>`.
    pub id: String,
    pub requester: Requester,
    pub command: ChangeCommand,
    pub target: Target,
    pub tier: Tier,
    /// The canonical resource string policy matched (`service:api/staging`, …).
    pub resource: String,
    pub policy: PolicyBinding,
    pub rendered: Rendered,
    /// Why, as the requester said (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The freeze windows in force when it was requested, overridden by the requester (whom
    /// they named) with a reason. Signed like the rest: an override added later fails
    /// verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_override: Option<FreezeOverride>,
    /// The change request this one supersedes on the same PR, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// Where the runner executes it, fixed when it was requested: nothing the merge changes (the
    /// policy's environments, say) can move it. The runner refuses a request without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    #[schemars(schema_with = "crate::audit::datetime_schema")]
    pub created_at: DateTime<Utc>,
    #[schemars(schema_with = "crate::audit::datetime_schema")]
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

/// Why a change request is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    Unsigned,
    UnknownKey(String),
    /// Signed with a key id that was revoked: refused whatever the file's expiry.
    RevokedKey(String),
    BadSignature,
    Expired {
        expires_at: DateTime<Utc>,
    },
    UnsupportedVersion(u32),
    Malformed(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => f.write_str("the change request is not signed"),
            Self::UnknownKey(k) => write!(f, "the change request is signed with unknown key `{k}`"),
            Self::RevokedKey(k) => write!(f, "the change request is signed with key `{k}`, which is revoked: request the change again so the current key signs it"),
            Self::BadSignature => f.write_str("the change request's signature does not match its content (it was edited after signing)"),
            Self::Expired { expires_at } => write!(f, "the change request expired at {}", expires_at.to_rfc3339()),
            Self::UnsupportedVersion(v) => write!(f, "unsupported change request schema_version {v} (this build reads {SCHEMA_VERSION})"),
            Self::Malformed(e) => write!(f, "the change request file is malformed: {e}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// The bytes a signature covers: canonical JSON of the request without its signature.
pub fn signing_bytes(cr: &ChangeRequest) -> Vec<u8> {
    let mut unsigned = cr.clone();
    unsigned.signature = None;
    let value = serde_json::to_value(&unsigned).unwrap_or_default();
    canonical(&value).into_bytes()
}

/// JSON with sorted keys and no whitespace.
pub(crate) fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Sign a request (replacing any existing signature).
pub fn sign(mut cr: ChangeRequest, key: &SigningKey, key_id: &str) -> ChangeRequest {
    cr.signature = None;
    cr.signature = Some(signature_over(&signing_bytes(&cr), key, key_id));
    cr
}

/// An Ed25519 signature over `bytes` (the change requests' and the identity snapshots' scheme).
pub(crate) fn signature_over(bytes: &[u8], key: &SigningKey, key_id: &str) -> Signature {
    let sig = key.sign(bytes);
    Signature {
        alg: "ed25519".into(),
        key_id: key_id.to_string(),
        value: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    }
}

/// Check `sig` over `bytes` against the key it names.
/// The keys change requests (and people snapshots) may be signed with, by id, and the ids that
/// are revoked. Rotation adds an id that signs from then on (older ids keep verifying what
/// they signed); revocation refuses an id outright, whatever a file's expiry.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<(String, VerifyingKey)>,
    revoked: std::collections::BTreeSet<String>,
}

impl Keyring {
    pub fn new(
        keys: Vec<(String, VerifyingKey)>,
        revoked: impl IntoIterator<Item = String>,
    ) -> Keyring {
        Keyring {
            keys,
            revoked: revoked.into_iter().collect(),
        }
    }

    /// The key for `id`, unless it is revoked or unknown.
    pub fn key(&self, id: &str) -> Result<&VerifyingKey, VerifyError> {
        if self.revoked.contains(id) {
            return Err(VerifyError::RevokedKey(id.to_string()));
        }
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, k)| k)
            .ok_or_else(|| VerifyError::UnknownKey(id.to_string()))
    }

    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked.contains(id)
    }
}

impl From<Vec<(String, VerifyingKey)>> for Keyring {
    fn from(keys: Vec<(String, VerifyingKey)>) -> Keyring {
        Keyring::new(keys, [])
    }
}

pub(crate) fn check_signature(
    sig: &Signature,
    bytes: &[u8],
    keys: &Keyring,
) -> Result<(), VerifyError> {
    if sig.alg != "ed25519" {
        return Err(VerifyError::BadSignature);
    }
    let key = keys.key(&sig.key_id)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&sig.value)
        .map_err(|_| VerifyError::BadSignature)?;
    let bytes64: [u8; 64] = raw.try_into().map_err(|_| VerifyError::BadSignature)?;
    key.verify(bytes, &ed25519_dalek::Signature::from_bytes(&bytes64))
        .map_err(|_| VerifyError::BadSignature)
}

/// Verify schema version, signature (against the named key) and expiry at `now`.
pub fn verify(cr: &ChangeRequest, keys: &Keyring, now: DateTime<Utc>) -> Result<(), VerifyError> {
    if cr.schema_version != SCHEMA_VERSION {
        return Err(VerifyError::UnsupportedVersion(cr.schema_version));
    }
    let sig = cr.signature.as_ref().ok_or(VerifyError::Unsigned)?;
    check_signature(sig, &signing_bytes(cr), keys)?;
    if now > cr.expires_at {
        return Err(VerifyError::Expired {
            expires_at: cr.expires_at,
        });
    }
    Ok(())
}

impl ChangeRequest {
    /// `changes/<id>.yaml`.
    pub fn file_path(&self) -> String {
        file_path(&self.id)
    }

    /// The PR branch.
    pub fn branch(&self) -> String {
        format!("slipway/{}", self.id)
    }

    /// The YAML file content, with a header saying what it is.
    pub fn to_yaml(&self) -> String {
        let body = serde_saphyr::to_string(self).unwrap_or_default();
        format!(
            "# Slipway change request {}. Signed by the bridge: any edit invalidates it.\n# Requested by {} ({}): {}\n{body}",
            self.id, self.requester.subject, self.requester.slack_user_id, self.command.text
        )
    }

    /// Parse a change file.
    pub fn from_yaml(text: &str) -> Result<ChangeRequest, VerifyError> {
        serde_saphyr::from_str(text).map_err(|e| {
            VerifyError::Malformed(
                e.without_snippet()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            )
        })
    }
}

/// `changes/<id>.yaml` for an id.
pub fn file_path(id: &str) -> String {
    format!("{CHANGES_DIR}/{id}.yaml")
}

/// A ref-safe slug of a resource string, for lock refs and branch names:
/// `service:api/staging` → `service-api-staging-<16 hex of its SHA-256>`. The readable part
/// alone is not one-to-one (`kube:prod/web-api` and `kube:prod/web/api` would share it, and one
/// can be a prefix of another); the digest makes it so.
pub fn lock_slug(resource: &str) -> String {
    use sha2::Digest as _;
    let readable: String = resource
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let digest = hex::encode(sha2::Sha256::digest(resource.as_bytes()));
    format!("{readable}-{}", &digest[..16])
}

/// The lock slug a change id (`cr-<slug>-<8 hex>`) was made for, if it has that shape.
pub fn slug_of_id(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("cr-")?;
    let (slug, short) = rest.rsplit_once('-')?;
    (short.len() == 8 && short.bytes().all(|b| b.is_ascii_hexdigit())).then_some(slug)
}

/// Parse the bridge's signing key: a PKCS#8 PEM, or 32 bytes as hex or base64 (the seed).
pub fn parse_signing_key(text: &str) -> Result<SigningKey, String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(t)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"));
    }
    let bytes = hex_or_base64(t)?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 key seed is 32 bytes".to_string())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parse a verifying (public) key: SPKI PEM, or 32 bytes as hex or base64.
pub fn parse_verifying_key(text: &str) -> Result<VerifyingKey, String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(t)
            .map_err(|e| format!("not an Ed25519 public key: {e}"));
    }
    let bytes = hex_or_base64(t)?;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&raw).map_err(|e| format!("invalid Ed25519 public key: {e}"))
}

fn hex_or_base64(t: &str) -> Result<Vec<u8>, String> {
    if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        return hex::decode(t).map_err(|e| e.to_string());
    }
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|_| "expected PEM, 64 hex digits or base64".to_string())
}

/// The JSON Schema of the change-request file.
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(ChangeRequest)
}

#[cfg(test)]
mod tests;
