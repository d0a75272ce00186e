//! `/tf plan <stack>`: export the stack from the GitOps repository's default branch into a fresh
//! directory the bridge owns, `terraform init` when needed, then `terraform plan`, all under the
//! job's one deadline and Cancel button. The summary goes to Slack; the whole redacted plan is
//! kept with the audit record.
//!
//! Where the tree comes from is behind [`StackSource`]: today a configured checkout, later the
//! default branch head of the bridge's git mirror.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_infra::exec::{ExecEnd, ExecResult, ExecSpec, Progress};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::outcome::{self as work, Context, Finished, PlanSummary, Shape};
use super::reply::{Reply, code, fit_head};
use crate::error::Failure;

/// Where stacks live in the GitOps repository.
pub const STACKS_DIR: &str = "stacks";
/// Most bytes and files one export may copy.
const MAX_EXPORT_BYTES: u64 = 256 * 1024 * 1024;
const MAX_EXPORT_FILES: usize = 20_000;

/// A read-only source of the GitOps tree at the default branch head.
pub trait StackSource: Send + Sync + std::fmt::Debug {
    /// Write the tree a plan of `stack` needs into `dest` (an empty directory the bridge owns)
    /// and return the stack's directory inside it, or say what is wrong.
    fn export(&self, stack: &str, dest: &Path) -> Result<PathBuf, Failure>;
    /// Where the tree comes from, for the audit record.
    fn describe(&self) -> String;
}

/// A checkout on disk (`gitops.checkout`). The whole tree is copied, other stacks, `.git` and
/// `.terraform` directories aside, so relative module paths such as `../../modules/x` work.
#[derive(Debug)]
pub struct CheckoutSource {
    pub root: PathBuf,
}

impl StackSource for CheckoutSource {
    fn export(&self, stack: &str, dest: &Path) -> Result<PathBuf, Failure> {
        let src = self.root.join(STACKS_DIR).join(stack);
        if !src.is_dir() {
            return Err(Failure::user(format!(
                "stack `{stack}` has no directory `{STACKS_DIR}/{stack}` in the GitOps repository"
            )));
        }
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| Failure::upstream_error("Reading the GitOps checkout", &e))?;
        let mut budget = (MAX_EXPORT_BYTES, MAX_EXPORT_FILES);
        copy_tree(&root, &root, dest, stack, &mut budget)?;
        Ok(dest.join(STACKS_DIR).join(stack))
    }

    fn describe(&self) -> String {
        format!("checkout {}", self.root.display())
    }
}

fn copy_tree(
    root: &Path,
    from: &Path,
    to: &Path,
    stack: &str,
    budget: &mut (u64, usize),
) -> Result<(), Failure> {
    let io = |what: &Path, e: std::io::Error| {
        Failure::upstream(
            "Copying the stack for the plan",
            format!("{}: {e}", what.display()),
        )
    };
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let name = entry.file_name();
        let path = entry.path();
        let target = to.join(&name);
        let kind = entry.file_type().map_err(|e| io(&path, e))?;
        let skip = name == ".git"
            || name == ".terraform"
            || (from == root.join(STACKS_DIR) && name != stack);
        if skip {
            continue;
        }
        budget.1 = budget.1.checked_sub(1).ok_or_else(|| {
            Failure::user(format!(
                "the GitOps tree has more than {MAX_EXPORT_FILES} files to copy"
            ))
        })?;
        if kind.is_dir() {
            copy_tree(root, &path, &target, stack, budget)?;
        } else if kind.is_symlink() {
            // Only links that stay inside the repository; never a way out to the bridge's files.
            match std::fs::canonicalize(&path) {
                Ok(real) if real.starts_with(root) => {
                    let link = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                    std::os::unix::fs::symlink(&link, &target).map_err(|e| io(&target, e))?;
                }
                _ => {
                    tracing::warn!(path = %path.display(), "skipping a symlink that leaves the GitOps tree");
                }
            }
        } else if kind.is_file() {
            let len = entry.metadata().map_err(|e| io(&path, e))?.len();
            budget.0 = budget.0.checked_sub(len).ok_or_else(|| {
                Failure::user(format!(
                    "the GitOps tree is larger than {} MiB",
                    MAX_EXPORT_BYTES >> 20
                ))
            })?;
            std::fs::copy(&path, &target).map_err(|e| io(&path, e))?;
            // The source may be read-only; terraform rewrites its lock file in the copy.
            let mut perms = std::fs::metadata(&target)
                .map_err(|e| io(&target, e))?
                .permissions();
            let mode = std::os::unix::fs::PermissionsExt::mode(&perms) | 0o600;
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, mode);
            std::fs::set_permissions(&target, perms).map_err(|e| io(&target, e))?;
        }
    }
    Ok(())
}

