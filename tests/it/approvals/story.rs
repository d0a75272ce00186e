//! Issue 22's story end to end, through the real router (signed Slack requests), the GitHub
//! emulator and the real runner: `/deploy api staging --apply`, two approvals in Slack, the
//! merge; the runner applies and the rollout fails (the Kubernetes emulator crash-loops the new
//! pods); Roll back; its approval, its merge, and a rollout that succeeds.
//!
//! Then every place the trail goes holds the whole story: Jira and ServiceNow (their
//! emulators), Loki (the `LokiEmulator`, which speaks Loki 2.4's push and query API: a real Loki
//! can't be installed on this machine image) and the S3 mirror (moto, with Object Lock); and
//! `slipway audit verify --git` passes over the bucket and over the spool.

use std::time::Duration;

use slipway_bridge::demo::sinks::{Sinks, lacks};
use slipway_core::audit::{AuditRecord, EventKind};
use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator};
use slipway_emulators::kube::RolloutFailure;
use slipway_infra::s3::read::{Content, read_bucket};
use slipway_tests::harness::{Daemon, audit_public_hex, audit_writer_args};

use super::rollback::merged;
use super::*;
use crate::audit::{BUCKET, PREFIX};
use crate::runner::Site;
use crate::runner::rollback::ROLLBACK_RULE;

/// The api's base Deployment, as the runner renders and watches it.
const BASE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: api\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n    spec:\n      containers:\n      - name: api\n        image: registry.example/api:v1.0.0\n";

/// How long the sinks and the mirror may take to catch up.
const SINKS: Duration = Duration::from_secs(60);

/// The bridge with every sink configured, and what the runner needs beside it.
struct World {
    app: TestApp,
    fx: GitOpsFixture,
    /// Jira, ServiceNow and Loki, configured as `slipway demo` configures them.
    sinks: Sinks,
    moto: Daemon,
    oidc: ActionsOidcEmulator,
    dir: tempfile::TempDir,
}

