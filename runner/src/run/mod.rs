//! One run: read the Actions environment and the config, find the change requests the merge
//! added, and verify, execute and report each in turn.

mod command;
mod files;
mod finish;
mod handle;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ed25519_dalek::VerifyingKey;
use git2::Oid;
use slipway_core::change::ChangeRequest;
use slipway_core::policy::Policy;
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::github::{GitHub, Pr, Repo};
use slipway_infra::gitops::Mirror;

use crate::config::RunnerConfig;
use crate::credentials::{self, AwsSource, Granted};
use crate::env::ActionsEnv;
use crate::verify;
use crate::{USAGE, audit};
use files::is_yaml;
pub use files::{target_of, targets};
use handle::handle;

/// What `execute` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub aws_from_env: bool,
    pub target: Option<String>,
}

fn lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn usage(msg: &str) -> u8 {
    eprintln!("slipway-runner: {msg}");
    USAGE
}

/// Everything one run shares.
struct Ctx {
    env: ActionsEnv,
    cfg: RunnerConfig,
    /// The config file's path inside the checkout, if it is inside.
    config_in_repo: Option<String>,
    gh: GitHub,
    lock_gh: GitHub,
    default_branch: String,
    mirror: Arc<Mutex<Mirror>>,
    merge: Oid,
    keys: Vec<(String, VerifyingKey)>,
    policy: Result<Policy, String>,
    aws: AwsSource,
    region: String,
    audit: AuditWriter,
    changed: Vec<String>,
    /// What the merge may change: every change file it adds and the files they render.
    declared: std::collections::BTreeSet<String>,
    scratch: tempfile::TempDir,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl verify::Tree for Ctx {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        Ctx::read(self, path)
    }

    fn list(&self, dir: &str) -> Vec<String> {
        lock(&self.mirror)
            .list_files(self.merge, dir)
            .unwrap_or_default()
    }
}

impl Ctx {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        lock(&self.mirror)
            .read_file(self.merge, path)
            .ok()
            .flatten()
    }

    fn repo(&self) -> &Repo {
        &self.env.repository
    }
}

/// One change file, as far as it could be read.
struct Change {
    path: String,
    parsed: Result<ChangeRequest, String>,
}

