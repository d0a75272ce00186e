//! `slipway-runner execute` in a simulated GitHub Actions job: the variables Actions sets, the
//! Actions OIDC token service (emulated, real RS256 JWTs), STS served by moto, the GitHub
//! emulator holding the merged PR and its reviews, a real checkout of the merge commit, and the
//! real terraform and kubectl (against the Kubernetes emulator).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use slipway_core::change::{
    ChangeCommand, ChangeRequest, Execution, PolicyBinding, Rendered, RenderedFile, Requester,
    SCHEMA_VERSION,
};
use slipway_core::command::parse_line;
use slipway_core::policy::{Policy, SlackUser, decide};
use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator};
use slipway_emulators::github::GitHubEmulator;
use slipway_emulators::kube::KubeEmulator;
use slipway_infra::github::{GitHub, Repo};
use slipway_tests::gitops::{APP_ID, APP_KEY_PEM, OWNER, REPO, SIGNING_KEY_HEX, verifying_key};
use slipway_tests::harness::require_tool;

const BOT: &str = "slipway[bot]";
const KUBE_TOKEN: &str = "runner-kube-token";
const ROLE: &str = "arn:aws:iam::123456789012:role/slipway-app";

/// One simulated GitOps repo, its GitHub, and the job's OIDC issuer.
struct Fx {
    github: GitHubEmulator,
    oidc: ActionsOidcEmulator,
    /// The Slipway App's installation token (the bridge's side: PRs, locks).
    token: String,
    /// The workflow job's `GITHUB_TOKEN`: the runner acts as `github-actions[bot]`.
    job_token: String,
    dir: tempfile::TempDir,
    policy: Policy,
}

pub(crate) fn example_policy(edits: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(slipway_tests::example_policy()).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    text
}

