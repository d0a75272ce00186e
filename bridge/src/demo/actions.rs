//! GitHub Actions, as far as the demo needs it: when `main` of the GitOps repo moves, the
//! example workflows run (`.github/gitops-runner/slipway-runner.yml`, which calls the reusable
//! `slipway-runner-reusable.yml`). Like the real ones they check out the pushed commit, ask
//! `slipway-runner targets` for the lock targets, and run `slipway-runner execute` once per
//! target with the variables Actions sets, a job token (`github-actions[bot]`), and the
//! emulated Actions OIDC issuer. The runner is the real one, as a child process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_emulators::actions::ActionsJob;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::screen::Screen;
use super::world::{BUCKET, OWNER, REPO, World, aws_env};

/// One finished `execute` job.
#[derive(Debug, Clone)]
pub struct Job {
    pub sha: String,
    pub target: String,
    pub code: Option<i32>,
    pub log: PathBuf,
}

pub struct Actions {
    world: Arc<World>,
    screen: Arc<Screen>,
    run: AtomicU64,
    jobs: Mutex<Vec<Job>>,
}

impl Actions {
    pub fn new(world: Arc<World>, screen: Arc<Screen>) -> Actions {
        Actions {
            world,
            screen,
            run: AtomicU64::new(9_000_000),
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// Every job so far.
    pub fn jobs(&self) -> Vec<Job> {
        slipway_infra::sync::lock(&self.jobs).clone()
    }

    /// Run the workflow for every new commit on `main` until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut seen = self.world.github.branch_sha(OWNER, REPO, "main");
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let now = self.world.github.branch_sha(OWNER, REPO, "main");
            if now == seen {
                continue;
            }
            seen.clone_from(&now);
            if let Some(sha) = now {
                self.workflow(&sha).await;
            }
        }
    }

    /// The workflow on `sha`: targets, then one execute job per target.
    async fn workflow(&self, sha: &str) {
        let short = sha.get(..7).unwrap_or(sha);
        let run = self.run.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.world.dir.join("actions").join(format!("run-{run}"));
        let checkout = match self.checkout(sha, &dir).await {
            Ok(c) => c,
            Err(e) => {
                self.screen.line(format!(
                    "⚙ GitHub Actions: checking out {short} failed: {e}"
                ));
                return;
            }
        };
        let mut job = ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", sha);
        job.run_id = run;
        let targets = match self.targets(&job, &checkout).await {
            Ok(t) => t,
            Err(e) => {
                self.screen.line(format!(
                    "⚙ GitHub Actions: slipway-runner targets on {short}: {e}"
                ));
                return;
            }
        };
        if targets.is_empty() {
            return; // the workflow's `paths: [changes/**]` filter: nothing to run
        }
        for target in targets {
            self.screen.line(format!(
                "⚙ GitHub Actions: push to main ({short}) → slipway-runner execute (target {target}, run {run})"
            ));
            let log = dir.join(format!("execute-{target}.log"));
            let code = self.execute(&job, &target, &checkout, &log).await;
            self.report(code, &log);
            slipway_infra::sync::lock(&self.jobs).push(Job {
                sha: sha.to_string(),
                target,
                code,
                log,
            });
        }
    }