/// Read `Plan: X to add, Y to change, Z to destroy.` or `No changes.` from plan output.
pub fn parse_summary(text: &str) -> Option<PlanSummary> {
    for line in text.lines().map(str::trim) {
        if line.starts_with("No changes.") {
            return Some(PlanSummary::default());
        }
        let Some(rest) = line.strip_prefix("Plan: ") else {
            continue;
        };
        let mut s = PlanSummary::default();
        for part in rest.trim_end_matches('.').split(", ") {
            let mut words = part.split_whitespace();
            let (Some(n), Some("to"), Some(verb)) = (words.next(), words.next(), words.next())
            else {
                return None;
            };
            let n: u64 = n.parse().ok()?;
            match verb {
                "add" => s.add = n,
                "change" => s.change = n,
                "destroy" => s.destroy = n,
                "import" => s.import = n,
                _ => {}
            }
        }
        return Some(s);
    }
    None
}

/// A `/tf plan` ready to run.
#[derive(Debug, Clone)]
pub struct PlanWork {
    pub stack: String,
    pub source: Arc<dyn StackSource>,
    pub state_dir: PathBuf,
    pub binary: String,
    /// Environment apart from the CLI config file (which is added once it exists).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub output_cap: usize,
    pub kill_grace: Duration,
    /// The sandbox its processes run in (`None`: `execution.sandbox: none`).
    pub sandbox: Option<super::sandbox::Bwrap>,
    /// What they may see besides the run's tree ([`super::sandbox::terraform`]; without the
    /// static AWS files when a role session is minted instead).
    pub access: super::sandbox::Access,
    /// The AWS credentials plans get (`terraform.aws_profile`), minted when the run starts.
    pub aws: Option<super::creds::RunCreds>,
    /// Who the plan is for (the role session's tags).
    pub requester: super::creds::Requester,
}

/// The bridge's own terraform CLI config (the image points `TF_CLI_CONFIG_FILE` at a missing
/// file, which makes every command warn). Returns its absolute path.
pub(crate) fn cli_config(state_dir: &Path) -> Result<PathBuf, String> {
    let dir = std::path::absolute(state_dir.join("terraform"))
        .map_err(|e| format!("terraform state dir: {e}"))?;
    let cache = dir.join(super::sandbox::PLUGIN_CACHE);
    std::fs::create_dir_all(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    let file = dir.join("cli.tfrc");
    let quoted = cache
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let text = format!(
        "# Written by Slipway for /tf plan.\ndisable_checkpoint = true\nplugin_cache_dir = \"{quoted}\"\n"
    );
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        let tmp = dir.join(format!("cli.tfrc.{}", std::process::id()));
        std::fs::write(&tmp, &text).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &file).map_err(|e| format!("writing {}: {e}", file.display()))?;
    }
    Ok(file)
}

impl PlanWork {
    fn argv(&self, words: &[&str]) -> Vec<String> {
        std::iter::once(self.binary.clone())
            .chain(words.iter().map(|a| (*a).to_string()))
            .collect()
    }

    fn spec(&self, words: &[&str], cwd: &Path, timeout: Duration) -> ExecSpec {
        let spec = ExecSpec {
            argv: self.argv(words),
            env: self.env.clone(),
            cwd: cwd.to_path_buf(),
            timeout,
            output_cap: self.output_cap,
            kill_grace: self.kill_grace,
        };
        super::sandbox::wrap_in(self.sandbox.as_ref(), spec, &self.access)
    }

