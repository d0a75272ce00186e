//! `slipway-runner execute` in a simulated GitHub Actions job: the variables Actions sets, the
//! Actions OIDC token service (emulated, real RS256 JWTs), STS served by moto, the GitHub
//! emulator holding the merged PR and its reviews, a real checkout of the merge commit, and the
//! real terraform and kubectl (against the Kubernetes emulator).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use slipway_core::change::{
    ApprovalRequirement, ChangeCommand, ChangeRequest, PolicyBinding, Rendered, RenderedFile,
    Requester, SCHEMA_VERSION,
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
    token: String,
    dir: tempfile::TempDir,
    policy: Policy,
}

fn example_policy(edits: &[(&str, &str)]) -> String {
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
    let oidc =
        ActionsOidcEmulator::start(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", "0")).await;
    Fx {
        github,
        oidc,
        token,
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
    let approval = d.approval.unwrap_or_else(|| panic!("{text}: {}", d.reason));
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
            approval: ApprovalRequirement::from_rule(approval),
        },
        rendered,
        reason: None,
        supersedes: None,
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

/// `actions/checkout` of `sha` (with its parents).
fn checkout(fx: &Fx, sha: &str) -> PathBuf {
    let dest = fx.dir.path().join(format!("checkout-{}", &sha[..7]));
    let bare = fx.github.repo_dir(OWNER, REPO).unwrap();
    git(
        fx.dir.path(),
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

fn key_hex() -> String {
    hex::encode(verifying_key().to_bytes())
}

/// A runner config (outside the repo) with `extra` appended.
fn config(fx: &Fx, extra: &str) -> PathBuf {
    let path = fx.dir.path().join("runner.yaml");
    let text = format!(
        "keys:\n  test: \"{}\"\ntools: {{ kill_grace: 1s }}\naudit: {{ spool_dir: {} }}\n{extra}",
        key_hex(),
        fx.dir.path().join("spool").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Run `slipway-runner execute` as an Actions job on `sha` would.
async fn run(
    fx: &Fx,
    workspace: &Path,
    sha: &str,
    cfg: &Path,
    extra_env: &[(&str, String)],
) -> Output {
    let home = fx.dir.path().join("home");
    let temp = fx.dir.path().join("runner-temp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-runner-under-test"));
    cmd.arg("execute").env_clear().current_dir(workspace);
    let mut job = ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", sha);
    job.run_id = 9_000_001;
    let vars: Vec<(&str, String)> = vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", home.display().to_string()),
        ("SLIPWAY_RUNNER_CONFIG", cfg.display().to_string()),
    ];
    let actions = fx
        .oidc
        .job_env(&job, &fx.github, &fx.token, workspace, &temp);
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

// ---- terraform ----

fn tf_stack(state: &Path, input: &str, provisioner: Option<&str>) -> String {
    let prov = provisioner
        .map(|cmd| format!("\n  provisioner \"local-exec\" {{\n    command = \"{cmd}\"\n  }}\n"))
        .unwrap_or_default();
    format!(
        "terraform {{\n  backend \"local\" {{\n    path = \"{}\"\n  }}\n}}\n\nresource \"terraform_data\" \"app\" {{\n  input = \"{input}\"\n{prov}}}\n",
        state.display()
    )
}

fn terraform(dir: &Path, args: &[&str]) -> String {
    let rc = dir.join("test.tfrc");
    std::fs::write(&rc, "disable_checkpoint = true\n").unwrap();
    let out = std::process::Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "terraform {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The digest the bridge would pin: plan the stack as it stands (with its state) and digest.
fn pinned_digest(fx: &Fx, main_tf: &str) -> String {
    let dir = tempfile::tempdir_in(fx.dir.path()).unwrap();
    std::fs::write(dir.path().join("main.tf"), main_tf).unwrap();
    terraform(dir.path(), &["init", "-input=false", "-no-color"]);
    terraform(
        dir.path(),
        &[
            "plan",
            "-input=false",
            "-no-color",
            "-lock=false",
            "-out=p.tfplan",
        ],
    );
    let json = terraform(dir.path(), &["show", "-json", "p.tfplan"]);
    slipway_core::change::plan_digest(&slipway_core::redact::redactor().redact(&json)).unwrap()
}

fn tf_rendered(digest: &str) -> Rendered {
    Rendered {
        stack_dir: Some("stacks/app".into()),
        plan_sha256: Some(digest.into()),
        plan_summary: Some("Plan: 1 to add, 0 to change, 0 to destroy.".into()),
        ..Rendered::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_change_is_reverified_and_applied_with_oidc_credentials_once() {
    require_tool(
        "terraform",
        "this machine image ships terraform 1.11 at /usr/local/bin/terraform",
    );
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let main_tf = tf_stack(&state, "v2", None);
    let fx = fixture(&[], &[("stacks/app/main.tf", main_tf.clone())]).await;
    let sts = crate::audit::moto(fx.dir.path(), None).await;
    let cr = change(
        &fx,
        "a1",
        "/tf apply app",
        tf_rendered(&pinned_digest(&fx, &main_tf)),
    );
    assert_eq!(cr.policy.approval.rule, "stacks");
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    let cfg = config(
        &fx,
        &format!(
            "aws: {{ region: us-east-1, sts_endpoint: \"{}\" }}\nstacks:\n  app: {{ role_arn: \"{ROLE}\" }}\n",
            sts.url()
        ),
    );

    let out = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert!(
        crate::stdout(&out).contains("changes/") && crate::stdout(&out).contains(": executed"),
        "{}",
        crate::stdout(&out)
    );

    // terraform applied the approved plan: the resource is in the state.
    let tfstate = std::fs::read_to_string(&state).expect("state written by the apply");
    assert!(
        tfstate.contains("terraform_data") && tfstate.contains("\"v2\""),
        "{tfstate}"
    );

    // The PR says what happened; the merge commit has the status; the lock is released.
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Executed")
            && body.contains("took ")
            && body.contains("terraform apply -input=false -no-color slipway.tfplan"),
        "{body}"
    );
    assert!(body.contains("Apply complete!"), "{body}");
    assert!(
        body.contains("assumed-role/slipway-app"),
        "the role session is named: {body}"
    );
    assert!(
        comments(&fx, number)
            .iter()
            .any(|c| c.contains(&format!("<!-- slipway-runner:{}:started -->", cr.id)))
    );
    assert_eq!(execution_status(&fx, &sha)["state"], "success");
    assert!(!lock_exists(&fx, &cr), "the lock was released");

    // One OIDC token for STS, for the default branch; the audit record names the run and the role.
    let issued = fx.oidc.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["aud"], "sts.amazonaws.com");
    let records = audit(&fx);
    let done = records
        .iter()
        .find(|r| {
            r.kind == slipway_core::audit::EventKind::Execution
                && r.details
                    .as_ref()
                    .is_some_and(|d| d["outcome"] == "executed")
        })
        .expect("execution record");
    assert_eq!(done.writer, "runner:9000001-1");
    assert_eq!(done.change_id.as_deref(), Some(cr.id.as_str()));
    assert_eq!(
        done.runner.as_ref().unwrap().oidc_subject.as_deref(),
        Some("repo:acme/gitops:ref:refs/heads/main")
    );
    assert!(
        done.details.as_ref().unwrap()["assumed_role"]
            .as_str()
            .unwrap()
            .contains("assumed-role/slipway-app")
    );
    assert_eq!(
        done.pr.as_ref().unwrap().merge_sha.as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(done.approvals.len(), 2);
    assert!(
        done.output
            .as_ref()
            .unwrap()
            .excerpt
            .contains("Apply complete")
    );
    assert!(slipway_core::audit::verify_chain(&records).is_ok());

    // A re-run of the workflow on the same commit executes nothing and says so.
    let before = std::fs::read_to_string(&state).unwrap();
    let n_comments = comments(&fx, number).len();
    let again = run(&fx, &ws, &sha, &cfg, &[("GITHUB_RUN_ATTEMPT", "2".into())]).await;
    assert_eq!(again.status.code(), Some(0), "{}", crate::stderr(&again));
    assert!(
        crate::stdout(&again).contains("already-done")
            && crate::stdout(&again).contains("nothing was done again"),
        "{}",
        crate::stdout(&again)
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        before,
        "no second apply"
    );
    assert_eq!(comments(&fx, number).len(), n_comments, "no new comments");
    assert_eq!(fx.oidc.issued().len(), 1, "no new credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_drifted_after_approval_is_refused() {
    require_tool(
        "terraform",
        "this machine image ships terraform 1.11 at /usr/local/bin/terraform",
    );
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let main_tf = tf_stack(&state, "v2", None);
    let fx = fixture(&[], &[("stacks/app/main.tf", main_tf.clone())]).await;
    let cr = change(
        &fx,
        "d1",
        "/tf apply app",
        tf_rendered(&pinned_digest(&fx, &main_tf)),
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    // After approval, someone applies the stack out of band: the state no longer matches the plan.
    let oob = tempfile::tempdir_in(fx.dir.path()).unwrap();
    std::fs::write(oob.path().join("main.tf"), tf_stack(&state, "v3", None)).unwrap();
    terraform(oob.path(), &["init", "-input=false", "-no-color"]);
    terraform(
        oob.path(),
        &["apply", "-input=false", "-no-color", "-auto-approve"],
    );
    let before = std::fs::read_to_string(&state).unwrap();

    let ws = checkout(&fx, &sha);
    let out = run(&fx, &ws, &sha, &config(&fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Refused")
            && body.contains("differs from the approved plan")
            && body.contains("Nothing was applied"),
        "{body}"
    );
    assert!(
        !body.contains("terraform apply -input"),
        "apply never ran: {body}"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        before,
        "the state is untouched"
    );
    assert_eq!(execution_status(&fx, &sha)["state"], "failure");
    assert!(
        !lock_exists(&fx, &cr),
        "the lock is released on failure too"
    );
    assert!(
        audit(&fx)
            .iter()
            .any(|r| r.kind == slipway_core::audit::EventKind::Rejection
                && r.change_id.as_deref() == Some(cr.id.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_process_group_and_reports_it() {
    require_tool(
        "terraform",
        "this machine image ships terraform 1.11 at /usr/local/bin/terraform",
    );
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let pid_file = state_dir.path().join("sleep.pid");
    // The apply starts a provisioner that never ends on its own.
    let main_tf = tf_stack(
        &state,
        "v2",
        Some(&format!("echo $$ > {}; exec sleep 300", pid_file.display())),
    );
    let fx = fixture(
        &[("change: 15m", "change: 8s")],
        &[("stacks/app/main.tf", main_tf.clone())],
    )
    .await;
    let cr = change(
        &fx,
        "t1",
        "/tf apply app",
        tf_rendered(&pinned_digest(&fx, &main_tf)),
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    let started = std::time::Instant::now();
    let out = run(&fx, &ws, &sha, &config(&fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Partially executed")
            && body.contains("timed out after 8s")
            && body.contains("process group was killed"),
        "{body}"
    );
    assert_eq!(execution_status(&fx, &sha)["state"], "error");
    // The provisioner's process, a grandchild of the runner, is gone.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the provisioner started")
        .trim()
        .parse()
        .unwrap();
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split_whitespace().nth(2) != Some("Z"))
    };
    for _ in 0..50 {
        if !alive(pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "process {pid} survived the timeout");
    let rec = audit(&fx)
        .into_iter()
        .find(|r| {
            r.details
                .as_ref()
                .is_some_and(|d| d["outcome"] == "partial")
        })
        .expect("partial execution record");
    assert!(
        rec.details.unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}

// ---- kubectl and deploys ----

async fn cluster(fx: &Fx) -> (KubeEmulator, String) {
    require_tool(
        "kubectl",
        "this machine image ships kubectl 1.32 at /usr/bin/kubectl",
    );
    let kube = KubeEmulator::start().await;
    kube.add_namespace("web");
    kube.add_deployment("web", "web", 2, "registry.example/web:1.4.2");
    let kubeconfig = fx.dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, &["staging", "production"], KUBE_TOKEN);
    let cfg = format!(
        "clusters:\n  staging: {{ kubeconfig: {}, context: staging }}\n",
        kubeconfig.display()
    );
    (kube, cfg)
}

fn patches(kube: &KubeEmulator) -> usize {
    kube.requests()
        .iter()
        .filter(|r| r.method == "PATCH" || r.method == "PUT")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_runs_the_signed_argv_against_the_cluster_and_a_second_run_is_a_no_op() {
    let fx = fixture(&[], &[]).await;
    let (kube, clusters) = cluster(&fx).await;
    let cr = change(
        &fx,
        "k1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    assert_eq!(
        cr.command.argv,
        [
            "kubectl",
            "scale",
            "deployment/web",
            "--replicas=5",
            "--namespace=web"
        ]
    );
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(&fx, &sha);
    // The workflow's matrix: one target per lock.
    let targets = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-runner-under-test"))
        .arg("targets")
        .env_clear()
        .env("GITHUB_WORKSPACE", &ws)
        .env("GITHUB_SHA", &sha)
        .output()
        .unwrap();
    assert_eq!(
        crate::stdout(&targets).trim(),
        r#"["kube-staging-web"]"#,
        "{}",
        crate::stderr(&targets)
    );
    let cfg = config(&fx, &clusters);
    let out = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert_eq!(
        kube.deployment("web", "web").unwrap()["spec"]["replicas"],
        5
    );
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.context.as_deref() == Some("staging") && r.method != "GET"),
        "through the staging context"
    );
    let body = result_comment(&fx, number, &cr.id);
    assert!(
        body.contains("Executed") && body.contains("deployment.apps/web scaled"),
        "{body}"
    );
    assert!(
        fx.oidc.issued().is_empty(),
        "no AWS role configured for the cluster: no token minted"
    );

    let writes = patches(&kube);
    let again = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(again.status.code(), Some(0));
    assert!(
        crate::stdout(&again).contains("already-done"),
        "{}",
        crate::stdout(&again)
    );
    assert_eq!(patches(&kube), writes, "nothing ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_applies_the_rendered_manifests_server_side() {
    let base = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.4.2\n";
    let kustomization = |tag: &str| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example/web\n    newTag: \"{tag}\"\n"
        )
    };
    let fx = fixture(
        &[],
        &[
            ("apps/web/base/deployment.yaml", base.to_string()),
            (
                "apps/web/base/kustomization.yaml",
                "resources:\n  - deployment.yaml\n".to_string(),
            ),
            (
                "apps/web/staging/kustomization.yaml",
                kustomization("1.4.2"),
            ),
        ],
    )
    .await;
    let (kube, clusters) = cluster(&fx).await;
    let new = kustomization("1.5.0");
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(new.as_bytes()))
    };
    let rendered = Rendered {
        files: vec![RenderedFile {
            path: "apps/web/staging/kustomization.yaml".into(),
            sha256: digest,
        }],
        image: Some("registry.example/web:1.5.0".into()),
        ..Rendered::default()
    };
    let cr = change(&fx, "p1", "/deploy web staging 1.5.0", rendered);
    let (number, sha) = approved_and_merged(
        &fx,
        &cr,
        &cr.to_yaml(),
        &[("apps/web/staging/kustomization.yaml", new)],
    )
    .await;
    let ws = checkout(&fx, &sha);
    let deploy = "deploy:\n  command: [kubectl, \"--kubeconfig={kubeconfig}\", \"--context={context}\", apply, --server-side, --validate=false, -k, \"{dir}\"]\n";
    let out = run(
        &fx,
        &ws,
        &sha,
        &config(&fx, &format!("{clusters}{deploy}")),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{:?}", comments(&fx, number));
    let d = kube.deployment("web", "web").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example/web:1.5.0",
        "{d}"
    );
    let body = result_comment(&fx, number, &cr.id);
    assert!(body.contains("serverside-applied"), "{body}");
}

// ---- refusals ----

async fn refused(fx: &Fx, number: Option<u64>, sha: &str, id: &str) -> String {
    let ws = checkout(fx, sha);
    let out = run(fx, &ws, sha, &config(fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    assert!(
        crate::stdout(&out).contains("refused"),
        "{}",
        crate::stdout(&out)
    );
    assert_eq!(execution_status(fx, sha)["state"], "failure");
    let rejection = audit(fx)
        .into_iter()
        .find(|r| r.kind == slipway_core::audit::EventKind::Rejection)
        .expect("a rejection record");
    assert_eq!(rejection.change_id.as_deref(), Some(id));
    if let Some(n) = number {
        assert!(
            !comments(fx, n).iter().any(|c| c.contains(":started -->")),
            "nothing started"
        );
        return result_comment(fx, n, id);
    }
    crate::stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_change_request_is_refused() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "x1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    // Someone edits the merged file: five replicas become fifty.
    let tampered = cr.to_yaml().replace("--replicas=5", "--replicas=50");
    assert_ne!(tampered, cr.to_yaml());
    let (number, sha) = approved_and_merged(&fx, &cr, &tampered, &[]).await;
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("Refused") && body.contains("edited after signing"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_on_an_older_head_sha_are_refused() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "s1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    let (number, _) = open_change(&fx, &cr, &cr.to_yaml(), &[]).await;
    approve(&fx, number);
    // A commit lands on the PR after the approvals; nobody approves the new head.
    fx.github.push_direct(
        OWNER,
        REPO,
        &cr.branch(),
        &[("README.md", "# GitOps, edited\n")],
        "late edit",
        "omar-operator",
    );
    let sha = merge(&fx, number);
    let body = refused(&fx, Some(number), &sha, &cr.id).await;
    assert!(
        body.contains("don't meet the quorum")
            && body.contains("older commit (stale): ada-approver, bo-approver"),
        "{body}"
    );
    assert!(
        !lock_exists(&fx, &cr),
        "the lock this change took is released even though the head moved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_pushed_directly_to_main_is_refused() {
    let fx = fixture(&[], &[]).await;
    let cr = change(
        &fx,
        "m1",
        "/kubectl scale deployment/web --replicas=5 -n web",
        Rendered::default(),
    );
    let sha = fx.github.push_direct(
        OWNER,
        REPO,
        "main",
        &[(&cr.file_path(), &cr.to_yaml())],
        "sneak a change in",
        "omar-operator",
    );
    fx.oidc
        .set_job(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", &sha));
    let stdout = refused(&fx, None, &sha, &cr.id).await;
    assert!(
        stdout.contains("direct push") && stdout.contains("not through a merged pull request"),
        "{stdout}"
    );
    assert!(fx.oidc.issued().is_empty(), "no credentials were requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_mistakes_exit_2_and_say_what_to_fix() {
    let fx = fixture(&[], &[]).await;
    let sha = fx.github.branch_sha(OWNER, REPO, "main").unwrap();
    let ws = checkout(&fx, &sha);
    let missing = fx.dir.path().join("nope.yaml");
    let out = run(&fx, &ws, &sha, &missing, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("nope.yaml") && crate::stderr(&out).contains("--config"),
        "{}",
        crate::stderr(&out)
    );
    let out = run(
        &fx,
        &ws,
        &sha,
        &config(&fx, ""),
        &[("GITHUB_TOKEN", String::new())],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("GITHUB_TOKEN"),
        "{}",
        crate::stderr(&out)
    );
    // A commit that adds no change requests is nothing to do.
    let out = run(&fx, &ws, &sha, &config(&fx, ""), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    assert!(crate::stdout(&out).contains("nothing to do"));
}

// ---- the shipped workflow and trust policy ----

fn workflow() -> Value {
    let text = std::fs::read_to_string(
        slipway_tests::repo_root().join(".github/gitops-runner/slipway-runner.yml"),
    )
    .unwrap();
    serde_saphyr::from_str::<Value>(&text).unwrap()
}

#[test]
fn the_example_workflow_is_safe() {
    let w = workflow();
    // Only pushes to the default branch touching changes/**.
    let on = &w["on"];
    assert_eq!(
        on.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["push"],
        "no pull_request(_target), no dispatch: {on}"
    );
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]));
    assert_eq!(on["push"]["paths"], serde_json::json!(["changes/**"]));
    assert_eq!(
        w["permissions"],
        serde_json::json!({"id-token": "write", "contents": "read", "pull-requests": "write", "statuses": "write"})
    );
    let jobs = w["jobs"].as_object().unwrap();
    let mut runs = 0;
    for (name, job) in jobs {
        for step in job["steps"].as_array().unwrap() {
            if step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
            {
                assert_eq!(
                    step["with"]["persist-credentials"], false,
                    "{name}: checkout must not keep credentials"
                );
            }
            if let Some(script) = step["run"].as_str() {
                runs += 1;
                assert!(
                    !script.contains("${{"),
                    "{name}: no expression may be interpolated into a script: {script}"
                );
            }
        }
    }
    assert!(runs >= 2);
    let execute = &jobs["execute"];
    let group = execute["concurrency"]["group"].as_str().unwrap();
    assert!(
        group.contains("matrix.target"),
        "one concurrency group per target: {group}"
    );
    assert_eq!(execute["concurrency"]["cancel-in-progress"], false);
    assert!(
        execute["strategy"]["matrix"]["target"]
            .as_str()
            .unwrap()
            .contains("needs.targets.outputs.targets")
    );
    assert!(
        execute.get("permissions").is_none(),
        "execute runs with the workflow's permissions"
    );
    assert_eq!(
        jobs["targets"]["permissions"],
        serde_json::json!({"contents": "read"})
    );
    let step = execute["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("slipway-runner execute"))
        })
        .unwrap();
    assert_eq!(step["env"]["SLIPWAY_TARGET"], "${{ matrix.target }}");
}

#[test]
fn the_trust_policy_pins_audience_branch_and_workflow() {
    let text = std::fs::read_to_string(
        slipway_tests::repo_root().join("deploy/iam/runner-trust-policy.json"),
    )
    .unwrap();
    let p: Value = serde_json::from_str(&text).unwrap();
    let statements = p["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
    assert!(
        s["Principal"]["Federated"]
            .as_str()
            .unwrap()
            .ends_with(":oidc-provider/token.actions.githubusercontent.com")
    );
    let eq = &s["Condition"]["StringEquals"];
    assert_eq!(
        eq["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    let sub = eq["token.actions.githubusercontent.com:sub"]
        .as_str()
        .unwrap();
    assert!(
        sub.starts_with("repo:acme/gitops:ref:refs/heads/main:"),
        "sub pins the default branch: {sub}"
    );
    assert!(
        sub.ends_with(
            ":job_workflow_ref:acme/gitops/.github/workflows/slipway-runner.yml@refs/heads/main"
        ),
        "and the workflow: {sub}"
    );
    assert!(s["Condition"].get("StringLike").is_none(), "no wildcards");
    // The runner's own pre-check accepts exactly this subject's branch.
    let claims = slipway_infra::oidc::Claims {
        sub: sub.into(),
        ..Default::default()
    };
    assert_eq!(claims.branch(), Some("main"));
}