/// `slipway-runner execute`.
pub async fn execute(opts: Options) -> u8 {
    let env = match ActionsEnv::from_lookup(&lookup) {
        Ok(e) => e,
        Err(e) => return usage(&e),
    };
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| env.workspace.join(crate::config::DEFAULT_PATH));
    let cfg = match RunnerConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let keys = match cfg.verifying_keys() {
        Ok(k) => k,
        Err(e) => return usage(&e),
    };
    let aws = match credentials::source(opts.aws_from_env, env.id_token_request.as_ref(), &lookup) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let mirror = match Mirror::open_local(&env.workspace, "main") {
        Ok(m) => m,
        Err(e) => return usage(&format!("GITHUB_WORKSPACE: {e}")),
    };
    let Ok(merge) = Oid::from_str(&env.sha) else {
        return usage("GITHUB_SHA is not a commit id");
    };
    match mirror.head_commit() {
        Ok(head) if head == merge => {}
        Ok(head) => {
            return usage(&format!(
                "the checkout in {} is at {head}, not GITHUB_SHA {merge}: check out the pushed commit",
                env.workspace.display()
            ));
        }
        Err(e) => return usage(&format!("reading the checkout's HEAD: {e}")),
    }
    let touched = match mirror.changed_files(merge) {
        Ok(c) => c,
        Err(e) => {
            return usage(&format!(
                "reading what {merge} changed: {e} (check out with `fetch-depth: 2` so the merge's parents are present)"
            ));
        }
    };
    let mut files: Vec<String> = match mirror.added_files(merge, slipway_core::change::CHANGES_DIR)
    {
        Ok(f) => f.into_iter().filter(|f| is_yaml(f)).collect(),
        Err(e) => return usage(&format!("listing the change files {merge} added: {e}")),
    };
    files.sort();
    let gh = match GitHub::user(&env.api_url, &env.token) {
        Ok(g) => g,
        Err(e) => return usage(&format!("GITHUB_API_URL / GITHUB_TOKEN: {e}")),
    };
    let lock_gh = match &env.lock_token {
        Some(t) => match GitHub::user(&env.api_url, t) {
            Ok(g) => g,
            Err(e) => return usage(&format!("SLIPWAY_LOCK_TOKEN: {e}")),
        },
        None => gh.clone(),
    };
    let config_in_repo = std::path::absolute(&config_path).ok().and_then(|p| {
        let ws = std::path::absolute(&env.workspace).ok()?;
        p.strip_prefix(&ws)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
    });

    // Read every change file; keep those of the requested target.
    let mut changes: Vec<Change> = Vec::new();
    let mut all: Vec<ChangeRequest> = Vec::new();
    for path in files {
        let text = mirror
            .read_file(merge, &path)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        // Only a signed request may declare what the merge changes (an unsigned one could
        // claim any file); expiry doesn't matter for that.
        if let Some(cr) = text
            .as_deref()
            .and_then(|t| ChangeRequest::from_yaml(t).ok())
            .filter(|cr| {
                slipway_core::change::verify(cr, &keys, chrono::DateTime::<chrono::Utc>::MIN_UTC)
                    .is_ok()
            })
        {
            all.push(cr);
        }
        if let Some(t) = &opts.target
            && &target_of(text.as_deref()) != t
        {
            continue;
        }
        let parsed = match text {
            Some(t) => ChangeRequest::from_yaml(&t).map_err(|e| e.to_string()),
            None => Err("the file can't be read from the merged commit".into()),
        };
        changes.push(Change { path, parsed });
    }
    if changes.is_empty() {
        println!(
            "slipway-runner: {merge} adds no change requests{}; nothing to do",
            opts.target
                .as_deref()
                .map(|t| format!(" for target {t}"))
                .unwrap_or_default()
        );
        return 0;
    }

    let default_branch = match &cfg.default_branch {
        Some(b) => b.clone(),
        None => match gh.default_branch(&env.repository).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "slipway-runner: can't read the repository's default branch: {e} (set default_branch in the config to skip this call)"
                );
                return 1;
            }
        },
    };
    let spool = cfg.audit.spool_dir.clone().unwrap_or_else(|| {
        env.runner_temp
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("slipway-audit")
    });
    let writer = audit::writer_id(&env.run_id, &env.run_attempt, opts.target.as_deref());
    let audit_writer = match audit::open(&cfg.audit, &lookup, &env.workspace, &spool, &writer) {
        Ok(w) => w,
        Err(e) => {
            return usage(&format!(
                "the audit spool: {e} (nothing runs without an audit trail)"
            ));
        }
    };
    let policy = policy_before(&mirror, merge, &cfg.policy);
    let scratch_parent = env.runner_temp.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = match tempfile::Builder::new()
        .prefix("slipway-runner-")
        .tempdir_in(&scratch_parent)
    {
        Ok(d) => d,
        Err(e) => {
            return usage(&format!(
                "creating a scratch directory in {}: {e}",
                scratch_parent.display()
            ));
        }
    };
    let region = credentials::region(&cfg, &lookup);
    let ctx = Ctx {
        env,
        cfg,
        config_in_repo,
        gh,
        lock_gh,
        default_branch,
        mirror: Arc::new(Mutex::new(mirror)),
        merge,
        keys,
        policy,
        aws,
        region,
        audit: audit_writer,
        changed: touched,
        declared: verify::declared_paths(&all),
        scratch,
    };

    let pulls = ctx
        .gh
        .pulls_for_commit(ctx.repo(), &ctx.env.sha)
        .await
        .map_err(|e| {
            format!(
                "can't ask GitHub which PR merged {} (fails closed): {e}",
                ctx.env.sha
            )
        });
    let newest = newest_per_pr(&ctx, &changes, pulls.as_deref().unwrap_or_default());
    let mut code = 0;
    let mut summary = String::from("## slipway-runner\n\n");
    for (i, change) in changes.iter().enumerate() {
        let outcome = handle(
            &ctx,
            change,
            pulls.as_deref().map_err(Clone::clone),
            newest.get(i).cloned().flatten(),
        )
        .await;
        let reason = outcome
            .reason()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let line = format!("- `{}`: **{}**{reason}", change.path, outcome.word());
        println!(
            "slipway-runner: {}: {}{reason}",
            change.path,
            outcome.word()
        );
        summary.push_str(&line);
        summary.push('\n');
        if !outcome.ok() {
            code = 1;
        }
    }
    if let Some(path) = &ctx.env.step_summary {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = f.write_all(summary.as_bytes());
        }
    }
    if let Some(s3) = &ctx.cfg.audit.s3 {
        let creds = match credentials::for_role(
            &ctx.aws,
            &ctx.cfg,
            &ctx.region,
            s3.role_arn.as_deref(),
            &format!("slipway-audit-{}", ctx.env.run_id),
            &ctx.default_branch,
        )
        .await
        {
            Ok(g) => sdk_credentials(&g),
            Err(e) => {
                eprintln!("slipway-runner: audit mirror credentials: {e}");
                return 1;
            }
        };
        match audit::flush(&ctx.audit, s3, creds).await {
            Ok(n) => println!(
                "slipway-runner: {n} audit record(s) mirrored to s3://{}",
                s3.bucket
            ),
            Err(e) => {
                eprintln!("slipway-runner: {e}");
                code = 1;
            }
        }
    } else {
        println!(
            "slipway-runner: audit records are in {} (no audit.s3 configured: upload that directory, or configure the S3 mirror)",
            spool.display()
        );
    }
    code
}