/// The bridge's `audit:` section: the writers, the Object Lock bucket and the three sinks.
fn audit_yaml(moto: &str, sinks: &Sinks) -> String {
    let key = audit_public_hex();
    format!(
        "audit:\n  writers:\n    \"bridge:*\": \"{key}\"\n    \"runner:*\": \"{key}\"\n  \
         s3:\n    bucket: {BUCKET}\n    prefix: {PREFIX}\n    endpoint_url: {moto}\n    \
         retention_days: 1\n    access_key_id: testing\n    secret_access_key: testing\n{}",
        sinks.config_yaml()
    )
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let moto = crate::audit::moto(dir.path(), None).await;
        crate::audit::create_bucket(&crate::audit::client(&moto.url()).await, BUCKET, true).await;
        let sinks = Sinks::start().await;
        let mut fx = gitops::start().await;
        // What the runner reads from the repository: the policy (the same as the bridge's) and
        // a base the kustomization renders into a Deployment to watch.
        let policy = crate::runner::example_policy(ROLLBACK_RULE);
        fx.github.push_direct(
            OWNER,
            REPO,
            "main",
            &[
                ("policy/slipway.yaml", &policy),
                ("apps/api/base/deployment.yaml", BASE),
                (
                    "apps/api/base/kustomization.yaml",
                    "resources:\n  - deployment.yaml\n",
                ),
            ],
            "The policy and the api's base",
            "olga-owner",
        );
        fx.config_yaml.push_str(&audit_yaml(&moto.url(), &sinks));
        let policy_edits = ROLLBACK_RULE
            .iter()
            .map(|(from, to)| (*from, (*to).to_string()))
            .collect();
        let app = start_with(
            &fx,
            Options {
                policy_edits,
                ..Options::default()
            },
        )
        .await;
        app.kube.add_namespace("api");
        app.kube
            .add_deployment("api", "api", 2, "registry.example/api:v1.0.0");
        // The first rollout crash-loops; the roll back's succeeds.
        app.kube
            .fail_next_rollout("api", "api", RolloutFailure::CrashLoop);
        link(&app, "U0APPROVER1", "ada-approver", "tok-ada").await;
        link(&app, "U0APPROVER2", "bo-approver", "tok-bo").await;
        let oidc =
            ActionsOidcEmulator::start(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", "0"))
                .await;
        World {
            app,
            fx,
            sinks,
            moto,
            oidc,
            dir,
        }
    }

    /// Approve PR `number` (its change message `ts`) in Slack as each of `users`, until
    /// `slipway/approval` is green.
    async fn approve(&self, number: u64, ts: &str, users: &[&str]) {
        for user in users {
            let (status, body) = approve_in_slack(&self.app, user, ts, "").await;
            assert_eq!(status, 200, "{body}");
        }
        let green = || approval_status(&self.fx, number).is_some_and(|s| s["state"] == "success");
        assert!(
            self.fx.github_wait(green).await,
            "{:?} {:?}",
            approval_status(&self.fx, number),
            self.app.slack.responses()
        );
    }

    /// The workflow's job on PR `number`'s merge commit: a checkout, then `slipway-runner
    /// execute` as run `run_id`, spooling beside the bridge and flushing to the bucket.
    async fn run_job(&self, number: u64, run_id: u64) -> std::process::Output {
        let sha = pull(&self.fx, number)["merge_commit_sha"]
            .as_str()
            .expect("merged")
            .to_string();
        self.oidc
            .set_job(ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", &sha));
        let job_token = self.fx.github.actions_token(OWNER, REPO);
        let site = Site {
            github: &self.fx.github,
            oidc: &self.oidc,
            job_token: &job_token,
            dir: self.dir.path(),
            spool: self.spool(),
            run_id,
        };
        let kubeconfig = self.app.dir.path().join("kubeconfig");
        let extra = format!(
            "  s3:\n    bucket: {BUCKET}\n    prefix: {PREFIX}\n    endpoint_url: \"{}\"\n    \
             region: us-east-1\n    retention_days: 1\n    flush_timeout: 30s\n\
             clusters:\n  staging: {{ kubeconfig: \"{}\", context: staging }}\n{}",
            self.moto.url(),
            kubeconfig.display(),
            crate::runner::rollout::DEPLOY
        );
        let aws: Vec<(&str, String)> = crate::audit::aws_env()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let workspace = site.checkout(&sha);
        site.run(&workspace, &sha, &site.config(&extra), &aws).await
    }

    /// The bridge's spool, which the runner's jobs share (as in `slipway demo`).
    fn spool(&self) -> PathBuf {
        self.app.dir.path().join("state/audit")
    }

    /// Waits until a runner report in the thread of `ts` contains `needle`; returns it.
    async fn report(&self, ts: &str, needle: &str) -> slipway_emulators::slack::Message {
        let find = |s: &SlackEmulator| {
            s.thread(CHANNEL, ts).into_iter().find(|m| {
                m.text.contains("Runner report")
                    && format!("{} {}", m.text, m.blocks).contains(needle)
            })
        };
        assert!(
            self.app.slack.wait_until(LONG, |s| find(s).is_some()).await,
            "{:?}",
            self.app.slack.thread(CHANNEL, ts)
        );
        find(&self.app.slack).unwrap()
    }

    fn image(&self) -> String {
        let d = self
            .app
            .kube
            .deployment("api", "api")
            .expect("deployment api/api");
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// The change message of PR `number` (the one linking to it), once it is there.
async fn message_of(app: &TestApp, number: u64) -> String {
    let link = format!("pull/{number}");
    let find = |s: &SlackEmulator| {
        s.messages().into_iter().find(|m| {
            let blocks = m.blocks.to_string();
            m.thread_ts.is_none() && blocks.contains("Change request") && blocks.contains(&link)
        })
    };
    assert!(
        app.slack.wait_until(LONG, |s| find(s).is_some()).await,
        "no change message for PR #{number}: {:?}",
        app.slack.messages()
    );
    find(&app.slack).unwrap().ts
}

/// Polls `missing` until it finds nothing missing, for at most [`SINKS`].
async fn until_whole(what: &str, missing: impl AsyncFn() -> Vec<String>) {
    let deadline = tokio::time::Instant::now() + SINKS;
    loop {
        let left = missing().await;
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} lacks: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollout_and_its_roll_back_are_the_whole_story_in_every_sink_and_the_trail_verifies()
 {
    let w = World::start().await;
    // 1-3: the deploy, two approvals, the merge.
    let first = open_pr_with(&w.app, &w.fx, "/deploy api staging --apply").await;
    let ts = message_of(&w.app, first).await;
    w.approve(first, &ts, &["U0APPROVER1", "U0APPROVER2"]).await;
    merged(&w.app, &w.fx, first).await;

    // 4: the runner applies, and the rollout fails: the thread offers Roll back.
    let out = w.run_job(first, 9_000_001).await;
    assert_ne!(out.status.code(), Some(0), "{}", crate::stdout(&out));
    let deployed = w.image();
    assert_ne!(deployed, "registry.example/api:v1.0.0");
    let failed = w.report(&ts, "slipway_rollback").await;
    assert!(failed.text.contains("CrashLoopBackOff"), "{}", failed.text);

    // 5: Roll back, as the requester: a change back to the version before.
    w.app
        .click("U0OPERATOR", "slipway_rollback", &first.to_string(), &ts)
        .await;
    assert!(
        w.fx.github_wait(|| w.fx.github.pulls(OWNER, REPO).len() == 2)
            .await,
        "{:?}",
        w.app.slack.responses()
    );
    let second = w.fx.github.pulls(OWNER, REPO)[1]["number"]
        .as_u64()
        .unwrap();

    // 6: one approval (the rule's rollback_approvers), the merge, and a rollout that succeeds.
    let ts2 = message_of(&w.app, second).await;
    w.approve(second, &ts2, &["U0APPROVER1"]).await;
    merged(&w.app, &w.fx, second).await;
    let out = w.run_job(second, 9_000_002).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stdout(&out));
    assert_eq!(w.image(), "registry.example/api:v1.0.0", "was {deployed}");
    w.report(&ts2, "successfully rolled out").await;

    let story = Story::of(&w, first, second);
    story.in_sinks(&w.sinks).await;
    story.in_s3(&w.moto.url()).await;
    story.verifies(&w).await;
}

/// The trail's records of the two changes (the bridge's and the runners': they share the spool).
struct Story {
    /// The failed deploy's change id, then its roll back's.
    changes: [String; 2],
    records: Vec<AuditRecord>,
}

impl Story {
    fn of(w: &World, first: u64, second: u64) -> Story {
        let id = |n: u64| {
            let branch = pull(&w.fx, n)["head"]["ref"].as_str().unwrap().to_string();
            branch.trim_start_matches("slipway/").to_string()
        };
        let changes = [id(first), id(second)];
        let records: Vec<AuditRecord> = slipway_infra::spool::read_all(&w.spool())
            .unwrap()
            .into_iter()
            .filter(|r| r.change_id.as_ref().is_some_and(|c| changes.contains(c)))
            .collect();
        let story = Story { changes, records };
        story.is_whole();
        story
    }

    fn of_change(&self, i: usize) -> impl Iterator<Item = &AuditRecord> {
        let id = self.changes[i].clone();
        self.records
            .iter()
            .filter(move |r| r.change_id.as_deref() == Some(id.as_str()))
    }

    fn count(&self, i: usize, kind: EventKind) -> usize {
        self.of_change(i).filter(|r| r.kind == kind).count()
    }

    /// The runner's final outcome for change `i`.
    fn outcome(&self, i: usize) -> Option<String> {
        self.of_change(i)
            .filter(|r| r.runner.is_some())
            .filter_map(|r| r.details.as_ref()?["outcome"].as_str().map(String::from))
            .find(|o| o != "started")
    }

    /// Each change has its request, approvals, merge and the runner's outcome; the failed one
    /// has its roll back, to the version before.
    fn is_whole(&self) {
        let shown: Vec<_> = self
            .records
            .iter()
            .map(|r| (r.change_id.clone(), r.kind, r.writer.clone()))
            .collect();
        for (i, approvals) in [(0, 2), (1, 1)] {
            assert!(self.count(i, EventKind::ChangeRequest) >= 1, "{shown:?}");
            assert!(self.count(i, EventKind::Approval) >= approvals, "{shown:?}");
            assert_eq!(self.count(i, EventKind::Merge), 1, "{shown:?}");
        }
        assert_eq!(self.outcome(0).as_deref(), Some("failed"), "{shown:?}");
        assert_eq!(self.outcome(1).as_deref(), Some("executed"), "{shown:?}");
        let rollback = self
            .of_change(0)
            .find(|r| r.kind == EventKind::Rollback)
            .unwrap_or_else(|| panic!("no rollback record: {shown:?}"));
        assert_eq!(rollback.details.as_ref().unwrap()["to_version"], "v1.0.0");
        assert_eq!(self.count(1, EventKind::Rollback), 0, "{shown:?}");
    }

    /// Jira, ServiceNow and Loki hold every record of it; one issue and one change request
    /// per change, the failed deploy's closed as unsuccessful and its roll back's as successful.
    async fn in_sinks(&self, sinks: &Sinks) {
        until_whole("the sinks", async || sinks.gaps(&self.records)).await;
        let issues = sinks.jira.issues();
        assert_eq!(issues.len(), 2, "{issues:#?}");
        let changes = sinks.servicenow.changes();
        let closed: Vec<_> = changes
            .iter()
            .map(|c| c.fields["close_code"].clone())
            .collect();
        assert_eq!(closed, ["unsuccessful", "successful"], "{changes:#?}");
    }

    /// Each record, as it was sealed, is an object in the bucket.
    async fn in_s3(&self, endpoint: &str) {
        let client = crate::audit::client(endpoint).await;
        until_whole("the bucket", async || {
            let stored: Vec<AuditRecord> = read_bucket(&client, BUCKET, &format!("{PREFIX}/"))
                .await
                .unwrap()
                .into_iter()
                .filter_map(|v| match v.content {
                    Content::Object { record: Ok(r), .. } => Some(*r),
                    _ => None,
                })
                .collect();
            lacks(&stored, &self.records)
        })
        .await;
    }

    /// `slipway audit verify --git` over the bucket and over the spool: both merged changes
    /// check out against git, one failed and one executed. (The bridge mirrors continuously, so
    /// the bucket may take a moment to hold the newest checkpoint.)
    async fn verifies(&self, w: &World) {
        let git = w.fx.github.repo_dir(OWNER, REPO).unwrap();
        let spool = w.spool().display().to_string();
        let moto = w.moto.url();
        let bucket = crate::audit::bucket_args(&moto);
        for source in [&bucket[..], &["--spool", &spool]] {
            until_whole("audit verify --git", async || {
                let (passed, text) = verify(source, &git).await;
                let whole = passed
                    && text.contains("2 merged change request(s)")
                    && text.contains("executed 1")
                    && text.contains("failed 1");
                if whole { Vec::new() } else { vec![text] }
            })
            .await;
        }
    }
}

/// `slipway audit verify` over `source`, with the test writers and `--git`: whether it passed,
/// and what it said.
async fn verify(source: &[&str], git: &Path) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.args(["audit", "verify"])
        .args(source)
        .args(audit_writer_args())
        .arg("--git")
        .arg(git)
        .envs(crate::audit::aws_env());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!("{}{}", crate::stdout(&out), crate::stderr(&out));
    (
        out.status.success(),
        format!("{:?}: {text}", out.status.code()),
    )
}
