//! Reading a mirror back, for `slipway audit verify` and `slipway audit show`: every version of
//! every object (records and signed checkpoints) under the prefix (so an overwrite shows as a second version rather than hiding
//! the original), with the Object Lock headers of each, plus the delete markers.
//!
//! Lock headers come from GetObject's response headers (the same as HeadObject's), not from
//! GetObjectRetention: some S3-compatible servers answer that with the object body.

use aws_sdk_s3::types::ChecksumMode;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use slipway_core::audit::{AuditRecord, Checkpoint};

use super::{CHECKPOINT_SUFFIX, RetentionMode, describe};

/// Objects read at once.
const CONCURRENCY: usize = 16;

/// One object version, as stored.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub key: String,
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub content: Content,
}

/// What a version holds.
#[derive(Debug, Clone)]
pub enum Content {
    /// An audit record (or a body that is not one), with its lock.
    Object {
        record: Result<Box<AuditRecord>, String>,
        lock_mode: Option<LockMode>,
        retain_until: Option<DateTime<Utc>>,
    },
    /// A signed checkpoint (a key ending in `.checkpoint.json`), with its lock.
    Checkpoint {
        checkpoint: Result<Box<Checkpoint>, String>,
        lock_mode: Option<LockMode>,
        retain_until: Option<DateTime<Utc>>,
    },
    /// A delete marker: the object was "deleted"; locked versions below it remain.
    DeleteMarker,
}

/// The lock mode as S3 reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockMode {
    Known(RetentionMode),
    Other(String),
}

/// A failure to read the bucket at all.
#[derive(Debug, thiserror::Error)]
#[error("S3 bucket {bucket}: {what}: {detail}")]
pub struct ReadError {
    pub bucket: String,
    pub what: String,
    pub detail: String,
}

/// Every version and delete marker under `prefix`, sorted by key, then oldest first.
pub async fn read_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<StoredVersion>, ReadError> {
    let (mut versions, markers) = list_versions(client, bucket, prefix).await?;
    versions.sort_by(|a, b| (&a.key, a.modified).cmp(&(&b.key, b.modified)));
    let mut out: Vec<StoredVersion> = stream::iter(versions)
        .map(|v| async move {
            let content = read_version(client, bucket, &v.key, v.version_id.as_deref()).await?;
            Ok::<_, ReadError>(StoredVersion {
                key: v.key,
                version_id: v.version_id,
                is_latest: v.is_latest,
                content,
            })
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    out.extend(markers);
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// An object version as listed, before it is read.
struct Listed {
    key: String,
    version_id: Option<String>,
    is_latest: bool,
    /// Seconds and nanoseconds, to order a key's versions oldest first.
    modified: Option<(i64, u32)>,
}

/// Every page of `ListObjectVersions` under `prefix`: the object versions, and the delete
/// markers (which have nothing to read).
async fn list_versions(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<Listed>, Vec<StoredVersion>), ReadError> {
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(|e| ReadError {
                bucket: bucket.to_string(),
                what: "listing object versions".to_string(),
                detail: describe(&e),
            })?;
        versions.extend(page.versions().iter().filter_map(|v| {
            Some(Listed {
                key: v.key()?.to_string(),
                version_id: v.version_id().map(str::to_string),
                is_latest: v.is_latest().unwrap_or(false),
                modified: v.last_modified().map(|d| (d.secs(), d.subsec_nanos())),
            })
        }));
        markers.extend(page.delete_markers().iter().filter_map(|m| {
            Some(StoredVersion {
                key: m.key()?.to_string(),
                version_id: m.version_id().map(str::to_string),
                is_latest: m.is_latest().unwrap_or(false),
                content: Content::DeleteMarker,
            })
        }));
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        if key_marker.is_none() {
            break;
        }
    }
    Ok((versions, markers))
}

async fn read_version(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Content, ReadError> {
    let err = |detail: String| ReadError {
        bucket: bucket.to_string(),
        what: format!("reading {key} (version {})", version_id.unwrap_or("null")),
        detail,
    };
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version_id.map(str::to_string))
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| err(describe(&e)))?;
    let lock_mode = got.object_lock_mode().map(|m| match m.as_str() {
        "COMPLIANCE" => LockMode::Known(RetentionMode::Compliance),
        "GOVERNANCE" => LockMode::Known(RetentionMode::Governance),
        other => LockMode::Other(other.to_string()),
    });
    let retain_until = got
        .object_lock_retain_until_date()
        .and_then(|d| DateTime::<Utc>::from_timestamp(d.secs(), d.subsec_nanos()));
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| err(e.to_string()))?
        .into_bytes();
    if key.ends_with(CHECKPOINT_SUFFIX) {
        let checkpoint = serde_json::from_slice::<Box<Checkpoint>>(bytes.trim_ascii_end())
            .map_err(|e| format!("not a checkpoint: {e}"));
        return Ok(Content::Checkpoint {
            checkpoint,
            lock_mode,
            retain_until,
        });
    }
    let record = serde_json::from_slice::<Box<AuditRecord>>(bytes.trim_ascii_end())
        .map_err(|e| format!("not an audit record: {e}"));
    Ok(Content::Object {
        record,
        lock_mode,
        retain_until,
    })
}
