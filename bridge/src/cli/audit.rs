//! `slipway audit verify` and `slipway audit show`: what an auditor runs against the S3 mirror
//! (or a local spool) to prove nothing was removed or changed.
//!
//! Exit codes: 0 the trail is intact (or the record was found), 1 breaks were found (or no such
//! record), 2 the trail could not be read.

mod git;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use slipway_core::audit::{AuditRecord, verify_chain};
use slipway_infra::s3::read::{Content, LockMode, StoredVersion, read_bucket};
use slipway_infra::s3::{self, RetentionMode, S3Settings};
use slipway_infra::spool::{file_stem, read_all};

use report::Finding;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the trail: no gaps or forks in any writer's chain, every hash matches, every S3
    /// object is under Object Lock retention; with --git, that git history and the trail agree.
    /// Prints a table; exits 0 when intact, 1 on any break, 2 when the trail can't be read.
    Verify(VerifyArgs),
    /// Print the record(s) with one event id as pretty JSON (exit 1 if there is none).
    Show {
        /// The record's `event_id`.
        event_id: String,
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// Where the trail is: a local spool directory, or the S3 mirror.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// A spool directory, e.g. `.slipway/audit`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bucket", "endpoint_url", "region"])]
    spool: Option<PathBuf>,
    /// The mirror's bucket (credentials come from the AWS default chain).
    #[arg(long)]
    bucket: Option<String>,
    /// The mirror's key prefix.
    #[arg(long, default_value = "slipway")]
    prefix: String,
    /// An S3-compatible endpoint instead of AWS (path-style addressing).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// The bucket's region (default: the environment's, else us-east-1).
    #[arg(long)]
    region: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Every object's retain-until date must be at least N days after its record's time.
    #[arg(long, value_name = "N", default_value_t = 0)]
    min_retention_days: u32,
    /// The weakest Object Lock mode accepted: COMPLIANCE, or GOVERNANCE (which also accepts
    /// COMPLIANCE).
    #[arg(long, value_name = "MODE", default_value = "COMPLIANCE", value_parser = parse_mode)]
    retention_mode: RetentionMode,
    /// Cross-check against this GitOps repository (a local clone or bare repository).
    #[arg(long, value_name = "REPO")]
    git: Option<PathBuf>,
    /// The default branch of --git (default: the repository's HEAD).
    #[arg(long, requires = "git")]
    branch: Option<String>,
}

fn parse_mode(s: &str) -> Result<RetentionMode, String> {
    s.parse()
}

/// Records plus whatever was wrong with how they are stored.
struct Trail {
    description: String,
    records: Vec<AuditRecord>,
    findings: Vec<Finding>,
    notes: Vec<String>,
}

pub fn run(cmd: AuditCmd) -> ExitCode {
    match cmd {
        AuditCmd::Verify(args) => verify(&args),
        AuditCmd::Show { event_id, source } => show(&event_id, &source),
    }
}

