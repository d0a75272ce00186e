//! `--bucket`: the S3 mirror read back, every version of every record and checkpoint, with the
//! checks only a bucket needs (where each object is, whether it was written twice or deleted,
//! and whether its Object Lock is strong and long enough).

use std::collections::{BTreeMap, BTreeSet};

use slipway_core::audit::{AuditRecord, Checkpoint};
use slipway_infra::s3::read::{Content, LockMode, StoredVersion, read_bucket};
use slipway_infra::s3::{self, RetentionMode, S3Settings};
use slipway_infra::spool::file_stem;

use super::report::Finding;
use super::{SourceArgs, Trail, VerifyArgs};

pub(super) fn load(
    source: &SourceArgs,
    bucket: &str,
    verify: Option<&VerifyArgs>,
) -> Result<Trail, String> {
    let mut settings = S3Settings::new(bucket, source.prefix.as_str(), 1);
    settings.region.clone_from(&source.region);
    settings.endpoint_url.clone_from(&source.endpoint_url);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let versions = runtime.block_on(async {
        let client = s3::client(&settings).await;
        read_bucket(&client, bucket, &settings.list_prefix()).await
    });
    let versions = versions.map_err(|e| e.to_string())?;
    let (mode, days) = verify.map_or((RetentionMode::Governance, 0), |v| {
        (v.retention_mode, v.min_retention_days)
    });
    let mut trail = Trail::new(format!(
        "s3://{bucket}/{} ({} object version(s))",
        settings.list_prefix(),
        versions.len()
    ));
    if verify.is_some() {
        trail.notes.push(format!(
            "retention required: {mode} or stronger{}",
            if days > 0 {
                format!(", at least {days} day(s) after each record's time")
            } else {
                String::new()
            }
        ));
    }
    check_versions(&settings, versions, mode, days, &mut trail);
    Ok(trail)
}

