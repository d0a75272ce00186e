//! Uploading: the bucket checks and the idempotent, locked put of one record, and of the signed
//! checkpoint that ends each delivery (so what the bucket holds always ends signed, and a spool
//! cut back before or after mirroring shows against it).

use aws_sdk_s3::primitives::{ByteStream, DateTime as S3DateTime};
use aws_sdk_s3::types::{BucketVersioningStatus, ChecksumAlgorithm, ObjectLockEnabled};
use base64::Engine as _;
use futures_util::{StreamExt as _, stream};
use sha2::{Digest, Sha256};
use slipway_core::audit::{AuditRecord, Checkpoint, compute_hash};

use super::{S3Settings, classify};
use crate::sinks::{Delivery, Sink, SinkError};
use crate::spool::{MIRROR_CURSOR, file_stem};

/// Uploads in flight at once while catching up.
const CONCURRENCY: usize = 16;

/// The S3 mirror, a [`Sink`] on the spool's mirror cursor.
#[derive(Debug, Clone)]
pub struct S3Mirror {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
}

/// What an upload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// A new object was written.
    Created,
    /// The same record was already there (an upload repeated after a crash).
    AlreadyThere,
}

impl S3Mirror {
    pub fn new(client: aws_sdk_s3::Client, settings: S3Settings) -> S3Mirror {
        S3Mirror { client, settings }
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// The bucket must exist with versioning and Object Lock enabled; otherwise records could be
    /// deleted or overwritten, and the mirror refuses to upload.
    pub async fn check_bucket(&self) -> Result<(), SinkError> {
        let bucket = &self.settings.bucket;
        let status = match self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(v) => v.status().map(|s| s.as_str().to_string()),
            Err(e) => match unparsed_success(&e) {
                Some(body) => versioning_status(body),
                None => return Err(classify("reading the versioning status", bucket, &e)),
            },
        };
        if status.as_deref() != Some(BucketVersioningStatus::Enabled.as_str()) {
            let status = status.as_deref().unwrap_or("never enabled");
            return Err(SinkError::Config(format!(
                "S3 bucket {bucket} does not have versioning enabled ({status}); the audit mirror \
                 needs versioning and Object Lock: use a bucket created with \
                 `aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket`"
            )));
        }
        let no_lock = || {
            SinkError::Config(format!(
                "S3 bucket {bucket} does not have Object Lock enabled, so audit records there could \
                 be deleted: use a bucket created with \
                 `aws s3api create-bucket --bucket {bucket} --object-lock-enabled-for-bucket`"
            ))
        };
        let lock = match self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(lock) => lock,
            Err(e) => {
                use aws_sdk_s3::error::ProvideErrorMetadata as _;
                if e.code() == Some("ObjectLockConfigurationNotFoundError") {
                    return Err(no_lock());
                }
                return Err(classify(
                    "reading the Object Lock configuration",
                    bucket,
                    &e,
                ));
            }
        };
        let enabled = lock
            .object_lock_configuration()
            .and_then(|c| c.object_lock_enabled());
        if enabled == Some(&ObjectLockEnabled::Enabled) {
            Ok(())
        } else {
            Err(no_lock())
        }
    }

    /// The key `record` is mirrored to.
    pub fn key_of(&self, record: &AuditRecord) -> Result<String, SinkError> {
        let stem = file_stem(&record.writer).map_err(|e| SinkError::Config(e.to_string()))?;
        Ok(self.settings.key(&stem, record.seq))
    }

    /// Uploads one record under Object Lock, unless the same record is already there.
    pub async fn upload(&self, record: &AuditRecord) -> Result<Uploaded, SinkError> {
        let key = self.key_of(record)?;
        let mut body = serde_json::to_vec(record)
            .map_err(|e| SinkError::Config(format!("cannot encode record {key}: {e}")))?;
        body.push(b'\n');
        let meta = [
            ("slipway-hash", record.hash.as_str()),
            ("slipway-event-id", record.event_id.as_str()),
        ];
        if self.put_locked(&key, body, record.time, &meta).await? {
            Ok(Uploaded::Created)
        } else {
            self.compare_existing(&key, record).await
        }
    }

    /// The key `checkpoint` is stored at, beside the record it covers.
    pub fn checkpoint_key(&self, checkpoint: &Checkpoint) -> Result<String, SinkError> {
        let stem = file_stem(&checkpoint.writer).map_err(|e| SinkError::Config(e.to_string()))?;
        Ok(self.settings.checkpoint_key(&stem, checkpoint.seq))
    }

    /// Uploads a signed checkpoint under Object Lock (after the records it covers), unless the
    /// same checkpoint is already there. A different one at its key is a conflict.
    pub async fn upload_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Uploaded, SinkError> {
        let key = self.checkpoint_key(checkpoint)?;
        let body = format!("{}\n", checkpoint.to_json()).into_bytes();
        let meta = [("slipway-hash", checkpoint.hash.as_str())];
        if self.put_locked(&key, body, checkpoint.time, &meta).await? {
            return Ok(Uploaded::Created);
        }
        let bucket = &self.settings.bucket;
        let bytes = self.read_back(&key).await?;
        match serde_json::from_slice::<Checkpoint>(bytes.trim_ascii_end()) {
            Ok(stored) if stored == *checkpoint => Ok(Uploaded::AlreadyThere),
            _ => Err(SinkError::Conflict(format!(
                "S3 object {key} in bucket {bucket} holds another checkpoint than the spool's {} \
                 seq {}: the chain forked or the spool was replaced. The object is left as it is \
                 and mirroring stops here",
                checkpoint.writer, checkpoint.seq
            ))),
        }
    }

    /// A conditional (`If-None-Match: *`), checksummed put under the configured retention,
    /// retained from the later of now and `time`. `Ok(false)`: the key is taken.
    async fn put_locked(
        &self,
        key: &str,
        body: Vec<u8>,
        time: chrono::DateTime<chrono::Utc>,
        meta: &[(&str, &str)],
    ) -> Result<bool, SinkError> {
        let bucket = &self.settings.bucket;
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        let retention = self.settings.retention;
        // From the later of now and the record's time, rounded up to a whole second (S3 keeps
        // seconds), so the lock always covers `days` after the record.
        let until =
            chrono::Utc::now().max(time) + chrono::Duration::days(i64::from(retention.days));
        let until_secs = until.timestamp() + i64::from(until.timestamp_subsec_nanos() > 0);
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .object_lock_mode(retention.mode.to_sdk())
            .object_lock_retain_until_date(S3DateTime::from_secs(until_secs))
            .if_none_match("*")
            .body(ByteStream::from(body));
        for (k, v) in meta {
            put = put.metadata(*k, *v);
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_precondition_failed(&e) => Ok(false),
            Err(e) => Err(classify(&format!("uploading {key}"), bucket, &e)),
        }
    }

    async fn read_back(&self, key: &str) -> Result<bytes::Bytes, SinkError> {
        let bucket = &self.settings.bucket;
        let got = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&format!("reading back {key}"), bucket, &e))?;
        Ok(got
            .body
            .collect()
            .await
            .map_err(|e| SinkError::Transient(format!("S3 reading back {key}: {e}")))?
            .into_bytes())
    }

    /// The key is taken: accept it only if it holds this very record.
    async fn compare_existing(
        &self,
        key: &str,
        record: &AuditRecord,
    ) -> Result<Uploaded, SinkError> {
        let bucket = &self.settings.bucket;
        let bytes = self.read_back(key).await?;
        let stored: AuditRecord = serde_json::from_slice(bytes.trim_ascii_end()).map_err(|e| {
            SinkError::Conflict(format!(
                "S3 object {key} in bucket {bucket} exists but is not an audit record ({e}); \
                 the mirror leaves it and stops here: investigate who wrote it"
            ))
        })?;
        if stored.hash == record.hash && compute_hash(&stored) == stored.hash {
            return Ok(Uploaded::AlreadyThere);
        }
        Err(SinkError::Conflict(format!(
            "S3 object {key} in bucket {bucket} holds a different record (event {}, hash {}) than \
             the spool's {} seq {} (event {}, hash {}): the chain forked or the spool was replaced. \
             The object is left as it is and mirroring stops at this record; give this writer a \
             new id (SLIPWAY_AUDIT_WRITER) once the cause is known",
            stored.event_id,
            short(&stored.hash),
            record.writer,
            record.seq,
            record.event_id,
            short(&record.hash)
        )))
    }
}