fn fail_read(e: &str) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let trail = match load(&args.source, Some(args)) {
        Ok(t) => t,
        Err(e) => return fail_read(&e),
    };
    let report = verify_chain(&trail.records);
    let mut findings = trail.findings;
    findings.extend(report::from_chain(&report));
    let mut notes = trail.notes;
    if let Some(repo) = &args.git {
        match git::merged_changes(repo, args.branch.as_deref()) {
            Ok((merged, unreadable)) => {
                findings.extend(unreadable);
                findings.extend(git::cross_check(&merged, &trail.records));
                notes.push(format!(
                    "git: {} merged change request(s) in {}",
                    merged.len(),
                    repo.display()
                ));
            }
            Err(e) => return fail_read(&e),
        }
    }
    findings.sort();
    print!(
        "{}",
        report::render(&trail.description, &report, &findings, &notes)
    );
    if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn show(event_id: &str, source: &SourceArgs) -> ExitCode {
    let trail = match load(source, None) {
        Ok(t) => t,
        Err(e) => return fail_read(&e),
    };
    let mut seen = Vec::new();
    for r in trail.records.iter().filter(|r| r.event_id == event_id) {
        if seen.contains(&&r.hash) {
            continue; // the same record stored twice (e.g. two object versions)
        }
        seen.push(&r.hash);
        match serde_json::to_string_pretty(r) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail_read(&format!("cannot print the record: {e}")),
        }
    }
    if seen.is_empty() {
        eprintln!(
            "no record with event id {event_id:?} in {}",
            trail.description
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn load(source: &SourceArgs, verify: Option<&VerifyArgs>) -> Result<Trail, String> {
    match (&source.spool, &source.bucket) {
        (Some(dir), _) => {
            let records = read_all(dir).map_err(|e| e.to_string())?;
            let mut notes = Vec::new();
            if verify.is_some_and(|v| v.min_retention_days > 0) {
                notes.push(
                    "note: a local spool has no Object Lock; retention is checked only with --bucket"
                        .to_string(),
                );
            }
            Ok(Trail {
                description: format!("spool {} ({} records)", dir.display(), records.len()),
                records,
                findings: Vec::new(),
                notes,
            })
        }
        (None, Some(bucket)) => load_bucket(source, bucket, verify),
        (None, None) => Err(
            "say where the trail is: --spool DIR for a local spool, or --bucket NAME (with \
             --prefix, and --endpoint-url for an S3-compatible server) for the mirror"
                .into(),
        ),
    }
}

fn load_bucket(
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
    let mut trail = Trail {
        description: format!(
            "s3://{bucket}/{} ({} object version(s))",
            settings.list_prefix(),
            versions.len()
        ),
        records: Vec::new(),
        findings: Vec::new(),
        notes: Vec::new(),
    };
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

/// Per object: is it a record, is it where its writer and seq say, is it locked well enough;
/// per key: was it written more than once, or deleted.
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
        if matches!(v.content, Content::Object { .. }) {
            *per_key.entry(v.key.clone()).or_default() += 1;
        }
    }
    for v in versions {
        let version = v.version_id.as_deref().unwrap_or("null");
        let (record, lock_mode, retain_until) = match v.content {
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
                continue;
            }
            Content::Object {
                record,
                lock_mode,
                retain_until,
            } => (record, lock_mode, retain_until),
        };
        let record = match record {
            Ok(r) => *r,
            Err(e) => {
                trail.findings.push(Finding::new(
                    "unreadable",
                    format!("{} (version {version}): {e}", v.key),
                ));
                continue;
            }
        };
        let at = |f: Finding| f.at(&record.writer, record.seq, &record.event_id);
        let expected = file_stem(&record.writer)
            .map(|stem| settings.key(&stem, record.seq))
            .unwrap_or_default();
        if expected != v.key {
            trail.findings.push(at(Finding::new(
                "misplaced",
                format!(
                    "stored at {} but its writer and seq belong at {expected}",
                    v.key
                ),
            )));
        }
        let copies = per_key.get(&v.key).copied().unwrap_or(1);
        if copies > 1 && reported.insert(v.key.clone()) {
            // Reported once, on the original (versions come oldest first); the chain check
            // flags what differs between the versions.
            trail.findings.push(at(Finding::new(
                "overwritten",
                format!(
                    "{} has {copies} versions: it was written again after the first upload",
                    v.key
                ),
            )));
        }
        if let Some(problem) =
            retention_problem(lock_mode.as_ref(), retain_until, &record, mode, days)
        {
            trail.findings.push(at(Finding::new(
                problem.0,
                format!("{} (version {version}): {}", v.key, problem.1),
            )));
        }
        trail.records.push(record);
    }
}

/// Why an object's lock falls short of `mode` for `days`, if it does.
fn retention_problem(
    lock_mode: Option<&LockMode>,
    retain_until: Option<chrono::DateTime<chrono::Utc>>,
    record: &AuditRecord,
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
    let needed = record.time + chrono::Duration::days(i64::from(days));
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use slipway_core::audit::EventKind;

    #[test]
    fn retention_levels() {
        let rec = AuditRecord::new(EventKind::Command, "e", Utc::now());
        let compliance = LockMode::Known(RetentionMode::Compliance);
        let governance = LockMode::Known(RetentionMode::Governance);
        let later = Some(rec.time + Duration::days(31));
        let check = |lock: Option<&LockMode>, until, mode, days| {
            retention_problem(lock, until, &rec, mode, days).map(|p| p.0)
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