/// The policy of the default branch as it was before the merge (the merge's first parent):
/// what the merge itself changed never judges it, so a PR can't make its own reviewers count or
/// move its own target.
fn policy_before(mirror: &Mirror, merge: Oid, path: &str) -> Result<Policy, String> {
    let parent = mirror.first_parent(merge).map_err(|e| {
        format!("reading the merge's first parent: {e} (check out with `fetch-depth: 2`)")
    })?;
    match mirror.read_file(parent, path) {
        Ok(Some(bytes)) => Policy::from_yaml(&String::from_utf8_lossy(&bytes)).map_err(|e| {
            format!(
                "the policy {path} of the default branch before the merge is invalid: {}",
                e.display_with_path(path)
            )
        }),
        Ok(None) => Err(format!(
            "the default branch had no policy at {path} before the merge"
        )),
        Err(e) => Err(format!("reading {path} before the merge: {e}")),
    }
}

fn sdk_credentials(g: &Granted) -> Option<aws_sdk_s3::config::Credentials> {
    let get = |k: &str| g.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    g.assumed_role.as_ref()?;
    Some(aws_sdk_s3::config::Credentials::new(
        get("AWS_ACCESS_KEY_ID")?,
        get("AWS_SECRET_ACCESS_KEY")?,
        get("AWS_SESSION_TOKEN"),
        None,
        "slipway-runner-sts",
    ))
}

/// When one PR's merge adds several change files (a PR advanced more than once can leave an
/// older file behind), only the newest is executed: `Some(newer id)` marks the others.
fn newest_per_pr(ctx: &Ctx, changes: &[Change], pulls: &[Pr]) -> Vec<Option<String>> {
    let pr_of = |c: &Change| -> Option<u64> {
        let cr = c.parsed.as_ref().ok()?;
        verify::merged_pr(
            pulls,
            &ctx.env.sha,
            &ctx.default_branch,
            &cr.id,
            cr.supersedes.as_deref(),
        )
        .map(|p| p.number)
    };
    changes
        .iter()
        .map(|c| {
            let (Some(n), Ok(cr)) = (pr_of(c), &c.parsed) else {
                return None;
            };
            changes
                .iter()
                .filter(|o| pr_of(o) == Some(n))
                .filter_map(|o| o.parsed.as_ref().ok())
                .filter(|o| o.created_at > cr.created_at)
                .max_by_key(|o| o.created_at)
                .map(|o| o.id.clone())
        })
        .collect()
}