    /// Export, init when needed, plan; then remove the per-request directory.
    pub async fn run(
        mut self,
        ctx: Context,
        progress: watch::Sender<Progress>,
        cancel: CancellationToken,
    ) -> Finished {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let runs = self.state_dir.join("terraform").join("runs");
        let dest = runs.join(&ctx.run_id);
        let (source, stack, state_dir) = (
            self.source.clone(),
            self.stack.clone(),
            self.state_dir.clone(),
        );
        let export_dest = dest.clone();
        let mut export = tokio::task::spawn_blocking(move || {
            let rc = cli_config(&state_dir)
                .map_err(|e| Failure::upstream("Preparing terraform's configuration", e))?;
            let dir = source.export(&stack, &export_dest)?;
            Ok::<_, Failure>((rc, dir))
        });
        let prepared = match work::bounded(&cancel, deadline, &mut export).await {
            Ok(Ok(Ok(p))) => Ok(p),
            Ok(Ok(Err(failure))) => {
                failure.log(&ctx.run_id, "preparing a plan");
                let why = failure.shown(&ctx.run_id);
                Err((ExecEnd::SpawnFailed(why.clone()), Some(why)))
            }
            Ok(Err(e)) => Err((ExecEnd::SpawnFailed(e.to_string()), None)),
            Err(end) => {
                // Let the copy finish before its directory is removed.
                let _ = export.await;
                Err((end, None))
            }
        };
        let finished = match prepared {
            Err((end, why)) => {
                let text = why.clone().unwrap_or_default();
                let f = Finished::api(end, &text, started);
                match why {
                    Some(why) => f.with_outcome(format!("could not be prepared: {why}")),
                    None => f,
                }
            }
            Ok((rc, dir)) => {
                self.env
                    .push(("TF_CLI_CONFIG_FILE".into(), rc.display().to_string()));
                self.access = super::sandbox::terraform_run(self.access.clone(), &dest, &rc, &dir);
                match self.mint_aws(&ctx, deadline, &cancel, started).await {
                    Ok(()) => self.init_and_plan(&dir, deadline, &progress, &cancel).await,
                    Err(f) => f,
                }
            }
        };
        let finished = self.with_aws_detail(finished);
        let cleanup = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dest));
        if let Ok(Err(e)) = cleanup.await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "removing a plan's work directory");
        }
        finished
            .with_detail("stack", self.stack.as_str())
            .with_detail("source", self.source.describe())
    }

    /// The record names the AWS identity the plan used (the session, or the static files).
    fn with_aws_detail(&self, finished: Finished) -> Finished {
        match &self.aws {
            Some(c) => {
                let (k, v) = c.detail();
                finished.with_detail(k, v)
            }
            None => finished,
        }
    }

    /// The plan's AWS session, minted into its environment; the record names it.
    async fn mint_aws(
        &mut self,
        ctx: &Context,
        deadline: tokio::time::Instant,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<(), Finished> {
        let Some(super::creds::RunCreds::AwsRole(role)) = self.aws.clone() else {
            return Ok(());
        };
        let minting = role.mint(&self.requester);
        match work::bounded(cancel, deadline, minting).await {
            Ok(Ok(m)) => {
                self.env
                    .retain(|(k, _)| !m.env.iter().any(|(mk, _)| mk == k));
                self.env.extend(m.env.iter().cloned());
                self.aws = Some(super::creds::RunCreds::Static(
                    m.detail.0,
                    m.detail.1.clone(),
                ));
                Ok(())
            }
            Ok(Err(why)) => {
                tracing::warn!(run = %ctx.run_id, error = %why, "minting a plan's AWS session");
                let why = format!("couldn't get the plan's AWS session ({why})");
                let f = Finished::api(ExecEnd::SpawnFailed(why.clone()), &why, started);
                Err(f.with_outcome(format!("could not be prepared: {why}")))
            }
            Err(end) => Err(Finished::api(end, "", started)),
        }
    }

    async fn init_and_plan(
        &self,
        dir: &Path,
        deadline: tokio::time::Instant,
        progress: &watch::Sender<Progress>,
        cancel: &CancellationToken,
    ) -> Finished {
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let mut init_detail = serde_json::Value::Null;
        if !dir.join(".terraform").is_dir() {
            let words = ["init", "-input=false", "-no-color"];
            let init =
                super::outcome::run_process(self.spec(&words, dir, left()), progress, cancel).await;
            init_detail = serde_json::json!({
                "end": init.end.describe(self.timeout),
                "sha256": init.digest,
                "duration_ms": u64::try_from(init.duration.as_millis()).unwrap_or(u64::MAX),
            });
            if !init.end.success() {
                let outcome = match &init.end {
                    ExecEnd::Exited(_) | ExecEnd::Signalled(_) => Some(format!(
                        "failed in `terraform init` ({})",
                        init.end.describe(self.timeout)
                    )),
                    _ => None,
                };
                let mut f = Finished {
                    result: init,
                    outcome,
                    shape: Shape::Plan(None),
                    argv: Some(self.argv(&words)),
                    details: serde_json::Map::new(),
                };
                f.details.insert("init".into(), init_detail);
                return f;
            }
        }
        let words = ["plan", "-input=false", "-no-color", "-lock=false"];
        let plan =
            super::outcome::run_process(self.spec(&words, dir, left()), progress, cancel).await;
        let summary = plan
            .end
            .success()
            .then(|| parse_summary(&plan.output))
            .flatten();
        let outcome = summary.map(|s| format!("finished: *{}*", s.describe()));
        let mut f = Finished {
            result: plan,
            outcome,
            shape: Shape::Plan(summary),
            argv: Some(self.argv(&words)),
            details: serde_json::Map::new(),
        };
        f.details.insert("init".into(), init_detail);
        f.details.insert(
            "plan".into(),
            serde_json::to_value(summary).unwrap_or_default(),
        );
        f
    }
}