/// Some S3-compatible servers (moto among them) answer GetBucketVersioning with another root
/// element than `VersioningConfiguration`, which the SDK refuses to parse. A successful answer's
/// `<Status>` still says what it says.
fn unparsed_success<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<&str> {
    let aws_sdk_s3::error::SdkError::ServiceError(se) = err else {
        return None;
    };
    if !se.raw().status().is_success() {
        return None;
    }
    std::str::from_utf8(se.raw().body().bytes()?).ok()
}

/// The `<Status>` of a GetBucketVersioning body; `None` when versioning was never enabled.
fn versioning_status(body: &str) -> Option<String> {
    body.split_once("<Status>")
        .and_then(|(_, rest)| rest.split_once("</Status>"))
        .map(|(status, _)| status.trim().to_string())
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn is_precondition_failed<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(se) => {
            se.err().code() == Some("PreconditionFailed") || se.raw().status().as_u16() == 412
        }
        _ => false,
    }
}

impl Sink for S3Mirror {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn cursor(&self) -> &'static str {
        MIRROR_CURSOR
    }

    async fn prepare(&self) -> Result<(), SinkError> {
        self.check_bucket().await
    }

    fn anchors(&self) -> bool {
        true
    }

    async fn anchor(&self, checkpoint: &Checkpoint) -> Result<(), SinkError> {
        self.upload_checkpoint(checkpoint).await.map(|_| ())
    }

    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        // Owned futures: borrowing closures here trip the compiler's `Send` check (rust#102211).
        let uploads: Vec<_> = records
            .iter()
            .map(|r| {
                let (mirror, record) = (self.clone(), r.clone());
                async move { mirror.upload(&record).await.map(|_| ()) }
            })
            .collect();
        let results: Vec<Result<(), SinkError>> =
            stream::iter(uploads).buffered(CONCURRENCY).collect().await;
        Delivery::from_results(results)
    }
}
