//! One run: read the Actions environment and the config, find the change requests the merge
//! added, and verify, execute and report each in turn.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use ed25519_dalek::VerifyingKey;
use git2::Oid;
use serde_json::json;
use slipway_core::change::{ChangeRequest, lock_slug};
use slipway_core::command::{Family, Target};
use slipway_core::policy::Policy;
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::github::{GitHub, Pr, Repo, fit_github_body};
use slipway_infra::gitops::Mirror;

use crate::apply::{Execution, Runner};
use crate::config::RunnerConfig;
use crate::credentials::{self, AwsSource, Granted};
use crate::env::ActionsEnv;
use crate::report::{self, Outcome, Previous};
use crate::verify::{self, PolicyCheck};
use crate::{USAGE, audit};

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

/// The target a change file belongs to: its lock slug, or `unreadable` when the file doesn't
/// parse (such a file is refused by whichever job handles that target).
pub fn target_of(text: Option<&str>) -> String {
    text.and_then(|t| ChangeRequest::from_yaml(t).ok())
        .map_or_else(|| "unreadable".to_string(), |cr| lock_slug(&cr.resource))
}

/// `slipway-runner targets`: the JSON list of targets for the workflow's matrix.
pub fn targets() -> u8 {
    let (Some(workspace), Some(sha)) = (lookup("GITHUB_WORKSPACE"), lookup("GITHUB_SHA")) else {
        return usage(
            "`targets` needs GITHUB_WORKSPACE (the checkout) and GITHUB_SHA (the pushed commit)",
        );
    };
    let files = Mirror::open_local(Path::new(&workspace), "main").and_then(|m| {
        let oid = Oid::from_str(&sha).map_err(slipway_infra::gitops::GitError::from)?;
        let files = m.added_files(oid, slipway_core::change::CHANGES_DIR)?;
        files
            .into_iter()
            .filter(|f| is_yaml(f))
            .map(|f| {
                m.read_file(oid, &f)
                    .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    match files {
        Ok(texts) => {
            let mut targets: Vec<String> = texts.iter().map(|t| target_of(t.as_deref())).collect();
            targets.sort();
            targets.dedup();
            println!("{}", serde_json::Value::from(targets));
            0
        }
        Err(e) => usage(&format!(
            "reading the changes GITHUB_SHA added in {workspace}: {e} (check out with fetch-depth: 2 so the merge's parents are there)"
        )),
    }
}

/// Change files are `changes/<id>.yaml`.
fn is_yaml(path: &str) -> bool {
    Path::new(path).extension().is_some_and(|e| e == "yaml")
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
    scratch: tempfile::TempDir,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    for path in files {
        let text = mirror
            .read_file(merge, &path)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
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
    let audit_writer = match AuditWriter::start(&spool, &writer) {
        Ok(w) => w,
        Err(e) => {
            return usage(&format!(
                "the audit spool: {e} (nothing runs without an audit trail)"
            ));
        }
    };
    let policy_path = cfg.policy.clone();
    let policy = match mirror.read_file(merge, &policy_path) {
        Ok(Some(bytes)) => Policy::from_yaml(&String::from_utf8_lossy(&bytes)).map_err(|e| {
            format!(
                "the policy {policy_path} of the merged commit is invalid: {}",
                e.display_with_path(&policy_path)
            )
        }),
        Ok(None) => Err(format!("the merged commit has no policy at {policy_path}")),
        Err(e) => Err(format!("reading {policy_path} from the merged commit: {e}")),
    };
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
        let line = format!(
            "- `{}`: **{}**{}",
            change.path,
            outcome.word(),
            outcome
                .reason()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        println!(
            "slipway-runner: {}: {}{}",
            change.path,
            outcome.word(),
            outcome
                .reason()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
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

/// What a verified change needs to run.
struct Verified {
    cr: ChangeRequest,
    pr: Pr,
    check: PolicyCheck,
    quorum: slipway_core::approval::Quorum,
}

/// Verify, execute and report one change file.
async fn handle(
    ctx: &Ctx,
    change: &Change,
    pulls: Result<&[Pr], String>,
    superseded_by: Option<String>,
) -> Outcome {
    let started = Instant::now();
    let cr = change.parsed.as_ref().ok();
    let stem = verify::id_from_path(&change.path).unwrap_or_default();
    let pr = pulls
        .as_ref()
        .ok()
        .and_then(|p| {
            verify::merged_pr(
                p,
                &ctx.env.sha,
                &ctx.default_branch,
                stem,
                cr.and_then(|c| c.supersedes.as_deref()),
            )
        })
        .cloned();

    // A re-run sees its own earlier result and stops there.
    if let Some(pr) = &pr {
        let early = match ctx.gh.comments(ctx.repo(), pr.number).await {
            Err(e) => Some(Outcome::Failed(format!(
                "can't read PR #{}'s comments to check for an earlier run, so nothing was done (fails closed): {e}",
                pr.number
            ))),
            Ok(comments) => match report::previous(&comments, stem) {
                Previous::Done(headline) => Some(Outcome::AlreadyDone(format!(
                    "a previous run already handled it ({headline}); see PR #{}: nothing was done again",
                    pr.number
                ))),
                Previous::Started => {
                    let outcome = Outcome::Interrupted;
                    finish(
                        ctx,
                        change,
                        cr,
                        Some(pr),
                        &outcome,
                        None,
                        started,
                        &[],
                        &Granted::default(),
                        Vec::new(),
                    )
                    .await;
                    return outcome;
                }
                Previous::None => None,
            },
        };
        if let Some(outcome) = early {
            // A failed audit write is reported on stderr; the outcome stands.
            let _ = record(
                ctx,
                change,
                cr,
                Some(pr),
                &outcome,
                None,
                started,
                &[],
                &json!({}),
            )
            .await;
            return outcome;
        }
    }

    let verified = match verify_change(ctx, change, pulls.map(|_| pr.clone()), superseded_by).await
    {
        Ok(v) => v,
        Err(reason) => {
            let outcome = Outcome::Refused(reason);
            finish(
                ctx,
                change,
                cr,
                pr.as_ref(),
                &outcome,
                None,
                started,
                &[],
                &Granted::default(),
                Vec::new(),
            )
            .await;
            return outcome;
        }
    };
    let Verified {
        cr,
        pr,
        check,
        quorum,
    } = verified;

    // Nothing runs before the PR says so (so a re-run can tell) and the audit has it on disk.
    let started_body = report::started_body(&cr, &ctx.env.run_url(), &ctx.env.sha);
    let blocked = if let Err(e) = ctx.gh.comment(ctx.repo(), pr.number, &started_body).await {
        Some(format!(
            "can't comment on PR #{} to record the start, so a re-run couldn't tell it ran: nothing was done: {e}",
            pr.number
        ))
    } else {
        let description = format!("{}: executing", cr.id);
        let _ = ctx
            .gh
            .set_status(
                ctx.repo(),
                &ctx.env.sha,
                "pending",
                report::STATUS_CONTEXT,
                &description,
                Some(&ctx.env.run_url()),
            )
            .await;
        let details = json!({"decision_rule": check.rule, "decision": check.reason, "workflow_ref": ctx.env.workflow_ref});
        record(
            ctx,
            change,
            Some(&cr),
            Some(&pr),
            &Outcome::Started,
            None,
            started,
            &quorum.approvals,
            &details,
        )
        .await
        .err()
        .map(|e| format!("the audit spool refused the start record, so nothing was done: {e}"))
    };
    if let Some(why) = blocked {
        let outcome = Outcome::Failed(why);
        finish(
            ctx,
            change,
            Some(&cr),
            Some(&pr),
            &outcome,
            None,
            started,
            &quorum.approvals,
            &Granted::default(),
            Vec::new(),
        )
        .await;
        return outcome;
    }

    let (granted, execution) = run_change(ctx, &cr, &check).await;
    let outcome = match &execution {
        Ok(ex) => Outcome::from_verdict(&ex.verdict),
        Err(why) => Outcome::Failed(why.clone()),
    };
    let ex = execution.ok();
    let mut notes = Vec::new();
    if let Some(role) = &granted.assumed_role {
        notes.push(format!(
            "Credentials: role session `{role}` from the job's OIDC token."
        ));
    }
    finish(
        ctx,
        change,
        Some(&cr),
        Some(&pr),
        &outcome,
        ex.as_ref(),
        started,
        &quorum.approvals,
        &granted,
        notes,
    )
    .await;
    outcome
}

/// Every check; `Err` is the refusal reason.
async fn verify_change(
    ctx: &Ctx,
    change: &Change,
    pr: Result<Option<Pr>, String>,
    superseded_by: Option<String>,
) -> Result<Verified, String> {
    let cr = change
        .parsed
        .clone()
        .map_err(|e| format!("{}: {e}", change.path))?;
    let stem = verify::id_from_path(&change.path).unwrap_or_default();
    if cr.id != stem {
        return Err(format!(
            "{} holds change `{}`: the file name and the id must match",
            change.path, cr.id
        ));
    }
    if !ctx
        .env
        .git_ref
        .eq_ignore_ascii_case(&format!("refs/heads/{}", ctx.default_branch))
    {
        return Err(format!(
            "the push was to `{}`, not the default branch `{}`: the runner only executes what was merged into the default branch",
            ctx.env.git_ref, ctx.default_branch
        ));
    }
    let pr = pr?.ok_or_else(|| {
        format!(
            "it reached `{}` by a direct push ({}), not through a merged pull request from `slipway/{}`: only reviewed, merged change requests run",
            ctx.default_branch,
            ctx.env.sha.get(..7).unwrap_or_default(),
            cr.id
        )
    })?;
    if let Some(newer) = superseded_by {
        return Err(format!(
            "PR #{} also adds `{newer}`, a newer request for the same change; only that one is executed",
            pr.number
        ));
    }
    slipway_core::change::verify(&cr, &ctx.keys, Utc::now()).map_err(|e| e.to_string())?;
    if let Some(cfg) = &ctx.config_in_repo
        && ctx.changed.iter().any(|c| c == cfg)
    {
        return Err(format!(
            "the same merge changed the runner's config `{cfg}` (its keys and roles): merge config changes on their own, then request the change again"
        ));
    }
    verify::check_rendered_files(&cr, &|p| ctx.read(p))?;
    let policy = ctx.policy.as_ref().map_err(Clone::clone)?;
    let check = verify::check_policy(policy, &cr)?;
    let reviews = ctx
        .gh
        .reviews(ctx.repo(), pr.number)
        .await
        .map_err(|e| format!("can't read PR #{}'s reviews (fails closed): {e}", pr.number))?;
    let quorum = verify::check_quorum(
        policy,
        &cr,
        &pr,
        &verify::review_inputs(&reviews),
        check.requirement.as_ref(),
        Utc::now(),
    )?;
    Ok(Verified {
        cr,
        pr,
        check,
        quorum,
    })
}

/// Credentials, then the command. `Err` is a failure before anything ran.
async fn run_change(
    ctx: &Ctx,
    cr: &ChangeRequest,
    check: &PolicyCheck,
) -> (Granted, Result<Execution, String>) {
    let scratch = ctx.scratch.path().join(&cr.id);
    if let Err(e) = std::fs::create_dir_all(scratch.join("home")) {
        return (
            Granted::default(),
            Err(format!("creating {}: {e}", scratch.display())),
        );
    }
    let session = format!("slipway-{}", cr.id);
    let (role, cluster) = match (&cr.command.family, &check.target) {
        (Family::Tf, Target::Stack { stack }) => (
            ctx.cfg.stacks.get(stack).and_then(|s| s.role_arn.clone()),
            None,
        ),
        (
            Family::Kubectl,
            Target::Cluster {
                cluster: Some(alias),
                ..
            },
        ) => match ctx.cfg.clusters.get(alias) {
            Some(c) => (c.role_arn.clone(), Some((alias.clone(), c))),
            None => {
                return (
                    Granted::default(),
                    Err(format!(
                        "cluster `{alias}` has no credentials in the runner config (clusters.{alias}.kubeconfig); nothing was changed"
                    )),
                );
            }
        },
        (Family::Deploy, Target::Service { env, .. }) => {
            let Some(alias) = ctx
                .policy
                .as_ref()
                .ok()
                .and_then(|p| p.env_cluster(env))
                .map(String::from)
            else {
                return (
                    Granted::default(),
                    Err(format!(
                        "the policy maps environment `{env}` to no cluster; nothing was changed"
                    )),
                );
            };
            match ctx.cfg.clusters.get(&alias) {
                Some(c) => (c.role_arn.clone(), Some((alias, c))),
                None => {
                    return (
                        Granted::default(),
                        Err(format!(
                            "cluster `{alias}` (environment {env}) has no credentials in the runner config (clusters.{alias}.kubeconfig); nothing was changed"
                        )),
                    );
                }
            }
        }
        (family, target) => {
            return (
                Granted::default(),
                Err(format!(
                    "a {} change on {} can't be executed by this runner; nothing was changed",
                    family.as_str(),
                    target.describe()
                )),
            );
        }
    };
    let granted = match credentials::for_role(
        &ctx.aws,
        &ctx.cfg,
        &ctx.region,
        role.as_deref(),
        &session,
        &ctx.default_branch,
    )
    .await
    {
        Ok(g) => g,
        Err(e) => {
            return (
                Granted::default(),
                Err(format!("no credentials: {e}; nothing was changed")),
            );
        }
    };
    let runner = Runner {
        tools: &ctx.cfg.tools,
        scratch: scratch.clone(),
        deadline: Instant::now() + check.timeout,
        timeout: check.timeout,
        output_cap: check.output_cap,
        extra_env: granted.env.clone(),
    };
    let execution = match (&cr.command.family, cluster) {
        (Family::Tf, _) => {
            let stack = match &check.target {
                Target::Stack { stack } => stack.clone(),
                _ => String::new(),
            };
            let stack_dir = format!("stacks/{stack}");
            if cr.rendered.stack_dir.as_deref() != Some(stack_dir.as_str()) {
                return (
                    granted,
                    Err(format!(
                        "the change's stack_dir {:?} is not `{stack_dir}`; nothing was changed",
                        cr.rendered.stack_dir
                    )),
                );
            }
            let export = scratch.join("tree");
            let exported = {
                let m = lock(&ctx.mirror);
                let prefix = format!("{stack_dir}/");
                m.export_filtered(ctx.merge, &export, |p| {
                    !p.starts_with("stacks/") || p.starts_with(&prefix)
                })
            };
            if let Err(e) = exported {
                return (
                    granted,
                    Err(format!(
                        "exporting {stack_dir} from the merged commit: {e}; nothing was changed"
                    )),
                );
            }
            Ok(runner.terraform(cr, &export, &stack_dir).await)
        }
        (Family::Kubectl, Some((alias, c))) => {
            Ok(runner.kubectl(cr, &alias, c, &ctx.env.workspace).await)
        }
        (Family::Deploy, Some((alias, c))) => {
            let dir = cr.command.argv.last().cloned().unwrap_or_default();
            Ok(runner
                .deploy(
                    cr,
                    ctx.cfg.deploy.command.as_deref(),
                    &alias,
                    c,
                    &dir,
                    &ctx.env.workspace,
                )
                .await)
        }
        _ => Err("nothing to run".to_string()),
    };
    (granted, execution)
}

/// Comment, status, audit and lock release for a finished (or refused) change.
#[allow(clippy::too_many_arguments)]
async fn finish(
    ctx: &Ctx,
    change: &Change,
    cr: Option<&ChangeRequest>,
    pr: Option<&Pr>,
    outcome: &Outcome,
    execution: Option<&Execution>,
    started: Instant,
    approvals: &[slipway_core::approval::Counted],
    granted: &Granted,
    mut notes: Vec<String>,
) {
    let id = cr.map_or_else(
        || {
            verify::id_from_path(&change.path)
                .unwrap_or(&change.path)
                .to_string()
        },
        |c| c.id.clone(),
    );
    // Locks are released on success and failure alike, but only a lock this change holds.
    if let (Some(cr), Some(pr)) = (cr, pr) {
        notes.push(release_lock(ctx, cr, pr).await);
    }
    let command = cr.map_or("(unreadable change request)", |c| c.command.text.as_str());
    let body = report::result_body(&report::Result {
        id: &id,
        command,
        outcome,
        execution,
        duration: started.elapsed(),
        run_url: &ctx.env.run_url(),
        merge_sha: &ctx.env.sha,
        notes: &notes,
    });
    if let Some(pr) = pr
        && let Err(e) = ctx
            .gh
            .comment(ctx.repo(), pr.number, &fit_github_body(&body))
            .await
    {
        eprintln!("slipway-runner: commenting on PR #{}: {e}", pr.number);
    }
    if let Err(e) = ctx
        .gh
        .set_status(
            ctx.repo(),
            &ctx.env.sha,
            outcome.status_state(),
            report::STATUS_CONTEXT,
            &report::status_description(&id, outcome),
            Some(&ctx.env.run_url()),
        )
        .await
    {
        eprintln!(
            "slipway-runner: setting the {} status: {e}",
            report::STATUS_CONTEXT
        );
    }
    let details = json!({
        "assumed_role": granted.assumed_role,
        "oidc": granted.claims.as_ref().map(|c| json!({"sub": c.sub, "job_workflow_ref": c.job_workflow_ref, "repository_id": c.repository_id, "actor": c.actor, "runner_environment": c.runner_environment})),
        "notes": notes,
        "workflow_ref": ctx.env.workflow_ref,
    });
    let _ = record(
        ctx, change, cr, pr, outcome, execution, started, approvals, &details,
    )
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn record(
    ctx: &Ctx,
    change: &Change,
    cr: Option<&ChangeRequest>,
    pr: Option<&Pr>,
    outcome: &Outcome,
    execution: Option<&Execution>,
    started: Instant,
    approvals: &[slipway_core::approval::Counted],
    details: &serde_json::Value,
) -> Result<(), String> {
    let oidc_subject = details
        .pointer("/oidc/sub")
        .and_then(serde_json::Value::as_str);
    let id = cr.map_or_else(|| change.path.clone(), |c| c.id.clone());
    let rec = report::audit_record(&report::AuditInput {
        event_id: &format!("{id}-{}-{}", ctx.env.run_id, outcome.word()),
        now: Utc::now(),
        path: &change.path,
        cr,
        pr,
        repo: &ctx.repo().to_string(),
        merge_sha: &ctx.env.sha,
        outcome,
        execution,
        duration: started.elapsed(),
        run_id: &ctx.env.run_id,
        oidc_subject,
        approvals,
        details,
    });
    ctx.audit.record(rec).await.map(|_| ()).map_err(|e| {
        eprintln!(
            "slipway-runner: writing the audit record for {}: {e}",
            change.path
        );
        e
    })
}

/// Delete `refs/slipway/locks/<slug>` if this change holds it: it points at the PR's head, or at
/// a commit the bridge made for this request.
async fn release_lock(ctx: &Ctx, cr: &ChangeRequest, pr: &Pr) -> String {
    let refname = format!("refs/slipway/locks/{}", lock_slug(&cr.resource));
    let target = match ctx.lock_gh.get_ref(ctx.repo(), &refname).await {
        Ok(None) => return format!("Lock `{refname}`: already released."),
        Ok(Some(t)) => t,
        Err(e) => {
            return format!(
                "Lock `{refname}`: couldn't be read ({e}); release it by hand if no other change holds it."
            );
        }
    };
    let ours = target.eq_ignore_ascii_case(&pr.head_sha)
        || {
            let ids: Vec<String> = std::iter::once(cr.id.clone())
                .chain(cr.supersedes.clone())
                .map(|i| format!("Slipway-Change: {i}"))
                .collect();
            matches!(ctx.lock_gh.commit_message(ctx.repo(), &target).await, Ok(Some(m)) if ids.iter().any(|i| m.contains(i.as_str())))
        };
    if !ours {
        return format!(
            "Lock `{refname}`: left in place, it is held by another change (it points at {target})."
        );
    }
    match ctx.lock_gh.delete_ref(ctx.repo(), &refname).await {
        Ok(()) => format!("Lock `{refname}`: released."),
        Err(e) => format!(
            "Lock `{refname}`: could not be released ({e}); the workflow's token needs `contents: write` for it (pass SLIPWAY_LOCK_TOKEN), or delete the ref by hand."
        ),
    }
}