/// The thread reply for a plan: the counts as fields, the diff cut to fit, and where the whole
/// redacted plan is kept.
pub fn plan_reply(
    result: &ExecResult,
    summary: Option<&PlanSummary>,
    budget: usize,
    digest: &str,
    audit_id: Option<&str>,
) -> Reply {
    let out = &result.output;
    let body = match summary {
        Some(s) if s.is_empty() => out
            .lines()
            .find(|l| l.trim_start().starts_with("No changes."))
            .unwrap_or("No changes.")
            .trim(),
        Some(_) => out
            .find("Terraform will perform the following actions:")
            .map_or(out.as_str(), |i| &out[i..])
            .trim(),
        None => out.trim(),
    };
    let (text, cut) = fit_head(body, budget);
    let kept = format!(
        "the full redacted plan is kept with the audit record{}",
        audit_id.map(|id| format!(" `{id}`")).unwrap_or_default()
    );
    let fields = match summary {
        Some(s) if !s.is_empty() => {
            let mut f = vec![
                format!("*To add*\n{}", s.add),
                format!("*To change*\n{}", s.change),
                format!("*To destroy*\n{}", s.destroy),
            ];
            if s.import > 0 {
                f.push(format!("*To import*\n{}", s.import));
            }
            f
        }
        _ => Vec::new(),
    };
    Reply {
        headline: match summary {
            Some(s) => format!("*Plan*: {}", s.describe()),
            None => "*Plan output*".into(),
        },
        context: format!("{digest} · {kept}"),
        fields,
        output: if text.is_empty() {
            "_(no output)_".into()
        } else {
            code(&text)
        },
        note: if cut || result.truncated {
            format!(
                "The plan is cut to fit Slack ({} bytes in total); {kept}.",
                result.total_bytes
            )
        } else {
            String::new()
        },
        fallback: match summary {
            Some(s) => format!("Plan: {}", s.describe()),
            None => format!("Plan output:\n{text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let s = parse_summary("x\nPlan: 2 to add, 1 to change, 0 to destroy.\n").unwrap();
        assert_eq!((s.add, s.change, s.destroy), (2, 1, 0));
        assert_eq!(s.describe(), "2 to add, 1 to change, 0 to destroy");
        let s = parse_summary("Plan: 1 to import, 0 to add, 0 to change, 3 to destroy.").unwrap();
        assert_eq!((s.import, s.destroy), (1, 3));
        assert!(
            parse_summary("\nNo changes. Your infrastructure matches the configuration.\n")
                .unwrap()
                .is_empty()
        );
        assert_eq!(parse_summary("Error: boom"), None);
        assert_eq!(parse_summary("Plan: lots"), None);
    }

    #[test]
    fn export_copies_the_stack_and_shared_files_only() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        for d in [
            "stacks/app",
            "stacks/network/.terraform",
            "modules/m",
            ".git",
            "stacks/app/.terraform",
        ] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("stacks/app/main.tf"), "# app").unwrap();
        std::fs::write(r.join("stacks/network/main.tf"), "# net").unwrap();
        std::fs::write(r.join("modules/m/main.tf"), "# m").unwrap();
        std::fs::write(r.join(".git/config"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.join("stacks/app/passwd")).unwrap();
        std::os::unix::fs::symlink("../../modules", r.join("stacks/app/mods")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let src = CheckoutSource {
            root: r.to_path_buf(),
        };
        let dir = src.export("app", &out.path().join("x")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("main.tf")).unwrap(),
            "# app"
        );
        assert!(dir.join("../../modules/m/main.tf").is_file());
        assert!(dir.join("mods/m/main.tf").is_file());
        assert!(!dir.join("passwd").exists());
        assert!(!dir.join(".terraform").exists());
        assert!(!out.path().join("x/stacks/network").exists());
        assert!(!out.path().join("x/.git").exists());
        let e = src.export("nope", &out.path().join("y")).unwrap_err();
        assert!(e.shown("ref").contains("stacks/nope"), "{e:?}");
    }

    #[test]
    fn plan_reply_shows_counts_and_where_the_plan_is() {
        let result = work::text_result(
            ExecEnd::Exited(0),
            "preamble\nTerraform will perform the following actions:\n  + resource\n\nPlan: 1 to add, 0 to change, 0 to destroy.\n",
            Instant::now(),
        );
        let summary = parse_summary(&result.output);
        let r = plan_reply(&result, summary.as_ref(), 2900, "d", Some("evt"));
        assert_eq!(r.fields.len(), 3);
        assert!(!r.output.contains("preamble") && r.output.contains("+ resource"));
        assert!(r.context.contains("`evt`"));
    }
}
