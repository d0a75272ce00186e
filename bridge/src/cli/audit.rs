//! `slipway audit verify`, `show` and `keygen`: what an auditor runs against the S3 mirror and a
//! local spool to prove nothing was removed, changed or made up.
//!
//! Exit codes: 0 the trail is intact (or the record was found), 1 breaks were found (or no such
//! record), 2 the trail could not be read or the command was incomplete.

mod bucket;
mod changes;
mod compare;
mod git;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use slipway_core::audit::{
    AuditRecord, ChainReport, Checkpoint, WriterAllowlist, WriterKeys, key_id, verify_trail,
};
use slipway_infra::spool::{FileState, read_trail};

use report::Finding;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the trail: every writer allowed, every chain whole and signed by its writer's key,
    /// every S3 object under Object Lock retention; a spool against its cursors and (with both
    /// --spool and --bucket) against S3; with --git, that git history and the trail agree.
    /// Prints a table; exits 0 when intact, 1 on any break, 2 when the trail can't be read.
    Verify(VerifyArgs),
    /// Print the record(s) with one event id as pretty JSON (exit 1 if there is none).
    Show {
        /// The record's `event_id`.
        event_id: String,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Create an Ed25519 key file for signing a writer's checkpoints (mode 600, never over an
    /// existing file) and print its public key for `audit.writers`.
    Keygen {
        /// Where to write the key: outside the state and spool directories.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
}

/// Where the trail is: a local spool directory, the S3 mirror, or both (compared).
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// A spool directory, e.g. `.slipway/audit`. Repeat it for several replicas (each keeps
    /// its own spool and writer): their chains are verified together, as one trail.
    #[arg(long, value_name = "DIR")]
    spool: Vec<PathBuf>,
    /// The mirror's bucket (credentials come from the AWS default chain).
    #[arg(long)]
    bucket: Option<String>,
    /// The mirror's key prefix.
    #[arg(long, default_value = "slipway")]
    prefix: String,
    /// An S3-compatible endpoint instead of AWS (path-style addressing).
    #[arg(long, value_name = "URL", requires = "bucket")]
    endpoint_url: Option<String>,
    /// The bucket's region (default: the environment's, else us-east-1).
    #[arg(long, requires = "bucket")]
    region: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// A writer allowed to write the trail, and its Ed25519 public key (64 hex digits, base64 or
    /// PEM): `bridge:*=KEY`, `runner:*=KEY` or an exact writer id. Repeatable. A writer that no
    /// entry covers is a break.
    #[arg(long = "writer", value_name = "PATTERN=KEY")]
    writer: Vec<String>,
    /// A YAML file mapping writer patterns to public keys, as in the bridge's `audit.writers`.
    #[arg(long, value_name = "FILE")]
    writers: Option<PathBuf>,
    /// Every object's retain-until date must be at least N days after its record's time.
    #[arg(long, value_name = "N", default_value_t = 0)]
    min_retention_days: u32,
    /// The weakest Object Lock mode accepted: COMPLIANCE, or GOVERNANCE (which also accepts
    /// COMPLIANCE).
    #[arg(long, value_name = "MODE", default_value = "COMPLIANCE", value_parser = parse_mode)]
    retention_mode: slipway_infra::s3::RetentionMode,
    /// Cross-check against this GitOps repository (a local clone or bare repository).
    #[arg(long, value_name = "REPO")]
    git: Option<PathBuf>,
    /// The default branch of --git (default: the repository's HEAD).
    #[arg(long, requires = "git")]
    branch: Option<String>,
}

fn parse_mode(s: &str) -> Result<slipway_infra::s3::RetentionMode, String> {
    s.parse()
}

/// Records plus whatever was wrong with how they are stored.
struct Trail {
    description: String,
    records: Vec<AuditRecord>,
    checkpoints: Vec<Checkpoint>,
    findings: Vec<Finding>,
    notes: Vec<String>,
    /// A spool's files (empty for a bucket).
    files: Vec<FileState>,
}

impl Trail {
    fn new(description: String) -> Trail {
        Trail {
            description,
            records: Vec::new(),
            checkpoints: Vec::new(),
            findings: Vec::new(),
            notes: Vec::new(),
            files: Vec::new(),
        }
    }
}