async fn fixture(policy_edits: &[(&str, &str)], files: &[(&str, String)]) -> Fx {
    let github = GitHubEmulator::start().await;
    let policy_text = example_policy(policy_edits);
    let mut all: Vec<(&str, &str)> = vec![
        ("policy/slipway.yaml", policy_text.as_str()),
        ("README.md", "# GitOps\n"),
    ];
    all.extend(files.iter().map(|(p, c)| (*p, c.as_str())));
    github.create_repo(OWNER, REPO, "main", &all);
    let installation = github.add_app(APP_ID, APP_KEY_PEM, &[(OWNER, REPO)]);
    for (login, token) in [
        ("omar-operator", "tok-omar"),
        ("ada-approver", "tok-ada"),
        ("bo-approver", "tok-bo"),
    ] {
        github.add_user(login, token);
    }
    let token = github.installation_token(installation);
    let job_token = github.actions_token(OWNER, REPO);
    let oidc =
        ActionsOidcEmulator::start(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", "0")).await;
    Fx {
        github,
        oidc,
        token,
        job_token,
        dir: tempfile::tempdir().unwrap(),
        policy: Policy::from_yaml(&policy_text).unwrap(),
    }
}

/// A change request for `text` by U0OPERATOR, decided by the fixture's policy, signed.
fn change(fx: &Fx, suffix: &str, text: &str, rendered: Rendered) -> ChangeRequest {
    let user = SlackUser::new("U0OPERATOR");
    let parsed = parse_line(text);
    let d = decide(&fx.policy, &user, &parsed);
    let identity = d.identity.unwrap();
    let approval = d
        .approval
        .clone()
        .unwrap_or_else(|| panic!("{text}: {}", d.reason));
    // As the bridge signs a roll back it vouched for.
    let approval = if text.contains("--rollback-of") {
        fx.policy.rollback_requirement(&approval)
    } else {
        approval
    };
    let command = parsed.as_ref().unwrap();
    let now = chrono::Utc::now();
    let resource = d.resource().unwrap();
    let cr = ChangeRequest {
        schema_version: SCHEMA_VERSION,
        id: format!("cr-{}-{suffix}", slipway_core::change::lock_slug(&resource)),
        requester: Requester {
            slack_user_id: "U0OPERATOR".into(),
            slack_team_id: None,
            slack_enterprise_id: None,
            subject: identity.subject.clone(),
            email: identity.email.clone(),
            github_login: identity.github.clone(),
            role: d.role.unwrap().into(),
            groups: identity.groups.clone(),
        },
        command: ChangeCommand {
            text: text.into(),
            family: command.family(),
            argv: command.argv().unwrap(),
        },
        target: d.target.clone(),
        tier: d.tier.unwrap(),
        resource,
        policy: PolicyBinding {
            rule: d.rule.clone(),
            approval,
        },
        rendered,
        reason: None,
        freeze_override: None,
        supersedes: None,
        execution: Some(Execution::of(&d.target, |env| {
            fx.policy.env_cluster(env).map(String::from)
        })),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        signature: None,
    };
    let key = slipway_core::change::parse_signing_key(SIGNING_KEY_HEX).unwrap();
    slipway_core::change::sign(cr, &key, "test")
}

fn gh(fx: &Fx) -> GitHub {
    GitHub::user(&fx.github.api_url(), &fx.token).unwrap()
}

fn repo() -> Repo {
    Repo::parse(&format!("{OWNER}/{REPO}")).unwrap()
}

/// Push the change file (as `yaml`, possibly tampered) plus `files` to `slipway/<id>`, open the
/// PR as the bot, and take the lock as the bridge does. Returns (PR number, head sha).
async fn open_change(
    fx: &Fx,
    cr: &ChangeRequest,
    yaml: &str,
    files: &[(&str, String)],
) -> (u64, String) {
    let path = cr.file_path();
    let mut all: Vec<(&str, &str)> = vec![(path.as_str(), yaml)];
    all.extend(files.iter().map(|(p, c)| (*p, c.as_str())));
    let head = fx.github.push_direct(
        OWNER,
        REPO,
        &cr.branch(),
        &all,
        &format!("{}\n\nSlipway-Change: {}", cr.command.text, cr.id),
        BOT,
    );
    let number = fx.github.open_pr(
        OWNER,
        REPO,
        &cr.branch(),
        "main",
        &format!("[slipway] {}", cr.command.text),
        BOT,
    );
    let lock = format!(
        "refs/slipway/locks/{}",
        slipway_core::change::lock_slug(&cr.resource)
    );
    assert!(
        gh(fx).create_ref(&repo(), &lock, &head).await.unwrap(),
        "lock taken"
    );
    (number, head)
}

/// Open the change's PR, approve it as two approvers and merge it: (PR number, merge sha).
async fn approved_and_merged(
    fx: &Fx,
    cr: &ChangeRequest,
    yaml: &str,
    files: &[(&str, String)],
) -> (u64, String) {
    let (number, _) = open_change(fx, cr, yaml, files).await;
    approve(fx, number);
    (number, merge(fx, number))
}

fn approve(fx: &Fx, number: u64) {
    for who in ["ada-approver", "bo-approver"] {
        fx.github
            .review(OWNER, REPO, number, who, "APPROVE", "lgtm");
    }
}

fn merge(fx: &Fx, number: u64) -> String {
    let sha = fx
        .github
        .merge(OWNER, REPO, number, "ada-approver")
        .unwrap();
    fx.oidc
        .set_job(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", &sha));
    sha
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where a runner job runs: the GitHub it reports to, the Actions OIDC issuer, the job's
/// `GITHUB_TOKEN`, a directory for checkouts and the config, the audit spool, and the run id.
pub(crate) struct Site<'a> {
    pub github: &'a GitHubEmulator,
    pub oidc: &'a ActionsOidcEmulator,
    pub job_token: &'a str,
    pub dir: &'a Path,
    pub spool: PathBuf,
    pub run_id: u64,
}

impl Fx {
    fn site(&self) -> Site<'_> {
        Site {
            github: &self.github,
            oidc: &self.oidc,
            job_token: &self.job_token,
            dir: self.dir.path(),
            spool: self.dir.path().join("spool"),
            run_id: 9_000_001,
        }
    }
}

impl Site<'_> {
    /// `actions/checkout` of `sha` (with its parents).
    pub(crate) fn checkout(&self, sha: &str) -> PathBuf {
        let dest = self.dir.join(format!("checkout-{}", &sha[..7]));
        let bare = self.github.repo_dir(OWNER, REPO).unwrap();
        git(
            self.dir,
            &[
                "clone",
                "-q",
                bare.to_str().unwrap(),
                dest.to_str().unwrap(),
            ],
        );
        git(
            &dest,
            &["-c", "advice.detachedHead=false", "checkout", "-q", sha],
        );
        dest
    }

    /// A runner config (outside the repo) with `extra` appended.
    pub(crate) fn config(&self, extra: &str) -> PathBuf {
        let path = self.dir.join("runner.yaml");
        let text = format!(
            "keys:\n  test: \"{}\"\ntools: {{ kill_grace: 1s }}\naudit:\n  spool_dir: {}\n  signing_key_file: {}\n  writers: {{ \"runner:*\": \"{}\" }}\n{extra}",
            key_hex(),
            self.spool.display(),
            slipway_tests::harness::write_audit_key(self.dir).display(),
            slipway_tests::harness::audit_public_hex()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Run `slipway-runner execute` as an Actions job on `sha` would.
    pub(crate) async fn run(
        &self,
        workspace: &Path,
        sha: &str,
        cfg: &Path,
        extra_env: &[(&str, String)],
    ) -> Output {
        let home = self.dir.join("home");
        let temp = self.dir.join("runner-temp");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&temp).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-runner-under-test"));
        cmd.arg("execute").env_clear().current_dir(workspace);
        let mut job = ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", sha);
        job.run_id = self.run_id;
        let vars: Vec<(&str, String)> = vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", home.display().to_string()),
            ("SLIPWAY_RUNNER_CONFIG", cfg.display().to_string()),
        ];
        let actions = self
            .oidc
            .job_env(&job, self.github, self.job_token, workspace, &temp);
        for (k, v) in vars
            .into_iter()
            .chain(actions)
            .chain(extra_env.iter().cloned())
        {
            cmd.env(k, v);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        eprintln!(
            "--- runner stdout\n{}--- runner stderr\n{}---",
            crate::stdout(&out),
            crate::stderr(&out)
        );
        out
    }
}

/// `actions/checkout` of `sha` (with its parents).
fn checkout(fx: &Fx, sha: &str) -> PathBuf {
    fx.site().checkout(sha)
}

fn key_hex() -> String {
    hex::encode(verifying_key().to_bytes())
}

/// A runner config (outside the repo) with `extra` appended.
fn config(fx: &Fx, extra: &str) -> PathBuf {
    fx.site().config(extra)
}

/// Run `slipway-runner execute` as an Actions job on `sha` would.
async fn run(
    fx: &Fx,
    workspace: &Path,
    sha: &str,
    cfg: &Path,
    extra_env: &[(&str, String)],
) -> Output {
    fx.site().run(workspace, sha, cfg, extra_env).await
}

fn comments(fx: &Fx, number: u64) -> Vec<String> {
    fx.github
        .comments(OWNER, REPO, number)
        .iter()
        .map(|c| c["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn result_comment(fx: &Fx, number: u64, id: &str) -> String {
    let marker = format!("<!-- slipway-runner:{id} -->");
    comments(fx, number)
        .into_iter()
        .find(|c| c.contains(&marker))
        .unwrap_or_else(|| panic!("no result comment for {id}: {:?}", comments(fx, number)))
}

fn execution_status(fx: &Fx, sha: &str) -> Value {
    fx.github
        .statuses(OWNER, REPO, sha)
        .into_iter()
        .find(|s| s["context"] == "slipway/execution")
        .unwrap_or_else(|| panic!("no slipway/execution status on {sha}"))
}

fn audit(fx: &Fx) -> Vec<slipway_core::audit::AuditRecord> {
    slipway_infra::spool::read_all(&fx.dir.path().join("spool")).unwrap_or_default()
}

/// The execution record of a change that ran.
fn executed_record(fx: &Fx) -> slipway_core::audit::AuditRecord {
    audit(fx)
        .into_iter()
        .find(|r| {
            r.kind == slipway_core::audit::EventKind::Execution
                && r.details
                    .as_ref()
                    .is_some_and(|d| d["outcome"] == "executed")
        })
        .expect("execution record")
}

fn lock_exists(fx: &Fx, cr: &ChangeRequest) -> bool {
    let refname = format!(
        "refs/slipway/locks/{}",
        slipway_core::change::lock_slug(&cr.resource)
    );
    std::process::Command::new("git")
        .args([
            "--git-dir",
            fx.github.repo_dir(OWNER, REPO).unwrap().to_str().unwrap(),
            "rev-parse",
            "--verify",
            "-q",
            &refname,
        ])
        .output()
        .unwrap()
        .status
        .success()
}

mod freeze;
mod gcp;
mod key_store;
mod kubectl;
mod people;
mod refusals;
pub(crate) mod rollback;
pub(crate) mod rollout;
mod terraform;
mod workflow;