    /// How the job ended, with the start of its log, as the Actions UI would show it.
    fn report(&self, code: Option<i32>, log: &Path) {
        let outcome = match code {
            Some(0) => "succeeded".to_string(),
            Some(c) => format!("failed (exit {c})"),
            None => "was killed".to_string(),
        };
        let mut lines = vec![format!(
            "⚙ GitHub Actions: slipway-runner {outcome}; its log: {}",
            log.display()
        )];
        let text = std::fs::read_to_string(log).unwrap_or_default();
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .take(12)
                .map(|l| format!("    {l}")),
        );
        self.screen.print(&lines);
    }

    /// `actions/checkout` of `sha` with its parents (the runner diffs against the first parent).
    async fn checkout(&self, sha: &str, dir: &Path) -> Result<PathBuf, String> {
        let bare = self
            .world
            .gitops_dir()
            .ok_or("the GitOps repository is gone")?;
        let dest = dir.join("checkout");
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        git(
            dir,
            &[
                "clone",
                "-q",
                &bare.display().to_string(),
                &dest.display().to_string(),
            ],
        )
        .await?;
        git(
            &dest,
            &["-c", "advice.detachedHead=false", "checkout", "-q", sha],
        )
        .await?;
        Ok(dest)
    }

    /// `slipway runner` in the job's environment (cleared, then what Actions sets).
    fn runner(&self, job: &ActionsJob, checkout: &Path) -> Result<Command, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find my executable: {e}"))?;
        let home = self.world.dir.join("actions").join("home");
        let temp = self.world.dir.join("actions").join("tmp");
        for d in [&home, &temp] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        // The job's GITHUB_TOKEN acts as github-actions[bot]; the lock ref is deleted with the
        // App's token, as the workflow's SLIPWAY_LOCK_TOKEN secret would be.
        let job_token = self.world.github.actions_token(OWNER, REPO);
        let lock_token = self
            .world
            .github
            .installation_token(self.world.installation);
        let mut cmd = Command::new(exe);
        cmd.arg("runner")
            .env_clear()
            .current_dir(checkout)
            .kill_on_drop(true)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("SLIPWAY_LOCK_TOKEN", &lock_token)
            .env("SLIPWAY_RUNNER_CONFIG", self.world.dir.join("runner.yaml"))
            .envs(
                self.world
                    .oidc
                    .job_env(job, &self.world.github, &job_token, checkout, &temp),
            );
        if self.world.moto.is_some() {
            cmd.envs(aws_env());
        }
        Ok(cmd)
    }

    async fn targets(&self, job: &ActionsJob, checkout: &Path) -> Result<Vec<String>, String> {
        let mut cmd = self.runner(job, checkout)?;
        cmd.arg("targets");
        let out = cmd.output().await.map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("unexpected output: {e}"))
    }

    async fn execute(
        &self,
        job: &ActionsJob,
        target: &str,
        checkout: &Path,
        log: &Path,
    ) -> Option<i32> {
        self.world.oidc.set_job(job.clone());
        let Ok(mut cmd) = self.runner(job, checkout) else {
            return Some(2);
        };
        let Ok(file) = std::fs::File::create(log) else {
            return Some(2);
        };
        let Ok(err) = file.try_clone() else {
            return Some(2);
        };
        cmd.arg("execute")
            .env("SLIPWAY_TARGET", target)
            .stdout(file)
            .stderr(err);
        match cmd.status().await {
            Ok(status) => status.code(),
            Err(_) => Some(2),
        }
    }
}

async fn git(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .map_err(|e| format!("git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The runner's config, outside the checkout as `SLIPWAY_RUNNER_CONFIG` points at it: the
/// bridge's public key, the clusters, the deploy command, and the audit trail (the bridge's
/// spool, under its own writer id, and the S3 mirror with credentials from the OIDC token).
pub fn write_config(world: &World) -> Result<(), String> {
    let kubeconfig = world.kubeconfig.display();
    let mut text = format!(
        "keys:\n  demo: \"{key}\"\nclusters:\n  staging: {{ kubeconfig: \"{kubeconfig}\", context: staging }}\n  production: {{ kubeconfig: \"{kubeconfig}\", context: production }}\ndeploy:\n  command: [kubectl, \"--kubeconfig={{kubeconfig}}\", \"--context={{context}}\", apply, --server-side, --validate=false, -k, \"{{dir}}\"]\ntools: {{ kill_grace: 2s }}\naudit:\n  spool_dir: \"{spool}\"\n  signing_key_file: \"{audit_key}\"\n  writers:\n",
        key = world.verifying_key_hex,
        spool = world.spool_dir().display(),
        audit_key = world.runner_audit_key().display(),
    );
    let writers = std::fs::read_to_string(world.audit_writers())
        .map_err(|e| format!("{}: {e}", world.audit_writers().display()))?;
    for line in writers.lines() {
        let _ = writeln!(text, "    {line}");
    }
    if let Some(m) = &world.moto {
        let _ = write!(
            text,
            "  s3:\n    bucket: {BUCKET}\n    prefix: slipway\n    endpoint_url: \"{url}\"\n    region: us-east-1\n    retention_days: 1\n    role_arn: \"arn:aws:iam::123456789012:role/slipway-runner-audit\"\n    flush_timeout: 30s\naws:\n  region: us-east-1\n  sts_endpoint: \"{url}\"\n",
            url = m.url
        );
    }
    let path = world.dir.join("runner.yaml");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