/// Where an object's record or checkpoint belongs, and its lock.
struct Stored {
    writer: String,
    seq: u64,
    event: String,
    time: chrono::DateTime<chrono::Utc>,
    expected: String,
    lock_mode: Option<LockMode>,
    retain_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Stored {
    /// A record's place: the key its writer and seq name, where the mirror would have put it.
    fn record(
        settings: &S3Settings,
        record: &AuditRecord,
        lock_mode: Option<LockMode>,
        retain_until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Stored {
        Stored {
            writer: record.writer.clone(),
            seq: record.seq,
            event: record.event_id.clone(),
            time: record.time,
            expected: file_stem(&record.writer)
                .map(|stem| settings.key(&stem, record.seq))
                .unwrap_or_default(),
            lock_mode,
            retain_until,
        }
    }

    /// A checkpoint's place, likewise (checkpoints have no event of their own).
    fn checkpoint(
        settings: &S3Settings,
        cp: &Checkpoint,
        lock_mode: Option<LockMode>,
        retain_until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Stored {
        Stored {
            writer: cp.writer.clone(),
            seq: cp.seq,
            event: String::new(),
            time: cp.time,
            expected: file_stem(&cp.writer)
                .map(|stem| settings.checkpoint_key(&stem, cp.seq))
                .unwrap_or_default(),
            lock_mode,
            retain_until,
        }
    }
}

/// Per object: is it a record or checkpoint, is it where its writer and seq say, is it locked
/// well enough; per key: was it written more than once, or deleted.
fn check_versions(
    settings: &S3Settings,
    versions: Vec<StoredVersion>,
    mode: RetentionMode,
    days: u32,
    trail: &mut Trail,
) {
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for v in &versions {
        if !matches!(v.content, Content::DeleteMarker) {
            *per_key.entry(v.key.clone()).or_default() += 1;
        }
    }
    for v in versions {
        let version = v.version_id.clone().unwrap_or_else(|| "null".into());
        let key = v.key.clone();
        let Some(stored) = take(settings, v, trail) else {
            continue;
        };
        let at = |f: Finding| f.at(&stored.writer, stored.seq, &stored.event);
        if stored.expected != key {
            trail.findings.push(at(Finding::new(
                "misplaced",
                format!(
                    "stored at {key} but its writer and seq belong at {}",
                    stored.expected
                ),
            )));
        }
        let copies = per_key.get(&key).copied().unwrap_or(1);
        if copies > 1 && reported.insert(key.clone()) {
            // Reported once, on the original (versions come oldest first); the chain check
            // flags what differs between the versions.
            trail.findings.push(at(Finding::new(
                "overwritten",
                format!("{key} has {copies} versions: it was written again after the first upload"),
            )));
        }
        if let Some(problem) = retention_problem(
            stored.lock_mode.as_ref(),
            stored.retain_until,
            stored.time,
            mode,
            days,
        ) {
            trail.findings.push(at(Finding::new(
                problem.0,
                format!("{key} (version {version}): {}", problem.1),
            )));
        }
    }
}

/// Adds a version's record or checkpoint to the trail and says where it belongs; a delete
/// marker or an unreadable body is a finding instead.
fn take(settings: &S3Settings, v: StoredVersion, trail: &mut Trail) -> Option<Stored> {
    let version = v.version_id.as_deref().unwrap_or("null");
    match v.content {
        Content::DeleteMarker => {
            if v.is_latest {
                trail.findings.push(Finding::new(
                    "deleted",
                    format!(
                        "{} was deleted (delete marker {version}); its locked versions remain \
                         and are checked here",
                        v.key
                    ),
                ));
            }
            None
        }
        Content::Object { record: Err(e), .. }
        | Content::Checkpoint {
            checkpoint: Err(e), ..
        } => {
            trail.findings.push(Finding::new(
                "unreadable",
                format!("{} (version {version}): {e}", v.key),
            ));
            None
        }
        Content::Object {
            record: Ok(record),
            lock_mode,
            retain_until,
        } => {
            let stored = Stored::record(settings, &record, lock_mode, retain_until);
            trail.records.push(*record);
            Some(stored)
        }
        Content::Checkpoint {
            checkpoint: Ok(cp),
            lock_mode,
            retain_until,
        } => {
            let stored = Stored::checkpoint(settings, &cp, lock_mode, retain_until);
            trail.checkpoints.push(*cp);
            Some(stored)
        }
    }
}

/// Why an object's lock falls short of `mode` for `days` after `time`, if it does.
pub(super) fn retention_problem(
    lock_mode: Option<&LockMode>,
    retain_until: Option<chrono::DateTime<chrono::Utc>>,
    time: chrono::DateTime<chrono::Utc>,
    mode: RetentionMode,
    days: u32,
) -> Option<(&'static str, String)> {
    let (Some(lock), Some(until)) = (lock_mode, retain_until) else {
        return Some((
            "no_retention",
            "has no Object Lock retention: it can be deleted".into(),
        ));
    };
    match lock {
        LockMode::Known(m) if *m >= mode => {}
        LockMode::Known(m) => {
            return Some((
                "weak_retention",
                format!("is locked in {m} mode, weaker than the required {mode}"),
            ));
        }
        LockMode::Other(m) => {
            return Some(("weak_retention", format!("has an unknown lock mode {m:?}")));
        }
    }
    let needed = time + chrono::Duration::days(i64::from(days));
    if until < needed {
        return Some((
            "short_retention",
            format!(
                "is retained until {} but must be kept until at least {} ({days} day(s) after the record)",
                until.to_rfc3339(),
                needed.to_rfc3339()
            ),
        ));
    }
    None
}

/// The records of a writer's trail, keyed by seq: the hashes stored there.
pub(super) fn by_seq<'a>(
    records: &'a [AuditRecord],
    writer: &str,
) -> BTreeMap<u64, BTreeSet<&'a str>> {
    let mut out: BTreeMap<u64, BTreeSet<&str>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.writer == writer) {
        out.entry(r.seq).or_default().insert(&r.hash);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    #[test]
    fn retention_levels() {
        let time = Utc::now();
        let compliance = LockMode::Known(RetentionMode::Compliance);
        let governance = LockMode::Known(RetentionMode::Governance);
        let later = Some(time + Duration::days(31));
        let check = |lock: Option<&LockMode>, until, mode, days| {
            retention_problem(lock, until, time, mode, days).map(|p| p.0)
        };
        assert_eq!(
            check(Some(&compliance), later, RetentionMode::Compliance, 30),
            None
        );
        assert_eq!(
            check(Some(&compliance), later, RetentionMode::Governance, 30),
            None
        );
        assert_eq!(
            check(Some(&governance), later, RetentionMode::Compliance, 0),
            Some("weak_retention")
        );
        assert_eq!(
            check(Some(&compliance), later, RetentionMode::Compliance, 60),
            Some("short_retention")
        );
        assert_eq!(
            check(None, None, RetentionMode::Governance, 0),
            Some("no_retention")
        );
    }
}