pub fn run(cmd: AuditCmd) -> ExitCode {
    match cmd {
        AuditCmd::Verify(args) => verify(&args),
        AuditCmd::Show { event_id, source } => show(&event_id, &source),
        AuditCmd::Keygen { out } => keygen(&out),
    }
}

fn fail_read(e: &str) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn keygen(out: &std::path::Path) -> ExitCode {
    match slipway_infra::audit_signer::generate_key_file(out) {
        Ok(public) => {
            println!(
                "wrote {} (mode 600)\npublic key: {}\nkey id: {}\nlist it in `audit.writers` of \
                 the bridge and runner configs, and pass it to `slipway audit verify --writer`",
                out.display(),
                hex::encode(public.as_bytes()),
                key_id(&public)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail_read(&e),
    }
}

/// The allowlist from `--writer` and `--writers`; verifying without one is refused, since every
/// writer would be unknown.
fn allowlist(args: &VerifyArgs) -> Result<WriterAllowlist, String> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(file) = &args.writers {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--writers {}: {e}", file.display()))?;
        let parsed: BTreeMap<String, WriterKeys> = serde_saphyr::from_str(&text).map_err(|e| {
            format!(
                "--writers {}: expected a map of writer patterns to public keys: {}",
                file.display(),
                e.without_snippet().to_string().lines().next().unwrap_or("")
            )
        })?;
        for (pattern, keys) in parsed {
            let keys = match keys {
                WriterKeys::One(k) => vec![k],
                WriterKeys::Many(ks) => ks,
            };
            map.entry(pattern).or_default().extend(keys);
        }
    }
    for entry in &args.writer {
        let (pattern, key) = entry.split_once('=').ok_or_else(|| {
            format!("--writer {entry:?}: write it as PATTERN=PUBLIC_KEY, e.g. `runner:*=3b6a…`")
        })?;
        map.entry(pattern.to_string())
            .or_default()
            .push(key.to_string());
    }
    let map: BTreeMap<String, WriterKeys> = map
        .into_iter()
        .map(|(p, ks)| (p, WriterKeys::Many(ks)))
        .collect();
    let allow = WriterAllowlist::from_config(&map)?;
    if allow.is_empty() {
        return Err(
            "say which writers may write the trail, with their public keys: --writer \
             'bridge:*=KEY' --writer 'runner:*=KEY', or --writers FILE (the bridge's \
             `audit.writers`); without them every writer is unknown"
                .into(),
        );
    }
    Ok(allow)
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let allow = match allowlist(args) {
        Ok(a) => a,
        Err(e) => return fail_read(&e),
    };
    let trails = match load_sources(args, &allow) {
        Ok(t) => t,
        Err(e) => return fail_read(&e),
    };
    let (sources, mut findings, mut notes) = check_trails(&trails, &allow);
    if let Some(repo) = &args.git {
        match git::check(repo, args.branch.as_deref(), &union(&trails), &allow) {
            Ok((found, note)) => {
                findings.extend(found);
                notes.push(note);
            }
            Err(e) => return fail_read(&e),
        }
    }
    findings.sort();
    findings.dedup();
    print!("{}", report::render(&sources, &findings, &notes));
    if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The spool, the bucket, or both, labelled.
fn load_sources(
    args: &VerifyArgs,
    allow: &WriterAllowlist,
) -> Result<Vec<(&'static str, Trail)>, String> {
    let source = &args.source;
    let mut trails = Vec::new();
    if !source.spool.is_empty() {
        trails.push((
            "spool",
            load_spools(&source.spool, Some(allow), args.min_retention_days > 0)?,
        ));
    }
    if let Some(b) = &source.bucket {
        trails.push(("s3", bucket::load(source, b, Some(args))?));
    }
    if trails.is_empty() {
        return Err(no_source());
    }
    Ok(trails)
}

/// Each trail's chains and signatures, its storage findings, an empty trail, the spool's files
/// and cursors, and (with both) the spool against the bucket.
fn check_trails(
    trails: &[(&str, Trail)],
    allow: &WriterAllowlist,
) -> (Vec<(String, ChainReport)>, Vec<Finding>, Vec<String>) {
    let both = trails.len() > 1;
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let mut sources = Vec::new();
    for (label, trail) in trails {
        let report = verify_trail(&trail.records, &trail.checkpoints, allow);
        findings.extend(report::from_chain(&report, both.then_some(*label)));
        findings.extend(trail.findings.iter().cloned());
        notes.extend(trail.notes.iter().cloned());
        if trail.records.is_empty() {
            findings.push(Finding::new(
                "empty",
                format!(
                    "{} holds no records: a trail is never empty once the bridge has run, so \
                     this is the wrong place or the records were removed",
                    trail.description
                ),
            ));
        }
        findings.extend(compare::spool_files(
            &trail.files,
            &trail.records,
            allow,
            &mut notes,
        ));
        sources.push((trail.description.clone(), report));
    }
    if let [(_, local), (_, s3)] = trails {
        findings.extend(compare::spool_vs_bucket(
            &local.files,
            &local.records,
            &s3.records,
            &s3.checkpoints,
            &mut notes,
        ));
    }
    (sources, findings, notes)
}

/// Every distinct record of the trails.
fn union(trails: &[(&'static str, Trail)]) -> Vec<AuditRecord> {
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    for (_, t) in trails {
        for r in &t.records {
            if seen.insert((r.writer.clone(), r.seq, r.hash.clone())) {
                records.push(r.clone());
            }
        }
    }
    records
}

fn no_source() -> String {
    "say where the trail is: --spool DIR for a local spool, --bucket NAME (with --prefix, and \
     --endpoint-url for an S3-compatible server) for the mirror, or both to compare them"
        .into()
}

fn show(event_id: &str, source: &SourceArgs) -> ExitCode {
    let mut trails = Vec::new();
    if !source.spool.is_empty() {
        match load_spools(&source.spool, None, false) {
            Ok(t) => trails.push(t),
            Err(e) => return fail_read(&e),
        }
    }
    if let Some(b) = &source.bucket {
        match bucket::load(source, b, None) {
            Ok(t) => trails.push(t),
            Err(e) => return fail_read(&e),
        }
    }
    if trails.is_empty() {
        return fail_read(&no_source());
    }
    let mut seen = Vec::new();
    for r in trails
        .iter()
        .flat_map(|t| &t.records)
        .filter(|r| r.event_id == event_id)
    {
        if seen.contains(&&r.hash) {
            continue; // the same record stored twice (two object versions, spool and S3)
        }
        seen.push(&r.hash);
        match serde_json::to_string_pretty(r) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail_read(&format!("cannot print the record: {e}")),
        }
    }
    if seen.is_empty() {
        let places: Vec<&str> = trails.iter().map(|t| t.description.as_str()).collect();
        eprintln!(
            "no record with event id {event_id:?} in {}",
            places.join(" or ")
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// One trail from every replica's spool. A writer id found in two spools is two replicas
/// configured with one `SLIPWAY_AUDIT_WRITER`: their records collide and show as breaks.
fn load_spools(
    dirs: &[PathBuf],
    allow: Option<&WriterAllowlist>,
    retention_note: bool,
) -> Result<Trail, String> {
    let mut parts = Vec::new();
    for dir in dirs {
        parts.push(load_spool(dir, allow, retention_note)?);
    }
    let mut parts = parts.into_iter();
    let Some(mut trail) = parts.next() else {
        return Err(no_source());
    };
    for part in parts {
        trail.description = format!("{}, {}", trail.description, part.description);
        trail.records.extend(part.records);
        trail.checkpoints.extend(part.checkpoints);
        trail.findings.extend(part.findings);
        trail.files.extend(part.files);
        for note in part.notes {
            if !trail.notes.contains(&note) {
                trail.notes.push(note);
            }
        }
    }
    Ok(trail)
}

/// A spool directory read by `serve`'s recovery rule (signatures checked with `allow`).
fn load_spool(
    dir: &std::path::Path,
    allow: Option<&WriterAllowlist>,
    retention_note: bool,
) -> Result<Trail, String> {
    if !dir.is_dir() {
        return Err(format!(
            "the spool directory {} does not exist: point --spool at the bridge's \
             `<state_dir>/audit` (a missing spool is not an empty trail)",
            dir.display()
        ));
    }
    let read = read_trail(dir, allow).map_err(|e| e.to_string())?;
    let mut trail = Trail::new(format!(
        "spool {} ({} records)",
        dir.display(),
        read.records.len()
    ));
    trail.records = read.records;
    trail.checkpoints = read.checkpoints;
    trail.files = read.files;
    if retention_note {
        trail.notes.push(
            "note: a local spool has no Object Lock; retention is checked only with --bucket"
                .to_string(),
        );
    }
    Ok(trail)
}
